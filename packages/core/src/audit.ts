import type { PlanConfig, PlanConfigInput, TenantConfig, TenantConfigInput } from './schemas'

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

/** Every {@link AuditAction}, tenants' first. */
export const auditActions: readonly AuditAction[] = Object.freeze([
  'tenant.create',
  'tenant.update',
  'tenant.delete',
  'tenant.quota.update',
  'tenant.policy.update',
  'tenant.suspend',
  'tenant.activate',
  'tenant.usage.reset',
  'tenant.concurrency.reset',
  'plan.create',
  'plan.update',
  'plan.delete',
] as const)

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
   * Return `null` to delete the tenant; throw to abort (nothing is written).
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
