import {
  type AuditedTenantStore,
  type AuditRecordInput,
  assertMethods,
  type Clock,
  type ConfigManager,
  copyJson,
  type FastConfigStore,
  InvalidTenantConfigError,
  invalidOption,
  type ListTenantsOptions,
  type ListTenantsResult,
  type PolicyConfig,
  parseTenantConfigInput,
  promiseOf,
  type QuotaConfig,
  type RateLimitConfig,
  resolveListTenantsOptions,
  systemClock,
  TenantBackendError,
  type TenantChange,
  type TenantChangeResult,
  type TenantConfig,
  type TenantConfigInput,
  TenantNotFoundError,
  tenantConfigNow,
  validateTenantId,
} from '@tenant/core'
import { and, asc, eq, gt, sql } from 'drizzle-orm'
import {
  ConfigCache,
  type ConfigCacheOptions,
  type ConfigCacheStats,
  resolveConfigCacheOptions,
} from './config-cache'
import {
  type AnyDb,
  type AtomicMode,
  type Dialect,
  detectDriver,
  runQuery,
  type TenantDatabase,
  toBackendError,
} from './driver'
import { type TenantTables, tablesFor } from './tables'
import { decodeTenant, encodeAudit, encodeTenant, formatAuditId, normalizeTenant } from './tenant-row'

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

// With optimistic concurrency (db.batch drivers) each attempt that loses a race lets another
// writer through, so this bounds the number of changes to one tenant racing at the same moment.
const MAX_ATTEMPTS = 32
const WHAT = 'tenant store query'
type Row = Record<string, unknown>

/** A concurrent writer changed the row between our read and our write: try again. */
class Conflict extends Error {}
/** The caller's `apply` (or validating its result) failed: nothing was written; rethrow as is. */
class Aborted {
  constructor(readonly error: unknown) {}
}

interface ChangePlan {
  tenantId: string
  before: TenantConfig | null
  after: TenantConfig | null
  /** The revision read with `before`; null when the tenant did not exist. */
  revision: number | null
  record: AuditRecordInput
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
  readonly #db: AnyDb
  readonly #mode: AtomicMode
  readonly #tables: TenantTables
  readonly #clock: Clock
  readonly #cache: ConfigCache | undefined

