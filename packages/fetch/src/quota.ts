import {
  type Clock,
  costAmount,
  InvalidCostError,
  isTenantError,
  type QuotaDecision,
  type QuotaManager,
  type QuotaUsage,
  TenantError,
} from '@tenant/core'
import { getTenantId } from './context'
import { addResponseHeaders, quotaHeaders, retryAfterHeader } from './headers'
import { emit, type HookSet, hookSet, reportError } from './hooks'
import { assertMethods, checkFunction, checkStageOptions, checkToken } from './options'
import { callStore, callUser, clockOf, requireResolution, type StageOptions, StageRun } from './stage'
import type { MaybePromise, Middleware } from './types'

/** Options of {@link tenantQuota}. */
export interface QuotaOptions extends StageOptions {
  /** The per-tenant quota accounting (core's `InMemoryQuotaManager`, Redis, Durable Object). Without one the stage is off. */
  manager?: QuotaManager
  /**
   * Request header with the request's token cost, a whole number >= 0 (absent: 0). Ignored when
   * `tokenEstimator` is set.
   * @default 'X-Token-Count'
   */
  tokenHeader?: string
  /**
   * Estimates the request's token cost (say, from the prompt length). Must return a whole number
   * >= 0; anything else is refused with 400 `invalid_cost`. Read the body from `request.clone()`.
   * @default undefined (the token header)
   */
  tokenEstimator?: (request: Request) => MaybePromise<number>
  /**
   * Once the upstream answered, the tokens it really used (from a usage header, say), or
   * `undefined` to keep the estimate. The difference is charged or refunded with
   * `manager.adjust()` before the response is returned, and the quota headers show the result.
   * @default undefined (the estimate stands)
   */
  actualTokens?: (response: Response, request: Request) => MaybePromise<number | undefined>
  /**
   * The response for a request over quota, instead of the 429 problem. `Retry-After` and the
   * quota headers are added to it unless it sets them.
   * @default undefined (429 `tenant_quota_exceeded`)
   */
  onRejected?: (request: Request, decision: QuotaDecision & { tenantId: string }) => MaybePromise<Response>
  /**
   * The clock for the `t=` (seconds until reset) of the `RateLimit` field; use the manager's clock.
   * @default systemClock
   */
  clock?: Clock
}

/**
 * Charges each request to the tenant's quota (1 request plus its tokens) and refuses it with 429
 * `tenant_quota_exceeded` and `Retry-After` when any limit has no room; a refused request charges
 * nothing. Every response of a tenant with limits carries the IETF `RateLimit-Policy` /
 * `RateLimit` fields and `X-Quota-Remaining-Requests` / `-Tokens` for its limited dimensions.
 *
 * @example
 * ```ts
 * const quota = tenantQuota({
 *   manager: new InMemoryQuotaManager(configManager),
 *   actualTokens: (response) => {
 *     const used = response.headers.get('X-Usage-Tokens')
 *     return used === null ? undefined : Number(used)
 *   },
 * })
 * ```
 */
