import { TenantError } from '@tenant/core'
import { text as pgText } from 'drizzle-orm/pg-core'
import { text as sqliteText } from 'drizzle-orm/sqlite-core'

function missingTenant(): never {
  throw new TenantError(
    'tenant_required',
    'insert without a tenant id: insert through scoped(db, tenantId), or set the tenant column explicitly in admin code',
  )
}

/**
 * A SQLite `text` tenant column for the scoped API: NOT NULL, optional in `insert().values()`
 * types (the scoped API fills it in), and an insert outside the scoped API that forgets it throws
 * `TenantError` (`tenant_required`) instead of writing a row without a tenant.
 *
 * @example
 * ```ts
 * import { tenantIdColumn } from '@tenant/drizzle/sqlite'
 * export const notes = sqliteTable('notes', { id: text('id').primaryKey(), tenantId: tenantIdColumn(), title: text('title') })
 * ```
 */
export function sqliteTenantIdColumn(name = 'tenant_id') {
  return sqliteText(name).notNull().$defaultFn(missingTenant)
}

/**
 * A Postgres `text` tenant column for the scoped API (see the SQLite variant): NOT NULL, optional
 * in insert types, and a forgotten tenant outside the scoped API throws instead of writing.
 *
 * @example
 * ```ts
 * import { tenantIdColumn } from '@tenant/drizzle/pg'
 * export const notes = pgTable('notes', { id: text('id').primaryKey(), tenantId: tenantIdColumn(), title: text('title') })
 * ```
 */
export function pgTenantIdColumn(name = 'tenant_id') {
  return pgText(name).notNull().$defaultFn(missingTenant)
}
