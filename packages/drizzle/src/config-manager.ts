import {
  type AuditedTenantStore,
  assertMethods,
  type Clock,
  type ConcurrencyConfig,
  type ConfigManager,
  type FastConfigStore,
  InvalidTenantConfigError,
  type ListTenantsOptions,
  type ListTenantsResult,
  type PolicyConfig,
  parseTenantConfigInput,
  type QuotaConfig,
  type RateLimitConfig,
  systemClock,
  type TenantAuditRecord,
  type TenantChange,
  type TenantChangeResult,
  type TenantConfig,
  type TenantConfigInput,
  TenantNotFoundError,
  tenantConfigNow,
  validateTenantId,
} from '@tenant/core'
import { isForeignKeyViolation, RowStore } from './audited-rows'
import type { ConfigCacheOptions, ConfigCacheStats } from './config-cache'
import { type Dialect, detectDriver, type TenantDatabase } from './driver'
import { tablesFor } from './tables'
import { decodeTenant, encodeTenant, normalizeTenant } from './tenant-row'

/** Options of {@link DrizzleConfigManager}. */
export interface DrizzleConfigManagerOptions {
  /**
   * The in-process LRU cache in front of the database (see {@link ConfigCacheOptions}), or
   * `false` for none, in which case every lookup is a query.
   * @default {} (on, with the defaults of each option)
   */
  cache?: ConfigCacheOptions | false
  /**
   * Stamps `createdAt` / `updatedAt` and audit records, and ages cache entries.
   * @default systemClock
   */
  clock?: Clock
}

/**
 * A {@link ConfigManager} (and quota, policy and rate-limit provider) on the app's Drizzle
 * database: SQLite-family (libSQL, D1, bun:sqlite) or PostgreSQL (postgres.js, node-postgres,
 * PGlite). It only runs queries on the database it is given; it never opens or closes connections.
 * Run {@link migrate} once to create its tables.
 *
 * Lookups go through an LRU cache (see {@link ConfigCacheOptions}): writes through this manager
 * invalidate the tenant's entry at once, unknown ids are remembered briefly, concurrent lookups of one id share one
 * query, and cached configs stand in for a failing database up to `staleTtl`. Database failures
 * are `TenantBackendError` (`tenant_backend_unavailable`), rows that do not decode are
 * `TenantRowDecodeError`.
 *
 * It is also an `AuditedTenantStore`: {@link DrizzleConfigManager.applyChange} writes a change and
 * its audit record in one transaction; read the history with `DrizzleAuditLog` on the same database.
 *
 * @example
 * ```ts
 * import { drizzle } from 'drizzle-orm/postgres-js'
 * import { DrizzleConfigManager, migrate } from '@tenant/drizzle'
 *
 * const db = drizzle(process.env.DATABASE_URL!)
 * await migrate(db)
 * const configs = new DrizzleConfigManager(db, { cache: { ttl: 10_000 } })
 * await configs.setTenantConfig({ id: 'acme', quota: { limits: [{ window: 'day', requests: 10_000 }] } })
 * const quotas = new InMemoryQuotaManager(configs)
 * ```
 */
export class DrizzleConfigManager implements ConfigManager, AuditedTenantStore, FastConfigStore {
  /** The dialect detected from the database. */
  readonly dialect: Dialect
  readonly #rows: RowStore<TenantConfig, TenantChange>