export function tenantQuota(options: QuotaOptions = {}): Middleware {
  const name = 'tenantQuota'
  checkStageOptions(name, options)
  checkFunction(`${name}.tokenEstimator`, options.tokenEstimator)
  checkFunction(`${name}.actualTokens`, options.actualTokens)
  checkFunction(`${name}.onRejected`, options.onRejected)
  const { manager, tokenEstimator, actualTokens, onRejected, failOpen = false, timeoutMs } = options
  const tokenHeader = checkToken(`${name}.tokenHeader`, options.tokenHeader ?? 'X-Token-Count')
  if (manager === undefined) return (request, next) => next(request)
  assertMethods(manager, `${name}.manager`, actualTokens ? ['consume', 'adjust'] : ['consume'])
  const hooks = hookSet(options.hooks)
  const clock = clockOf(options)

  function headerTokens(request: Request): { value: number } | { error: TenantError } {
    const header = request.headers.get(tokenHeader)
    if (header === null) return { value: 0 }
    // Digits only: Number() would take "1e3", "0x10", " 12 " and "" as numbers.
    if (!/^\d+$/.test(header)) {
      return {
        error: new InvalidCostError(
          `${tokenHeader} must be a whole number >= 0, got ${JSON.stringify(header.slice(0, 40))}`,
        ),
      }
    }
    return validAmount(Number(header), tokenHeader)
  }

  async function estimatedTokens(
    request: Request,
    estimate: NonNullable<QuotaOptions['tokenEstimator']>,
  ): Promise<{ value: number } | { error: TenantError }> {
    const result = await callUser('quota', () => estimate(request))
    if ('error' in result) return result
    return validAmount(result.value, 'the token estimate')
  }

  return async function tenantQuota(request, next) {
    requireResolution(request, name)
    const tenantId = getTenantId(request)
    if (tenantId === undefined) return next(request)
    const run = new StageRun(hooks, 'onQuota', 'quota', request, tenantId, { failOpen, timeoutMs })

    // Without an estimator the cost is read from the header, with no await.
    const tokens = tokenEstimator ? await estimatedTokens(request, tokenEstimator) : headerTokens(request)
    if ('error' in tokens) return run.refuse({}, { error: tokens.error })
    const cost = { requests: 1, tokens: tokens.value }

    const outcome = await run.store(() => manager.consume(tenantId, cost))
    if (outcome.status === 'failedOpen') {
      run.failOpen({ cost }, outcome.cause)
      return next(request)
    }
    if (outcome.status === 'refused') return run.refuse({ cost }, outcome)
    const decision = outcome.value
    const headers = quotaHeaders(decision.windows, clock.now())

    if (!decision.allowed) {
      return run.refuse(
        { cost, decision },
        {
          error: new TenantError(
            'tenant_quota_exceeded',
            decision.reason ?? 'the tenant quota is exhausted',
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

    run.allow({ cost, decision })
    const response = await next(request)
    if (!actualTokens) return addResponseHeaders(request, response, headers)
    const usage = await adjust(hooks, manager, actualTokens, {
      request,
      response,
      tenantId,
      estimated: cost.tokens,
      timeoutMs,
    })
    return addResponseHeaders(request, response, usage ? quotaHeaders(usage.windows, clock.now()) : headers)
  }
}

function validAmount(value: unknown, what: string): { value: number } | { error: TenantError } {
  try {
    return { value: costAmount(value, what, 0) }
  } catch (error) {
    if (isTenantError(error)) return { error }
    throw error
  }
}

interface AdjustContext {
  request: Request
  response: Response
  tenantId: string
  estimated: number
  timeoutMs: number | undefined
}

/**
 * Charges or refunds the difference between the estimate and what the upstream reported. The
 * response is already made, so a failure here is reported (onAdjust, onError), never sent.
 */
async function adjust(
  hooks: HookSet,
  manager: QuotaManager,
  actualTokens: NonNullable<QuotaOptions['actualTokens']>,
  context: AdjustContext,
): Promise<QuotaUsage | undefined> {
  const { request, response, tenantId, estimated, timeoutMs } = context
  const info = { stage: 'quota' as const, request, tenantId }
  let actual: number | undefined
  try {
    const reported = await actualTokens(response, request)
    if (reported === undefined) return undefined
    actual = costAmount(reported, 'actualTokens()', 0)
    if (actual === estimated) return undefined
    const usage = await callStore(() => manager.adjust(tenantId, { tokens: actual! - estimated }), timeoutMs)
    emit(hooks, 'onAdjust', 'quota', {
      request,
      tenantId,
      estimatedTokens: estimated,
      actualTokens: actual,
      usage,
    })
    return usage
  } catch (error) {
    reportError(hooks, error, info)
    emit(hooks, 'onAdjust', 'quota', {
      request,
      tenantId,
      estimatedTokens: estimated,
      actualTokens: actual,
      error,
    })
    return undefined
  }
}
