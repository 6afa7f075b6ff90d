import {
  consumeWithSubject,
  DEFAULT_SLIDING_PRECISION,
  type EffectiveLimit,
  effectiveLimits,
  fixedWindowAlgorithm,
  isDeeplyFrozen,
  MAX_SUBJECTS_PER_TENANT,
  type NormalizedCost,
  normalizeCost,
  normalizeDecidedAt,
  normalizeTokenDelta,
  type QuotaAdjustment,
  type QuotaAlgorithm,
  type QuotaCharge,
  type QuotaConfig,
  type QuotaCost,
  type QuotaDecision,
  type QuotaManager,
  type QuotaProvider,
  type QuotaSubjectOptions,
  type QuotaUsage,
  slidingWindowAlgorithm,
  slidingWindowMs,
  subjectOf,
  subjectQuota,
  TenantBackendError,
  tagSubject,
  validatePrecision,
} from '@tenant/core'
import type { AfterFailure } from './command-gate'
import { tenantTag } from './keys'
import type { LocalDenyCache, LocalDenyOptions } from './local-deny'
import { nowArg } from './lua'
import { optionError } from './option-error'
import {
  checkProvider,
  localDenyCache,
  type RedisStoreOptions,
  type ResolvedStoreOptions,
  resolveStoreOptions,
} from './options'
import {
  FIXED_WINDOW_SCRIPT,
  resetMarkerKey,
  SLIDING_WINDOW_SCRIPT,
  subjectResetMarkers,
} from './quota-scripts'
import { type DecodedReply, decodeFixedReply, decodeReply, decodeSlidingState } from './quota-state'
import { afterFailure } from './receipts'
import type { LuaScript } from './script'
import {
  FIXED_SUBJECT_SCRIPT,
  RESET_SUBJECT_SCRIPT,
  RESET_WITH_SUBJECTS_SCRIPT,
  SLIDING_SUBJECT_SCRIPT,
} from './subject-scripts'

/** Options of {@link RedisQuotaManager}. */
export interface RedisQuotaManagerOptions extends RedisStoreOptions {
  /**
   * `'fixed'`: windows aligned to the UTC calendar (like `InMemoryQuotaManager`); `'sliding'`:
   * sub-window buckets (like `SlidingWindowQuotaManager`).
   * @default 'fixed'
   */
  algorithm?: 'fixed' | 'sliding'
  /**
   * Buckets per sliding window (see `SlidingWindowQuotaManager`); sliding only.
   * @default 10
   */
  precision?: number
  /**
   * Start of every key, inside the Cluster hash tag: `{prefix:tenantId}:f` (fixed) or
   * `{prefix:tenantId}:s<precision>` (sliding).
   * @default 'tenant:quota'
   */
  prefix?: string
  /**
   * Answer repeated requests of a tenant that Redis refused on its *request* count locally,
   * without a round trip, until the exact moment Redis could admit them, but for at most
   * `maxHoldMs` (1 s by default) at a time, so a `reset()` made through another instance is seen
   * within it (see README). `true` for the defaults.
   * @default false
   */
  localDeny?: boolean | LocalDenyOptions
}

interface Engine {
  algorithm: QuotaAlgorithm<unknown>
  script: LuaScript
  /** The same windows for a tenant and one subject together (see `subject-scripts.ts`). */
  subjectScript: LuaScript
  keySuffix: string
  /** The script's reply as core's state; `limits` are the ones the script was given. */
  decode(reply: unknown, limits: readonly EffectiveLimit[]): DecodedReply<unknown>
  /** ARGV after the cost: per limit its window and allowances (0 = unlimited), plus geometry. */
  limitArgs(limits: EffectiveLimit[]): string[]
}

function allowances(limit: EffectiveLimit): [string, string, string] {
  return [limit.window, String(limit.requests ?? 0), String(limit.tokens ?? 0)]
}

function fixedEngine(): Engine {
  return {
    algorithm: fixedWindowAlgorithm as QuotaAlgorithm<unknown>,
    script: FIXED_WINDOW_SCRIPT,
    subjectScript: FIXED_SUBJECT_SCRIPT,
    keySuffix: 'f',
    decode: decodeFixedReply,
    limitArgs: (limits) => limits.flatMap(allowances),
  }
}

