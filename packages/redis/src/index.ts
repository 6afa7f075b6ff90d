export * from './cache-store'
export * from './client'
export { DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_QUEUE } from './command-gate'
export {
  DEFAULT_LEASE_TTL_MS,
  RedisConcurrencyLimiter,
  type RedisConcurrencyLimiterOptions,
} from './concurrency-limiter'
export { DEFAULT_LOCAL_DENY_ENTRIES, DEFAULT_LOCAL_DENY_HOLD_MS, type LocalDenyOptions } from './local-deny'
export { APP_CLOCK_TTL_MARGIN_MS } from './lua'
export type { RedisStoreOptions } from './options'
export * from './quota-manager'
export { RedisRateLimiter, type RedisRateLimiterOptions } from './rate-limiter'
export { RECEIPT_TTL_MS, RECEIPT_TTL_RANGE_MS } from './receipts'
export { DEFAULT_TIMEOUT_MS } from './script'
