import { InvalidTenantConfigError } from '../errors'
import type { RateLimitDecision } from '../rate-limit'
import { MIN_REQUESTS_PER_SECOND, type RateLimitConfig } from '../schemas'

/**
 * `config` if the bucket arithmetic can use it, the rule of `rateLimitConfigSchema`:
 * `requestsPerSecond` finite and at least `MIN_REQUESTS_PER_SECOND`, `burst` a whole number >= 1.
 * Throws `InvalidTenantConfigError` (400) otherwise. The config stores validate what they hold;
 * this stops a hand-written provider's `burst: 0` (a denial that says retry now, forever) or
 * `requestsPerSecond: 0` (an `Infinity` wait) at every store, in a few comparisons per call.
 *
 * @example
 * ```ts
 * const config = checkRateLimitConfig(await provider.rateLimitConfig(tenantId), tenantId)
 * ```
 */
export function checkRateLimitConfig(config: RateLimitConfig, tenantId?: string): RateLimitConfig {
  const rate: unknown = config?.requestsPerSecond
  const burst: unknown = config?.burst
  if (
    typeof rate === 'number' &&
    rate >= MIN_REQUESTS_PER_SECOND &&
    rate < Number.POSITIVE_INFINITY &&
    Number.isSafeInteger(burst) &&
    (burst as number) >= 1
  ) {
    return config
  }
  throw new InvalidTenantConfigError(
    [
      {
        path: ['rateLimit'],
        message: `requestsPerSecond must be a finite number >= ${MIN_REQUESTS_PER_SECOND} and burst a whole number >= 1`,
        code: 'custom',
      },
    ],
    tenantId === undefined ? undefined : { tenantId },
  )
}

/**
 * A tenant's token bucket: the level at `updatedAt` (ms since the epoch). Levels are fractional
 * (refill is continuous). No state means a full bucket, so a store drops the state once full.
 */
export interface TokenBucketState {
  tokens: number
  updatedAt: number
}

/** What {@link tokenBucketConsume} returns: the decision and the state to store (`undefined`: full, drop it). */
export interface TokenBucketStep {
  decision: RateLimitDecision
  state: TokenBucketState | undefined
}

/**
 * The level of the bucket at `t`: continuous refill at `requestsPerSecond`, capped at `burst`.
 *
 * @example
 * ```ts
 * tokenBucketLevel(state, { requestsPerSecond: 10, burst: 20 }, now + 200) // 17: 15 left, 2 refilled
 * ```
 */
export function tokenBucketLevel(
  state: TokenBucketState | undefined,
  config: RateLimitConfig,
  t: number,
): number {
  if (state === undefined) return config.burst
  const elapsed = Math.max(0, t - state.updatedAt)
  return Math.min(config.burst, state.tokens + (elapsed * config.requestsPerSecond) / 1000)
}

/** Whole ms (rounded up) that refilling `amount` tokens takes at `requestsPerSecond`. */
function refillMs(amount: number, config: RateLimitConfig): number {
  return Math.ceil((amount * 1000) / config.requestsPerSecond)
}

/**
 * The instant at which `state` is a full bucket again (and can be dropped). `0` for no state.
 *
 * @example
 * ```ts
 * const config = { requestsPerSecond: 10, burst: 20 }
 * const { state } = tokenBucketConsume(undefined, config, 5, now)
 * tokenBucketFullAt(state, config) // now + 500: 5 tokens at 10 per second
 * ```
 */
export function tokenBucketFullAt(state: TokenBucketState | undefined, config: RateLimitConfig): number {
  if (state === undefined) return 0
  return state.updatedAt + refillMs(Math.max(0, config.burst - state.tokens), config)
}

/**
 * Takes `cost` tokens from the bucket if it holds them at `now`. `config === null` (a tenant with
 * no rate limit) always allows and reports no `limit` / `remaining`.
 *
 * On a denial the state is returned unchanged and `retryAfterMs` is the deficit over the rate,
 * rounded up to a whole ms and settled on the same level function the next call evaluates, so the
 * same request is admitted at `now + retryAfterMs` and not 1 ms earlier. A cost above `burst` can
 * never be admitted: it gets `burst / requestsPerSecond` (the time an empty bucket takes to fill,
 * after which waiting longer changes nothing) and a reason saying so.
 *
 * `cost` must already be validated (a whole number >= 0); managers use `costAmount` from core.
 * `config` is checked ({@link checkRateLimitConfig}): a bad one throws `InvalidTenantConfigError`.
 *
 * @example
 * ```ts
 * const { decision, state } = tokenBucketConsume(saved, { requestsPerSecond: 10, burst: 20 }, 1, clock.now())
 * ```
 */
