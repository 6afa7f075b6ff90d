/**
 * Tenancy middleware for the Fetch API (`Request -> Response`): resolver, policy, rate limit and
 * quota stages, `tenancy()` / `withTenancy()`, problem responses and the tenant context.
 *
 * @module @tenant/fetch
 */

export { type BodyEnd, pipedUnder, whenBodyEnds } from './body-end'
export {
  Admission,
  type ChainStage,
  decide,
  type Finisher,
  fetchChain,
  type HostHooks,
  type StageStep,
} from './chain'
export { applyMiddleware, compose } from './compose'
export {
  type ConcurrencyOptions,
  concurrencyStage,
  tenantConcurrency,
} from './concurrency'
export {
  currentTenantId,
  getTenant,
  getTenantId,
  inheritTenantState,
  isTenantContextAvailable,
  runWithTenantId,
} from './context'
export { executionContextOf, recordExecutionContext, type WaitUntil } from './execution-context'
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
  claimResponse,
  isListField,
  listItemsAt,
  quotaHeaders,
  type RateLimitItem,
  rateLimitFields,
  rateLimitHeaders,
  responseForHeaders,
  retryAfterSeconds,
  withHeaders,
  withoutEarlierHeaders,
} from './headers'
export type {
  AdjustEvent,
  ConcurrencyEvent,
  ErrorInfo,
  PolicyEvent,
  QuotaEvent,
  RateLimitEvent,
  ResolveEvent,
  SettleEvent,
  TenancyEventBase,
  TenancyHooks,
  TenancyStage,
} from './hooks'
export { pathOf } from './path'
export { type PolicyOptions, policyStage, tenantPolicy } from './policy'
export {
  PROBLEM_CONTENT_TYPE,
  PROBLEM_TYPE_PREFIX,
  type ProblemDetails,
  problemDetails,
  problemResponse,
} from './problem'
export { type QuotaOptions, quotaStage, requestTokenCount, tenantQuota } from './quota'
export { type RateLimitOptions, rateLimitStage, tenantRateLimit } from './rate-limit'
export { type HostPrincipal, type ResolverOptions, resolverStage, tenantResolver } from './resolver'
export {
  isEventStream,
  type SseEvent,
  type SseProgress,
  type SseTokenUsage,
  type SseUsageOptions,
  type SseUsageStream,
  sseUsage,
} from './sse'
export type { StageOptions } from './stage'
export type { StreamProgress, StreamUsageOptions } from './stream-usage'
export { type TenancyOptions, tenancy, tenancyStages, withTenancy } from './tenancy'
export type { FetchHandler, MaybePromise, Middleware, Next } from './types'
