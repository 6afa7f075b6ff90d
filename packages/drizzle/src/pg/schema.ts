import { sql } from 'drizzle-orm'
import {
  bigint,
  check,
  customType,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgTable,
  text,
  timestamp,
} from 'drizzle-orm/pg-core'
import { limitChecks, tenantChecks } from '../columns'

// Tenant ids sort in byte order everywhere (SQLite, the in-memory store, cursors). Postgres would
// otherwise sort by the database's locale, so the column carries the "C" collation and its
// primary-key index serves `ORDER BY id` and `id > $after` in that order.
const tenantIdColumn = customType<{ data: string; driverData: string }>({
  dataType: () => 'varchar(255) COLLATE "C"',
})

const msTimestamp = (name: string) => timestamp(name, { precision: 3, withTimezone: true, mode: 'date' })
const count = (name: string) => bigint(name, { mode: 'number' })

// The columns a tenant and a plan share (fresh builders per table): quota windows, rate limit,
// allow-lists, metadata, the write counter and the timestamps.
const limitColumns = () => ({
  quotaRequestsPerMinute: count('quota_requests_per_minute'),
  quotaTokensPerMinute: count('quota_tokens_per_minute'),
  quotaRequestsPerHour: count('quota_requests_per_hour'),
  quotaTokensPerHour: count('quota_tokens_per_hour'),
  quotaRequestsPerDay: count('quota_requests_per_day'),
  quotaTokensPerDay: count('quota_tokens_per_day'),
  quotaRequestsPerMonth: count('quota_requests_per_month'),
  quotaTokensPerMonth: count('quota_tokens_per_month'),
  rateLimitRequestsPerSecond: doublePrecision('rate_limit_requests_per_second'),
  rateLimitBurst: count('rate_limit_burst'),
  allowedModels: jsonb('allowed_models').notNull().default([]),
  allowedTools: jsonb('allowed_tools').notNull().default([]),
  allowedMethods: jsonb('allowed_methods').notNull().default([]),
  allowedPaths: jsonb('allowed_paths').notNull().default([]),
  metadata: jsonb('metadata').notNull().default({}),
  // Migration 0002: per-subject quota limits (NULL = none) and the in-flight cap (NULL = none).
  quotaSubjects: jsonb('quota_subjects'),
  maxInFlight: count('max_in_flight'),
  revision: integer('revision').notNull().default(1),
  createdAt: msTimestamp('created_at').notNull().defaultNow(),
  updatedAt: msTimestamp('updated_at').notNull().defaultNow(),
})

/**
 * Plans (PostgreSQL, PGlite): the quota, rate limit and policy that tenants on the plan inherit,
 * in the same columns and under the same CHECK constraints as `tenants`; ids in byte order like
 * tenant ids. A plan that a tenant references cannot be deleted (the foreign key `tenants.plan`).
 *
 * @example
 * ```ts
 * import { plans } from '@tenant/drizzle/pg'
 * const ids = await db.select({ id: plans.id }).from(plans)
 * ```
 */
export const plans = pgTable(
  'plans',
  { id: tenantIdColumn('id').primaryKey().notNull(), ...limitColumns() },
  (t) => [
    check('plans_id_check', sql`${t.id} ~ '^[A-Za-z0-9._-]{1,255}$'`),
    ...limitChecks('plans', t).map(({ name, condition }) => check(name, condition)),
  ],
)

/**
 * Tenant configurations (PostgreSQL, PGlite). One row per tenant; the v1.1 plan's columns plus the
 * further quota windows, the rate limit, the method/path allow-lists and the status. A quota column
 * that is NULL means "no limit in that window and dimension". The id uses `COLLATE "C"` so listing
 * order is byte order, as on SQLite. `revision` is a concurrency token, a new random value on every
 * write (never a count, so a re-created row cannot repeat one); audited changes use it to detect a
 * concurrent writer.
 *
 * @example
 * ```ts
 * import { tenants } from '@tenant/drizzle/pg'
 * const suspended = await db.select({ id: tenants.id }).from(tenants).where(eq(tenants.status, 'suspended'))
 * ```
 */
export const tenants = pgTable(
  'tenants',
  {
    id: tenantIdColumn('id').primaryKey().notNull(),
    status: text('status', { enum: ['active', 'suspended'] })
      .notNull()
      .default('active'),
    ...limitColumns(),
    plan: tenantIdColumn('plan').references(() => plans.id),
  },
  (t) => [
    index('tenants_status_id_idx').on(t.status, t.id),
    // Finds a plan's tenants (a plan in use cannot be deleted) without a scan.
    index('tenants_plan_idx').on(t.plan),
    check('tenants_id_check', sql`${t.id} ~ '^[A-Za-z0-9._-]{1,255}$'`),
    ...tenantChecks(t).map(({ name, condition }) => check(name, condition)),
  ],
)

/**
 * The audit log of tenant changes (PostgreSQL, PGlite). Append-only; `id` is an identity column,
 * which is the listing order. `before` / `after` are JSON snapshots of the config (NULL on create /
 * delete).
 */
export const tenantAuditLog = pgTable(
  'tenant_audit_log',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    tenantId: text('tenant_id').notNull(),
    actor: text('actor').notNull(),
    action: text('action').notNull(),
    before: jsonb('before'),
    after: jsonb('after'),
    at: msTimestamp('at').notNull(),
    requestId: text('request_id'),
  },
  (t) => [
    index('tenant_audit_log_tenant_id_idx').on(t.tenantId, t.id.desc()),
    index('tenant_audit_log_at_idx').on(t.at),
  ],
)

/**
 * The audit log of plan changes (PostgreSQL, PGlite), apart from the tenants' so that a record's
 * table says what its snapshots are. Append-only; `id` is an identity column; a plan's history
 * outlives it.
 */
export const planAuditLog = pgTable(
  'plan_audit_log',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    planId: text('plan_id').notNull(),
    actor: text('actor').notNull(),
    action: text('action').notNull(),
    before: jsonb('before'),
    after: jsonb('after'),
    at: msTimestamp('at').notNull(),
    requestId: text('request_id'),
  },
  (t) => [index('plan_audit_log_plan_id_idx').on(t.planId, t.id.desc())],
)

/** A row of {@link tenants} as Drizzle returns it. */
export type TenantRow = typeof tenants.$inferSelect
/** A row of {@link tenantAuditLog} as Drizzle returns it. */
export type TenantAuditRow = typeof tenantAuditLog.$inferSelect
/** A row of {@link plans} as Drizzle returns it. */
export type PlanRow = typeof plans.$inferSelect
/** A row of {@link planAuditLog} as Drizzle returns it. */
export type PlanAuditRow = typeof planAuditLog.$inferSelect
