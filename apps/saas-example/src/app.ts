import {
  type AuditedPlanStore,
  type AuditedTenantStore,
  type AuditLog,
  type Clock,
  type ConcurrencyLimiter,
  type ConfigManager,
  getTenantConfigOrNull,
  isTenantError,
  isValidTenantId,
  type PlanStore,
  type PolicyEvaluator,
  type QuotaManager,
  type RateLimiter,
  withPlans,
} from '@tenant/core'
import { adminRoutes, fromFetch, problemResponse, type TenantEnv, tenancy } from '@tenant/hono'
import {
  metricsHandler,
  type TenantMetrics,
  tenantMetricsHooks,
  tenantMetricsMiddleware,
} from '@tenant/prometheus'
import { Hono, type MiddlewareHandler } from 'hono'
import { HTTPException } from 'hono/http-exception'
import { jwt } from 'hono/jwt'
import { requestId } from 'hono/request-id'
import { timingSafeEqual } from 'hono/utils/buffer'
import { appAdminService } from './admin'
import type { ResourceStore } from './db/resource-store'
import { problem } from './http'
import { describeError, type Logger, requestIds, tenancyLogHooks } from './logger'
import { modelSubject, policyInput } from './model'
import { chatRoutes, chatTokenEstimate, readChatRequest } from './routes/chat'
import { resourceRoutes } from './routes/resources'

/** Everything the app needs; each runtime's entry builds these from its own storage. */
export interface AppDeps {
  /**
   * Tenant configs as stored: the admin store. The chain reads them through
   * `withPlans(configs, plans)`, so that every stage decides by the effective config.
   */
  configs: ConfigManager & AuditedTenantStore
  /** Plans: the admin store of `/admin/plans`, and what tenants on a plan inherit. */
  plans: PlanStore & AuditedPlanStore
  /** Where admin changes are recorded (the same database as `configs`). */
  auditLog: AuditLog
  /** Request and token quotas (in memory, Redis or Durable Objects), over the effective configs. */
  quotas: QuotaManager
  /** Token-bucket rate limits (in memory, Redis or Durable Objects), over the effective configs. */
  rateLimiter: RateLimiter
  /**
   * Requests in flight per tenant (in memory, Redis or Durable Objects), capped at the effective
   * `concurrency.maxInFlight`; also the admin plane's `/in-flight` routes.
   * @default undefined (no cap)
   */
  concurrency?: ConcurrencyLimiter
  /** Model, tool, method and path allow-lists, over the effective configs. */
  policy: PolicyEvaluator
  /** The tenant-scoped data access of `/api/v1/resources`. */
  resources: ResourceStore
  /** Per-tenant Prometheus metrics, served at `/metrics`. */
  metrics: TenantMetrics
  /** The time of every decision, the `RateLimit` fields and the logs. */
  clock: Clock
  /** Where the decision lines go. */
  logger: Logger
  /** Bearer token of `/admin`; without one, `/admin` answers 503 `admin_disabled`. */
  adminToken: string | undefined
  /**
   * Bearer token of `/metrics`. Without one, `/metrics` answers 503 `metrics_disabled` unless
   * {@link AppDeps.openMetrics}: its labels name every tenant and count their traffic.
   * @default undefined
   */
  metricsToken?: string
  /**
   * Without `metricsToken`, serve `/metrics` to whoever reaches it. The Node/Bun servers set it only
   * when they listen on a loopback HOST (`metricsAccess`); the Worker never does.
   * @default false
   */
  openMetrics?: boolean
  /**
   * When set, `/api` requires an HS256 JWT whose `tenant_id` claim is the tenant, with an `iat`
   * after the second that tenant was created, or a `tenant_created_at` claim equal to its
   * `createdAt` (`exp`, `nbf` and `iat` are checked on `clock`). @default undefined
   */
  jwtSecret?: string
  /**
   * Named readiness checks for `/health`; each resolves when its backend answers.
   * @default {} (health is always ok)
   */
  health?: Record<string, () => Promise<unknown>>
}

/** The Hono app {@link createApp} returns. */
export type App = ReturnType<typeof createApp>