  constructor(db: TenantDatabase, options: DrizzleConfigManagerOptions = {}) {
    const info = detectDriver(db)
    this.dialect = info.dialect
    const { tenants, auditLog } = tablesFor(info.dialect)
    if (options.clock !== undefined) assertMethods(options.clock, 'clock', ['now'])
    const dialect = info.dialect
    this.#rows = new RowStore<TenantConfig, TenantChange>(
      db,
      info,
      {
        kind: 'tenant',
        what: 'tenant store query',
        table: tenants,
        auditTable: auditLog,
        validateId: validateTenantId,
        parse: parseTenantConfigInput,
        encode: (config) => encodeTenant(dialect, config),
        decode: (row) => decodeTenant(dialect, row),
        normalize: (config) => normalizeTenant(dialect, config),
        notFound: (id) => new TenantNotFoundError(id),
        changeId: (change) => change.tenantId,
        record: (tenantId, fields) => ({ tenantId, ...fields }) as TenantAuditRecord,
        tenantIdOf: (id) => id,
        // The foreign key on `plan`: the tenant names a plan that does not exist (or was deleted
        // while the tenant was being written).
        constraintError: (error) =>
          isForeignKeyViolation(error)
            ? new InvalidTenantConfigError([
                { path: ['plan'], message: 'the plan does not exist', code: 'invalid_value' },
              ])
            : undefined,
      },
      { cache: options.cache, clock: options.clock ?? systemClock },
    )
  }

  /** Cache counters since construction (a copy), or undefined when the cache is off. */
  get cacheStats(): ConfigCacheStats | undefined {
    return this.#rows.cacheStats
  }

  /**
   * Drops the cached answer for one tenant, or every cached answer. Writes through this manager
   * do this themselves; call it when you learn that another process changed a tenant (a pub/sub
   * message, a webhook), so that it does not wait for `ttl`.
   */
  invalidate(tenantId?: string): void {
    this.#rows.invalidate(tenantId)
  }

  getTenantConfig(tenantId: string): Promise<TenantConfig> {
    return this.#rows.get(tenantId)
  }

  /**
   * `getTenantConfig` as a value on a fresh cache hit, a promise otherwise (see `tenantConfigNow`
   * in core); throws `TenantNotFoundError` on a fresh negative hit.
   */
  [tenantConfigNow](tenantId: string): TenantConfig | Promise<TenantConfig> {
    return this.#rows.getNow(tenantId)
  }

  /**
   * Creates or replaces a tenant with one `INSERT ... ON CONFLICT DO UPDATE`; keeps `createdAt`.
   * A `plan` that does not exist is refused by the foreign key (`InvalidTenantConfigError`, path
   * `plan`) where the database enforces it (Postgres, libSQL, D1; bun:sqlite only with
   * `PRAGMA foreign_keys = ON`).
   */
  async setTenantConfig(input: TenantConfigInput): Promise<TenantConfig> {
    return this.#rows.set(input)
  }

  async deleteTenantConfig(tenantId: string): Promise<void> {
    return this.#rows.delete(tenantId)
  }

  /** One page in id order (byte order on every dialect). Not cached. */
  async listTenants(options?: ListTenantsOptions): Promise<ListTenantsResult> {
    return this.#rows.list(options)
  }

  /** The tenant's quota, read through the cache like `getTenantConfig`. */
  quotaConfig(tenantId: string): Promise<QuotaConfig> {
    return this.#rows.get(tenantId).then((config) => config.quota)
  }

  /** The tenant's policy, read through the cache like `getTenantConfig`. */
  policyConfig(tenantId: string): Promise<PolicyConfig> {
    return this.#rows.get(tenantId).then((config) => config.policy)
  }

  /** The tenant's concurrency cap (`null`: none), read through the cache like `getTenantConfig`. */
  concurrencyConfig(tenantId: string): Promise<ConcurrencyConfig | null> {
    return this.#rows.get(tenantId).then((config) => config.concurrency)
  }

  /** The tenant's rate limit (`null`: none), read through the cache like `getTenantConfig`. */
  rateLimitConfig(tenantId: string): Promise<RateLimitConfig | null> {
    return this.#rows.get(tenantId).then((config) => config.rateLimit)
  }

  /**
   * Applies an admin change and writes its audit record atomically: both or neither.
   *
   * On Postgres, and on synchronous SQLite drivers, this is one transaction that reads the row
   * (`FOR UPDATE` on Postgres), calls `change.apply(before)`, writes, and inserts the audit row.
   * libSQL and D1 run it as one `db.batch` (D1 has no interactive transactions; a libSQL in-memory
   * client has a single connection an open transaction would hold): the row is read first, and the
   * batch writes only if the row's `revision` is still the one read; the audit insert is guarded
   * by SQLite's `changes()`, so a lost race writes nothing and the change is re-applied. `apply`
   * can therefore run more than once: keep it a pure function of `before`.
   *
   * Throws what `apply` throws (nothing written), `InvalidTenantConfigError` for an invalid result
   * or one with another id, `TenantNotFoundError` when deleting a tenant that does not exist, and
   * `TenantBackendError` when the database fails (nothing written).
   */
  async applyChange(change: TenantChange): Promise<TenantChangeResult> {
    return (await this.#rows.applyChange(change)) as TenantChangeResult
  }
}