function slidingEngine(precision: number): Engine {
  return {
    algorithm: slidingWindowAlgorithm(precision) as QuotaAlgorithm<unknown>,
    script: SLIDING_WINDOW_SCRIPT,
    subjectScript: SLIDING_SUBJECT_SCRIPT,
    // The bucket layout depends on the precision: a different precision starts fresh state.
    keySuffix: `s${precision}`,
    decode(reply) {
      const { now, applied, fields } = decodeReply(reply)
      return { now, applied, state: decodeSlidingState(fields) }
    },
    limitArgs: (limits) => [
      String(precision),
      ...limits.flatMap((l) => [...allowances(l), String(slidingWindowMs(l.window) / precision)]),
    ],
  }
}

/**
 * What a late admission's refund takes, for a script that takes one amount from every window:
 * the least any window took of `cost` (the cost, unless an unlimited count saturated, see core's
 * `QuotaCharge`). Never more than a window took; exact but in a window that took more than one
 * that saturated, which then keeps the difference.
 */
function leastCharged(cost: NormalizedCost, charges: (QuotaCharge | undefined)[]): NormalizedCost {
  let { requests, tokens } = cost
  for (const charged of charges) {
    for (const added of Object.values(charged ?? {})) {
      requests = Math.min(requests, added.requests)
      tokens = Math.min(tokens, added.tokens)
    }
  }
  return { requests, tokens }
}

/** A subject peek's tenant part: none. */
const NO_LIMITS: QuotaConfig = Object.freeze({
  limits: Object.freeze([]) as unknown as QuotaConfig['limits'],
})

/** The keys and ARGV (after now and op) of a subject script call, and the limits it was given. */
interface SubjectCall {
  keys: string[]
  args: string[]
  tenantLimits: EffectiveLimit[]
  subjectLimits: EffectiveLimit[]
}

/** A subject script's reply, decoded: both states as they were before the change. */
interface SubjectReply {
  now: number
  applied: boolean
  tenant: unknown
  subject: unknown
}

/** What a manager derives from one quota config before it can ask Redis. */
interface PreparedConfig {
  limits: EffectiveLimit[]
  /** The script's ARGV after the cost. */
  limitArgs: string[]
  /** The limits as the local-deny cache compares them ('' when it is off). */
  fingerprint: string
}

/**
 * A {@link QuotaManager} whose counts live in Redis, so every instance of a service enforces one
 * shared quota per tenant, with the exact semantics of core's in-memory managers.
 *
 * Each decision is one Lua script in one round trip (`EVALSHA`, reloaded on `NOSCRIPT`): it reads
 * the tenant's state, checks every window, and charges all of them or none, atomically; denied
 * requests charge nothing. The time is the Redis server's (`TIME` in the script), so hosts with
 * skewed clocks agree. A tenant's state is one hash under the hash tag `{prefix:tenantId}` that
 * expires when its last window does.
 *
 * Throws `InvalidTenantIdError`, `InvalidCostError`, the provider's `TenantNotFoundError`, and
 * `TenantBackendError` when Redis fails or exceeds `timeoutMs`.
 *
 * @example
 * ```ts
 * import { Redis } from 'ioredis'
 * const redis = new Redis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true })
 * await redis.connect()
 * const quotas = new RedisQuotaManager(configs, { redis, algorithm: 'sliding' })
 * const decision = await quotas.consume('acme', { tokens: 1200 })
 * ```
 */
export class RedisQuotaManager implements QuotaManager {
  readonly #provider: QuotaProvider
  readonly #options: ResolvedStoreOptions
  readonly #engine: Engine
  readonly #localDeny: LocalDenyCache<QuotaDecision> | undefined
  readonly #prepared = new WeakMap<QuotaConfig, PreparedConfig>()

  constructor(provider: QuotaProvider, options: RedisQuotaManagerOptions) {
    checkProvider(provider, 'quotaConfig')
    this.#options = resolveStoreOptions('RedisQuotaManager', options, 'tenant:quota')
    const { algorithm = 'fixed', precision } = options
    if (algorithm !== 'fixed' && algorithm !== 'sliding') {
      throw optionError('algorithm', `must be 'fixed' or 'sliding', got ${String(algorithm)}`)
    }
    if (algorithm === 'fixed' && precision !== undefined) {
      throw optionError('precision', "applies to algorithm: 'sliding' only")
    }
    this.#provider = provider
    this.#engine =
      algorithm === 'fixed'
        ? fixedEngine()
        : slidingEngine(validatePrecision(precision ?? DEFAULT_SLIDING_PRECISION))
    this.#localDeny = localDenyCache(options.localDeny)
  }

