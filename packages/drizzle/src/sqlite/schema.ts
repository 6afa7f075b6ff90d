import { sql } from 'drizzle-orm'
import { type AnySQLiteColumn, check, index, integer, real, sqliteTable, text } from 'drizzle-orm/sqlite-core'
import { limitChecks, tenantChecks } from '../columns'

// Milliseconds since the epoch, computed in SQL for rows inserted by hand. julianday() rather than
// unixepoch('subsec') because the latter needs SQLite 3.42, which not every D1/bun/libSQL build has.
const nowMs = sql`(cast((julianday('now') - 2440587.5) * 86400000 as integer))`

// SQLite has no regular expressions: the id alphabet is checked with GLOB.
const idCheck = (id: AnySQLiteColumn) =>
  sql`length(${id}) between 1 and 255 and ${id} not glob '*[^A-Za-z0-9._-]*'`

// The columns a tenant and a plan share (fresh builders per table): quota windows, rate limit,
// allow-lists, metadata, the write counter and the timestamps.
const limitColumns = () => ({
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
  // Migration 0002: per-subject quota limits (JSON; NULL = none) and the in-flight cap (NULL = none).
  quotaSubjects: text('quota_subjects'),
  maxInFlight: integer('max_in_flight'),
  revision: integer('revision').notNull().default(1),
  createdAt: integer('created_at').notNull().default(nowMs),
  updatedAt: integer('updated_at').notNull().default(nowMs),
})

/**
 * Plans (SQLite, libSQL, D1, bun:sqlite): the quota, rate limit and policy that tenants on the plan
 * inherit, in the same columns and under the same CHECK constraints as `tenants`. A plan that a
 * tenant references cannot be deleted (the foreign key `tenants.plan`, and the store checks too).
 *
 * @example
 * ```ts
 * import { plans } from '@tenant/drizzle/sqlite'
 * const ids = await db.select({ id: plans.id }).from(plans)
 * ```
 */
export const plans = sqliteTable(
  'plans',
  { id: text('id').primaryKey().notNull(), ...limitColumns() },
  (t) => [
    check('plans_id_check', idCheck(t.id)),
    ...limitChecks('plans', t).map(({ name, condition }) => check(name, condition)),
  ],
)

/**
 * Tenant configurations (SQLite, libSQL, D1, bun:sqlite). One row per tenant; the v1.1 plan's
 * columns plus the further quota windows, the rate limit, the method/path allow-lists and the
 * status. A quota column that is NULL means "no limit in that window and dimension"; JSON columns
 * hold text. Timestamps are ms since the epoch. `revision` is a concurrency token, a new random
 * value on every write (never a count, so a re-created row cannot repeat one); audited changes use it
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
    ...limitColumns(),
    plan: text('plan').references(() => plans.id),
  },
  (t) => [
    index('tenants_status_id_idx').on(t.status, t.id),
    // Finds a plan's tenants (a plan in use cannot be deleted) without a scan.
    index('tenants_plan_idx').on(t.plan),
    check('tenants_id_check', idCheck(t.id)),
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

/**
 * The audit log of plan changes (SQLite family), apart from the tenants' so that a record's table
 * says what its snapshots are. Append-only; ids grow (AUTOINCREMENT); a plan's history outlives it.
 */
export const planAuditLog = sqliteTable(
  'plan_audit_log',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    planId: text('plan_id').notNull(),
    actor: text('actor').notNull(),
    action: text('action').notNull(),
    before: text('before'),
    after: text('after'),
    at: integer('at').notNull(),
    requestId: text('request_id'),
  },
  (t) => [index('plan_audit_log_plan_id_idx').on(t.planId, sql`${t.id} desc`)],
)

/** A row of {@link tenants} as Drizzle returns it. */
export type TenantRow = typeof tenants.$inferSelect
/** A row of {@link tenantAuditLog} as Drizzle returns it. */
export type TenantAuditRow = typeof tenantAuditLog.$inferSelect
/** A row of {@link plans} as Drizzle returns it. */
export type PlanRow = typeof plans.$inferSelect
/** A row of {@link planAuditLog} as Drizzle returns it. */
export type PlanAuditRow = typeof planAuditLog.$inferSelect