  constructor(db: TenantDatabase, options: DrizzleConfigManagerOptions = {}) {
    const info = detectDriver(db)
    this.dialect = info.dialect
    this.#mode = info.mode
    this.#db = db
    this.#tables = tablesFor(info.dialect)
    if (options.clock !== undefined) assertMethods(options.clock, 'clock', ['now'])
    this.#clock = options.clock ?? systemClock
    if (
      options.cache !== undefined &&
      options.cache !== false &&
      (typeof options.cache !== 'object' || options.cache === null)
    ) {
      throw invalidOption('cache', 'must be an options object or false')
    }
    this.#cache =
      options.cache === false
        ? undefined
        : new ConfigCache(resolveConfigCacheOptions(options.cache), this.#clock)
  }

  /** Cache counters since construction (a copy), or undefined when the cache is off. */
  get cacheStats(): ConfigCacheStats | undefined {
    return this.#cache ? { ...this.#cache.stats } : undefined
  }

  /**
   * Drops the cached answer for one tenant, or every cached answer. Writes through this manager
   * do this themselves; call it when you learn that another process changed a tenant (a pub/sub
   * message, a webhook), so that it does not wait for `ttl`.
   */
  invalidate(tenantId?: string): void {
    this.#cache?.invalidate(tenantId)
  }

  getTenantConfig(tenantId: string): Promise<TenantConfig> {
    return promiseOf(() => this[tenantConfigNow](tenantId))
  }

  /**
   * `getTenantConfig` as a value on a fresh cache hit, a promise otherwise (see `tenantConfigNow`
   * in core); throws `TenantNotFoundError` on a fresh negative hit.
   */
  [tenantConfigNow](tenantId: string): TenantConfig | Promise<TenantConfig> {
    // The cache-hit path: no id check (an id with an entry was checked before the entry was
    // stored), no promise and no async frame; the tenancy chain reads every request's config here.
    const fresh = this.#cache?.fresh(tenantId)
    if (fresh === undefined) return this.#lookupTenant(tenantId)
    if (fresh.config === null) throw new TenantNotFoundError(tenantId)
    return fresh.config
  }

  async #lookupTenant(tenantId: string): Promise<TenantConfig> {
    validateTenantId(tenantId)
    // getTenantConfig found no fresh entry a moment ago (nothing ran in between).
    if (this.#cache) return this.#cache.miss(tenantId, () => this.#find(tenantId))
    const config = await this.#find(tenantId)
    if (config === null) throw new TenantNotFoundError(tenantId)
    return config
  }

  /** Creates or replaces a tenant with one `INSERT ... ON CONFLICT DO UPDATE`; keeps `createdAt`. */
  async setTenantConfig(input: TenantConfigInput): Promise<TenantConfig> {
    const parsed = parseTenantConfigInput(input)
    const now = this.#now()
    const { tenants } = this.#tables
    const values = encodeTenant(this.dialect, { ...parsed, createdAt: now, updatedAt: now })
    const { id: _id, createdAt: _createdAt, ...changes } = values
    const rows = await runQuery<Row[]>(WHAT, parsed.id, () =>
      this.#db
        .insert(tenants)
        .values(values)
        .onConflictDoUpdate({
          target: tenants.id,
          set: { ...changes, revision: sql`${tenants.revision} + 1` },
        })
        .returning(),
    )
    const config = decodeTenant(this.dialect, rows[0]!)
    this.#cache?.invalidate(parsed.id)
    return config
  }

  async deleteTenantConfig(tenantId: string): Promise<void> {
    validateTenantId(tenantId)
    const { tenants } = this.#tables
    const rows = await runQuery<Row[]>(WHAT, tenantId, () =>
      this.#db.delete(tenants).where(eq(tenants.id, tenantId)).returning({ id: tenants.id }),
    )
    this.#cache?.invalidate(tenantId)
    if (rows.length === 0) throw new TenantNotFoundError(tenantId)
  }

  /** One page in id order (byte order on every dialect). Not cached. */
  async listTenants(options?: ListTenantsOptions): Promise<ListTenantsResult> {
    const resolved = resolveListTenantsOptions(options)
    const { tenants } = this.#tables
    // One row more than asked tells whether there is a next page without a count query.
    const rows = await runQuery<Row[]>(WHAT, undefined, () => {
      const query = this.#db.select().from(tenants)
      const filtered = resolved.mode === 'keyset' ? query.where(gt(tenants.id, resolved.after)) : query
      const page = filtered.orderBy(asc(tenants.id)).limit(resolved.limit + 1)
      return resolved.mode === 'offset' && resolved.offset > 0 ? page.offset(resolved.offset) : page
    })
    const items = rows.slice(0, resolved.limit).map((row) => decodeTenant(this.dialect, row))
    const last = items[items.length - 1]
    return rows.length > resolved.limit && last ? { items, next: last.id } : { items }
  }

  /** The tenant's quota, read through the cache like `getTenantConfig`. */
  quotaConfig(tenantId: string): Promise<QuotaConfig> {
    return this.getTenantConfig(tenantId).then((config) => config.quota)
  }

  /** The tenant's policy, read through the cache like `getTenantConfig`. */
  policyConfig(tenantId: string): Promise<PolicyConfig> {
    return this.getTenantConfig(tenantId).then((config) => config.policy)
  }

  /** The tenant's rate limit (`null`: none), read through the cache like `getTenantConfig`. */
  rateLimitConfig(tenantId: string): Promise<RateLimitConfig | null> {
    return this.getTenantConfig(tenantId).then((config) => config.rateLimit)
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
    const tenantId = validateTenantId(change.tenantId)
    for (let attempt = 1; ; attempt++) {
      let result: TenantChangeResult | undefined
      try {
        result = await this.#attempt(tenantId, change)
      } catch (error) {
        if (error instanceof Aborted) throw error.error
        if (!(error instanceof Conflict)) throw toBackendError(error, WHAT, tenantId)
      }
      if (result) {
        this.#cache?.invalidate(tenantId)
        return result
      }
      if (attempt >= MAX_ATTEMPTS) {
        throw new TenantBackendError(
          `tenant "${tenantId}" changed concurrently ${attempt} times in a row; the change was not applied`,
          { tenantId },
        )
      }
    }
  }

  async #find(tenantId: string): Promise<TenantConfig | null> {
    const { tenants } = this.#tables
    const rows = await runQuery<Row[]>(WHAT, tenantId, () =>
      this.#db.select().from(tenants).where(eq(tenants.id, tenantId)).limit(1),
    )
    return rows[0] === undefined ? null : decodeTenant(this.dialect, rows[0])
  }