  /** The window algorithm: `'fixed'` or `'sliding'`. */
  get algorithm(): 'fixed' | 'sliding' {
    return this.#engine.algorithm.name
  }

  /**
   * Admits the request only if every limit has room for its full cost, then charges all of them,
   * in one atomic script. A denial is a value (`allowed: false`) and charges nothing.
   */
  async consume(tenantId: string, cost?: QuotaCost): Promise<QuotaDecision> {
    const key = this.#key(tenantId)
    const charge = normalizeCost(cost)
    const subject = subjectOf(cost)
    const config = await this.#provider.quotaConfig(tenantId)
    const subjectConfig = subject === undefined ? undefined : subjectQuota(config, subject)
    if (subjectConfig !== undefined)
      return this.#consumeSubject(tenantId, charge, config, subject!, subjectConfig)
    const { limits, limitArgs, fingerprint } = this.#prepare(config)
    const { algorithm } = this.#engine
    // A tenant without limits is always admitted and has nothing to count.
    if (limits.length === 0)
      return algorithm.consume(undefined, config, charge, this.#options.localClock.now()).decision

    const sentAt = this.#options.localClock.now()
    const held = this.#localDeny?.match(
      tenantId,
      sentAt,
      charge.requests,
      deniedTokens(limits, charge.tokens),
      fingerprint,
    )
    if (held) return { ...held.decision, retryAfterMs: Math.max(1, Math.ceil(held.retryAt - sentAt)) }
    const refundsBefore = this.#localDeny?.refunds ?? 0

    const args = [String(charge.requests), String(charge.tokens), ...limitArgs]
    const keys = [key, ...this.#receipt(key, () => [resetMarkerKey(key)])]
    // Without receipts, a late admission is refunded from its decision time, of what it added.
    const refundLate = (reply: unknown) => {
      const late = this.#engine.decode(reply, limits)
      if (!late.applied) return undefined
      const { charged } = algorithm.consume(late.state, config, charge, late.now)
      const taken = leastCharged(charge, [charged])
      return [String(late.now), 'refund', String(taken.requests), String(taken.tokens), ...limitArgs]
    }
    const after = this.#afterFailure(tenantId, this.#engine.script, keys, args, refundLate)
    const { now, applied, state } = await this.#call(tenantId, keys, 'consume', args, limits, after)
    const { decision } = algorithm.consume(state, config, charge, now)
    if (decision.allowed !== applied) {
      after.failed?.()
      throw new TenantBackendError('redis: the quota script and core disagree on admission', { tenantId })
    }
    if (decision.allowed) this.#localDeny?.charged(tenantId)
    else if (this.#localDeny)
      this.#holdDenial(tenantId, limits, state, charge, now, { sentAt, refundsBefore }, decision, fingerprint)
    return decision
  }

  /**
   * Charges (positive) or refunds (negative, down to zero) tokens in the current windows; a refund
   * given `decidedAt` leaves the windows started since that admission alone.
   */
  async adjust(tenantId: string, delta: QuotaAdjustment): Promise<QuotaUsage> {
    const key = this.#key(tenantId)
    const tokens = normalizeTokenDelta(delta)
    const decidedAt = normalizeDecidedAt(delta)
    const subject = subjectOf(delta)
    const config = await this.#provider.quotaConfig(tenantId)
    const subjectConfig = subject === undefined ? undefined : subjectQuota(config, subject)
    // The scripts' cost arguments for an adjust: the delta and the decision time ('' for none).
    const head = [String(tokens), decidedAt === undefined ? '' : String(decidedAt)]
    if (subjectConfig !== undefined)
      return this.#adjustSubject(tenantId, tokens, decidedAt, head, config, subject!, subjectConfig)
    const { limits, limitArgs } = this.#prepare(config)
    const { algorithm } = this.#engine
    if (limits.length === 0) {
      return {
        tenantId,
        windows: algorithm.adjust(undefined, config, tokens, this.#options.localClock.now()).usage,
      }
    }
    // The marker (KEYS[2], not a receipt for an adjust) is declared: an adjust that empties the
    // hash writes a new stamp there (see stamp_if_emptied).
    const keys = [key, resetMarkerKey(key)]
    const reply = await this.#call(tenantId, keys, 'adjust', [...head, ...limitArgs], limits)
    if (tokens > 0) this.#localDeny?.charged(tenantId)
    return { tenantId, windows: algorithm.adjust(reply.state, config, tokens, reply.now, decidedAt).usage }
  }

  /** Every window's usage, read without a change. */
  async peek(tenantId: string, options?: QuotaSubjectOptions): Promise<QuotaUsage> {
    const key = this.#key(tenantId)
    const subject = subjectOf(options)
    const config = await this.#provider.quotaConfig(tenantId)
    if (subject !== undefined) return this.#peekSubject(tenantId, config, subject)
    const { limits, limitArgs } = this.#prepare(config)
    const { algorithm } = this.#engine
    if (limits.length === 0) {
      return { tenantId, windows: algorithm.peek(undefined, config, this.#options.localClock.now()) }
    }
    const reply = await this.#call(tenantId, [key], 'peek', ['0', '0', ...limitArgs], limits)
    return { tenantId, windows: algorithm.peek(reply.state, config, reply.now) }
  }

  /**
   * Deletes the tenant's counters and its subjects' (one script: its hash, the subjects its index
   * lists, the index), or with `options.subject` that subject's alone; through the same queue and
   * timeout. Each hash gets a new reset stamp, so a call admitted before the reset whose caller
   * is then told it failed takes nothing from the counts made after it, and one admitted after
   * it (in the same millisecond too) is refunded in full.
   */
  async reset(tenantId: string, options?: QuotaSubjectOptions): Promise<void> {
    const key = this.#key(tenantId)
    const subject = subjectOf(options)
    const { redis, gate, clock } = this.#options
    const index = `${key}:subjects`
    // The reset time seeds the new reset stamps, which keep refunds of older admissions out of
    // the counts made after the reset (see RESET_MARK_LUA).
    const run =
      subject === undefined
        ? () => RESET_WITH_SUBJECTS_SCRIPT.run(redis, [key, index], [nowArg(clock)])
        : () =>
            RESET_SUBJECT_SCRIPT.run(redis, [this.#subjectKey(key, subject), index], [nowArg(clock), subject])
    await gate.run(run, 'quota reset', tenantId)
    // A remembered denial is about usage that no longer exists.
    this.#localDeny?.refunded(tenantId)
  }

  #key(tenantId: string): string {
    return `${tenantTag(this.#options.prefix, tenantId)}:${this.#engine.keySuffix}`
  }

  // Subject ids have no `{` or `}`, so the tenant's hash tag (and Cluster slot) stays the key's.
  // They may hold `:` and are chosen by end users, so nothing is ever named by appending to this
  // key: the subject's reset marker lives under `<key>:reset:` (resetMarkerKey), receipts and the
  // index are named after the tenant's hash.
  #subjectKey(key: string, subject: string): string {
    return `${key}:subject:${subject}`
  }

  /**
   * The tenant's and the subject's windows in one script (one round trip), all-or-nothing; the
   * local-deny cache is for the tenant's own requests and is neither asked nor fed here.
   */
  async #consumeSubject(
    tenantId: string,
    charge: { requests: number; tokens: number },
    config: QuotaConfig,
    subject: string,
    subjectConfig: QuotaConfig,
  ): Promise<QuotaDecision> {
    const cost = [String(charge.requests), String(charge.tokens)]
    const call = this.#subjectCall(tenantId, config, subject, subjectConfig, cost)
    const [key, subjectKey] = call.keys as [string, string]
    // The markers whose stamps the receipt records (see MARKER_LUA).
    const keys = [...call.keys, ...this.#receipt(key, () => subjectResetMarkers(key, subjectKey, subject))]
    const refundLate = (reply: unknown) => {
      const late = this.#decodeSubject(reply, call)
      if (!late?.applied) return undefined
      const { algorithm } = this.#engine
      const { charged } = consumeWithSubject(
        algorithm,
        late.tenant,
        late.subject,
        config,
        subjectConfig,
        charge,
        subject,
        late.now,
      )
      const taken = leastCharged(charge, [charged?.tenant, charged?.subject])
      const head = [String(taken.requests), String(taken.tokens)]
      return [
        String(late.now),
        'refund',
        ...this.#subjectCall(tenantId, config, subject, subjectConfig, head).args,
      ]
    }
    const after = this.#afterFailure(tenantId, this.#engine.subjectScript, keys, call.args, refundLate)
    const reply = await this.#runSubject(tenantId, 'consume', { ...call, keys }, after)
    const step = consumeWithSubject(
      this.#engine.algorithm,
      reply.tenant,
      reply.subject,
      config,
      subjectConfig,
      charge,
      subject,
      reply.now,
    )
    if (step.allowed !== reply.applied) {
      after.failed?.()
      throw new TenantBackendError('redis: the quota script and core disagree on admission', { tenantId })
    }
    if (step.allowed) this.#localDeny?.charged(tenantId)
    return step.decision
  }

  async #adjustSubject(
    tenantId: string,
    tokens: number,
    decidedAt: number | undefined,
    head: string[],
    config: QuotaConfig,
    subject: string,
    subjectConfig: QuotaConfig,
  ): Promise<QuotaUsage> {
    const call = this.#subjectCall(tenantId, config, subject, subjectConfig, head)
    // The markers, declared after the receipt's place (KEYS[4], unused by an adjust): an adjust
    // that empties a hash writes a new stamp into its marker.
    const [key, subjectKey] = call.keys as [string, string]
    const markers = subjectResetMarkers(key, subjectKey, subject)
    const reply = await this.#runSubject(tenantId, 'adjust', { ...call, keys: [...call.keys, ...markers] })
    if (tokens > 0) this.#localDeny?.charged(tenantId)
    const { algorithm } = this.#engine
    const own = algorithm.adjust(reply.tenant, config, tokens, reply.now, decidedAt).usage
    const theirs = algorithm.adjust(reply.subject, subjectConfig, tokens, reply.now, decidedAt).usage
    return { tenantId, subject, windows: [...own, ...tagSubject(theirs, subject)] }
  }

  // Through the subject script (without the tenant's part), which frees the subject's key of a
  // reset marker the previous version may have left there before it reads.
  async #peekSubject(tenantId: string, config: QuotaConfig, subject: string): Promise<QuotaUsage> {
    const subjectConfig = subjectQuota(config, subject)
    if (subjectConfig === undefined) return { tenantId, subject, windows: [] }
    const call = this.#subjectCall(tenantId, NO_LIMITS, subject, subjectConfig, ['0', '0'])
    const reply = await this.#runSubject(tenantId, 'peek', call)
    const windows = this.#engine.algorithm.peek(reply.subject, subjectConfig, reply.now)
    return { tenantId, subject, windows: tagSubject(windows, subject) }
  }

  #subjectCall(
    tenantId: string,
    config: QuotaConfig,
    subject: string,
    subjectConfig: QuotaConfig,
    head: string[],
  ): SubjectCall {
    const key = this.#key(tenantId)
    const own = this.#prepare(config)
    const theirs = this.#prepare(subjectConfig)
    const tenantArgs = own.limits.length === 0 ? [] : [...head, ...own.limitArgs]
    return {
      keys: [key, this.#subjectKey(key, subject), `${key}:subjects`],
      args: [
        subject,
        String(MAX_SUBJECTS_PER_TENANT),
        String(tenantArgs.length),
        ...tenantArgs,
        ...head,
        ...theirs.limitArgs,
      ],
      tenantLimits: own.limits,
      subjectLimits: theirs.limits,
    }
  }

  async #runSubject(
    tenantId: string,
    op: 'consume' | 'adjust' | 'peek',
    call: SubjectCall,
    after?: AfterFailure<unknown>,
  ): Promise<SubjectReply> {
    const { redis, clock, gate } = this.#options
    const send = () => this.#engine.subjectScript.run(redis, call.keys, [nowArg(clock), op, ...call.args])
    const decoded = this.#decodeSubject(await gate.run(send, `quota ${op}`, tenantId, after), call)
    if (decoded === undefined) throw new TenantBackendError('redis: unexpected script reply', { tenantId })
    return decoded
  }

  #decodeSubject(reply: unknown, call: SubjectCall): SubjectReply | undefined {
    if (!Array.isArray(reply) || reply.length !== 2) return undefined
    try {
      const tenant = this.#engine.decode(reply[0], call.tenantLimits)
      const subject = this.#engine.decode(reply[1], call.subjectLimits)
      return {
        now: subject.now,
        applied: tenant.applied && subject.applied,
        tenant: tenant.state,
        subject: subject.state,
      }
    } catch {
      return undefined
    }
  }

  /** Throws `InvalidTenantConfigError` for a bad config, like core's managers. */
  #prepare(config: QuotaConfig): PreparedConfig {
    const cached = this.#prepared.get(config)
    if (cached !== undefined) return cached
    const limits = effectiveLimits(config)
    const prepared: PreparedConfig = {
      limits,
      limitArgs: this.#engine.limitArgs(limits),
      fingerprint: this.#localDeny ? JSON.stringify(limits) : '',
    }
    // A deeply frozen config never changes (core's config stores share frozen configs), so what
    // is derived from it is kept while the object lives; anything else may be changed in place by
    // its owner and is derived afresh per call.
    if (typeof config === 'object' && config !== null && isDeeplyFrozen(config)) {
      this.#prepared.set(config, prepared)
    }
    return prepared
  }

