import { invalidOption, TenantError } from '@tenant/core'
import {
  type ResolverOptions as FetchResolverOptions,
  type TenancyOptions as FetchTenancyOptions,
  tenancy as fetchTenancy,
  tenantPolicy as fetchTenantPolicy,
  tenantQuota as fetchTenantQuota,
  tenantRateLimit as fetchTenantRateLimit,
  tenantResolver as fetchTenantResolver,
  getTenant,
  getTenantId,
  type Middleware,
  type PolicyOptions,
  type QuotaOptions,
  type RateLimitOptions,
} from '@tenant/fetch'
import type { Context, Env, MiddlewareHandler } from 'hono'
import type { OptionalTenantEnv, TenantEnv } from './env'

type MaybePromise<T> = T | Promise<T>

// The Hono context of a request, for the principal callback, which the Fetch resolver calls with
// the Request only. Weak: it lives as long as the request.
const contexts = new WeakMap<Request, Context>()

/**
 * Runs a `@tenant/fetch` middleware as a Hono middleware: the Fetch middleware's `next()` runs
 * the rest of the Hono chain, and its answer (a refusal, or the downstream response with headers
 * added) becomes `c.res`. After the resolver, `c.var.tenantId` and `c.var.tenant` are set.
 *
 * @example
 * ```ts
 * app.use(fromFetch(async (request, next) => withAuditHeader(await next())))
 * ```
 */
export function fromFetch<E extends Env = TenantEnv>(middleware: Middleware): MiddlewareHandler<E> {
  return async function fromFetchMiddleware(c, next) {
    const request = c.req.raw
    contexts.set(request, c)
    let passed = false
    const response = await middleware(request, async () => {
      passed = true
      const tenantId = getTenantId(request)
      if (tenantId !== undefined) {
        c.set('tenantId' as never, tenantId as never)
        c.set('tenant' as never, getTenant(request) as never)
      }
      await next()
      return c.res
    })
    if (!passed) {
      // A refusal keeps the headers earlier middleware set with c.header(), as c.json() would:
      // reading c.res materialises them and the setter copies them onto the new response.
      if (c.res) c.res = response
      return c.res
    }
    if (response !== c.res) {
      // Dropping c.res first stops Hono from copying the old headers over the ones just added.
      c.res = undefined
      c.res = response
    }
  }
}

/** Options of the Hono {@link tenantResolver}. */
export interface ResolverOptions extends Omit<FetchResolverOptions, 'principal'> {
  /**
   * The authenticated principal's tenant, read from the Hono context (your auth middleware's
   * variables). Replaces the JWT claim lookup.
   * @default reads `jwtClaim` from the `jwtPayload` that `hono/jwt` sets
   */
  principal?: (c: Context) => MaybePromise<string | null | undefined>
  /**
   * The claim of the `hono/jwt` payload (`c.get('jwtPayload')`) that holds the tenant id; `false`
   * to not read it.
   * @default 'tenant_id'
   */
  jwtClaim?: string | false
}

function fetchResolverOptions(options: ResolverOptions): FetchResolverOptions {
  if (typeof options !== 'object' || options === null)
    throw invalidOption('tenantResolver', 'options must be an object')
  const { principal, jwtClaim = 'tenant_id', ...rest } = options
  if (principal !== undefined && typeof principal !== 'function') {
    throw invalidOption('tenantResolver.principal', 'must be a function of the Hono context')
  }
  if (jwtClaim !== false && (typeof jwtClaim !== 'string' || jwtClaim === '')) {
    throw invalidOption('tenantResolver.jwtClaim', 'must be a claim name or false')
  }
  const fromContext = principal ?? (jwtClaim === false ? undefined : jwtPrincipal(jwtClaim))
  if (!fromContext) return rest
  return {
    // Without a verified JWT on the request (no hono/jwt on this route) there is no principal, so
    // the default JWT principal lets the extractors decide; a JWT without the claim is refused in
    // jwtPrincipal. An explicit principal is the only source, as in @tenant/fetch.
    ...(principal === undefined ? { fallbackToExtractors: true } : {}),
    ...rest,
    principal: (request) => {
      const c = contexts.get(request)
      return c ? fromContext(c) : undefined
    },
  }
}

