/**
 * Drizzle stores for tenancy: config manager, plan store, audit log, migrations, scoped queries, raw-SQL
 * scoping, Postgres row-level security and the shard router.
 *
 * @module @tenant/drizzle
 */
export * from './audit-log'
export type { ConfigCacheOptions, ConfigCacheStats } from './config-cache'
export * from './config-manager'
export type { Dialect, TenantDatabase } from './driver'
export type { MigrateOptions, RollbackOptions, ShippedMigration } from './migrate'
export { migrate, rollback } from './migrate'
export * from './plan-store'
export type { RawSqlOptions, SqlDialect, TenantStatement, ValidateQueryOptions } from './raw-sql'
export { addTenantFilter, UnsafeQueryError, validateQuery } from './raw-sql'
export * from './rls'
export type { CreateScopedOptions } from './scoped'
export { createScoped, scoped, unscoped } from './scoped'
export { scopedCacheTag } from './scoped-builders'
export * from './shard-router'
export type { ExecResult, TenantDBOptions, TenantIdSource, TransactionOf } from './tenant-db'
export { TenantDB } from './tenant-db'
export { TenantRowDecodeError } from './tenant-row'
