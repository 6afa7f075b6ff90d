import {
  type AuditListOptions,
  type AuditLog,
  type AuditPage,
  type AuditRecord,
  type AuditRecordInput,
  InvalidTenantConfigError,
  isPlanAuditRecord,
  type PlanAuditRecord,
  parseOrThrow,
  parseTenantConfig,
  planConfigSchema,
  resolveAuditListOptions,
  type TenantAuditRecord,
  validatePlanId,
  validateTenantId,
} from '@tenant/core'
import { and, desc, eq, lt } from 'drizzle-orm'
import { type AnyDb, type Dialect, detectDriver, runQuery, type TenantDatabase } from './driver'
import { type TenantTables, tablesFor } from './tables'
import { AUDIT_ID_PATTERN, decodeAudit, encodeAudit, formatAuditId } from './tenant-row'

const WHAT = 'audit log query'

/**
 * An {@link AuditLog} in the `tenant_audit_log` and `plan_audit_log` tables of the app's Drizzle
 * database (created by {@link migrate}). `DrizzleConfigManager.applyChange` and
 * `DrizzlePlanStore.applyPlanChange` write to the same tables inside their transactions; use this
 * class to read the history (and `append` for records of your own).
 *
 * Records are listed newest first, in the order they were written (ids grow), which does not
 * depend on the clocks of the servers that wrote them. Ids are the row id zero-padded to 16
 * digits, so they also sort as strings; `next` is the last id of a page. Tenant and plan records
 * live in their own tables, so their ids are two sequences: an id orders one subject's history.
 * Rows that do not decode are `TenantRowDecodeError`; database failures `TenantBackendError`.
 *
 * @example
 * ```ts
 * const auditLog = new DrizzleAuditLog(db)
 * const admin = new AdminService({ store: new DrizzleConfigManager(db), auditLog })
 * const { items, next } = await auditLog.list('acme', { limit: 20 })
 * const plan = await auditLog.listPlan('pro')
 * ```
 */
export class DrizzleAuditLog implements AuditLog {
  /** The dialect detected from the database. */
  readonly dialect: Dialect
  readonly #db: AnyDb
  readonly #tables: TenantTables

  constructor(db: TenantDatabase) {
    this.dialect = detectDriver(db).dialect
    this.#db = db
    this.#tables = tablesFor(this.dialect)
  }

  /**
   * Inserts `record` (its snapshots validated first) into the tenant or the plan table, and
   * returns it with its id: the row id, zero-padded to 16 digits.
   */
  async append(record: AuditRecordInput): Promise<AuditRecord> {
    if (!Number.isSafeInteger(record.at) || record.at < 0) {
      throw new InvalidTenantConfigError([
        { path: ['at'], message: 'must be a whole number of ms since the epoch', code: 'invalid_type' },
      ])
    }
    // Snapshots are validated on the way in, so that every stored record can be read back.
    let checked: AuditRecordInput
    let table: AnyDb
    let tenantId: string | undefined
    if (isPlanAuditRecord(record)) {
      validatePlanId(record.planId)
      const plan = (value: unknown) => (value === null ? null : parseOrThrow(planConfigSchema, value))
      checked = { ...record, before: plan(record.before), after: plan(record.after) }
      table = this.#tables.planAuditLog
    } else {
      tenantId = validateTenantId(record.tenantId)
      const tenant = (value: unknown) => (value === null ? null : parseTenantConfig(value))
      checked = { ...record, before: tenant(record.before), after: tenant(record.after) }
      table = this.#tables.auditLog
    }
    const rows = await runQuery<{ id: unknown }[]>(WHAT, tenantId, () =>
      this.#db.insert(table).values(encodeAudit(this.dialect, checked)).returning({ id: table.id }),
    )
    return { ...checked, id: formatAuditId(rows[0]!.id) } as AuditRecord
  }

  async list(tenantId: string, options?: AuditListOptions): Promise<AuditPage<TenantAuditRecord>> {
    validateTenantId(tenantId)
    const { auditLog } = this.#tables
    const rows = await this.#page(auditLog, auditLog.tenantId, tenantId, options, tenantId)
    return this.#decode(rows, options, (row) => decodeAudit(this.dialect, row, 'tenant'))
  }

  /** A plan's history, newest first (`plan_audit_log`). Works for deleted plans too. */
  async listPlan(planId: string, options?: AuditListOptions): Promise<AuditPage<PlanAuditRecord>> {
    validatePlanId(planId)
    const { planAuditLog } = this.#tables
    const rows = await this.#page(planAuditLog, planAuditLog.planId, planId, options, undefined)
    return this.#decode(rows, options, (row) => decodeAudit(this.dialect, row, 'plan'))
  }

  async #page(
    table: AnyDb,
    subject: AnyDb,
    id: string,
    options: AuditListOptions | undefined,
    tenantId: string | undefined,
  ): Promise<Record<string, unknown>[]> {
    const { limit, before } = resolveAuditListOptions(options, AUDIT_ID_PATTERN)
    const where = before === undefined ? eq(subject, id) : and(eq(subject, id), lt(table.id, Number(before)))
    return runQuery<Record<string, unknown>[]>(WHAT, tenantId, () =>
      this.#db
        .select()
        .from(table)
        .where(where)
        .orderBy(desc(table.id))
        .limit(limit + 1),
    )
  }

  #decode<R extends AuditRecord>(
    rows: Record<string, unknown>[],
    options: AuditListOptions | undefined,
    decode: (row: Record<string, unknown>) => R,
  ): AuditPage<R> {
    const { limit } = resolveAuditListOptions(options)
    const items = rows.slice(0, limit).map(decode)
    const last = items[items.length - 1]
    return rows.length > limit && last ? { items, next: last.id } : { items }
  }
}
