/**
 * The small key-value interface under {@link TenantCache}: an LRU in one process, Redis across
 * processes. Every store passes `testCacheStore` from `@tenant/core/testing`.
 */
export interface CacheStore<V = unknown> {
  /** The value stored under `key`, or `undefined` when there is none or it expired. */
  get(key: string): Promise<V | undefined>
  /** Stores `value`; `ttlMs` (whole ms > 0) bounds its life, absent means the store's default. */
  set(key: string, value: V, options?: { ttlMs?: number }): Promise<void>
  /** Removes `key`; resolves true when something was removed. */
  delete(key: string): Promise<boolean>
  /** Removes every key that starts with `prefix` (literally; no pattern syntax). Resolves the count. */
  deletePrefix(prefix: string): Promise<number>
  /**
   * Set by a store that groups entries by tenant only under this one `TenantCache` prefix (the
   * Redis store's option of that name). A `TenantCache` with another prefix refuses such a store
   * when it is built: its tenants would all share one group, where one tenant's writes evict the
   * others' entries. Stores that read the tenant from any key (`memoryCacheStore`) leave it unset.
   */
  readonly tenantCachePrefix?: string
}
