import { isTenantError } from './errors'
import type {
  ConcurrencyConfig,
  PolicyConfig,
  QuotaConfig,
  RateLimitConfig,
  TenantConfig,
  TenantConfigInput,
} from './schemas'

/** Default page size of {@link ConfigManager.listTenants}. */
export const DEFAULT_LIST_LIMIT = 50
/** Largest page size {@link ConfigManager.listTenants} accepts. */
export const MAX_LIST_LIMIT = 1000

/** Offset pagination: skip `offset` tenants in id order. */
export interface OffsetListOptions {
  /** @default 50 (at most 1000) */
  limit?: number
  /** @default 0 */
  offset?: number
}

/** Keyset pagination: the tenants whose id sorts after `after`. Stable while rows are inserted. */
export interface KeysetListOptions {
  /** @default 50 (at most 1000) */
  limit?: number
  /** The last id of the previous page (its `next`). */
  after: string
}

/** Options of {@link ConfigManager.listTenants}: offset or keyset, never both. */
export type ListTenantsOptions = OffsetListOptions | KeysetListOptions

/** One page of tenants, ordered by id ascending (binary string order). */
export interface ListTenantsResult {
  items: TenantConfig[]
  /** Pass as `after` to get the next page; absent on the last page. */
  next?: string
}

/** Supplies a tenant's quota. Throws `TenantNotFoundError` for an unknown tenant. */
export interface QuotaProvider {
  /** The tenant's quota; throws `TenantNotFoundError` for an unknown tenant. */
  quotaConfig(tenantId: string): Promise<QuotaConfig>
}

/** Supplies a tenant's policy. Throws `TenantNotFoundError` for an unknown tenant. */
export interface PolicyProvider {
  /** The tenant's policy; throws `TenantNotFoundError` for an unknown tenant. */
  policyConfig(tenantId: string): Promise<PolicyConfig>
}

/**
 * Supplies a tenant's rate limit, or `null` when the tenant has none.
 * Throws `TenantNotFoundError` for an unknown tenant.
 */
export interface RateLimitProvider {
  /** The tenant's rate limit, or `null` when it has none; throws `TenantNotFoundError` for an unknown tenant. */
  rateLimitConfig(tenantId: string): Promise<RateLimitConfig | null>
}

/**
 * Supplies a tenant's concurrency cap, or `null` when the tenant has none.
 * Throws `TenantNotFoundError` for an unknown tenant.
 */
export interface ConcurrencyProvider {
  /** The tenant's concurrency cap, or `null` when it has none; throws `TenantNotFoundError` for an unknown tenant. */
  concurrencyConfig(tenantId: string): Promise<ConcurrencyConfig | null>
}

/**
 * Where tenant configurations live. Every store (in-memory, Drizzle) implements this and the four
 * providers, and passes `testConfigManager` from `@tenant/core/testing`.
 *
 * Every config a store returns (and every part of it) is deeply frozen and may be the same object
 * for every caller: a request path reads it several times, and a copy per read was the largest
 * cost of a cached lookup. Copy it (`structuredClone`, `copyJson`) to build a changed version.
 * Consumers may rely on this: the quota and rate-limit engines cache what they derive from a
 * frozen config object.
 */
export interface ConfigManager extends QuotaProvider, PolicyProvider, RateLimitProvider, ConcurrencyProvider {
  /** The stored config. Throws `TenantNotFoundError` when absent, `InvalidTenantIdError` for a bad id. */
  getTenantConfig(tenantId: string): Promise<TenantConfig>
  /**
   * Creates or replaces a tenant (upsert). Validates with `tenantConfigInputSchema`; on bad input
   * throws `InvalidTenantConfigError` and stores nothing. Keeps `createdAt` on replace.
   */
  setTenantConfig(input: TenantConfigInput): Promise<TenantConfig>
  /** Removes a tenant. Throws `TenantNotFoundError` when absent. */
  deleteTenantConfig(tenantId: string): Promise<void>
  /** One page of tenants in id order. */
  listTenants(options?: ListTenantsOptions): Promise<ListTenantsResult>
}

/**
 * The tenant's config, or null when the store says it does not exist.
 *
 * @example
 * ```ts
 * const before = await getTenantConfigOrNull(configs, 'acme') // null instead of TenantNotFoundError
 * ```
 */
export async function getTenantConfigOrNull(
  configs: Pick<ConfigManager, 'getTenantConfig'>,
  tenantId: string,
): Promise<TenantConfig | null> {
  try {
    return await configs.getTenantConfig(tenantId)
  } catch (error) {
    if (isTenantError(error) && error.code === 'tenant_not_found') return null
    throw error
  }
}
