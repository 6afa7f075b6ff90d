/**
 * The pure core of the tenancy toolkit: tenant configuration schemas, config managers, quotas,
 * rate limits, policies, the tenant cache, the admin service, typed errors and the clock.
 *
 * @module @tenant/core
 */
export * from './admin-service'
export * from './algorithms/index'
export * from './audit'
export * from './audited-store'
export * from './cache'
export * from './clock'
export * from './config'
export * from './cost'
export * from './errors'
export * from './fast-path'
export * from './in-memory-audit-log'
export * from './in-memory-config-manager'
export * from './in-memory-plan-store'
export * from './in-memory-quota-manager'
export * from './json'
export * from './list-tenants'
export * from './plans'
export * from './policy'
export * from './policy-evaluator'
export * from './quota'
export * from './rate-limit'
export * from './schemas'
export * from './sliding-window-quota-manager'
export * from './tenant-cache'
export * from './tenant-id'
export * from './token-bucket-rate-limiter'
export * from './validate'
export * from './with-plans'
