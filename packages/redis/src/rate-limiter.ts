import {
  checkRateLimitConfig,
  costAmount,
  InvalidCostError,
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
import { afterFailure, RECEIPT_TTL_RANGE_MS, receiptScript } from './receipts'
import { LuaScript } from './script'

/** How long the record of a bucket's refunds lives: as long as the longest receipt can. */
const REFUND_RECORD_TTL_MS = RECEIPT_TTL_RANGE_MS.max

/**
 * Core's `tokenBucketConsume` (`packages/core/src/algorithms/token-bucket.ts`), the atomic part:
 * the level at `now` (continuous refill, capped at the burst) and the take. No state means a full
 * bucket, so a bucket that is full again is deleted, and each one expires when it would be full.
 * ARGV: now, cost, requestsPerSecond, burst; a take's refund adds 'refund' and what the take's
 * reply said (its decision time, then the bucket's `tokens` and `updatedAt` before it, '' for
 * none). KEYS: the bucket, a take's or void's receipt (see `receiptScript`; its void fills those
 * in from the reply it recorded), and the bucket's refund record `<bucket>:refunds` (declared;
 * only refunds touch it). Reply: now and taken / given back (0/1) as integers, then, when the
 * tenant has a bucket, its prior `tokens` (text, exact) and `updatedAt`: the short reply keeps
 * both sides' decoding cheap.
 *
 * A refund is core's `tokenBucketRefund`: what the take left is recomputed from its reply, bit for
 * bit as the take computed it, and the take gets back its tokens less what the cap at the burst
 * can have wasted since: `min(cost, burst - max(level now, what it left refilled))`, exact when no
 * other take ran since. That bound misses a level that a refund raised and a take then lowered
 * again, so the refund record (a hash written by refunds and resets only, for as long as a
 * receipt lives: the time of the last refund, the state it wrote, the time of the last refund that
 * a take followed, and the time of the last reset) makes a refund give nothing once a take has
 * followed a refund made at or after the refunded take's time, or a reset came at or after it
 * (see `RESET_BUCKET_SCRIPT`). Takes cost nothing more for it: no field, no write.
 */
export const TOKEN_BUCKET_SCRIPT = receiptScript(LUA_PRELUDE, {
  receiptKey: 2,
  // A take has four arguments; a refund or void names itself fifth.
  op: "ARGV[5] or 'consume'",
  applied: 'reply[2] == 1',
  // A refund is at the void's own time (ARGV[1]); the recorded reply says what the take left.
  toRefund:
    "argv[5], argv[6], argv[7], argv[8] = 'refund', tostring(reply[1]), reply[3] or '', reply[4] or ''",
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
-- core's tokenBucketLevel of a bucket that held tokens at time since, at time t.
local function level_of(tokens, since, t)
  return math.min(burst, tokens + (math.max(0, t - since) * rate) / 1000)
end
-- Writes the bucket: tokens as of time at, or none when full.
local function store(tokens, at)
  if tokens >= burst then
    redis.call('DEL', KEYS[1])
  else
    -- %.17g: the fractional level survives the round trip through a string bit for bit.
    redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'updatedAt', fmt(at))
    pexpire(KEYS[1], math.ceil(((burst - tokens) * 1000) / rate))
  end
  reply[2] = 1
end
if ARGV[5] == 'refund' then
  -- No bucket is a full one: nothing to give back; nor without the take's reply.
  local decided = tonumber(ARGV[6] or '')
  if not (saved[1] and saved[2] and decided) then return reply end
  local tokens_now, at_now = tonumber(saved[1]), tonumber(saved[2])
  -- The refund record: a take since the last refund (the bucket is no longer on the line that
  -- refund wrote, or exists when it wrote none) makes that refund the last one a take followed.
  local record = KEYS[1] .. ':refunds'
  local last = redis.call('HMGET', record, 'at', 'taken', 'tokens', 'updatedAt', 'reset')
  -- A reset since the take (or in its millisecond) dropped what it took: the bucket is a new one.
  local reset_at = tonumber(last[5] or '')
  if reset_at and reset_at >= decided then return reply end
  local last_at, taken = tonumber(last[1] or ''), tonumber(last[2] or '')
  if last_at then
    local wrote_tokens, wrote_at = tonumber(last[3] or ''), tonumber(last[4] or '')
    local on_line = wrote_tokens and wrote_at and at_now >= wrote_at and level_of(wrote_tokens, wrote_at, at_now) == tokens_now
    if not on_line then taken = last_at end
  end
  -- A take followed a refund made since this take (or in its millisecond): nothing is proven.
  if taken and taken >= decided then return reply end
  -- What the take left: the level it found (the same arithmetic on the same text) less its cost.
  local left = burst
  if ARGV[7] and ARGV[7] ~= '' and ARGV[8] and ARGV[8] ~= '' then
    left = level_of(tonumber(ARGV[7]), tonumber(ARGV[8]), decided)
  end
  left = left - cost
  if left >= burst then return reply end
  -- Refill from the later of now and the bucket's time (a clock that went back credits none twice).
  local t = math.max(now, at_now)
  local owed = math.min(cost, burst - math.max(level, level_of(left, decided, t)))
  if owed <= 0 then return reply end
  local tokens = math.min(burst, level + owed)
  store(tokens, t)
  if tokens >= burst then
    redis.call('HDEL', record, 'tokens', 'updatedAt')
    redis.call('HSET', record, 'at', fmt(now), 'taken', taken and fmt(taken) or '')
  else
    redis.call('HSET', record, 'at', fmt(now), 'taken', taken and fmt(taken) or '', 'tokens', string.format('%.17g', tokens), 'updatedAt', fmt(t))
  end
  redis.call('PEXPIRE', record, ${REFUND_RECORD_TTL_MS})
  return reply
end
if cost <= level then store(level - cost, now) end
return reply
`,
})

/**
 * Makes a tenant's bucket full. A bucket that holds tokens is dropped, and its refund record then
 * holds the reset's time alone (the latest, if resets race): a refund of a take decided before
 * the reset, or in its millisecond, gives nothing, as what the take took went with the bucket.
 * Without it, a void landing after the reset and a take would add its tokens to the new bucket
 * (more than `burst` admitted). It lives as long as a receipt can, so no void of an earlier take
 * can outlive it. A bucket that is gone is full already, which no refund can add to: nothing is
 * written, so a tenant created under a new id leaves no key. KEYS: the bucket, the record. ARGV: now.
 */
export const RESET_BUCKET_SCRIPT = new LuaScript(`${LUA_PRELUDE}
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local now = now_ms(ARGV[1])
local before = tonumber(redis.call('HGET', KEYS[2], 'reset') or '')
if before and before > now then now = before end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[2], 'reset', fmt(now))
redis.call('PEXPIRE', KEYS[2], ${REFUND_RECORD_TTL_MS})
return 1
`)

/** The key of a bucket's refund record (see {@link TOKEN_BUCKET_SCRIPT}). */
export function refundRecordKey(bucketKey: string): string {
  return `${bucketKey}:refunds`
}

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

/** A take's reply as a refund's last arguments: its decision time, the bucket's tokens and updatedAt before it. */
function takeOf(reply: unknown): [string, string, string] {
  const [now, , tokens, updatedAt] = reply as unknown[]
  return [
    String(now),
    tokens === undefined ? '' : String(tokens),
    updatedAt === undefined ? '' : String(updatedAt),
  ]
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
    const { redis, gate, clock, localClock, receipts } = this.#options
    const key = this.#key(tenantId)
    if (options !== undefined && (typeof options !== 'object' || options === null)) {
      throw new InvalidCostError('rate limit options must be an object like { cost }')
    }
    const cost = costAmount(options?.cost, 'cost', 1)
    const found = await this.#provider.rateLimitConfig(tenantId)
    const sentAt = localClock.now()
    if (found === null) return tokenBucketConsume(undefined, null, cost, sentAt).decision
    // The bucket arithmetic divides by the rate: a hand-written provider must not smuggle in a 0.
    const config = checkRateLimitConfig(found, tenantId)

    const fingerprint = this.#localDeny ? `${config.requestsPerSecond}/${config.burst}` : ''
    const held = this.#localDeny?.match(tenantId, sentAt, cost, 0, fingerprint)
    if (held) return { ...held.decision, retryAfterMs: Math.max(1, Math.ceil(held.retryAt - sentAt)) }
    const refundsBefore = this.#localDeny?.refunds ?? 0

    const rest = [String(cost), String(config.requestsPerSecond), String(config.burst)]
    // The refund record is declared after the receipt: only a void touches it.
    const keys = receipts === undefined ? [key] : [key, receipts.next(key), refundRecordKey(key)]
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
    // the retry time no request of at least this cost can pass; one of this very cost is answered
    // locally (its retry time is this one); a changed rate or burst voids the entry.
    // An admission here takes tokens a held denial's retry time did not count.
    if (decision.allowed) this.#localDeny?.charged(tenantId)
    else if (this.#localDeny) {
      const retryAt = sentAt + decision.retryAfterMs
      const entry = {
        until: retryAt,
        since: sentAt,
        requests: cost,
        tokens: 0,
        fingerprint,
        decision,
        retryAt,
      }
      this.#localDeny.remember(tenantId, entry, refundsBefore)
    }
    return decision
  }

  /** Forgets the tenant's bucket (a full one), as `RateLimiter.reset` says. */
  async reset(tenantId: string): Promise<void> {
    const { redis, gate, clock } = this.#options
    const key = this.#key(tenantId)
    await gate.run(
      () => RESET_BUCKET_SCRIPT.run(redis, [key, refundRecordKey(key)], [nowArg(clock)]),
      'rate limit reset',
      tenantId,
    )
    // A remembered denial is about tokens that are back.
    this.#localDeny?.refunded(tenantId)
  }

  // The tenant's bucket, inside its Cluster hash tag (which validates the id).
  #key(tenantId: string): string {
    return `${tenantTag(this.#options.prefix, tenantId)}:b`
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
   * refunded; either way at the bucket's current level, and only while no other take ran since
   * (see `TOKEN_BUCKET_SCRIPT`).
   */
  #afterFailure(tenantId: string, keys: string[], rest: string[]): AfterFailure<unknown> {
    const { redis, clock } = this.#options
    return afterFailure(
      this.#options,
      tenantId,
      'rate limit',
      {
        void: () => TOKEN_BUCKET_SCRIPT.run(redis, keys, [nowArg(clock), ...rest, 'void']),
        // The reply says what the take found, so the script knows what it left (see there).
        // (KEYS[2] is no receipt for a refund: the record takes its place.)
        refundLate: (reply) =>
          decodeBucketReply(reply).applied
            ? TOKEN_BUCKET_SCRIPT.run(
                redis,
                [keys[0]!, refundRecordKey(keys[0]!)],
                [nowArg(clock), ...rest, 'refund', ...takeOf(reply)],
              )
            : undefined,
      },
      // The tokens given back may admit what a remembered denial is holding back.
      () => this.#localDeny?.refunded(tenantId),
    )
  }
}
