/**
 * The SQLite-family tables (`tenants`, `tenantAuditLog`, `plans`, `planAuditLog`), their migrations, and `tenantIdColumn()`
 * for your own tenant tables.
 *
 * @module @tenant/drizzle/sqlite
 */
export { sqliteTenantIdColumn as tenantIdColumn } from '../scoped-columns'
export { migrations } from './migrations'
export * from './schema'