  // Resolves undefined on a lost race (batch mode); throws Conflict inside transactions so that
  // they roll back.
  async #attempt(tenantId: string, change: TenantChange): Promise<TenantChangeResult | undefined> {
    const db = this.#db
    const { tenants } = this.#tables
    const select = (q: AnyDb) => q.select().from(tenants).where(eq(tenants.id, tenantId)).limit(1)
    switch (this.#mode) {
      case 'sqlite-batch': {
        const plan = this.#plan(change, tenantId, (await select(db))[0])
        const [written, audited] = await db.batch([this.#write(db, plan), this.#guardedAudit(db, plan)])
        return written.length === 1 ? result(plan, audited[0].id) : undefined
      }
      case 'pg':
        return db.transaction(async (tx: AnyDb) => {
          const plan = this.#plan(change, tenantId, (await select(tx).for('update'))[0])
          if ((await this.#write(tx, plan)).length !== 1) throw new Conflict()
          return result(plan, (await this.#audit(tx, plan))[0].id)
        })
      case 'sqlite-sync':
        // Synchronous drivers: the whole body runs inside the transaction without yielding.
        return db.transaction(
          (tx: AnyDb) => {
            const plan = this.#plan(change, tenantId, select(tx).all()[0])
            if (this.#write(tx, plan).all().length !== 1) throw new Conflict()
            return result(plan, this.#audit(tx, plan).all()[0].id)
          },
          { behavior: 'immediate' },
        )
      case 'sqlite-async':
        return db.transaction(
          async (tx: AnyDb) => {
            const plan = this.#plan(change, tenantId, (await select(tx))[0])
            if ((await this.#write(tx, plan)).length !== 1) throw new Conflict()
            return result(plan, (await this.#audit(tx, plan))[0].id)
          },
          { behavior: 'immediate' },
        )
    }
  }

  #plan(change: TenantChange, tenantId: string, row: Record<string, unknown> | undefined): ChangePlan {
    const before = row === undefined ? null : decodeTenant(this.dialect, row)
    const now = this.#now()
    let after: TenantConfig | null
    try {
      // A copy, so that an `apply` that mutates its argument cannot alter the audit's `before`.
      const next = change.apply(before === null ? null : copyJson(before))
      if (next === null) {
        if (before === null) throw new TenantNotFoundError(tenantId)
        after = null
      } else {
        const parsed = parseTenantConfigInput(next)
        if (parsed.id !== tenantId) {
          throw new InvalidTenantConfigError([
            {
              path: ['id'],
              message: `must be "${tenantId}", the tenant being changed`,
              code: 'invalid_value',
            },
          ])
        }
        after = normalizeTenant(this.dialect, {
          ...parsed,
          createdAt: before?.createdAt ?? now,
          updatedAt: now,
        })
      }
    } catch (error) {
      throw new Aborted(error)
    }
    return {
      tenantId,
      before,
      after,
      revision: row === undefined ? null : Number(row.revision),
      record: {
        tenantId,
        actor: change.actor,
        action: change.action,
        before,
        after,
        at: now,
        ...(change.requestId === undefined ? {} : { requestId: change.requestId }),
      },
    }
  }

  /** The conditional write of a plan; returns the affected ids (one, or none on a lost race). */
  #write(q: AnyDb, plan: ChangePlan): AnyDb {
    const { tenants } = this.#tables
    const sameRow = (revision: number) => and(eq(tenants.id, plan.tenantId), eq(tenants.revision, revision))
    if (plan.after === null) {
      return q.delete(tenants).where(sameRow(plan.revision!)).returning({ id: tenants.id })
    }
    const values = encodeTenant(this.dialect, plan.after)
    if (plan.revision === null) {
      return q
        .insert(tenants)
        .values(values)
        .onConflictDoNothing({ target: tenants.id })
        .returning({ id: tenants.id })
    }
    const { id: _id, createdAt: _createdAt, ...changes } = values
    return q
      .update(tenants)
      .set({ ...changes, revision: plan.revision + 1 })
      .where(sameRow(plan.revision))
      .returning({ id: tenants.id })
  }

  #audit(q: AnyDb, plan: ChangePlan): AnyDb {
    const { auditLog } = this.#tables
    return q.insert(auditLog).values(encodeAudit(this.dialect, plan.record)).returning({ id: auditLog.id })
  }

  // In a batch there is no way to branch on the write's outcome, so the insert carries the
  // condition itself: changes() is the row count of the statement before it in the same batch.
  // An INSERT ... SELECT builder (not raw SQL) so that D1 can bind its parameters; it lists every
  // column in table order, and a NULL id takes the next AUTOINCREMENT value.
  #guardedAudit(q: AnyDb, plan: ChangePlan): AnyDb {
    const { auditLog } = this.#tables
    const v = encodeAudit(this.dialect, plan.record)
    return q
      .insert(auditLog)
      .select(
        sql`select null, ${v.tenantId}, ${v.actor}, ${v.action}, ${v.before}, ${v.after}, ${v.at}, ${v.requestId} where changes() = 1`,
      )
      .returning({ id: auditLog.id })
  }

  #now(): number {
    return Math.floor(this.#clock.now())
  }
}

function result(plan: ChangePlan, auditId: unknown): TenantChangeResult {
  return { before: plan.before, after: plan.after, audit: { ...plan.record, id: formatAuditId(auditId) } }
}
