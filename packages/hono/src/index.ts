export {
  type ConcurrencyOptions,
  chain,
  currentTenantId,
  fromCookie,
  fromHeader,
  fromPathPrefix,
  fromQuery,
  fromSubdomain,
  getTenant,
  getTenantId,
  type PolicyOptions,
  problemResponse,
  type QuotaOptions,
  type RateLimitOptions,
  requestTokenCount,
  runWithTenantId,
  type TenancyHooks,
  type TenantExtractor,
} from '@tenant/fetch'
export * from './admin-routes'
export * from './env'
export * from './middleware'
