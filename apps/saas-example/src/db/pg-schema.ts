import { tenantRlsPolicy } from '@tenant/drizzle'
import { tenantIdColumn } from '@tenant/drizzle/pg'
import { index, jsonb, pgTable, text, timestamp } from 'drizzle-orm/pg-core'

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
    name: text('name').notNull(),
    data: jsonb('data').$type<Record<string, unknown>>().notNull(),
    createdAt: timestamp('created_at', { precision: 3, withTimezone: true, mode: 'date' }).notNull(),
    updatedAt: timestamp('updated_at', { precision: 3, withTimezone: true, mode: 'date' }).notNull(),
  },
  (t) => [index('resources_tenant_id_id_idx').on(t.tenantId, t.id), tenantRlsPolicy()],
)
