import type { TenantConfig, TenantConfigInput } from './schemas'

/** What an admin mutation did. */
export type AuditAction =
  | 'tenant.create'
  | 'tenant.update'
  | 'tenant.delete'
  | 'tenant.quota.update'
  | 'tenant.policy.update'
  | 'tenant.suspend'
  | 'tenant.activate'

/** One audited change. `before` is null on create, `after` is null on delete. */
export interface AuditRecord {
  id: string
  tenantId: string
  actor: string
  action: AuditAction
  before: TenantConfig | null
  after: TenantConfig | null
  /** ms since the epoch, from the service's clock. */
  at: number
  requestId?: string
}

/** An audit record before the log assigned its id. */
export type AuditRecordInput = Omit<AuditRecord, 'id'>

/** Options of {@link AuditLog.list}: newest first, keyset paginated. */
export interface AuditListOptions {
  /** @default 50 (at most 1000) */
  limit?: number
  /** The `next` of the previous page. */
  before?: string
}

/** An append-only record of admin changes. */
export interface AuditLog {
  /** Stores `record` and returns it with the id the log assigned. */
  append(record: AuditRecordInput): Promise<AuditRecord>
  /** A tenant's history, newest first. */
  list(tenantId: string, options?: AuditListOptions): Promise<{ items: AuditRecord[]; next?: string }>
}

/** One admin change: how to compute the new config from the current one, and who asked. */
export interface TenantChange {
  tenantId: string
  action: AuditAction
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
  audit: AuditRecord
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