/**
 * The example SaaS API as a Hono app, on whatever stores it is given (pure wiring: no I/O here).
 *
 * - `/health`, `/metrics`: outside the tenant chain; `/metrics` behind `metricsToken`, open only
 *   with `openMetrics`, otherwise 503 `metrics_disabled` (like `/admin` without `adminToken`).
 * - `/admin/*`: the toolkit's admin plane (`adminRoutes`: tenants and plans) behind
 *   `Authorization: Bearer <token>`.
 * - `/api/v1/*`: metrics, [JWT], [the chat body], then the tenancy chain resolve -> policy -> concurrency
 *   -> rate limit -> quota (tenant from `X-Tenant-ID`, or the JWT's `tenant_id` claim), then the
 *   resource routes, which can only reach the caller's tenant's rows, and the streaming
 *   `POST /chat/completions`, whose body's `model` is the one the policy checked and the quota
 *   charged, and whose tokens are settled at the stream's usage event.
 *
 * @example
 * ```ts
 * const tenants = withPlans(configs, plans) // what quotas, rateLimiter and policy read
 * const app = createApp({ configs, plans, auditLog, quotas, rateLimiter, policy, resources, metrics, clock, logger, adminToken })
 * export default app // Bun, Workers; serve(app) from @hono/node-server on Node
 * ```
 */
export function createApp(deps: AppDeps) {
  const app = new Hono()

  app.use(requestId())
  app.use(async (c, next) => {
    requestIds.set(c.req.raw, c.var.requestId)
    await next()
    // Responses built outside the context (problems from onError, the chain's refusals) carry
    // the id too, so a client can quote it. Some responses have immutable headers: leave those.
    if (!c.res.headers.has('X-Request-Id')) {
      try {
        c.res.headers.set('X-Request-Id', c.var.requestId)
      } catch {}
    }
  })

  app.get('/health', async (c) => {
    const checks: Record<string, 'ok' | 'unavailable'> = {}
    await Promise.all(
      Object.entries(deps.health ?? {}).map(async ([name, check]) => {
        try {
          await check()
          checks[name] = 'ok'
        } catch (error) {
          checks[name] = 'unavailable'
          deps.logger.error({ msg: 'health check failed', check: name, error: describeError(error) })
        }
      }),
    )
    const ok = Object.values(checks).every((v) => v === 'ok')
    c.header('Cache-Control', 'no-store')
    return c.json({ status: ok ? 'ok' : 'unavailable', checks }, ok ? 200 : 503)
  })

  const serveMetrics = metricsHandler(deps.metrics)
  const metricsToken = deps.metricsToken
  const metricsOff = metricsToken === undefined && deps.openMetrics !== true
  app.on(['GET', 'HEAD'], '/metrics', async (c) => {
    if (metricsOff) {
      return problem(503, 'metrics_disabled', '/metrics is off: set METRICS_TOKEN to turn it on')
    }
    if (metricsToken !== undefined && !(await hasBearer(c.req.header('Authorization'), metricsToken))) {
      return problem(
        401,
        'unauthorized',
        'this endpoint needs Authorization: Bearer <METRICS_TOKEN>',
        {},
        { 'WWW-Authenticate': 'Bearer realm="metrics"' },
      )
    }
    return serveMetrics(c.req.raw)
  })

  if (deps.adminToken === undefined) {
    app.all('/admin/*', () =>
      problem(503, 'admin_disabled', 'the admin plane is off: set ADMIN_TOKEN to turn it on'),
    )
  } else {
    // A tenant created under the id of a deleted one starts with none of its usage, slots,
    // burst or rows (the same service as --seed and pnpm seed build).
    const admin = appAdminService({ ...deps, concurrency: deps.concurrency })
    app.route(
      '/admin',
      adminRoutes(admin, {
        token: deps.adminToken,
        onError: (error) => deps.logger.error({ msg: 'admin error', error: describeError(error) }),
      }),
    )
  }

  const api = new Hono<TenantEnv>()
  // Outermost, so refusals of the chain are counted with the status actually sent.
  api.use(fromFetch(tenantMetricsMiddleware(deps.metrics)))
  if (deps.jwtSecret !== undefined) {
    // The signature here; the time claims on the app's clock, in tokenTimes.
    api.use(
      jwt({ secret: deps.jwtSecret, alg: 'HS256', verification: { exp: false, nbf: false, iat: false } }),
    )
    api.use(tokenTimes(deps.configs, deps.clock))
  }
  // A chat completion names its model in its body, as in OpenAI's API: read (and validated)
  // before the chain, so that the model the policy checks and the quota charges is the body's,
  // the one the route serves.
  api.use('/chat/completions', readChatRequest())
  api.use(
    tenancy({
      // Effective configs: a tenant's own config over its plan's; a plan change applies at once.
      configManager: withPlans(deps.configs, deps.plans),
      // The model: a chat completion's body, otherwise X-Model (see src/model.ts).
      policy: { evaluator: deps.policy, extract: policyInput },
      ...(deps.concurrency === undefined ? {} : { concurrency: deps.concurrency }),
      rateLimit: deps.rateLimiter,
      // Streamed (SSE) answers are settled at their usage event when they end (waitUntil on Workers);
      // per-model limits: the plans' `quota.subjects` match `model:<the model the policy checked>`.
      // A chat completion is charged its prompt when admitted (chatTokenEstimate), other requests
      // their X-Token-Count.
      quota: {
        manager: deps.quotas,
        streamUsage: true,
        subject: modelSubject,
        tokenEstimator: chatTokenEstimate,
      },
      clock: deps.clock,
      hooks: [tenancyLogHooks(deps.logger), tenantMetricsHooks(deps.metrics)],
    }),
  )
  api.route('/resources', resourceRoutes(deps.resources))
  api.route('/chat', chatRoutes())
  app.route('/api/v1', api)

  app.notFound((c) => problem(404, 'not_found', `no route for ${c.req.method} ${c.req.path}`))
  app.onError((error, c) => {
    if (isTenantError(error)) {
      if (error.status >= 500) {
        deps.logger.error({ msg: 'backend error', path: c.req.path, error: describeError(error) })
      }
      return problemResponse(error)
    }
    if (error instanceof HTTPException && error.status === 401) {
      // hono/jwt: no token, or one that does not verify.
      const challenge = error.getResponse().headers.get('WWW-Authenticate') ?? 'Bearer'
      return problem(401, 'unauthorized', error.message, {}, { 'WWW-Authenticate': challenge })
    }
    if (error instanceof HTTPException) return error.getResponse()
    deps.logger.error({
      msg: 'unhandled error',
      method: c.req.method,
      path: c.req.path,
      requestId: c.var.requestId ?? null,
      error: describeError(error),
    })
    return problem(500, 'internal_error', 'the server failed; the request id is in the logs', {
      requestId: c.var.requestId ?? null,
    })
  })

  return app
}

