import type { Clock } from '@tenant/core'
import {
  type BodyEnd,
  executionContextOf,
  getTenant,
  getTenantId,
  type Middleware,
  PROBLEM_CONTENT_TYPE,
  type TenancyEventBase,
  type TenancyHooks,
  whenBodyEnds,
} from '@tenant/fetch'
import { forgetCount, forgottenSince, type TenantMetrics } from './tenant-metrics'

// Requests a stage refused, as the hooks saw it: the exact sign of a refusal by the chain, whatever
// response an override hook (`onDenied`, `onRejected`) made of it. Only refusals are added, so the
// admitted requests pay nothing for it.
const refusedRequests = new WeakSet<Request>()

function refused(event: TenancyEventBase): boolean {
  if (event.allowed) return false
  refusedRequests.add(event.request)
  return true
}

/**
 * True when `tenantId` may be counted under its own label although the chain did not admit its
 * request: the resolver read it from its `configManager`, or it has a label already. Without a
 * `configManager` the resolver takes any well-formed id it is sent, and ids a later stage refuses
 * as unknown must not use up `maxTenants`.
 */
function isKnown(metrics: TenantMetrics, tenantId: string, request: Request): boolean {
  return getTenant(request) !== undefined || metrics.hasLabel(tenantId)
}

/** The id a refusal of `event`'s tenant is counted under: `undefined` (`missingLabel`) if not known. */
function refusedTenant(metrics: TenantMetrics, event: TenancyEventBase): string | undefined {
  const { tenantId } = event
  return tenantId !== undefined && isKnown(metrics, tenantId, event.request) ? tenantId : undefined
}

