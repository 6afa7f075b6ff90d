import { tenantRlsPolicy } from '@tenant/drizzle'
import { tenantIdColumn } from '@tenant/drizzle/pg'
import { bigint, index, json, pgTable, text, timestamp } from 'drizzle-orm/pg-core'

/**
 * The app's own table on PostgreSQL: the same shape as the SQLite one, plus the tenant
 * row-level-security policy (`tenant_id = current_setting('app.tenant_id')`), the second barrier
 * behind the scoped API. drizzle-kit turns the policy into `ENABLE ROW LEVEL SECURITY` and
 * `CREATE POLICY`; `FORCE ROW LEVEL SECURITY` is a custom migration (drizzle/pg/0001_force_rls.sql).
 */
export const resources = pgTable(
  'resources',
  {
    id: text('id').primaryKey(),
    tenantId: tenantIdColumn(),
    // Which tenant of the id owns the row: its createdAt (ms). Ids are reused once deleted, and a
    // request of a deleted tenant still running when the id is given to a new customer must not
    // write into the new one; every query also matches this column (see DrizzleResourceStore).
    // The default only serves the migration that added the column, which fills it in.
    tenantCreatedAt: bigint('tenant_created_at', { mode: 'number' }).notNull().default(0),
    name: text('name').notNull(),
    // json, not jsonb: jsonb sorts object keys, and data must come back as sent (as on SQLite).
    data: json('data').$type<Record<string, unknown>>().notNull(),
    createdAt: timestamp('created_at', { precision: 3, withTimezone: true, mode: 'date' }).notNull(),
    updatedAt: timestamp('updated_at', { precision: 3, withTimezone: true, mode: 'date' }).notNull(),
  },
  (t) => [index('resources_tenant_id_id_idx').on(t.tenantId, t.id), tenantRlsPolicy()],
)
