/**
 * Tenancy middleware for the Fetch API (`Request -> Response`): resolver, policy, rate limit and
 * quota stages, `tenancy()` / `withTenancy()`, problem responses and the tenant context.
 *
 * @module @tenant/fetch
 */
export { applyMiddleware, compose } from './compose'
export {
  currentTenantId,
  getTenant,
  getTenantId,
  isTenantContextAvailable,
  runWithTenantId,
} from './context'
export {
  type ChainExtractor,
  chain,
  fromCookie,
  fromHeader,
  fromPathPrefix,
  fromQuery,
  fromSubdomain,
  type SubdomainOptions,
  type TenantExtractor,
} from './extractors'
export {
  quotaHeaders,
  type RateLimitItem,
  rateLimitFields,
  rateLimitHeaders,
  retryAfterSeconds,
} from './headers'
export type {
  AdjustEvent,
  ErrorInfo,
  PolicyEvent,
  QuotaEvent,
  RateLimitEvent,
  ResolveEvent,
  TenancyEventBase,
  TenancyHooks,
  TenancyStage,
} from './hooks'
export { type PolicyOptions, tenantPolicy } from './policy'
export {
  PROBLEM_CONTENT_TYPE,
  PROBLEM_TYPE_PREFIX,
  type ProblemDetails,
  problemDetails,
  problemResponse,
} from './problem'
export { type QuotaOptions, tenantQuota } from './quota'
export { type RateLimitOptions, tenantRateLimit } from './rate-limit'
export { type ResolverOptions, tenantResolver } from './resolver'
export type { StageOptions } from './stage'
export { type TenancyOptions, tenancy, withTenancy } from './tenancy'
export type { FetchHandler, MaybePromise, Middleware, Next } from './types'
