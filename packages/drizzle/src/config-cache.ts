import { type Clock, isTenantError, parseOrThrow, type TenantConfig, TenantNotFoundError } from '@tenant/core'
import { LRUCache } from 'lru-cache'
import { z } from 'zod'
import { TenantRowDecodeError } from './tenant-row'

/**
 * Options of the {@link DrizzleConfigManager} and {@link DrizzlePlanStore} caches. All durations are
 * milliseconds of its clock. For plans, read "plan" for "tenant": a plan changed by another process
 * reaches its tenants after at most `ttl`.
 */
export interface ConfigCacheOptions {
  /**
   * Most tenant configs kept. Least recently used ones are dropped first.
   * @default 10000
   */
  max?: number
  /**
   * How long a cached config is served without asking the database. Changes made through this
   * manager are seen at once; changes made by another process or by hand, after at most `ttl`
   * from when the read that cached the old config started (an answer's time in flight counts
   * against it). An entry the clock has gone back past (a negative age: an NTP step, a VM
   * restore) counts as expired.
   * @default 30000
   */
  ttl?: number
  /**
   * How long an unknown tenant id is answered "not found" without asking the database, so a flood
   * of made-up ids costs one query per id per `negativeTtl`. 0 turns negative caching off.
   * @default 5000
   */
  negativeTtl?: number
  /**
   * Most unknown ids remembered. Kept apart from `max` so a flood of made-up ids cannot push real
   * tenants' configs out of the cache.
   * @default 10000
   */
  negativeMax?: number
  /**
   * How long past its `ttl` (or `negativeTtl`) a cached answer is still served while the database
   * fails. 0 turns stale-on-error off. Lookups with nothing cached fail with
   * `tenant_backend_unavailable`, and so do lookups whose entry has a negative age (its real age
   * is unknown, so it is not known to be within this window).
   * @default 300000
   */
  staleTtl?: number
}

const duration = z
  .number()
  .int('must be a whole number of ms')
  .min(0, 'must be >= 0')
  .max(2 ** 31 - 1)
const size = z.number().int('must be a whole number').min(1, 'must be >= 1').max(10_000_000)
const cacheOptionsSchema = z.strictObject({
  max: size.default(10_000),
  ttl: duration.min(1, 'must be >= 1').default(30_000),
  negativeTtl: duration.default(5_000),
  negativeMax: size.default(10_000),
  staleTtl: duration.default(300_000),
})

/** {@link ConfigCacheOptions} with defaults applied. */
export type ResolvedConfigCacheOptions = Required<ConfigCacheOptions>

/** Validates cache options once, at construction. Throws `InvalidTenantConfigError`. */
export function resolveConfigCacheOptions(options: ConfigCacheOptions = {}): ResolvedConfigCacheOptions {
  return parseOrThrow(cacheOptionsSchema, options)
}

/** Counters of cache outcomes since the manager was created; for metrics and tests. */
export interface ConfigCacheStats {
  /** Answered from a fresh cached config or a fresh "not found". */
  hits: number
  /** Went to the database (including lookups that joined another caller's query). */
  misses: number
  /** Database queries actually started for lookups. */
  loads: number
  /** Answered from an expired entry because the database failed. */
  stale: number
}

interface Entry<C> {
  /** null: the tenant (plan) does not exist. */
  config: C | null
  /**
   * When the read that gave this answer started, on the cache's clock: the answer may be that
   * old, not only as old as its arrival.
   */
  at: number
}

/**
 * The LRU in front of the database: fresh entries answer lookups, unknown ids are remembered
 * briefly, concurrent misses for one id share one query, and expired entries stand in while the
 * database is failing. Internal to {@link DrizzleConfigManager} (tenant configs) and
 * {@link DrizzlePlanStore} (plans, with `notFound` building `PlanNotFoundError`).
 */
export class ConfigCache<C = TenantConfig> {
  readonly #options: ResolvedConfigCacheOptions
  readonly #clock: Clock
  readonly #notFound: (id: string) => Error
  // Expiry is judged from `Entry.at` against the injected clock, not by lru-cache's own ttl (which
  // reads performance.now()); lru-cache provides the bound and the eviction order.
  readonly #found: LRUCache<string, Entry<C>>
  readonly #missing: LRUCache<string, Entry<C>>
  // Lookups in flight, so concurrent misses share one query. An entry is removed when its query
  // settles or when an invalidation makes its answer out of date; either way the map holds at
  // most one promise per id with a lookup pending.
  readonly #loading = new Map<string, Promise<C | null>>()
  readonly stats: ConfigCacheStats = { hits: 0, misses: 0, loads: 0, stale: 0 }

  constructor(
    options: ResolvedConfigCacheOptions,
    clock: Clock,
    notFound: (id: string) => Error = (id) => new TenantNotFoundError(id),
  ) {
    this.#options = options
    this.#clock = clock
    this.#notFound = notFound
    this.#found = new LRUCache({ max: options.max })
    this.#missing = new LRUCache({ max: options.negativeMax })
  }

