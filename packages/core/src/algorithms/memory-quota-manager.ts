import type { Clock } from '../clock'
import { systemClock } from '../clock'
import type { QuotaProvider } from '../config'
import type { NormalizedCost } from '../cost'
import { normalizeCost, normalizeDecidedAt, normalizeTokenDelta } from '../cost'
import { configSource, consumeNow, type FastQuotaManager, promiseOf } from '../fast-path'
import { providedConfig } from '../provided-config'
import type {
  QuotaAdjustment,
  QuotaCost,
  QuotaDecision,
  QuotaManager,
  QuotaSubjectOptions,
  QuotaUsage,
} from '../quota'
import type { QuotaConfig } from '../schemas'
import { validateTenantId } from '../tenant-id'
import { assertMethods } from '../validate'
import type { ExpiringEntry } from './expiring-map'
import { ExpiringMap, SecondsSinceBase } from './expiring-map'
import type { EffectiveLimit } from './limits'
import { limitsOf } from './memo'
import { MemorySubjects } from './memory-subjects'
import type { QuotaAlgorithm } from './quota-algorithm'
import { subjectOf, subjectQuota, tagSubject } from './subjects'

const ONE_REQUEST: NormalizedCost = Object.freeze(normalizeCost())

/**
 * Checks what every in-memory manager takes, once, in its constructor: a provider with `method`
 * and an optional clock. Throws `InvalidTenantConfigError` naming what is missing.
 */
export function checkManagerArgs(provider: unknown, method: string, clock: Clock | undefined): Clock {
  assertMethods(provider, 'provider', [method])
  if (clock !== undefined) assertMethods(clock, 'options.clock', ['now'])
  return clock ?? systemClock
}

/**
 * How an in-memory manager keeps a tenant's algorithm state `S` in its map entry `E`. The entry is
 * one object per tenant holding both the state and its expiry-heap field, so a layout can store the
 * state flatter than the algorithm's plain JSON form; `read` and `write` convert between the two.
 */
export interface MemoryLayout<S, E extends ExpiringEntry> {
  readonly algorithm: QuotaAlgorithm<S>
  /** A new entry for `key` holding `state`, not yet in the map. */
  create(key: string, state: S): E
  /** The entry's state in the algorithm's plain form (a snapshot the algorithm may read). */
  read(entry: E | undefined): S | undefined
  /** Replaces the entry's state with `state`. */
  write(entry: E, state: S): void
  /** From when the entry counts nothing, ms since the epoch; `0` when it counts nothing. */
  expiresAt(entry: E): number
  /**
   * The shortcut for the common case, an admission: when every limit has room for `cost`, charges
   * `entry` in place and returns the decision `algorithm.consume` would have returned. Otherwise
   * changes nothing and returns `undefined`, and the manager asks `algorithm.consume`.
   */
  charge(
    entry: E,
    limits: readonly EffectiveLimit[],
    cost: NormalizedCost,
    now: number,
  ): QuotaDecision | undefined
}

/**
 * The in-memory quota engine shared by `InMemoryQuotaManager` and `SlidingWindowQuotaManager`:
 * per-tenant state in an {@link ExpiringMap}, checked and charged with no `await` between reading
 * and writing it, so concurrent calls in one process never over-admit.
 */
