import { tenantIdColumn } from '@tenant/drizzle/sqlite'
import { index, integer, sqliteTable, text } from 'drizzle-orm/sqlite-core'

/**
 * The app's own table on SQLite-family databases (libSQL, D1): one row per resource, owned by one
 * tenant. `tenant_id` is filled in by the scoped API (`scoped(db, tenantId)`); an insert that
 * bypasses it without a tenant throws instead of writing an orphan row.
 */
export const resources = sqliteTable(
  'resources',
  {
    id: text('id').primaryKey(),
    tenantId: tenantIdColumn(),
    name: text('name').notNull(),
    data: text('data', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
    createdAt: integer('created_at', { mode: 'timestamp_ms' }).notNull(),
    updatedAt: integer('updated_at', { mode: 'timestamp_ms' }).notNull(),
  },
  // Every query filters by tenant and pages by id: one index serves both.
  (t) => [index('resources_tenant_id_id_idx').on(t.tenantId, t.id)],
)