  /**
   * The config of `tenantId`, from the cache when fresh, else from `load` (which resolves null for
   * an unknown tenant). Throws `TenantNotFoundError` for an unknown tenant.
   */
  async get(tenantId: string, load: () => Promise<C | null>): Promise<C> {
    const fresh = this.fresh(tenantId)
    if (fresh) return this.#answer(tenantId, fresh.config)
    return this.miss(tenantId, load)
  }

  /**
   * The fresh cached answer for `tenantId` (counted as a hit), or `undefined` (nothing counted:
   * the caller goes on with {@link miss}, which counts the miss). Synchronous, so a hit costs no
   * promise of its own. An id with an entry was validated before the entry was stored.
   */
  fresh(tenantId: string): { config: C | null } | undefined {
    const cached = this.#lookup(tenantId)
    if (cached === undefined || !within(this.#age(cached), this.#freshFor(cached))) return undefined
    this.stats.hits += 1
    return cached
  }

  /**
   * The rest of {@link get} once {@link fresh} found nothing: counts the miss, loads (one load per
   * id in flight) and bridges a backend failure with a stale answer. For a caller that just asked
   * `fresh` itself, so the cache is not looked up twice.
   */
  async miss(tenantId: string, load: () => Promise<C | null>): Promise<C> {
    this.stats.misses += 1
    let config: C | null
    try {
      config = await this.#load(tenantId, load)
    } catch (error) {
      const stale = this.#lookup(tenantId)
      if (
        stale &&
        this.#servesStale(error) &&
        within(this.#age(stale), this.#freshFor(stale) + this.#options.staleTtl)
      ) {
        this.stats.stale += 1
        return this.#answer(tenantId, stale.config)
      }
      throw error
    }
    return this.#answer(tenantId, config)
  }

  /**
   * Forgets one tenant, or everything, including lookups in flight (their answers may predate the
   * change, so they are not stored). The manager calls this after each write it makes; apps call
   * it when they learn of changes made elsewhere.
   *
   * Writes invalidate rather than store what they wrote: two writes to one tenant can finish in
   * the opposite order to the one the database applied them in, and storing each would leave
   * the earlier value cached. The next lookup reads what the database holds.
   */
  invalidate(tenantId?: string): void {
    if (tenantId === undefined) {
      this.#found.clear()
      this.#missing.clear()
      this.#loading.clear()
      return
    }
    this.#found.delete(tenantId)
    this.#missing.delete(tenantId)
    this.#loading.delete(tenantId)
  }

  #load(tenantId: string, load: () => Promise<C | null>): Promise<C | null> {
    const pending = this.#loading.get(tenantId)
    if (pending) return pending
    this.stats.loads += 1
    // Read before the query starts: the row may be as old as this, and stamping the arrival
    // instead would add the answer's time in flight to its freshness.
    const startedAt = this.#clock.now()
    const promise: Promise<C | null> = load().then(
      (config) => {
        if (this.#loading.get(tenantId) === promise) {
          this.#loading.delete(tenantId)
          this.#store(tenantId, config, startedAt)
        }
        return config
      },
      (error: unknown) => {
        if (this.#loading.get(tenantId) === promise) this.#loading.delete(tenantId)
        throw error
      },
    )
    this.#loading.set(tenantId, promise)
    return promise
  }

  #store(tenantId: string, config: C | null, at: number): void {
    const entry: Entry<C> = { config, at }
    if (config === null) {
      this.#found.delete(tenantId)
      if (this.#options.negativeTtl > 0) this.#missing.set(tenantId, entry)
    } else {
      this.#missing.delete(tenantId)
      this.#found.set(tenantId, entry)
    }
  }

  #lookup(tenantId: string): Entry<C> | undefined {
    return this.#found.get(tenantId) ?? this.#missing.get(tenantId)
  }

  // How long ago the entry's read started; negative when the clock has since gone back past it.
  #age(entry: Entry<C>): number {
    return this.#clock.now() - entry.at
  }

  #freshFor(entry: Entry<C>): number {
    return entry.config === null ? this.#options.negativeTtl : this.#options.ttl
  }

  /** The config of a lookup's answer; `null` (no such tenant or plan) throws `notFound`. */
  #answer(id: string, config: C | null): C {
    if (config === null) throw this.#notFound(id)
    return config
  }

  // Only an unreachable or failing database is bridged; a row that no longer decodes is a fault to
  // report, not to hide behind the last good copy.
  #servesStale(error: unknown): boolean {
    return (
      this.#options.staleTtl > 0 &&
      isTenantError(error) &&
      error.code === 'tenant_backend_unavailable' &&
      !(error instanceof TenantRowDecodeError)
    )
  }
}

// Whether an entry of `age` is within `limit`. A negative age means the clock went back past the
// entry (an NTP step, a VM restore): how old it really is cannot be told, so it is within no
// limit. Treating it as fresh would keep it for the size of the step on top of the limit.
// NaN (a clock that gave no number) is within none either.
function within(age: number, limit: number): boolean {
  return age >= 0 && age < limit
}