export class MemoryQuotaManager<S> implements QuotaManager, FastQuotaManager {
  readonly #provider: QuotaProvider
  readonly #clock: Clock
  readonly #layout: MemoryLayout<S, ExpiringEntry>
  // Expiries as small integers (see SecondsSinceBase): windows end on whole seconds, so nothing is
  // kept longer, and the entry's heap time is not a boxed number.
  readonly #seconds = new SecondsSinceBase()
  readonly #entries = new ExpiringMap<ExpiringEntry>((entry) =>
    this.#seconds.expiry(this.#layout.expiresAt(entry)),
  )
  // Subjects' state per tenant, kept apart so the tenant's own path stays as it was.
  readonly #subjects: MemorySubjects<S>

  constructor(provider: QuotaProvider, clock: Clock | undefined, layout: MemoryLayout<S, ExpiringEntry>) {
    this.#clock = checkManagerArgs(provider, 'quotaConfig', clock)
    this.#provider = provider
    this.#layout = layout
    this.#subjects = new MemorySubjects(layout, this.#seconds)
  }

  /** How many subjects of `tenantId` the manager holds state for (at most `MAX_SUBJECTS_PER_TENANT`). */
  subjectCount(tenantId: string): number {
    return this.#subjects.count(tenantId)
  }

  /**
   * How many tenants the manager holds state for. Idle tenants leave as their windows pass: each
   * call forgets up to 1,024 tenants whose counts have all expired.
   */
  get size(): number {
    return this.#entries.size
  }

  /** The provider the manager reads its quotas from (see `configSource`). */
  get [configSource](): object {
    return this.#provider
  }

  consume(tenantId: string, cost?: QuotaCost): Promise<QuotaDecision> {
    return promiseOf(() => this[consumeNow](tenantId, cost, undefined))
  }

  /**
   * `consume` as a value when the config needs no I/O (see `consumeNow` in core); `config` is the
   * tenant's quota as this manager's provider answered it, for a caller that already read it.
   */
  [consumeNow](
    tenantId: string,
    cost: QuotaCost | undefined,
    config: QuotaConfig | undefined,
  ): QuotaDecision | Promise<QuotaDecision> {
    // The sweep runs first, so the entry read next is one the sweep left in the map; that one read
    // serves both the id check (a stored entry proves its id valid, see #validate) and the charge.
    const now = this.#now()
    let entry = this.#entries.get(tenantId)
    if (entry === undefined) validateTenantId(tenantId)
    // Most calls name no cost: share one frozen default instead of allocating it per call.
    const charge = cost === undefined ? ONE_REQUEST : normalizeCost(cost)
    const subject = cost === undefined ? undefined : subjectOf(cost)
    let quota = config
    if (quota === undefined) {
      const changes = this.#entries.changes
      const read = providedConfig(this.#provider, tenantId, 'quota')
      // After an await the time and the entry are read again: the map may have changed meanwhile.
      if (read instanceof Promise) {
        return read.then((later) => {
          const at = this.#now()
          return this.#decide(tenantId, charge, later, subject, at, this.#entries.get(tenantId))
        })
      }
      quota = read
      // A config store that called back into this manager (a reset, a nested consume) may have
      // replaced or removed the entry read above: charged in place, it would count for nothing.
      if (this.#entries.changes !== changes) entry = this.#entries.get(tenantId)
    }
    return this.#decide(tenantId, charge, quota, subject, now, entry)
  }

  // From the config to the return: no await, so the check and the charge are one atomic step.
  // `entry` is the tenant's entry in the map at `now`, read after the sweep of `now`.
  #decide(
    tenantId: string,
    charge: NormalizedCost,
    config: QuotaConfig,
    subject: string | undefined,
    now: number,
    entry: ExpiringEntry | undefined,
  ): QuotaDecision {
    const layout = this.#layout
    const subjectConfig = subject === undefined ? undefined : subjectQuota(config, subject)
    if (subjectConfig !== undefined) {
      // The tenant's and the subject's windows in one step: both charged or neither.
      const step = this.#subjects.consume(
        tenantId,
        subject!,
        layout.read(entry),
        config,
        subjectConfig,
        charge,
        now,
      )
      if (step.allowed) this.#store(tenantId, entry, step.tenant, now)
      return step.decision
    }
    if (entry !== undefined) {
      const decision = layout.charge(entry, limitsOf(config), charge, now)
      // The map asks for the entry's new expiry when its heap time comes.
      if (decision !== undefined) return decision
    }
    const { decision, state } = layout.algorithm.consume(layout.read(entry), config, charge, now)
    if (decision.allowed) this.#store(tenantId, entry, state, now)
    return decision
  }

  async adjust(tenantId: string, delta: QuotaAdjustment): Promise<QuotaUsage> {
    this.#validate(tenantId)
    const tokens = normalizeTokenDelta(delta)
    const decidedAt = normalizeDecidedAt(delta)
    const subject = subjectOf(delta)
    const config = await providedConfig(this.#provider, tenantId, 'quota')
    const now = this.#now()
    const entry = this.#entries.get(tenantId)
    // The subject's limits are read and checked before anything is stored: a pattern with invalid
    // limits (a hand-written provider) must not leave the tenant adjusted and the call failed,
    // which a retry would adjust again.
    const subjectConfig = subject === undefined ? undefined : subjectQuota(config, subject)
    if (subjectConfig !== undefined) limitsOf(subjectConfig)
    const { usage, state } = this.#layout.algorithm.adjust(
      this.#layout.read(entry),
      config,
      tokens,
      now,
      decidedAt,
    )
    this.#store(tenantId, entry, state, now)
    if (subjectConfig === undefined) return { tenantId, windows: usage }
    const own = this.#subjects.adjust(tenantId, subject!, subjectConfig, tokens, now, decidedAt)
    return { tenantId, subject, windows: [...usage, ...tagSubject(own, subject!)] }
  }

  async peek(tenantId: string, options?: QuotaSubjectOptions): Promise<QuotaUsage> {
    this.#validate(tenantId)
    const subject = subjectOf(options)
    const config = await providedConfig(this.#provider, tenantId, 'quota')
    const now = this.#now()
    if (subject !== undefined) {
      const subjectConfig = subjectQuota(config, subject)
      const windows =
        subjectConfig === undefined ? [] : this.#subjects.peek(tenantId, subject, subjectConfig, now)
      return { tenantId, subject, windows: tagSubject(windows, subject) }
    }
    const state = this.#layout.read(this.#entries.get(tenantId))
    return { tenantId, windows: this.#layout.algorithm.peek(state, config, now) }
  }

  async reset(tenantId: string, options?: QuotaSubjectOptions): Promise<void> {
    validateTenantId(tenantId)
    const subject = subjectOf(options)
    if (subject !== undefined) {
      this.#subjects.reset(tenantId, subject)
      return
    }
    this.#entries.delete(tenantId)
    this.#subjects.reset(tenantId)
  }

  // Only ids that passed validateTenantId are ever inserted, and Map keys compare by value, so an
  // id the map holds is valid: the regex runs for new tenants only.
  #validate(tenantId: string): void {
    if (this.#entries.get(tenantId) === undefined) validateTenantId(tenantId)
  }

  #now(): number {
    const now = this.#clock.now()
    const seconds = this.#seconds.now(now)
    this.#entries.sweep(seconds)
    this.#subjects.sweep(seconds)
    return now
  }

  #store(tenantId: string, entry: ExpiringEntry | undefined, state: S, now: number): void {
    // An existing entry is updated rather than deleted, so it keeps its one heap slot and the sweep
    // drops it once it counts nothing. An empty state is the same as none: create no entry for it.
    if (entry !== undefined) {
      this.#layout.write(entry, state)
      return
    }
    const expiresAt = this.#layout.algorithm.expiresAt(state)
    if (expiresAt > now) {
      this.#entries.add(this.#layout.create(tenantId, state), this.#seconds.expiry(expiresAt))
    }
  }
}