/**
 * Event hooks for the `@tenant/fetch` (and `@tenant/hono`) tenancy chain that feed a
 * {@link TenantMetrics}: policy denials by rule, concurrency and rate-limit refusals, quota rejections, and the
 * tokens charged (estimates at admission, then the `actualTokens` adjustment up or down).
 *
 * Only real denials count (their stable `code`), not a store failure answered with 503: those are
 * `tenant_backend_unavailable` in `requests_total`, never a quota or policy denial. Tokens are not
 * counted for a request let through by `failOpen`, since nothing was charged.
 *
 * A refusal is counted under the tenant's label only when the tenant is known (the resolver read
 * its config, or it has a label already), else under `missingLabel`. The hooks also tell
 * {@link tenantMetricsMiddleware} which requests the chain refused, even when an override hook
 * answered with a response of its own.
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
  // The forget count when each request's run was resolved (see tenantMetricsMiddleware): a store
  // answer or a settlement that lands after its tenant was forgotten (deleted, maybe created again
  // for another customer) is not counted under the id, and takes no label.
  const resolvedAt = new WeakMap<Request, number>()
  const forgotten = (event: { tenantId?: string | undefined; request: Request }): boolean => {
    const { tenantId, request } = event
    const at = resolvedAt.get(request)
    return tenantId !== undefined && at !== undefined && forgottenSince(metrics, tenantId, at)
  }
  return {
    onResolve(event) {
      resolvedAt.set(event.request, forgetCount(metrics))
      // A Request object sent again: its earlier run's refusal is not this run's.
      if (!refused(event)) refusedRequests.delete(event.request)
    },
    onPolicy(event) {
      if (refused(event) && event.code === 'tenant_policy_denied')
        metrics.recordPolicyDenial(
          forgotten(event) ? undefined : refusedTenant(metrics, event),
          event.decision?.rule,
        )
    },
    onConcurrency(event) {
      if (refused(event) && event.code === 'tenant_concurrency_limited')
        metrics.recordConcurrencyRejection(forgotten(event) ? undefined : refusedTenant(metrics, event))
    },
    onRateLimit(event) {
      if (refused(event) && event.code === 'tenant_rate_limited')
        metrics.recordRateLimited(forgotten(event) ? undefined : refusedTenant(metrics, event))
    },
    onQuota(event) {
      if (refused(event)) {
        if (event.code === 'tenant_quota_exceeded')
          metrics.recordQuotaRejection(forgotten(event) ? undefined : refusedTenant(metrics, event))
      } else if (event.failedOpen !== true && event.cost !== undefined && !forgotten(event)) {
        // Charged by the last stage: the request is admitted, so the tenant may take a label.
        metrics.recordTokens(event.tenantId, event.cost.tokens)
      }
    },
    onAdjust(event) {
      // A failed adjustment leaves the estimate charged, which is what was already counted.
      if (event.error === undefined && event.actualTokens !== undefined && !forgotten(event)) {
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
 * A response with a body is recorded when the body ends, so a streamed answer (SSE) is measured
 * until its last byte: read to the end, it counts by its status; failed part-way, as a
 * `server_error` with the status sent; cancelled by its reader (the server does that when the
 * client goes away) before its end, as `cancelled`. A response without a body (or to `HEAD`) is
 * recorded when the handler answers. Each request is recorded once.
 *
 * An id a client merely claimed never gets a label of its own, so unknown ids cannot use up
 * `maxTenants`: a tenant gets one when the resolver read its config (a `configManager`), or when
 * the chain admitted its request. Requests the resolver refused (no tenant, unknown, suspended,
 * mismatched), and those of an id no `configManager` vouched for that a later stage refused, are
 * labelled `missingLabel`; their `code` (401, 403) tells them apart. The chain's refusals are told
 * by {@link tenantMetricsHooks} on the chain, else by their problem (`application/problem+json`)
 * response.
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
    // Read before the request runs: a tenant forgotten while its handler works or its answer
    // streams (deleted, maybe created again for another customer) has the request counted under
    // missingLabel, not under the id's next tenant. One forgotten before it was resolved is too.
    const forgets = forgetCount(metrics)
    const labelOf = (tenantId: string | undefined) =>
      tenantId !== undefined && forgottenSince(metrics, tenantId, forgets) ? undefined : tenantId
    let response: Response
    try {
      response = await next()
    } catch (error) {
      // Thrown by a stage or by the handler: not known to be admitted.
      metrics.recordRequest(labelOf(labelledTenant(metrics, request, undefined)), {
        status: 500,
        durationMs: clock.now() - start,
      })
      throw error
    }
    const tenantId = labelledTenant(metrics, request, response)
    const { status } = response
    const record = (end: BodyEnd): void =>
      metrics.recordRequest(labelOf(tenantId), { status, durationMs: clock.now() - start, end })
    // A HEAD answer has nothing to wait for: the server drops its body.
    if (request.method === 'HEAD') {
      record('complete')
      return response
    }
    // Not request.signal for a client that goes away: servers cancel the body then, which ends it
    // here too, and on @hono/node-server reading the signal builds the whole Request.
    // Under the runtime's waitUntil where there is one: on Workers the body of a client that
    // leaves is dropped unseen otherwise, for this wrapper and for the chain's inside it.
    return whenBodyEnds(response, record, executionContextOf(request)) ?? response
  }
}

/**
 * The id `request` is counted under: its resolved tenant when known (see `isKnown`) or when the
 * chain admitted it, which `response` tells (no response: the chain or the handler threw).
 */
function labelledTenant(
  metrics: TenantMetrics,
  request: Request,
  response: Response | undefined,
): string | undefined {
  const tenantId = getTenantId(request)
  if (tenantId === undefined || isKnown(metrics, tenantId, request)) return tenantId
  return response !== undefined && !refusedByChain(request, response) ? tenantId : undefined
}

function refusedByChain(request: Request, response: Response): boolean {
  if (refusedRequests.has(request)) return true
  // Without the hooks on the chain: its refusals are problem responses (RFC 9457), unless an
  // override hook made another. A handler's own problem response is taken for one too, which only
  // costs an unverified id its label.
  if (response.status < 400) return false
  const type = response.headers.get('Content-Type')
  return type?.trim().toLowerCase().startsWith(PROBLEM_CONTENT_TYPE) === true
}
