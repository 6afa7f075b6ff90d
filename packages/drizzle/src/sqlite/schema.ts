import { sql } from 'drizzle-orm'
import { check, index, integer, real, sqliteTable, text } from 'drizzle-orm/sqlite-core'
import { tenantChecks } from '../columns'

// Milliseconds since the epoch, computed in SQL for rows inserted by hand. julianday() rather than
// unixepoch('subsec') because the latter needs SQLite 3.42, which not every D1/bun/libSQL build has.
const nowMs = sql`(cast((julianday('now') - 2440587.5) * 86400000 as integer))`

/**
 * Tenant configurations (SQLite, libSQL, D1, bun:sqlite). One row per tenant; the v1.1 plan's
 * columns plus the further quota windows, the rate limit, the method/path allow-lists and the
 * status. A quota column that is NULL means "no limit in that window and dimension"; JSON columns
 * hold text. Timestamps are ms since the epoch. `revision` counts writes; audited changes use it
 * to detect a concurrent writer.
 *
 * @example
 * ```ts
 * import { tenants } from '@tenant/drizzle/sqlite'
 * const suspended = await db.select({ id: tenants.id }).from(tenants).where(eq(tenants.status, 'suspended'))
 * ```
 */
export const tenants = sqliteTable(
  'tenants',
  {
    id: text('id').primaryKey().notNull(),
    status: text('status', { enum: ['active', 'suspended'] })
      .notNull()
      .default('active'),
    quotaRequestsPerMinute: integer('quota_requests_per_minute'),
    quotaTokensPerMinute: integer('quota_tokens_per_minute'),
    quotaRequestsPerHour: integer('quota_requests_per_hour'),
    quotaTokensPerHour: integer('quota_tokens_per_hour'),
    quotaRequestsPerDay: integer('quota_requests_per_day'),
    quotaTokensPerDay: integer('quota_tokens_per_day'),
    quotaRequestsPerMonth: integer('quota_requests_per_month'),
    quotaTokensPerMonth: integer('quota_tokens_per_month'),
    rateLimitRequestsPerSecond: real('rate_limit_requests_per_second'),
    rateLimitBurst: integer('rate_limit_burst'),
    allowedModels: text('allowed_models').notNull().default('[]'),
    allowedTools: text('allowed_tools').notNull().default('[]'),
    allowedMethods: text('allowed_methods').notNull().default('[]'),
    allowedPaths: text('allowed_paths').notNull().default('[]'),
    metadata: text('metadata').notNull().default('{}'),
    revision: integer('revision').notNull().default(1),
    createdAt: integer('created_at').notNull().default(nowMs),
    updatedAt: integer('updated_at').notNull().default(nowMs),
  },
  (t) => [
    index('tenants_status_id_idx').on(t.status, t.id),
    check(
      'tenants_id_check',
      sql`length(${t.id}) between 1 and 255 and ${t.id} not glob '*[^A-Za-z0-9._-]*'`,
    ),
    ...tenantChecks(t).map(({ name, condition }) => check(name, condition)),
  ],
)

/**
 * The audit log of tenant changes (SQLite family). Append-only; `id` grows with every record
 * (AUTOINCREMENT, so ids are never reused), which is the listing order. `before` / `after` are
 * JSON snapshots of the config (NULL on create / delete); `at` is ms since the epoch.
 */
export const tenantAuditLog = sqliteTable(
  'tenant_audit_log',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    tenantId: text('tenant_id').notNull(),
    actor: text('actor').notNull(),
    action: text('action').notNull(),
    before: text('before'),
    after: text('after'),
    at: integer('at').notNull(),
    requestId: text('request_id'),
  },
  (t) => [
    index('tenant_audit_log_tenant_id_idx').on(t.tenantId, sql`${t.id} desc`),
    index('tenant_audit_log_at_idx').on(t.at),
  ],
)

/** A row of {@link tenants} as Drizzle returns it. */
export type TenantRow = typeof tenants.$inferSelect
/** A row of {@link tenantAuditLog} as Drizzle returns it. */
export type TenantAuditRow = typeof tenantAuditLog.$inferSelect