/**
 * The time claims of a verified token, on the app's clock (hono/jwt would read the wall clock):
 * `exp` and `nbf` as usual, and `iat`, which must be present, not in the future, and not in the
 * second the tenant the token names was created or before (`iat` is whole seconds: a delete and a
 * create within one second would otherwise let the deleted customer's token of that second in),
 * unless the token has a `tenant_created_at` claim, which must then be that tenant's `createdAt`.
 * Tenant ids are reused (an id freed by a delete can be given to a new customer, see the admin
 * plane) and a token only names an id: without the last check a token of the id's deleted customer
 * would read and write its new customer's data. Runs before the chain, so a refused token is charged to no one. The tenant is read as the
 * chain reads it (the config cache), so another process sees a re-created tenant once its cache
 * entry expires (`CONFIG_CACHE_TTL_MS`).
 */
function tokenTimes(configs: ConfigManager, clock: Clock): MiddlewareHandler {
  const refuse = (detail: string) =>
    problem(401, 'unauthorized', detail, {}, { 'WWW-Authenticate': 'Bearer error="invalid_token"' })
  const seconds = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value)
  return async (c, next) => {
    const payload = c.get('jwtPayload') as Record<string, unknown>
    const now = clock.now() / 1000
    const { exp, nbf, iat, tenant_id: tenantId, tenant_created_at: createdAt } = payload
    if (exp !== undefined && !(seconds(exp) && now < exp)) return refuse('the token has expired')
    if (nbf !== undefined && !(seconds(nbf) && nbf <= now)) return refuse('the token is not valid yet')
    if (!seconds(iat)) return refuse('the token has no iat (issued at) claim')
    if (iat > now) return refuse('the token was issued in the future')
    // A token without a valid tenant claim is the chain's to refuse (tenant_required).
    if (typeof tenantId === 'string' && isValidTenantId(tenantId)) {
      const tenant = await getTenantConfigOrNull(configs, tenantId)
      if (tenant !== null && createdAt !== undefined && createdAt !== tenant.createdAt) {
        return refuse(
          `the token's tenant_created_at is not that of tenant "${tenantId}": it belongs to another tenant of the id`,
        )
      }
      // iat is whole seconds: a token of the second the tenant was created in may be the deleted
      // customer's (a delete and a create within one second), so it counts as issued before.
      if (tenant !== null && createdAt === undefined && iat * 1000 < tenant.createdAt) {
        return refuse(
          `the token was not issued after tenant "${tenantId}" was created (iat is in seconds): it may belong to an earlier tenant of the id; ` +
            "give it a tenant_created_at claim (the tenant's createdAt, in ms) to use it at once",
        )
      }
    }
    await next()
  }
}

/** Whether `header` is `Bearer <token>`, compared in constant time (the scheme is case-insensitive). */
async function hasBearer(header: string | undefined, token: string): Promise<boolean> {
  const match = header === undefined ? null : /^Bearer +(\S+) *$/i.exec(header)
  return match !== null && (await timingSafeEqual(match[1]!, token))
}
