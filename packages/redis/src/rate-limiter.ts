import {
  costAmount,
  InvalidCostError,
  InvalidTenantConfigError,
  type RateLimitConfig,
  type RateLimitDecision,
  type RateLimiter,
  type RateLimitProvider,
  TenantBackendError,
  type TokenBucketState,
  tokenBucketConsume,
} from '@tenant/core'
import type { AfterFailure } from './command-gate'
import { tenantTag } from './keys'
import type { LocalDenyCache, LocalDenyOptions } from './local-deny'
import { LUA_PRELUDE, nowArg } from './lua'
import {
  checkProvider,
  localDenyCache,
  type RedisStoreOptions,
  type ResolvedStoreOptions,
  resolveStoreOptions,
} from './options'
import { type DecodedReply, unexpectedReply } from './quota-state'
import { afterFailure, receiptScript } from './receipts'

/**
 * Core's `tokenBucketConsume` (`packages/core/src/algorithms/token-bucket.ts`), the atomic part:
 * the level at `now` (continuous refill, capped at the burst) and the take. No state means a full
 * bucket, so a bucket that is full again is deleted, and each one expires when it would be full.
 * ARGV: now, cost, requestsPerSecond, burst, and 'refund' to give `cost` tokens back instead (a
 * take whose caller was told it failed, run by the take's void): the level at `now` plus the
 * cost, capped at the burst. KEYS[2]: a take's or void's receipt (see `receiptScript`). Reply: now and taken / given back (0/1) as integers, then, when the tenant has a
 * bucket, its prior `tokens` (text, exact) and `updatedAt`: the short reply keeps both sides'
 * decoding cheap.
 */
export const TOKEN_BUCKET_SCRIPT = receiptScript(LUA_PRELUDE, {
  receiptKey: 2,
  // A take has four arguments; a refund or void names itself fifth.
  op: "ARGV[5] or 'consume'",
  applied: 'reply[2] == 1',
  // A refund is at the void's own time (ARGV[1]): it tops up the bucket as it is then.
  toRefund: "argv[5] = 'refund'",
  body: `
local now = now_ms(ARGV[1])
local cost, rate, burst = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local saved = redis.call('HMGET', KEYS[1], 'tokens', 'updatedAt')
local reply = {now, 0}
local level = burst
if saved[1] and saved[2] then
  reply[3], reply[4] = saved[1], saved[2]
  local elapsed = math.max(0, now - tonumber(saved[2]))
  level = math.min(burst, tonumber(saved[1]) + (elapsed * rate) / 1000)
end
-- A refund is a negative take: the same write, with the level raised instead of lowered (no
-- bucket means a full one, which has nothing to take back).
if ARGV[5] == 'refund' then cost = -math.min(cost, burst - level) end
if cost <= level then
  local tokens = level - cost
  if tokens >= burst then
    redis.call('DEL', KEYS[1])
  else
    -- %.17g: the fractional level survives the round trip through a string bit for bit.
    redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'updatedAt', fmt(now))
    pexpire(KEYS[1], math.ceil(((burst - tokens) * 1000) / rate))
  end
  reply[2] = 1
end
return reply
`,
})

/** Options of {@link RedisRateLimiter}. */
export interface RedisRateLimiterOptions extends RedisStoreOptions {
  /**
   * Start of every key, inside the Cluster hash tag: `{prefix:tenantId}:b`.
   * @default 'tenant:rate'
   */
  prefix?: string
  /**
   * Answer a tenant's requests locally while Redis has just refused one at least as large, until
   * the exact moment its bucket holds enough again. `true` for the defaults.
   * @default false
   */
  localDeny?: boolean | LocalDenyOptions
}

// The bucket arithmetic divides by the rate: a hand-written provider must not smuggle in a 0.
function checkedConfig(config: RateLimitConfig): RateLimitConfig {
  const { requestsPerSecond: rate, burst } = config ?? {}
  if (
    typeof rate === 'number' &&
    rate > 0 &&
    Number.isFinite(rate) &&
    Number.isSafeInteger(burst) &&
    burst >= 1
  ) {
    return config
  }
  throw new InvalidTenantConfigError([
    {
      path: ['rateLimit'],
      message: 'requestsPerSecond must be > 0 and burst a whole number >= 1',
      code: 'custom',
    },
  ])
}

/** Decodes the script's `{now, taken, tokens?, updatedAt?}`; anything else is a backend fault. */
function decodeBucketReply(reply: unknown): DecodedReply<TokenBucketState | undefined> {
  if (!Array.isArray(reply) || (reply.length !== 2 && reply.length !== 4)) throw unexpectedReply()
  const now = Number(reply[0])
  if (!Number.isSafeInteger(now)) throw unexpectedReply()
  const applied = Number(reply[1]) === 1
  if (reply.length === 2) return { now, applied, state: undefined }
  const tokens = Number(reply[2])
  const updatedAt = Number(reply[3])
  // A bucket that does not read as numbers counts as none, as core would treat a missing one.
  const state = Number.isFinite(tokens) && Number.isFinite(updatedAt) ? { tokens, updatedAt } : undefined
  return { now, applied, state }
}

