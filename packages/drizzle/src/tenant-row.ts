import {
  type AuditRecord,
  type AuditRecordInput,
  deepFreeze,
  isPlanAuditRecord,
  type PlanAuditRecord,
  type PlanConfig,
  parseOrThrow,
  parseTenantConfig,
  planConfigSchema,
  type QuotaLimit,
  quotaWindows,
  type TenantAuditRecord,
  TenantBackendError,
  type TenantConfig,
} from '@tenant/core'
import { quotaColumnKeys } from './columns'
import type { Dialect } from './driver'

/**
 * A stored row could not be turned back into a value: corrupt JSON, a shape the schema refuses,
 * a constraint someone bypassed by hand. Never answered with an empty or default config. Carries
 * the table, the row's id, the tenant id (for tenant rows) and the underlying error (`cause`: a `SyntaxError` or an
 * `InvalidTenantConfigError` listing the issues). Its code is `tenant_backend_unavailable` (503):
 * the store cannot serve that tenant until the row is fixed. Cached configs are not served in its
 * place, so the fault is seen.
 */
export class TenantRowDecodeError extends TenantBackendError {
  readonly table: string
  readonly rowId: string

  constructor(table: string, rowId: string, cause: unknown, tenantId?: string) {
    const reason = cause instanceof Error ? cause.message : String(cause)
    super(`${table} row "${rowId}" cannot be decoded: ${reason}`, {
      cause,
      ...(tenantId === undefined ? {} : { tenantId }),
    })
    this.name = 'TenantRowDecodeError'
    this.table = table
    this.rowId = rowId
  }
}

/** The dialect-specific representation of JSON and timestamps. */
interface Encoding {
  json(value: unknown): unknown
  parseJson(value: unknown): unknown
  timestamp(ms: number): unknown
  ms(value: unknown): unknown
}

const encodings: Record<Dialect, Encoding> = {
  // SQLite keeps JSON as text and timestamps as integer milliseconds.
  sqlite: {
    json: (value) => JSON.stringify(value),
    parseJson: (value) => (value === null ? null : JSON.parse(String(value))),
    timestamp: (ms) => ms,
    ms: (value) => (typeof value === 'bigint' ? Number(value) : value),
  },
  // Postgres has jsonb (Drizzle serialises) and timestamptz(3) (Drizzle maps to Date).
  pg: {
    json: (value) => value,
    parseJson: (value) => value,
    timestamp: (ms) => new Date(ms),
    ms: (value) => (value instanceof Date ? value.getTime() : value),
  },
}

// Integers come back as bigint from drivers configured that way (libSQL `intMode: 'bigint'`).
function count(value: unknown): unknown {
  return typeof value === 'bigint' ? Number(value) : value
}

/** What a tenant and a plan have in common: the parts stored in the same columns. */
type Limits = Pick<
  TenantConfig,
  'id' | 'quota' | 'rateLimit' | 'concurrency' | 'policy' | 'metadata' | 'createdAt' | 'updatedAt'
>

function encodeLimits(dialect: Dialect, config: Limits): Record<string, unknown> {
  const e = encodings[dialect]
  const row: Record<string, unknown> = {
    id: config.id,
    rateLimitRequestsPerSecond: config.rateLimit?.requestsPerSecond ?? null,
    rateLimitBurst: config.rateLimit?.burst ?? null,
    maxInFlight: config.concurrency?.maxInFlight ?? null,
    allowedModels: e.json(config.policy.allowedModels),
    allowedTools: e.json(config.policy.allowedTools),
    allowedMethods: e.json(config.policy.allowedMethods),
    allowedPaths: e.json(config.policy.allowedPaths),
    metadata: e.json(config.metadata),
    // quota_subjects (migration 0002): the subject patterns as JSON, NULL when there are none.
    quotaSubjects: config.quota.subjects === undefined ? null : e.json(config.quota.subjects),
    createdAt: e.timestamp(config.createdAt),
    updatedAt: e.timestamp(config.updatedAt),
  }
  for (const window of quotaWindows) {
    row[quotaColumnKeys[window].requests] = null
    row[quotaColumnKeys[window].tokens] = null
  }
  for (const limit of config.quota.limits) {
    row[quotaColumnKeys[limit.window].requests] = limit.requests ?? null
    row[quotaColumnKeys[limit.window].tokens] = limit.tokens ?? null
  }
  return row
}

// The shared columns back as the shape of a config, not yet validated. Quota limits come back in
// window order (minute, hour, day, month); a window whose columns are both NULL has no limit.
function decodeLimits(dialect: Dialect, row: Record<string, unknown>): Record<string, unknown> {
  const e = encodings[dialect]
  const limits: QuotaLimit[] = []
  for (const window of quotaWindows) {
    const requests = count(row[quotaColumnKeys[window].requests])
    const tokens = count(row[quotaColumnKeys[window].tokens])
    if (requests === null && tokens === null) continue
    limits.push({
      window,
      ...(requests === null ? {} : { requests: requests as number }),
      ...(tokens === null ? {} : { tokens: tokens as number }),
    })
  }
  const rps = row.rateLimitRequestsPerSecond
  const burst = count(row.rateLimitBurst)
  const maxInFlight = count(row.maxInFlight)
  // `== null`: a row read without the column (a hand-picked select) has no subjects either.
  const subjects = row.quotaSubjects == null ? undefined : e.parseJson(row.quotaSubjects)
  return {
    id: row.id,
    quota: subjects === undefined ? { limits } : { limits, subjects },
    rateLimit: rps === null && burst === null ? null : { requestsPerSecond: rps, burst },
    // A row from before migration 0002 has no such column (undefined): no cap, as NULL.
    concurrency: maxInFlight === null || maxInFlight === undefined ? null : { maxInFlight },
    policy: {
      allowedModels: e.parseJson(row.allowedModels),
      allowedTools: e.parseJson(row.allowedTools),
      allowedMethods: e.parseJson(row.allowedMethods),
      allowedPaths: e.parseJson(row.allowedPaths),
    },
    metadata: e.parseJson(row.metadata),
    createdAt: e.ms(row.createdAt),
    updatedAt: e.ms(row.updatedAt),
  }
}

