export {
  type TenantMetricsMiddlewareOptions,
  tenantMetricsHooks,
  tenantMetricsMiddleware,
} from './fetch-metrics'
export { metricsHandler } from './metrics-handler'
export {
  DEFAULT_DURATION_BUCKETS,
  type RequestOutcome,
  type RequestRecord,
  TenantMetrics,
  type TenantMetricsOptions,
} from './tenant-metrics'
