import {
  type AuditListOptions,
  type AuditLog,
  type AuditRecord,
  type AuditRecordInput,
  InvalidTenantConfigError,
  parseTenantConfig,
  resolveAuditListOptions,
  type TenantAuditRecord,
  type TenantAuditRecordInput,
  validateTenantId,
} from '@tenant/core'
import { and, desc, eq, lt } from 'drizzle-orm'
import { type AnyDb, type Dialect, detectDriver, runQuery, type TenantDatabase } from './driver'
import { type TenantTables, tablesFor } from './tables'
import { AUDIT_ID_PATTERN, decodeAudit, encodeAudit, formatAuditId } from './tenant-row'

const WHAT = 'audit log query'

/**
 * An {@link AuditLog} in the `tenant_audit_log` table of the app's Drizzle database (created by
 * {@link migrate}). `DrizzleConfigManager.applyChange` writes to the same table inside its
 * transaction; use this class to read the history (and `append` for records of your own).
 *
 * Records are listed newest first, in the order they were written (ids grow), which does not
 * depend on the clocks of the servers that wrote them. Ids are the row id zero-padded to 16
 * digits, so they also sort as strings; `next` is the last id of a page. Rows that do not decode
 * are `TenantRowDecodeError`; database failures `TenantBackendError`.
 *
 * @example
 * ```ts
 * const auditLog = new DrizzleAuditLog(db)
 * const admin = new AdminService({ store: new DrizzleConfigManager(db), auditLog })
 * const { items, next } = await auditLog.list('acme', { limit: 20 })
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

  /** Inserts `record` (its snapshots validated first) and returns it with its id: the row id, zero-padded to 16 digits. */
  async append(input: AuditRecordInput): Promise<AuditRecord> {
    const record = input as TenantAuditRecordInput
    validateTenantId(record.tenantId)
    // Snapshots are validated on the way in, so that every stored record can be read back.
    const checked: TenantAuditRecordInput = {
      ...record,
      before: record.before === null ? null : parseTenantConfig(record.before),
      after: record.after === null ? null : parseTenantConfig(record.after),
    }
    if (!Number.isSafeInteger(checked.at) || checked.at < 0) {
      throw new InvalidTenantConfigError([
        { path: ['at'], message: 'must be a whole number of ms since the epoch', code: 'invalid_type' },
      ])
    }
    const { auditLog } = this.#tables
    const rows = await runQuery<{ id: unknown }[]>(WHAT, record.tenantId, () =>
      this.#db.insert(auditLog).values(encodeAudit(this.dialect, checked)).returning({ id: auditLog.id }),
    )
    return { ...checked, id: formatAuditId(rows[0]!.id) }
  }

  async list(
    tenantId: string,
    options?: AuditListOptions,
  ): Promise<{ items: TenantAuditRecord[]; next?: string }> {
    validateTenantId(tenantId)
    const { limit, before } = resolveAuditListOptions(options)
    if (before !== undefined && !AUDIT_ID_PATTERN.test(before)) {
      throw new InvalidTenantConfigError([
        { path: ['before'], message: 'must be the `next` of a previous page', code: 'invalid_value' },
      ])
    }
    const { auditLog } = this.#tables
    const where =
      before === undefined
        ? eq(auditLog.tenantId, tenantId)
        : and(eq(auditLog.tenantId, tenantId), lt(auditLog.id, Number(before)))
    const rows = await runQuery<Record<string, unknown>[]>(WHAT, tenantId, () =>
      this.#db
        .select()
        .from(auditLog)
        .where(where)
        .orderBy(desc(auditLog.id))
        .limit(limit + 1),
    )
    const items = rows.slice(0, limit).map((row) => decodeAudit(this.dialect, row))
    const last = items[items.length - 1]
    return rows.length > limit && last ? { items, next: last.id } : { items }
  }
}