/** Column values (by Drizzle property name) for a tenant config, without `revision`. */
export function encodeTenant(dialect: Dialect, config: TenantConfig): Record<string, unknown> {
  return { ...encodeLimits(dialect, config), status: config.status, plan: config.plan }
}

/**
 * The config a row holds, validated with core's `parseTenantConfig` and deeply frozen. Quota limits
 * come back in window order. Throws {@link TenantRowDecodeError}.
 */
export function decodeTenant(dialect: Dialect, row: Record<string, unknown>): TenantConfig {
  try {
    // Frozen once here, so the cache and every reader share it (the ConfigManager contract).
    return deepFreeze(
      parseTenantConfig({ ...decodeLimits(dialect, row), status: row.status, plan: row.plan ?? null }),
    )
  } catch (cause) {
    throw new TenantRowDecodeError('tenants', String(row.id), cause, String(row.id))
  }
}

/** Column values (by Drizzle property name) for a plan, without `revision`. */
export function encodePlan(dialect: Dialect, plan: PlanConfig): Record<string, unknown> {
  return encodeLimits(dialect, plan)
}

/** The plan a row holds, validated with core's `planConfigSchema` and deeply frozen. Throws {@link TenantRowDecodeError}. */
export function decodePlan(dialect: Dialect, row: Record<string, unknown>): PlanConfig {
  try {
    return deepFreeze(parseOrThrow(planConfigSchema, decodeLimits(dialect, row)))
  } catch (cause) {
    throw new TenantRowDecodeError('plans', String(row.id), cause)
  }
}

// Audit ids are the table's integer id, zero-padded so that string order is record order, like
// core's InMemoryAuditLog; a cursor is such an id.
const AUDIT_ID_WIDTH = 16
/** The shape of an audit id (and so of an audit `before` cursor). */
export const AUDIT_ID_PATTERN = /^\d{16}$/

/** Formats an audit row id as a record id. */
export function formatAuditId(id: unknown): string {
  return String(id).padStart(AUDIT_ID_WIDTH, '0')
}

/**
 * Column values for an audit record (without `id`, which the database assigns): `tenantId` for the
 * tenant audit table, `planId` for the plan one.
 */
export function encodeAudit(dialect: Dialect, record: AuditRecordInput): Record<string, unknown> {
  const e = encodings[dialect]
  return {
    ...(isPlanAuditRecord(record) ? { planId: record.planId } : { tenantId: record.tenantId }),
    actor: record.actor,
    action: record.action,
    before: record.before === null ? null : e.json(record.before),
    after: record.after === null ? null : e.json(record.after),
    at: e.timestamp(record.at),
    requestId: record.requestId ?? null,
  }
}

/**
 * The audit record a row of the tenant (`kind` `'tenant'`) or plan audit table holds, snapshots
 * validated like configs and plans. Throws {@link TenantRowDecodeError}.
 */
export function decodeAudit(dialect: Dialect, row: Record<string, unknown>, kind: 'tenant'): TenantAuditRecord
export function decodeAudit(dialect: Dialect, row: Record<string, unknown>, kind: 'plan'): PlanAuditRecord
export function decodeAudit(
  dialect: Dialect,
  row: Record<string, unknown>,
  kind: 'tenant' | 'plan',
): AuditRecord {
  const e = encodings[dialect]
  const id = formatAuditId(count(row.id))
  const subjectId = String(kind === 'tenant' ? row.tenantId : row.planId)
  try {
    const parse =
      kind === 'tenant' ? parseTenantConfig : (value: unknown) => parseOrThrow(planConfigSchema, value)
    const snapshot = (value: unknown) => {
      const parsed = e.parseJson(value)
      return parsed === null ? null : parse(parsed)
    }
    const at = e.ms(row.at)
    if (typeof at !== 'number' || !Number.isSafeInteger(at)) throw new TypeError(`"at" is not a timestamp`)
    return {
      id,
      ...(kind === 'tenant' ? { tenantId: subjectId } : { planId: subjectId }),
      actor: String(row.actor),
      action: String(row.action),
      before: snapshot(row.before),
      after: snapshot(row.after),
      at,
      ...(row.requestId === null || row.requestId === undefined ? {} : { requestId: String(row.requestId) }),
    } as AuditRecord
  } catch (cause) {
    if (kind === 'tenant') throw new TenantRowDecodeError('tenant_audit_log', id, cause, subjectId)
    throw new TenantRowDecodeError('plan_audit_log', id, cause)
  }
}

/** A config as the store would return it after writing it (quota limits in window order). */
export function normalizeTenant(dialect: Dialect, config: TenantConfig): TenantConfig {
  return decodeTenant(dialect, encodeTenant(dialect, config))
}

/** A plan as the store would return it after writing it (quota limits in window order). */
export function normalizePlan(dialect: Dialect, plan: PlanConfig): PlanConfig {
  return decodePlan(dialect, encodePlan(dialect, plan))
}