/**
 * A {@link RateLimiter} (token bucket: `requestsPerSecond` refill, `burst` capacity) shared by
 * every instance through Redis, with the semantics of core's `TokenBucketRateLimiter`: one Lua
 * script per decision, atomic, on the Redis server's clock. Exact `retryAfterMs`.
 *
 * @example
 * ```ts
 * const limiter = new RedisRateLimiter(configs, { redis })
 * const decision = await limiter.consume('acme')
 * if (!decision.allowed) return new Response(null, { status: 429 })
 * ```
 */
export class RedisRateLimiter implements RateLimiter {
  readonly #provider: RateLimitProvider
  readonly #options: ResolvedStoreOptions
  readonly #localDeny: LocalDenyCache<RateLimitDecision> | undefined

  constructor(provider: RateLimitProvider, options: RedisRateLimiterOptions) {
    checkProvider(provider, 'rateLimitConfig')
    this.#options = resolveStoreOptions('RedisRateLimiter', options, 'tenant:rate')
    this.#provider = provider
    this.#localDeny = localDenyCache(options.localDeny)
  }

  /**
   * Takes `cost` tokens (default 1) from the tenant's bucket if it holds them, atomically. A
   * tenant without a rate limit is always allowed, without a round trip.
   */
  async consume(tenantId: string, options?: { cost?: number }): Promise<RateLimitDecision> {
    const { redis, prefix, gate, clock, localClock, receipts } = this.#options
    const key = `${tenantTag(prefix, tenantId)}:b`
    if (options !== undefined && (typeof options !== 'object' || options === null)) {
      throw new InvalidCostError('rate limit options must be an object like { cost }')
    }
    const cost = costAmount(options?.cost, 'cost', 1)
    const found = await this.#provider.rateLimitConfig(tenantId)
    const sentAt = localClock.now()
    if (found === null) return tokenBucketConsume(undefined, null, cost, sentAt).decision
    const config = checkedConfig(found)

    const fingerprint = this.#localDeny ? `${config.requestsPerSecond}/${config.burst}` : ''
    const held = this.#localDeny?.match(tenantId, sentAt, cost, fingerprint)
    if (held) return { ...held.decision, retryAfterMs: Math.max(1, Math.ceil(held.retryAt - sentAt)) }
    const refundsBefore = this.#localDeny?.refunds ?? 0

    const rest = [String(cost), String(config.requestsPerSecond), String(config.burst)]
    const keys = receipts === undefined ? [key] : [key, receipts.next(key)]
    // The time is read when the command goes out: a call that waited to be sent decides at send time.
    const send = () => TOKEN_BUCKET_SCRIPT.run(redis, keys, [nowArg(clock), ...rest])
    const after = this.#afterFailure(tenantId, keys, rest)
    const reply = decodeBucketReply(await gate.run(send, 'rate limit consume', tenantId, after))
    const { decision } = tokenBucketConsume(reply.state, config, cost, reply.now)
    if (decision.allowed !== reply.applied) {
      after.failed?.()
      throw new TenantBackendError('redis: the rate limit script and core disagree on admission', {
        tenantId,
      })
    }
    // Other instances only take tokens (but for late-reply refunds, see LocalDenyCache), so until
    // the retry time no request of at least this cost can pass; a changed rate or burst voids the entry.
    if (!decision.allowed && this.#localDeny) {
      const retryAt = sentAt + decision.retryAfterMs
      const entry = { until: retryAt, since: sentAt, requests: cost, fingerprint, decision, retryAt }
      this.#localDeny.remember(tenantId, entry, refundsBefore)
    }
    return decision
  }

  /**
   * Resolves once every command this limiter sent has been answered and every refund it owes
   * (see `timeoutMs`) has been made. Call it before closing the client, so no refund is lost.
   */
  drain(): Promise<void> {
    return this.#options.gate.drain()
  }

  /**
   * What to do about a take whose caller was told it failed (see `afterFailure`): its void gives
   * the tokens back if it took them, or, without receipts, a late reply that took tokens is
   * refunded at the bucket's current level.
   */
  #afterFailure(tenantId: string, keys: string[], rest: string[]): AfterFailure<unknown> {
    const { redis, clock } = this.#options
    return afterFailure(
      this.#options,
      tenantId,
      'rate limit',
      {
        void: () => TOKEN_BUCKET_SCRIPT.run(redis, keys, [nowArg(clock), ...rest, 'void']),
        refundLate: (reply) =>
          decodeBucketReply(reply).applied
            ? TOKEN_BUCKET_SCRIPT.run(redis, keys, [nowArg(clock), ...rest, 'refund'])
            : undefined,
      },
      // The tokens given back may admit what a remembered denial is holding back.
      () => this.#localDeny?.refunded(tenantId),
    )
  }
}