function jwtPrincipal(claim: string) {
  return (c: Context): string | undefined => {
    const payload: unknown = c.get('jwtPayload')
    if (typeof payload !== 'object' || payload === null) return undefined
    const value = (payload as Record<string, unknown>)[claim]
    // A verified token that names no tenant must not fall back to a header naming any tenant.
    if (value === undefined || value === null || value === '') {
      throw new TenantError('tenant_required', `the token has no "${claim}" claim`)
    }
    return value as string
  }
}

/**
 * Resolves the tenant (principal, then the extractors) and sets `c.var.tenantId` and
 * `c.var.tenant`. The principal defaults to the `tenant_id` claim of a `hono/jwt` payload. Same
 * options, codes and hooks as `@tenant/fetch`'s `tenantResolver`.
 *
 * @example
 * ```ts
 * app.use('/api/*', jwt({ secret, alg: 'HS256' }), tenantResolver({ configManager }))
 * ```
 */
export function tenantResolver(
  options: ResolverOptions & { allowMissing: true },
): MiddlewareHandler<OptionalTenantEnv>
export function tenantResolver(options?: ResolverOptions): MiddlewareHandler<TenantEnv>
export function tenantResolver(options: ResolverOptions = {}): MiddlewareHandler<any> {
  return fromFetch(fetchTenantResolver(fetchResolverOptions(options)))
}

/**
 * Enforces the tenant's model / tool / method / path allow-lists (403 `tenant_policy_denied`).
 * Same options as `@tenant/fetch`'s `tenantPolicy`; put it after the resolver.
 *
 * @example
 * ```ts
 * app.use('/api/*', tenantResolver(), tenantPolicy({ evaluator: new ConfigPolicyEvaluator(configs) }))
 * ```
 */
export function tenantPolicy(options: PolicyOptions = {}): MiddlewareHandler<TenantEnv> {
  return fromFetch(fetchTenantPolicy(options))
}

/**
 * Limits each tenant's request rate (429 `tenant_rate_limited`, `Retry-After`, RateLimit fields).
 * Same options as `@tenant/fetch`'s `tenantRateLimit`; put it after the resolver.
 *
 * @example
 * ```ts
 * app.use('/api/*', tenantResolver(), tenantRateLimit({ limiter: new TokenBucketRateLimiter(configs) }))
 * ```
 */
export function tenantRateLimit(options: RateLimitOptions = {}): MiddlewareHandler<TenantEnv> {
  return fromFetch(fetchTenantRateLimit(options))
}

/**
 * Charges each request to the tenant's quota (429 `tenant_quota_exceeded`, `Retry-After`,
 * RateLimit fields, `X-Quota-Remaining-*`). Same options as `@tenant/fetch`'s `tenantQuota`; put
 * it after the resolver.
 *
 * @example
 * ```ts
 * app.use('/api/*', tenantResolver(), tenantQuota({ manager: new InMemoryQuotaManager(configs) }))
 * ```
 */
export function tenantQuota(options: QuotaOptions = {}): MiddlewareHandler<TenantEnv> {
  return fromFetch(fetchTenantQuota(options))
}

/** Options of the Hono {@link tenancy}: `@tenant/fetch`'s, with the Hono resolver options. */
export interface TenancyOptions extends Omit<FetchTenancyOptions, 'resolver'> {
  /** Resolver options; the principal reads the Hono context. @default header `X-Tenant-ID`, JWT claim `tenant_id` */
  resolver?: ResolverOptions
}

/**
 * The whole chain, resolve -> policy -> rate limit -> quota, as one Hono middleware; stages
 * without a store are left out. Sets `c.var.tenantId` and `c.var.tenant`.
 *
 * @example
 * ```ts
 * const app = new Hono()
 * app.get('/health', (c) => c.text('ok')) // outside the chain
 * app.use('/api/*', tenancy({ configManager: configs, quota: new InMemoryQuotaManager(configs) }))
 * app.get('/api/me', (c) => c.json({ tenant: c.var.tenantId }))
 * ```
 */
export function tenancy(
  options: TenancyOptions & { resolver: { allowMissing: true } },
): MiddlewareHandler<OptionalTenantEnv>
export function tenancy(options?: TenancyOptions): MiddlewareHandler<TenantEnv>
export function tenancy(options: TenancyOptions = {}): MiddlewareHandler<any> {
  // Checked here too: the resolver options are read before @tenant/fetch sees the rest.
  if (typeof options !== 'object' || options === null)
    throw invalidOption('tenancy', 'options must be an object')
  return fromFetch(fetchTenancy({ ...options, resolver: fetchResolverOptions(options.resolver ?? {}) }))
}