export function tokenBucketConsume(
  state: TokenBucketState | undefined,
  config: RateLimitConfig | null,
  cost: number,
  now: number,
): TokenBucketStep {
  if (config === null) return { decision: { allowed: true, resetAt: now, retryAfterMs: 0 }, state: undefined }
  checkRateLimitConfig(config)
  const level = tokenBucketLevel(state, config, now)
  if (cost <= level) {
    const tokens = level - cost
    const next = tokens >= config.burst ? undefined : { tokens, updatedAt: now }
    return {
      decision: {
        allowed: true,
        limit: config.burst,
        remaining: Math.floor(tokens),
        resetAt: now + refillMs(config.burst - tokens, config),
        retryAfterMs: 0,
      },
      state: next,
    }
  }
  const denial = { allowed: false, limit: config.burst, remaining: Math.floor(level) }
  const resetAt = now + refillMs(config.burst - level, config)
  if (cost > config.burst) {
    const reason = `request cost of ${cost} exceeds the rate limit burst of ${config.burst}: it can never be admitted`
    return { decision: { ...denial, resetAt, retryAfterMs: refillMs(config.burst, config), reason }, state }
  }
  // Refill runs from the later of now and the state's own time (after a clock that stepped back).
  // A denial implies a state: no state is a full bucket, and cost <= burst here.
  let t = Math.max(now, state!.updatedAt) + refillMs(cost - level, config)
  // Floating point may put the closed form a ms off; settle on the level the next call computes.
  for (let i = 0; i < 64 && tokenBucketLevel(state, config, t) < cost; i++) t++
  for (let i = 0; i < 64 && t - 1 > now && tokenBucketLevel(state, config, t - 1) >= cost; i++) t--
  const reason = `rate limit exceeded: ${config.requestsPerSecond}/s with a burst of ${config.burst}, the request needs ${cost} and ${denial.remaining} are available`
  return { decision: { ...denial, resetAt, retryAfterMs: t - now, reason }, state }
}

/**
 * Gives back the tokens of a take that {@link tokenBucketConsume} made, for a store told that the
 * take's caller never got its answer (it was lost after the take): `cost` is what it asked for and
 * `left` the state it returned. Never credits more than the take cost the bucket, so refunds can
 * never let a tenant pass its burst.
 *
 * What a take cost the bucket by `now` is `min(cost, burst - the highest level it reached since)`:
 * without the take the bucket would have been `cost` higher, except that the cap at `burst`
 * wastes refill, and the refill the cap would have wasted is not owed (burst 4 at 1/s: a take of 3
 * leaves 1, another take of 3 two seconds later leaves 0; without the first, the bucket sat full
 * until the second, which left 1, so 1 is owed, not the 3 that "level now + cost" gives). The
 * highest level is not known, but takes only lower the bucket, so it is at most the level now or
 * `left` refilled up to `now` (capped at `burst`), whichever is higher. That bound is what this
 * function refunds against: `min(cost, burst - max(level now, left refilled))`, exact when no other
 * take ran since (the bound is then the level now).
 *
 * The bound holds only while nothing but takes, and then refunds, changed the bucket since the
 * take: a refund that raised it and a take after that can hide a higher level. The store must
 * give nothing back when, since the take, any take followed a refund (of any take), and must give
 * each take back at most once, never into a state stored anew since (after a reset a new bucket
 * can hold the same values): this function cannot tell. A token comes back by refill within
 * `1 / requestsPerSecond` s, so what is not given back is cheap; an over-credit would let the
 * tenant pass its limit.
 *
 * Refill counts from the later of `now` and the state's time, so a clock that stepped back never
 * credits a refill twice. `undefined` when the bucket is full again (drop the state, as
 * `tokenBucketConsume` does). `cost` must already be validated (a whole number >= 0), like
 * `tokenBucketConsume`'s.
 *
 * @example
 * ```ts
 * const config = { requestsPerSecond: 1, burst: 4 }
 * const x = tokenBucketConsume(undefined, config, 3, now).state // 1 left
 * const y = tokenBucketConsume(x, config, 3, now + 2000).state // refilled to 3, 0 left
 * tokenBucketRefund(y, config, 3, now + 2000, x) // { tokens: 1, ... }: x's line reached 3
 * ```
 */
export function tokenBucketRefund(
  state: TokenBucketState | undefined,
  config: RateLimitConfig,
  cost: number,
  now: number,
  left: TokenBucketState | undefined,
): TokenBucketState | undefined {
  // No state is a full bucket, and a take that left none took nothing: nothing to give back.
  if (state === undefined || left === undefined) return state
  const t = Math.max(now, state.updatedAt)
  const level = tokenBucketLevel(state, config, t)
  const highest = Math.max(level, tokenBucketLevel(left, config, t))
  const owed = Math.min(Math.max(0, cost), config.burst - highest)
  if (owed <= 0) return state
  const tokens = Math.min(config.burst, level + owed)
  return tokens >= config.burst ? undefined : { tokens, updatedAt: t }
}
