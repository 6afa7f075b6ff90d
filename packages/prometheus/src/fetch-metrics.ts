import type { Clock } from '@tenant/core'
import { getTenantId, type Middleware, type TenancyHooks } from '@tenant/fetch'
import type { TenantMetrics } from './tenant-metrics'

/**
 * Event hooks for the `@tenant/fetch` (and `@tenant/hono`) tenancy chain that feed a
 * {@link TenantMetrics}: policy denials by rule, concurrency and rate-limit refusals, quota rejections, and the
 * tokens charged (estimates at admission, then the `actualTokens` adjustment up or down).
 *
 * Only real denials count (their stable `code`), not a store failure answered with 503: those are
 * `tenant_backend_unavailable` in `requests_total`, never a quota or policy denial. Tokens are not
 * counted for a request let through by `failOpen`, since nothing was charged.
 *
 * @example
 * ```ts
 * const metrics = new TenantMetrics()
 * const handler = withTenancy(app, {
 *   configManager: configs,
 *   quota: quotas,
 *   hooks: tenantMetricsHooks(metrics),
 * })
 * ```
 */
export function tenantMetricsHooks(metrics: TenantMetrics): TenancyHooks {
  return {
    onPolicy(event) {
      if (event.code === 'tenant_policy_denied')
        metrics.recordPolicyDenial(event.tenantId, event.decision?.rule)
    },
    onConcurrency(event) {
      if (event.code === 'tenant_concurrency_limited') metrics.recordConcurrencyRejection(event.tenantId)
    },
    onRateLimit(event) {
      if (event.code === 'tenant_rate_limited') metrics.recordRateLimited(event.tenantId)
    },
    onQuota(event) {
      if (event.code === 'tenant_quota_exceeded') metrics.recordQuotaRejection(event.tenantId)
      else if (event.allowed && event.failedOpen !== true && event.cost !== undefined) {
        metrics.recordTokens(event.tenantId, event.cost.tokens)
      }
    },
    onAdjust(event) {
      // A failed adjustment leaves the estimate charged, which is what was already counted.
      if (event.error === undefined && event.actualTokens !== undefined) {
        metrics.recordTokens(event.tenantId, event.actualTokens - event.estimatedTokens)
      }
    },
  }
}

/** Options of {@link tenantMetricsMiddleware}. */
export interface TenantMetricsMiddlewareOptions {
  /**
   * Measures durations (only differences are used, so a monotonic clock is right).
   * @default `performance.now()`
   */
  clock?: Clock
}

const monotonic: Clock = { now: () => performance.now() }

/**
 * A Fetch middleware that records every request's status and duration with
 * {@link TenantMetrics.recordRequest}, labelled with the tenant the resolver found. Put it outside
 * (before) the tenancy chain so refusals are counted with the status actually sent. A handler that
 * throws is recorded as a 500 and the error is rethrown.
 *
 * Requests the resolver refused (no tenant, unknown, suspended, mismatched) carry no resolved
 * tenant and are labelled `missingLabel`: an id a client merely claimed never gets a label of its
 * own, so unknown ids cannot use up `maxTenants`. Their `code` (401, 403) tells them apart.
 *
 * @example
 * ```ts
 * const handler = withTenancy(app, { configManager, hooks: tenantMetricsHooks(metrics) })
 * const serve = applyMiddleware(tenantMetricsMiddleware(metrics), handler)
 * ```
 */
export function tenantMetricsMiddleware(
  metrics: TenantMetrics,
  options: TenantMetricsMiddlewareOptions = {},
): Middleware {
  const clock = options.clock ?? monotonic
  return async function tenantMetricsMiddleware(request, next) {
    const start = clock.now()
    let status = 500
    try {
      const response = await next()
      status = response.status
      return response
    } finally {
      metrics.recordRequest(getTenantId(request), { status, durationMs: clock.now() - start })
    }
  }
}
