import {
  type Clock,
  consumeRate,
  isThenable,
  type RateLimitDecision,
  type RateLimiter,
  TenantBackendError,
  TenantError,
} from '@tenant/core'
import { type Admission, type ChainStage, fetchChain, type StageStep } from './chain'
import { rateLimitHeaders, retryAfterHeader } from './headers'
import { reportError } from './hooks'
import { assertMethods, checkFunction, checkStageOptions } from './options'
import { clockOf, StageCore, type StageOptions, StoreFailed } from './stage'
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
 * The rate-limit stage as a chain stage: what {@link tenantRateLimit} and `tenancy()` run;
 * `undefined` without a limiter (the stage is off).
 *
 * @example
 * ```ts
 * const stage = rateLimitStage({ limiter: new TokenBucketRateLimiter(configs) })
 * ```
 */
export function rateLimitStage(options: RateLimitOptions = {}): ChainStage | undefined {
  const name = 'tenantRateLimit'
  checkStageOptions(name, options)
  checkFunction(`${name}.onRejected`, options.onRejected)
  if (options.limiter === undefined) return undefined
  assertMethods(options.limiter, `${name}.limiter`, ['consume'])
  return new RateLimitStage(options, options.limiter)
}

class RateLimitStage implements ChainStage {
  readonly stage = 'rateLimit' as const
  readonly middleware = 'tenantRateLimit'
  readonly #core: StageCore<'onRateLimit'>
  readonly #clock: Clock

  constructor(
    readonly options: RateLimitOptions,
    readonly limiter: RateLimiter,
  ) {
    this.#core = new StageCore(options, 'onRateLimit', 'rateLimit', limiter)
    this.#clock = clockOf(options)
  }

  run(admission: Admission): StageStep {
    const tenantId = admission.tenantId
    if (tenantId === undefined) return undefined
    const { limiter } = this
    // The resolver's config, when it read it from the store this limiter reads.
    const config = this.#core.known(admission)?.rateLimit
    const consume = () => consumeRate(limiter, tenantId, undefined, config)
    const core = this.#core
    const answer =
      core.timeoutMs === undefined
        ? core.attempt(consume)
        : core.attempt(consume, admission, (late: RateLimitDecision) => this.#late(admission, late))
    if (isThenable(answer)) return answer.then((decision) => this.#decided(admission, decision))
    return this.#decided(admission, answer)
  }

  // A consume that admitted the request after the timeout took a token from a request refused
  // with 503 (under failOpen it was served, and the token stands). The RateLimiter interface has
  // no way to give a token back, so the late charge is reported to onError with the tenant.
  #late(admission: Admission, decision: RateLimitDecision): void {
    const core = this.#core
    if (!decision.allowed || core.failOpen || decision.limit === undefined) return
    const { request, tenantId } = admission
    reportError(
      core.hooks,
      new TenantBackendError(
        `the rate limit store answered after the ${core.timeoutMs} ms timeout and took a token for the refused request; it is not given back`,
        { tenantId },
      ),
      { stage: 'rateLimit', request, tenantId },
    )
  }

  #decided(admission: Admission, answer: RateLimitDecision | StoreFailed): StageStep {
    const core = this.#core
    if (answer instanceof StoreFailed) return core.failed(admission, {}, answer)
    const headers = rateLimitHeaders(answer, admission.now(this.#clock))
    if (answer.allowed) {
      if (core.observed) core.allow(admission, { decision: answer })
      admission.addHeaders(headers)
      return undefined
    }
    const tenantId = admission.tenantId!
    const { onRejected } = this.options
    return core.refuse(
      admission,
      { decision: answer },
      {
        error: new TenantError('tenant_rate_limited', answer.reason ?? 'too many requests for this tenant', {
          tenantId,
        }),
        headers: [...headers, retryAfterHeader(answer.retryAfterMs)],
        override: onRejected && {
          hook: 'onRejected',
          call: () => onRejected(admission.request, { ...answer, tenantId }),
        },
      },
    )
  }
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
  const stage = rateLimitStage(options)
  if (stage === undefined) return (request, next) => next(request)
  return fetchChain('tenantRateLimit', [stage])
}
