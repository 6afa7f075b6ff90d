import { z } from 'zod'
import type { Clock } from './clock'
import { InvalidTenantConfigError } from './errors'
import { storableText } from './json'
import { validatePlanId } from './plans'
import {
  type PlanConfig,
  type PlanConfigInput,
  planConfigSchema,
  type TenantConfig,
  type TenantConfigInput,
  tenantConfigSchema,
} from './schemas'
import { validateTenantId } from './tenant-id'
import { parseOrThrow } from './validate'

/** What an admin mutation of a tenant did. */
export type TenantAuditAction =
  | 'tenant.create'
  | 'tenant.update'
  | 'tenant.delete'
  | 'tenant.quota.update'
  | 'tenant.policy.update'
  | 'tenant.suspend'
  | 'tenant.activate'
  | 'tenant.usage.reset'
  | 'tenant.concurrency.reset'

/** What an admin mutation of a plan did. */
export type PlanAuditAction = 'plan.create' | 'plan.update' | 'plan.delete'

/** What an admin mutation did. */
export type AuditAction = TenantAuditAction | PlanAuditAction

const tenantAuditActions = [
  'tenant.create',
  'tenant.update',
  'tenant.delete',
  'tenant.quota.update',
  'tenant.policy.update',
  'tenant.suspend',
  'tenant.activate',
  'tenant.usage.reset',
  'tenant.concurrency.reset',
] as const satisfies readonly TenantAuditAction[]

const planAuditActions = [
  'plan.create',
  'plan.update',
  'plan.delete',
] as const satisfies readonly PlanAuditAction[]

/** Every {@link AuditAction}, tenants' first. */
export const auditActions: readonly AuditAction[] = Object.freeze([
  ...tenantAuditActions,
  ...planAuditActions,
])

/** One audited change of a tenant. `before` is null on create, `after` is null on delete. */
export interface TenantAuditRecord {
  id: string
  tenantId: string
  actor: string
  action: TenantAuditAction
  before: TenantConfig | null
  after: TenantConfig | null
  /** ms since the epoch, from the service's clock. */
  at: number
  requestId?: string
}

/** One audited change of a plan. `before` is null on create, `after` is null on delete. */
export interface PlanAuditRecord {
  id: string
  planId: string
  actor: string
  action: PlanAuditAction
  before: PlanConfig | null
  after: PlanConfig | null
  /** ms since the epoch, from the service's clock. */
  at: number
  requestId?: string
}

/**
 * One audited change: of a tenant (it has `tenantId` and tenant snapshots) or of a plan (`planId`
 * and plan snapshots). Tell them apart with `'planId' in record` or {@link isPlanAuditRecord}.
 */
export type AuditRecord = TenantAuditRecord | PlanAuditRecord

/** A tenant audit record before the log assigned its id. */
export type TenantAuditRecordInput = Omit<TenantAuditRecord, 'id'>
/** A plan audit record before the log assigned its id. */
export type PlanAuditRecordInput = Omit<PlanAuditRecord, 'id'>
/** An audit record before the log assigned its id. */
export type AuditRecordInput = TenantAuditRecordInput | PlanAuditRecordInput

/**
 * True for a plan's audit record (or its input), false for a tenant's.
 *
 * @example
 * ```ts
 * const subject = isPlanAuditRecord(record) ? `plan ${record.planId}` : `tenant ${record.tenantId}`
 * ```
 */
export function isPlanAuditRecord<R extends AuditRecord | AuditRecordInput>(
  record: R,
): record is Extract<R, { planId: string }> {
  return 'planId' in record
}

// The last ms every store can write, 9999-12-31T23:59:59.999Z. Past it the Postgres encoding
// fails: Drizzle sends a timestamptz as an ISO string, and from year 10000 on that is the
// extended form (`+010000-...`), which Postgres does not parse (and past 8.64e15 there is no Date
// at all). Checked here so that the "record checked before the reset" step is complete.
const MAX_AUDIT_TIME = 253_402_300_799_999

/**
 * The `at` of an audit record written now: `clock.now()` rounded down to a whole ms, the one
 * stamp every audit writer of the toolkit uses (`AdminService` resets, `auditedStore`,
 * `auditedPlanStore` and the Drizzle stores), so that records agree across stores and every log
 * accepts them (the Drizzle log refuses a fraction). Throws `InvalidTenantConfigError` (path `at`)
 * when the clock gives no such time (NaN, negative, or past 9999-12-31T23:59:59.999Z, the last
 * time every store can encode), before anything is written.
 *
 * @example
 * ```ts
 * auditTimestamp(new ManualClock(1767225600000.25)) // 1767225600000
 * ```
 */