  /**
   * Resolves once every command this manager sent has been answered and every refund it owes
   * (see `timeoutMs`) has been made. Call it before closing the client, so no refund is lost.
   */
  drain(): Promise<void> {
    return this.#options.gate.drain()
  }

  async #call(
    tenantId: string,
    keys: string[],
    op: string,
    args: string[],
    limits: readonly EffectiveLimit[],
    after?: AfterFailure<unknown>,
  ): Promise<DecodedReply<unknown>> {
    const { redis, clock, gate } = this.#options
    // The time is read when the command goes out: a call that waited to be sent decides at send time.
    const send = () => this.#engine.script.run(redis, keys, [nowArg(clock), op, ...args])
    return this.#engine.decode(await gate.run(send, `quota ${op}`, tenantId, after), limits)
  }

  /**
   * The keys a consume on `key` adds for its receipt (see `receiptScript`): the receipt, then the
   * reset markers of the hashes it charges (`markers()`, built only with receipts), whose stamps it
   * records, declared for servers that check the keys a script touches; none with `receipts: false`.
   */
  #receipt(key: string, markers: () => string[]): string[] {
    const { receipts } = this.#options
    return receipts === undefined ? [] : [receipts.next(key), ...markers()]
  }

  /**
   * What to do about a consume whose caller was told it failed (see `afterFailure`): its void
   * takes the charge back from the very windows (fixed) or buckets (sliding) of its decision (of
   * what it added there, which the receipt's reply says), or, without receipts, a late admitted
   * reply is refunded from its decision time: `refundLate` turns that reply into the refund's ARGV
   * (undefined when it charged nothing).
   */
  #afterFailure(
    tenantId: string,
    script: LuaScript,
    keys: string[],
    args: string[],
    refundLate: (reply: unknown) => string[] | undefined,
  ): AfterFailure<unknown> {
    const { redis } = this.#options
    return afterFailure(
      this.#options,
      tenantId,
      'quota',
      {
        // The refund's time is the admission's, which the receipt holds.
        void: () => script.run(redis, keys, ['', 'void', ...args]),
        refundLate: (reply) => {
          // ARGV[1] is the admission's decision time: the script finds its windows from it.
          const argv = refundLate(reply)
          return argv === undefined ? undefined : script.run(redis, keys, argv)
        },
      },
      // A refund frees request capacity that a remembered denial may be holding back.
      () => this.#localDeny?.refunded(tenantId),
    )
  }

  /**
   * Remembers a denial for as long as the request count alone keeps it: the time core's algorithm
   * gives for the same state with the token allowances removed. Until then nothing but a change
   * of limits can admit a request of at least this many requests (see {@link LocalDenyCache}).
   */
  #holdDenial(
    tenantId: string,
    limits: EffectiveLimit[],
    state: unknown,
    charge: { requests: number; tokens: number },
    now: number,
    call: { sentAt: number; refundsBefore: number },
    decision: QuotaDecision,
    fingerprint: string,
  ): void {
    const { sentAt } = call
    const requestLimits: QuotaConfig = {
      limits: limits.flatMap((l) =>
        l.requests === undefined ? [] : [{ window: l.window, requests: l.requests }],
      ),
    }
    const byRequests = this.#engine.algorithm.consume(
      state,
      requestLimits,
      { requests: charge.requests, tokens: 0 },
      now,
    )
    if (byRequests.decision.allowed) return
    // sentAt is no later than the moment Redis decided, so the hold never outlasts the truth.
    this.#localDeny!.remember(
      tenantId,
      {
        until: sentAt + byRequests.decision.retryAfterMs,
        since: sentAt,
        requests: charge.requests,
        tokens: deniedTokens(limits, charge.tokens),
        fingerprint,
        decision,
        retryAt: sentAt + decision.retryAfterMs,
      },
      call.refundsBefore,
    )
  }
}

/**
 * The tokens of a request as the local-deny cache tells costs apart: they change neither the
 * decision nor its retry time where no limit counts them, so there every token count matches.
 */
function deniedTokens(limits: readonly EffectiveLimit[], tokens: number): number {
  return limits.some((limit) => limit.tokens !== undefined) ? tokens : 0
}
