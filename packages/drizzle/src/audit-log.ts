import {
  type AuditListOptions,
  type AuditLog,
  type AuditPage,
  type AuditRecord,
  type AuditRecordInput,
  isPlanAuditRecord,
  type PlanAuditRecord,
  resolveAuditListOptions,
  type TenantAuditRecord,
  validateAuditRecord,
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
   * Inserts `record` into the tenant or the plan table, and returns it with its id: the row id,
   * zero-padded to 16 digits. The record is checked first with core's `validateAuditRecord`, like
   * every log of the toolkit does (`InvalidTenantConfigError` naming the bad field, such as an
   * empty actor, an unknown action or a snapshot of another subject; `InvalidTenantIdError` for a
   * bad tenant id), so that a bad record is a 400 on every database, never a backend error, and
   * every stored record can be read back.
   */
  async append(record: AuditRecordInput): Promise<AuditRecord> {
    const checked = validateAuditRecord(record)
    const plan = isPlanAuditRecord(checked)
    const table: AnyDb = plan ? this.#tables.planAuditLog : this.#tables.auditLog
    const tenantId = plan ? undefined : checked.tenantId
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