export function auditTimestamp(clock: Clock): number {
  const now = clock.now()
  const at = Math.floor(now)
  if (!Number.isSafeInteger(at) || at < 0 || at > MAX_AUDIT_TIME) {
    throw new InvalidTenantConfigError([
      {
        path: ['at'],
        message: `the clock gave ${String(now)}, not a time in ms since the epoch up to the year 9999`,
        code: 'invalid_type',
      },
    ])
  }
  return at
}

// The rules of AdminService's `checkContext` (actor 1 to 255 characters, requestId at most 255),
// both text every store keeps (storableText: no U+0000, no unpaired surrogate).
const actorSchema = z
  .string()
  .min(1, 'must be a string of 1 to 255 characters')
  .max(255, 'must be a string of 1 to 255 characters')
  .superRefine(storableText)
const requestIdSchema = z
  .string()
  .max(255, 'must be a string of at most 255 characters')
  .superRefine(storableText)
// `auditTimestamp` holds the one rule of which times every store can encode (whole ms from 0 to
// the end of year 9999; later ones Postgres refuses): a record's `at` must be one it could stamp.
const atSchema = z.number().refine((at) => {
  try {
    return auditTimestamp({ now: () => at }) === at
  } catch {
    return false
  }
}, 'must be a whole number of ms since the epoch, at most 253402300799999 (9999-12-31T23:59:59.999Z)')

// Each snapshot must be of the record's subject: a record filed under one tenant (or plan) must
// not carry another's config.
function sameSubject(
  id: string,
  kind: 'tenant' | 'plan',
  record: { before: { id: string } | null; after: { id: string } | null },
  ctx: z.RefinementCtx,
): void {
  for (const key of ['before', 'after'] as const) {
    const config = record[key]
    if (config !== null && config.id !== id) {
      ctx.addIssue({
        code: 'custom',
        path: [key, 'id'],
        message: `must be "${id}", the ${kind} the record is for`,
      })
    }
  }
}

// The subject id is checked first, by validateAuditRecord, with its own error.
const tenantAuditRecordInputSchema = z
  .object({
    tenantId: z.string(),
    actor: actorSchema,
    action: z.enum(tenantAuditActions),
    before: tenantConfigSchema.nullable(),
    after: tenantConfigSchema.nullable(),
    at: atSchema,
    requestId: requestIdSchema.optional(),
  })
  .superRefine((record, ctx) => sameSubject(record.tenantId, 'tenant', record, ctx))

const planAuditRecordInputSchema = z
  .object({
    planId: z.string(),
    actor: actorSchema,
    action: z.enum(planAuditActions),
    before: planConfigSchema.nullable(),
    after: planConfigSchema.nullable(),
    at: atSchema,
    requestId: requestIdSchema.optional(),
  })
  .superRefine((record, ctx) => sameSubject(record.planId, 'plan', record, ctx))

/**
 * Checks an audit record before a log stores it, and returns it as it should be stored (snapshots
 * parsed as stored configs, unknown fields dropped). Every `AuditLog` of the toolkit calls it in
 * `append`, so that all logs accept and refuse the same records, and a record a log accepted can
 * always be read back. A tenant record needs a valid `tenantId` (else `InvalidTenantIdError`,
 * `tenant_invalid_id`); a plan record (`'planId' in record`) a valid `planId`. Then, each refusal
 * an {@link InvalidTenantConfigError} (`tenant_invalid_config`) whose issues name the bad fields:
 * `actor` 1 to 255 characters, `requestId` (optional) at most 255, both without U+0000 or an
 * unpaired surrogate (the rules `AdminService` applies to its context); `action` one of the
 * subject's actions ({@link auditActions}); `before` and `after` null or a complete config (a
 * `TenantConfig`, or a `PlanConfig` for a plan record) whose `id` is the record's subject; `at` a
 * whole number of ms since the epoch from 0 to 9999-12-31T23:59:59.999Z (what `auditTimestamp`
 * accepts; Postgres refuses later times). Records that `AdminService`, `auditedStore`,
 * `auditedPlanStore` and the Drizzle stores write always pass.
 *
 * @example
 * ```ts
 * class MyAuditLog implements AuditLog {
 *   async append(record: AuditRecordInput): Promise<AuditRecord> {
 *     const checked = validateAuditRecord(record)
 *     return { ...checked, id: await this.insert(checked) }
 *   }
 *   // ...
 * }
 * validateAuditRecord({ tenantId: 'acme', actor: '', action: 'tenant.update', before: null, after: null, at: 0 })
 * // InvalidTenantConfigError: invalid tenant config: actor: must be a string of 1 to 255 characters
 * ```
 */
