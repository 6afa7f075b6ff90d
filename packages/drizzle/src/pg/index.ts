/**
 * The Postgres tables (`tenants`, `tenantAuditLog`, `plans`, `planAuditLog`), their migrations, and `tenantIdColumn()` for
 * your own tenant tables.
 *
 * @module @tenant/drizzle/pg
 */
export { pgTenantIdColumn as tenantIdColumn } from '../scoped-columns'
export { migrations } from './migrations'
export * from './schema'
