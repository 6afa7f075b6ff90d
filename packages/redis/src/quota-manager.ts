import {
  type Clock,
  DEFAULT_SLIDING_PRECISION,
  type EffectiveLimit,
  effectiveLimits,
  fixedWindowAlgorithm,
  normalizeCost,
  normalizeTokenDelta,
  type QuotaAlgorithm,
  type QuotaConfig,
  type QuotaCost,
  type QuotaDecision,
  type QuotaManager,
  type QuotaProvider,
  type QuotaUsage,
  slidingWindowAlgorithm,
  slidingWindowMs,
  systemClock,
  TenantBackendError,
  validatePrecision,
} from '@tenant/core'
import { type RedisClientInput, type RedisScriptClient, toScriptClient } from './client'
import { tenantTag, validatePrefix } from './keys'
import { LocalDenyCache, type LocalDenyOptions } from './local-deny'
import { nowArg } from './lua'
import { FIXED_WINDOW_SCRIPT, SLIDING_WINDOW_SCRIPT } from './quota-scripts'
import { decodeFixedState, decodeReply, decodeSlidingState, type ScriptReply } from './quota-state'
import { type LuaScript, validateTimeout, withBackendTimeout } from './script'

/** Options of {@link RedisQuotaManager}. */
export interface RedisQuotaManagerOptions {
  /** An ioredis or node-redis client (or Cluster), or any {@link RedisScriptClient}. */
  redis: RedisClientInput
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
   * Start of every key, inside the Cluster hash tag: `{prefix:tenantId}:f`. 1 to 128 characters
   * of `[A-Za-z0-9:._-]`.
   * @default 'tenant:quota'
   */
  prefix?: string
  /**
   * Per-call timeout in ms; a slower Redis rejects with `TenantBackendError` (503, or passed by
   * a `failOpen` stage).
   * @default 50
   */
  timeoutMs?: number
  /**
   * Decide with this clock instead of the Redis server's `TIME`. For tests (`ManualClock`) and
   * single-host set-ups that want the application's time; several hosts should keep the default,
   * which makes their clock skew irrelevant. Also measures the local-deny cache.
   * @default undefined (Redis TIME)
   */
  clock?: Clock
  /**
   * Answer repeated requests of a tenant that Redis refused on its *request* count locally,
   * without a round trip, until the exact moment Redis could admit them (see README). `true` for
   * the defaults.
   * @default false
   */
  localDeny?: boolean | LocalDenyOptions
}

interface Engine {
  algorithm: QuotaAlgorithm<unknown>
  script: LuaScript
  keySuffix: string
  decode(fields: [string, string][]): unknown
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
    keySuffix: 'f',
    decode: decodeFixedState,
    limitArgs: (limits) => limits.flatMap(allowances),
  }
}