export function validateAuditRecord(record: unknown): AuditRecordInput {
  if (typeof record !== 'object' || record === null || Array.isArray(record)) {
    throw new InvalidTenantConfigError([
      { path: [], message: 'must be an audit record object', code: 'invalid_type' },
    ])
  }
  if ('planId' in record) {
    validatePlanId(record.planId)
    return parseOrThrow(planAuditRecordInputSchema, record)
  }
  validateTenantId((record as { tenantId?: unknown }).tenantId)
  return parseOrThrow(tenantAuditRecordInputSchema, record)
}

/** Options of {@link AuditLog.list}: newest first, keyset paginated. */
export interface AuditListOptions {
  /** @default 50 (at most 1000) */
  limit?: number
  /** The `next` of the previous page. */
  before?: string
}

/** One page of a history, newest first. */
export interface AuditPage<R extends AuditRecord = AuditRecord> {
  items: R[]
  /** Pass as `before` to get the next (older) page; absent on the last page. */
  next?: string
}

/**
 * An append-only record of admin changes. Histories are per subject: a tenant's records and a
 * plan's records are listed apart, even when a tenant and a plan share an id. A record id orders
 * records within one subject's history (it is what `before` pages by).
 */
export interface AuditLog {
  /** Stores `record` (a tenant's or a plan's) and returns it with the id the log assigned. */
  append(record: AuditRecordInput): Promise<AuditRecord>
  /** A tenant's history, newest first. Never holds plan records. */
  list(tenantId: string, options?: AuditListOptions): Promise<AuditPage<TenantAuditRecord>>
  /**
   * A plan's history, newest first. Optional, so that logs written before plans still type-check;
   * `AdminService` requires it when it manages plans. Every log of the toolkit has it.
   */
  listPlan?(planId: string, options?: AuditListOptions): Promise<AuditPage<PlanAuditRecord>>
}

/** One admin change: how to compute the new config from the current one, and who asked. */
export interface TenantChange {
  tenantId: string
  action: TenantAuditAction
  actor: string
  requestId?: string
  /**
   * Computes the new config from the current one (`null` when the tenant does not exist).
   * Return `null` to delete the tenant; throw to abort (nothing is written). A store rethrows
   * what `apply` threw as it is, not wrapped: `AdminService` aborts a change this way to read the
   * tenant through the store's change path (before a create), and to retry on a plan change.
   */
  apply(before: TenantConfig | null): TenantConfigInput | null
}

/** What {@link AuditedTenantStore.applyChange} wrote. */
export interface TenantChangeResult {
  before: TenantConfig | null
  after: TenantConfig | null
  audit: TenantAuditRecord
}

/**
 * A config store that writes a tenant change and its audit record atomically: both or neither.
 * `DrizzleConfigManager` does it in one database transaction; `auditedStore()` composes any
 * `ConfigManager` with any `AuditLog`, compensating when the audit write fails.
 */
export interface AuditedTenantStore {
  /** Reads the tenant, applies `change.apply`, and writes the result and its audit record together, or neither. */
  applyChange(change: TenantChange): Promise<TenantChangeResult>
}

/** One admin change of a plan: how to compute the new plan from the current one, and who asked. */
export interface PlanChange {
  planId: string
  action: PlanAuditAction
  actor: string
  requestId?: string
  /**
   * Computes the new plan from the current one (`null` when the plan does not exist). Return
   * `null` to delete the plan (refused with `PlanInUseError` while tenants reference it); throw to
   * abort (nothing is written).
   */
  apply(before: PlanConfig | null): PlanConfigInput | null
}

/** What {@link AuditedPlanStore.applyPlanChange} wrote. */
export interface PlanChangeResult {
  before: PlanConfig | null
  after: PlanConfig | null
  audit: PlanAuditRecord
}

/**
 * A plan store that writes a plan change and its audit record atomically: both or neither.
 * `DrizzlePlanStore` does it in one database transaction; `auditedPlanStore()` composes any
 * `PlanStore` with any `AuditLog`, compensating when the audit write fails.
 */
export interface AuditedPlanStore {
  /** Reads the plan, applies `change.apply`, and writes the result and its audit record together, or neither. */
  applyPlanChange(change: PlanChange): Promise<PlanChangeResult>
}
