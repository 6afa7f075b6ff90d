/**
 * Conformance suites for stores (config managers, quota managers, rate limiters, cache stores, audit
 * logs): every store of the toolkit passes them, and so should yours. Needs vitest.
 *
 * @module @tenant/core/testing
 */
export * from './audit-log'
export * from './audited-store'
export * from './cache-store'
export * from './concurrency-limiter'
export * from './config-manager'
export * from './options'
export * from './plan-store'
export * from './quota-manager'
export * from './quota-subjects'
export * from './rate-limiter'
