import type { Clock, RateLimitDecision, RateLimiter } from '@tenant/core'
import { TenantError } from '@tenant/core'
import { getTenantId } from './context'
import { addResponseHeaders, rateLimitHeaders, retryAfterHeader } from './headers'
import { hookSet } from './hooks'
import { assertMethods, checkFunction, checkStageOptions } from './options'
import { clockOf, requireResolution, type StageOptions, StageRun } from './stage'
import type { MaybePromise, Middleware } from './types'

/** Options of {@link tenantRateLimit}. */
export interface RateLimitOptions extends StageOptions {
  /** The per-tenant token bucket (core's `TokenBucketRateLimiter`, Redis, Durable Object). Without one the stage is off. */
  limiter?: RateLimiter
  /**
   * The response for a limited request, instead of the 429 problem. `Retry-After` and the
   * RateLimit fields are added to it unless it sets them.
   * @default undefined (429 `tenant_rate_limited`)
   */
  onRejected?: (
    request: Request,
    decision: RateLimitDecision & { tenantId: string },
  ) => MaybePromise<Response>
  /**
   * The clock for the `t=` (seconds until the bucket is full) of the `RateLimit` field; use the
   * limiter's clock.
   * @default systemClock
   */
  clock?: Clock
}

/**
 * Limits each tenant's request rate with a token bucket: 429 `tenant_rate_limited` with
 * `Retry-After` (whole seconds, rounded up) when the bucket is empty. Every response of a
 * rate-limited tenant carries `RateLimit-Policy: "rate";q=<burst>` and
 * `RateLimit: "rate";r=<left>;t=<seconds until full>`.
 *
 * @example
 * ```ts
 * const rateLimit = tenantRateLimit({ limiter: new TokenBucketRateLimiter(configManager) })
 * ```
 */
export function tenantRateLimit(options: RateLimitOptions = {}): Middleware {
  const name = 'tenantRateLimit'
  checkStageOptions(name, options)
  checkFunction(`${name}.onRejected`, options.onRejected)
  const { limiter, onRejected, failOpen = false, timeoutMs } = options
  if (limiter === undefined) return (request, next) => next(request)
  assertMethods(limiter, `${name}.limiter`, ['consume'])
  const hooks = hookSet(options.hooks)
  const clock = clockOf(options)

  return async function tenantRateLimit(request, next) {
    requireResolution(request, name)
    const tenantId = getTenantId(request)
    if (tenantId === undefined) return next(request)
    const run = new StageRun(hooks, 'onRateLimit', 'rateLimit', request, tenantId, { failOpen, timeoutMs })

    const outcome = await run.store(() => limiter.consume(tenantId))
    if (outcome.status === 'failedOpen') {
      run.failOpen({}, outcome.cause)
      return next(request)
    }
    if (outcome.status === 'refused') return run.refuse({}, outcome)
    const decision = outcome.value
    const headers = rateLimitHeaders(decision, clock.now())
    if (decision.allowed) {
      run.allow({ decision })
      return addResponseHeaders(request, await next(request), headers)
    }
    return run.refuse(
      { decision },
      {
        error: new TenantError(
          'tenant_rate_limited',
          decision.reason ?? 'too many requests for this tenant',
          { tenantId },
        ),
        headers: [...headers, retryAfterHeader(decision.retryAfterMs)],
        override: onRejected && {
          hook: 'onRejected',
          call: () => onRejected(request, { ...decision, tenantId }),
        },
      },
    )
  }
}
