export {
  DEFAULT_LEASE_TTL_MS,
  DurableObjectConcurrencyLimiter,
  type DurableObjectConcurrencyLimiterOptions,
} from './durable-object-concurrency-limiter'
export {
  DurableObjectQuotaManager,
  type DurableObjectQuotaManagerOptions,
} from './durable-object-quota-manager'
export {
  DurableObjectRateLimiter,
  type DurableObjectRateLimiterOptions,
} from './durable-object-rate-limiter'
export type { ObjectClientOptions, TenantQuotaNamespace } from './object-client'
export type { PrefilterOptions, RateLimitBinding } from './prefilter'
export {
  type ConcurrencyAnswer,
  type ConcurrencyCall,
  type ConcurrencyReply,
  type OpKind,
  PROTOCOL_VERSION,
  type QuotaAlgorithmName,
  type QuotaCall,
  type QuotaReply,
  type RateLimitCall,
  type RateLimitReply,
  type Reply,
  type VoidCall,
  type VoidReply,
  type WireError,
} from './protocol'
export { MAX_RECENT_OPS, RECENT_OP_TTL_MS } from './recent-ops'
export { TenantQuotaObject } from './tenant-quota-object'