function slidingEngine(precision: number): Engine {
  return {
    algorithm: slidingWindowAlgorithm(precision) as QuotaAlgorithm<unknown>,
    script: SLIDING_WINDOW_SCRIPT,
    // The bucket layout depends on the precision: a different precision starts fresh state.
    keySuffix: `s${precision}`,
    decode: decodeSlidingState,
    limitArgs: (limits) => [
      String(precision),
      ...limits.flatMap((l) => [...allowances(l), String(slidingWindowMs(l.window) / precision)]),
    ],
  }
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
 * const redis = new Redis(process.env.REDIS_URL!, { maxRetriesPerRequest: 1, enableOfflineQueue: false })
 * const quotas = new RedisQuotaManager(configs, { redis, algorithm: 'sliding' })
 * const decision = await quotas.consume('acme', { tokens: 1200 })
 * ```
 */
export class RedisQuotaManager implements QuotaManager {
  readonly #provider: QuotaProvider
  readonly #redis: RedisScriptClient
  readonly #engine: Engine
  readonly #prefix: string
  readonly #timeoutMs: number
  readonly #clock: Clock | undefined
  readonly #localClock: Clock
  readonly #localDeny: LocalDenyCache<QuotaDecision> | undefined

  constructor(provider: QuotaProvider, options: RedisQuotaManagerOptions) {
    if (typeof (provider as Partial<QuotaProvider> | null)?.quotaConfig !== 'function') {
      throw new TypeError('RedisQuotaManager: provider must have a quotaConfig(tenantId) method')
    }
    if (typeof options !== 'object' || options === null) {
      throw new TypeError('RedisQuotaManager: options must be an object with a redis client')
    }
    const { algorithm = 'fixed', precision } = options
    if (algorithm !== 'fixed' && algorithm !== 'sliding') {
      throw new TypeError(
        `RedisQuotaManager: algorithm must be 'fixed' or 'sliding', got ${String(algorithm)}`,
      )
    }
    if (algorithm === 'fixed' && precision !== undefined) {
      throw new TypeError("RedisQuotaManager: precision applies to algorithm: 'sliding' only")
    }
    if (options.clock !== undefined && typeof options.clock?.now !== 'function') {
      throw new TypeError('RedisQuotaManager: clock must have a now() method')
    }
    this.#provider = provider
    this.#redis = toScriptClient(options.redis)
    this.#engine =
      algorithm === 'fixed'
        ? fixedEngine()
        : slidingEngine(validatePrecision(precision ?? DEFAULT_SLIDING_PRECISION))
    this.#prefix = validatePrefix(options.prefix, 'tenant:quota')
    this.#timeoutMs = validateTimeout(options.timeoutMs)
    this.#clock = options.clock
    this.#localClock = options.clock ?? systemClock
    const localDeny = options.localDeny ?? false
    this.#localDeny =
      localDeny === false ? undefined : new LocalDenyCache(localDeny === true ? {} : localDeny)
  }

  /** The window algorithm: `'fixed'` or `'sliding'`. */
  get algorithm(): 'fixed' | 'sliding' {
    return this.#engine.algorithm.name
  }

  async consume(tenantId: string, cost?: QuotaCost): Promise<QuotaDecision> {
    const key = this.#key(tenantId)
    const charge = normalizeCost(cost)
    const config = await this.#provider.quotaConfig(tenantId)
    const limits = effectiveLimits(config)
    const { algorithm } = this.#engine
    // A tenant without limits is always admitted and has nothing to count.
    if (limits.length === 0)
      return algorithm.consume(undefined, config, charge, this.#localClock.now()).decision

    const sentAt = this.#localClock.now()
    const fingerprint = this.#localDeny ? JSON.stringify(limits) : ''
    const held = this.#localDeny?.match(tenantId, sentAt, charge.requests, fingerprint)
    if (held) return { ...held.decision, retryAfterMs: Math.max(1, Math.ceil(held.retryAt - sentAt)) }

    const args = [String(charge.requests), String(charge.tokens), ...this.#engine.limitArgs(limits)]
    const reply = await this.#call(tenantId, key, 'consume', args)
    const state = this.#engine.decode(reply.fields)
    const { decision } = algorithm.consume(state, config, charge, reply.now)
    if (decision.allowed !== reply.applied) {
      throw new TenantBackendError('redis: the quota script and core disagree on admission', { tenantId })
    }
    if (!decision.allowed && this.#localDeny)
      this.#holdDenial(tenantId, limits, state, charge, reply.now, sentAt, decision, fingerprint)
    return decision
  }

  async adjust(tenantId: string, delta: { tokens: number }): Promise<QuotaUsage> {
    const key = this.#key(tenantId)
    const tokens = normalizeTokenDelta(delta)
    const config = await this.#provider.quotaConfig(tenantId)
    const limits = effectiveLimits(config)
    const { algorithm } = this.#engine
    if (limits.length === 0) {
      return { tenantId, windows: algorithm.adjust(undefined, config, tokens, this.#localClock.now()).usage }
    }
    const reply = await this.#call(tenantId, key, 'adjust', [
      String(tokens),
      '0',
      ...this.#engine.limitArgs(limits),
    ])
    return {
      tenantId,
      windows: algorithm.adjust(this.#engine.decode(reply.fields), config, tokens, reply.now).usage,
    }
  }

  async peek(tenantId: string): Promise<QuotaUsage> {
    const key = this.#key(tenantId)
    const config = await this.#provider.quotaConfig(tenantId)
    const { algorithm } = this.#engine
    if (effectiveLimits(config).length === 0) {
      return { tenantId, windows: algorithm.peek(undefined, config, this.#localClock.now()) }
    }
    const reply = await this.#call(tenantId, key, 'peek', [])
    return { tenantId, windows: algorithm.peek(this.#engine.decode(reply.fields), config, reply.now) }
  }

  #key(tenantId: string): string {
    return `${tenantTag(this.#prefix, tenantId)}:${this.#engine.keySuffix}`
  }

  async #call(tenantId: string, key: string, op: string, args: string[]): Promise<ScriptReply> {
    const run = this.#engine.script.run(this.#redis, [key], [nowArg(this.#clock), op, ...args])
    return decodeReply(await withBackendTimeout(run, this.#timeoutMs, `quota ${op}`, tenantId))
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
    sentAt: number,
    decision: QuotaDecision,
    fingerprint: string,
  ): void {
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
    this.#localDeny!.remember(tenantId, {
      until: sentAt + byRequests.decision.retryAfterMs,
      requests: charge.requests,
      fingerprint,
      decision,
      retryAt: sentAt + decision.retryAfterMs,
    })
  }
}
