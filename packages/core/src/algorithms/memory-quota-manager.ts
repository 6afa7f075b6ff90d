import type { Clock } from '../clock'
import { systemClock } from '../clock'
import type { QuotaProvider } from '../config'
import { normalizeCost, normalizeTokenDelta } from '../cost'
import type { QuotaCost, QuotaDecision, QuotaManager, QuotaUsage } from '../quota'
import { validateTenantId } from '../tenant-id'
import { assertMethods } from '../validate'
import { ExpiringMap } from './expiring-map'
import type { QuotaAlgorithm } from './quota-algorithm'

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
 * The in-memory quota engine shared by `InMemoryQuotaManager` and `SlidingWindowQuotaManager`:
 * per-tenant algorithm state in an {@link ExpiringMap}, checked and charged with no `await`
 * between reading and writing it, so concurrent calls in one process never over-admit.
 */
export class MemoryQuotaManager<S> implements QuotaManager {
  readonly #provider: QuotaProvider
  readonly #clock: Clock
  readonly #algorithm: QuotaAlgorithm<S>
  readonly #states = new ExpiringMap<S>()

  constructor(provider: QuotaProvider, clock: Clock | undefined, algorithm: QuotaAlgorithm<S>) {
    this.#clock = checkManagerArgs(provider, 'quotaConfig', clock)
    this.#provider = provider
    this.#algorithm = algorithm
  }

  /**
   * How many tenants the manager holds state for. Idle tenants leave as their windows pass: each
   * call forgets up to 1,024 tenants whose counts have all expired.
   */
  get size(): number {
    return this.#states.size
  }

  async consume(tenantId: string, cost?: QuotaCost): Promise<QuotaDecision> {
    validateTenantId(tenantId)
    const charge = normalizeCost(cost)
    const config = await this.#provider.quotaConfig(tenantId)
    // From here to the return: no await, so the check and the charge are one atomic step.
    const now = this.#now()
    const { decision, state } = this.#algorithm.consume(this.#states.get(tenantId), config, charge, now)
    if (decision.allowed) this.#store(tenantId, state, now)
    return decision
  }

  async adjust(tenantId: string, delta: { tokens: number }): Promise<QuotaUsage> {
    validateTenantId(tenantId)
    const tokens = normalizeTokenDelta(delta)
    const config = await this.#provider.quotaConfig(tenantId)
    const now = this.#now()
    const { usage, state } = this.#algorithm.adjust(this.#states.get(tenantId), config, tokens, now)
    this.#store(tenantId, state, now)
    return { tenantId, windows: usage }
  }

  async peek(tenantId: string): Promise<QuotaUsage> {
    validateTenantId(tenantId)
    const config = await this.#provider.quotaConfig(tenantId)
    const now = this.#now()
    return { tenantId, windows: this.#algorithm.peek(this.#states.get(tenantId), config, now) }
  }

  #now(): number {
    const now = this.#clock.now()
    this.#states.sweep(now)
    return now
  }

  #store(tenantId: string, state: S, now: number): void {
    const expiresAt = this.#algorithm.expiresAt(state)
    // An empty state is the same as none: create no entry for it. An existing entry is updated
    // rather than deleted, so it keeps its one heap slot and the sweep drops it.
    if (expiresAt > now || this.#states.get(tenantId) !== undefined)
      this.#states.set(tenantId, state, expiresAt)
  }
}
