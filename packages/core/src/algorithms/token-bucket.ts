import type { RateLimitDecision } from '../rate-limit'
import type { RateLimitConfig } from '../schemas'

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
 * Gives back `cost` tokens that {@link tokenBucketConsume} took, for a store told that the take's
 * caller never got its answer (it was lost after the take): the level at `now` plus `cost`,
 * capped at `burst`, so a bucket that has refilled since gets only what it lacks (a full one
 * nothing). `undefined` when the bucket is full again (drop the state, as `tokenBucketConsume`
 * does). Refill counts from the later of `now` and the state's time, so a clock that stepped
 * back never credits a refill twice.
 *
 * The store must give back each take at most once. `cost` must already be validated (a whole
 * number >= 0), like `tokenBucketConsume`'s.
 *
 * @example
 * ```ts
 * const config = { requestsPerSecond: 10, burst: 20 }
 * const { state } = tokenBucketConsume(undefined, config, 5, now) // 15 left
 * tokenBucketRefund(state, config, 5, now) // undefined: full again
 * ```
 */
export function tokenBucketRefund(
  state: TokenBucketState | undefined,
  config: RateLimitConfig,
  cost: number,
  now: number,
): TokenBucketState | undefined {
  // No state is a full bucket: there is nothing to give back.
  if (state === undefined) return undefined
  const t = Math.max(now, state.updatedAt)
  const tokens = Math.min(config.burst, tokenBucketLevel(state, config, t) + Math.max(0, cost))
  return tokens >= config.burst ? undefined : { tokens, updatedAt: t }
}
