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
    // Which tenant of the id owns the row: its createdAt (ms). Ids are reused once deleted, and a
    // request of a deleted tenant still running when the id is given to a new customer must not
    // write into the new one; every query also matches this column (see DrizzleResourceStore).
    // The default only serves the migration that added the column, which fills it in.
    tenantCreatedAt: integer('tenant_created_at').notNull().default(0),
    name: text('name').notNull(),
    data: text('data', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
    createdAt: integer('created_at', { mode: 'timestamp_ms' }).notNull(),
    updatedAt: integer('updated_at', { mode: 'timestamp_ms' }).notNull(),
  },
  // Every query filters by tenant and pages by id: one index serves both.
  (t) => [index('resources_tenant_id_id_idx').on(t.tenantId, t.id)],
)
