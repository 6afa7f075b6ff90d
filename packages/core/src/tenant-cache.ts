import { z } from 'zod'
import { ExpiringMap } from './algorithms/expiring-map'
import type { CacheStore } from './cache'
import { type Clock, systemClock } from './clock'
import { describeValue } from './describe-value'
import { storableTextProblem } from './json'
import { isValidTenantId, validateTenantId } from './tenant-id'
import { assertMethods, invalidOption, parseOrThrow } from './validate'

const ttlSchema = z
  .number()
  .int('ttlMs must be a whole number of ms')
  .min(1, 'ttlMs must be > 0')
  .max(Number.MAX_SAFE_INTEGER)
  .optional()

/**
 * Validates a cache TTL: `undefined` (the store's default) or a whole number of ms > 0. Throws
 * `InvalidTenantConfigError` otherwise. Every {@link CacheStore} calls it so a bad TTL fails the
 * same way everywhere instead of meaning "forever" in one store and "already expired" in another.
 *
 * @example
 * ```ts
 * validateCacheTtl(60_000) // 60000
 * validateCacheTtl(0)      // throws InvalidTenantConfigError
 * ```
 */
export function validateCacheTtl(ttlMs: unknown): number | undefined {
  return parseOrThrow(ttlSchema, ttlMs)
}

/**
 * Default {@link TenantCacheOptions.maxKeyLength}: 1024 UTF-16 code units, as long as the longest
 * prefix. Cache keys are often built from request data; the bound keeps one request from putting a
 * multi-megabyte key into Redis or into an LRU that counts entries, not bytes.
 */
export const DEFAULT_MAX_CACHE_KEY_LENGTH = 1024

/** Largest {@link TenantCacheOptions.maxKeyLength} accepted: 65536 (64 Ki UTF-16 code units). */
export const MAX_CACHE_KEY_LENGTH_LIMIT = 65_536

/**
 * Why `prefix` cannot be a {@link TenantCache} prefix, or `undefined` when it can: at most 1024
 * characters, no `{` or `}` (they delimit the tenant id), and text every store keeps exactly (see
 * `storableTextProblem`). Stores that group keys by a TenantCache prefix check theirs with it.
 *
 * @example
 * ```ts
 * tenantCachePrefixProblem('app:') // undefined
 * tenantCachePrefixProblem('a}') // 'may not contain "{" or "}": they delimit the tenant id'
 * ```
 */
export function tenantCachePrefixProblem(prefix: string): string | undefined {
  if (prefix.length > 1024) return 'must be at most 1024 characters'
  if (/[{}]/.test(prefix)) return 'may not contain "{" or "}": they delimit the tenant id'
  // Stores write UTF-8: two prefixes differing only in a lone surrogate would become one.
  return storableTextProblem(prefix)
}

const tenantCacheOptionsSchema = z.strictObject({
  prefix: z
    .string()
    .superRefine((prefix, ctx) => {
      const problem = tenantCachePrefixProblem(prefix)
      if (problem !== undefined) ctx.addIssue({ code: 'custom', message: `prefix ${problem}` })
    })
    .optional(),
  ttlMs: ttlSchema,
  maxKeyLength: z
    .number()
    .int('maxKeyLength must be a whole number')
    .min(1, 'maxKeyLength must be >= 1')
    .max(MAX_CACHE_KEY_LENGTH_LIMIT, `maxKeyLength must be at most ${MAX_CACHE_KEY_LENGTH_LIMIT}`)
    .optional(),
})

/**
 * The start of every store key of `tenantId`'s entries in a {@link TenantCache} with `prefix`:
 * `prefix{tenantId}:`. Throws `InvalidTenantIdError` for a bad id.
 *
 * @example
 * ```ts
 * tenantCacheKeyPrefix('app:', 'acme') // 'app:{acme}:'
 * ```
 */
export function tenantCacheKeyPrefix(prefix: string, tenantId: string): string {
  return `${prefix}{${validateTenantId(tenantId)}}:`
}

/**
 * Which {@link TenantCache} entry `key` is: the cache's `prefix` and the tenant, for a key of the
 * form `prefix{tenantId}:...`, or `undefined` for any other key. A TenantCache prefix cannot
 * contain `{`, so the first `{` of a key ends its prefix: the answer needs no knowledge of which
 * caches share the store, and no two caches' keys of one tenant read as each other's. Stores
 * that bound each tenant's entries group keys by it.
 *
 * @example
 * ```ts
 * parseTenantCacheKey('app:{acme}:user:1') // { prefix: 'app:', tenantId: 'acme' }
 * parseTenantCacheKey('app:user:1') // undefined
 * ```
 */
export function parseTenantCacheKey(key: string): { prefix: string; tenantId: string } | undefined {
  const open = key.indexOf('{')
  if (open < 0) return undefined
  // The first '}' closes the id: one before the '{' is in the prefix, which no TenantCache allows.
  const end = key.indexOf('}')
  if (end < open || key.charCodeAt(end + 1) !== 58 /* ':' */) return undefined
  const tenantId = key.slice(open + 1, end)
  return isValidTenantId(tenantId) ? { prefix: key.slice(0, open), tenantId } : undefined
}

/**
 * The tenant whose entry `key` is, in a {@link TenantCache} with `prefix`, or `undefined` when
 * `key` is not of the form `prefix{tenantId}:...` (see {@link parseTenantCacheKey}).
 *
 * @example
 * ```ts
 * tenantOfCacheKey('app:', 'app:{acme}:user:1') // 'acme'
 * ```
 */
export function tenantOfCacheKey(prefix: string, key: string): string | undefined {
  // Most keys a store sees under one prefix: skip the parse (and its object) for the others.
  if (!key.startsWith(prefix) || key.charCodeAt(prefix.length) !== 123 /* '{' */) return undefined
  const parsed = parseTenantCacheKey(key)
  return parsed !== undefined && parsed.prefix === prefix ? parsed.tenantId : undefined
}

/**
 * One tenant of an id: its id and its `createdAt` (ms since the epoch), which tell apart the
 * tenants an id has had (a deleted tenant's id can be given to a new customer). A `TenantConfig`
 * is one: pass the config the tenancy chain resolved (`c.var.tenant` in Hono, `getTenant(request)`
 * in `@tenant/fetch`).
 */
export interface TenantRef {
  id: string
  /** ms since the epoch, as in `TenantConfig.createdAt`. */
  createdAt: number
}

/** Options of {@link TenantCache}. */
export interface TenantCacheOptions {
  /**
   * Put before every key, to keep this cache apart from other users of the same store. It may
   * not contain `{` or `}`, which delimit the tenant id after it, so no two prefixes can produce
   * the same key (`app:` and `app:users:` included).
   * @default 'tenant:'
   */
  prefix?: string
  /**
   * TTL for entries set without one; `undefined` leaves it to the store.
   * @default undefined
   */
  ttlMs?: number
  /**
   * Longest key accepted, in UTF-16 code units (`key.length`), from 1 to
   * {@link MAX_CACHE_KEY_LENGTH_LIMIT}. A longer key is refused with `InvalidTenantConfigError`.
   * @default 1024 ({@link DEFAULT_MAX_CACHE_KEY_LENGTH})
   */
  maxKeyLength?: number
}

/**
 * Tenant-isolated caching over any {@link CacheStore}: every key is stored as
 * `prefix + '{' + tenantId + '}:' + key`. Given a {@link TenantRef} (the resolved `TenantConfig`)
 * instead of an id, an entry is that tenant's alone: `prefix{tenantId}:@<createdAt>:key`, so a
 * request of a deleted tenant still running after its id went to a new customer (and after
 * `clear()` in `AdminService`'s `freshStart`) caches nothing the new customer reads.
 *
 * Why no two entries can share a store key, even across caches on one store: a prefix cannot
 * contain `{`, so the first `{` of a stored key ends the prefix; tenant ids are validated to
 * `[A-Za-z0-9._-]{1,255}`, so the next `}` ends the id. A stored key therefore decodes to exactly
 * one `(prefix, tenantId, key)` whatever `key` contains. Caches with prefixes `app:` and
 * `app:users:` on one store write `app:{users}:...` and `app:users:{acme}:...`: never the same
 * key. `clear('acme')` deletes the prefix `'tenant:{acme}:'`, which no key of another cache, of
 * `acme-eu` or of `acm` starts with.
 *
 * Keys and the prefix must be text every store keeps exactly (see `storableTextProblem`): no
 * U+0000 and no unpaired UTF-16 surrogate, which UTF-8 clients (Redis, Postgres) write as U+FFFD,
 * so that `'k\uD800'` and `'k\uDC00'` would become one entry there. A key must be a string of at
 * most `maxKeyLength` characters; a number, `undefined` or a Symbol is refused, not coerced (`1`
 * and `'1'` would otherwise be one entry). Every such refusal is an `InvalidTenantConfigError`
 * (`tenant_invalid_config`, 400) with one `invalid_option` issue at `['TenantCache.key']`: keys
 * often come from request data, and the HTTP layer maps it.
 *
 * @example
 * ```ts
 * const cache = new TenantCache(memoryCacheStore({ max: 10_000 }), { prefix: 'app:', ttlMs: 60_000 })
 * await cache.set('acme', 'user:42', { name: 'Ada' })
 * await cache.get('acme', 'user:42')     // { name: 'Ada' }
 * await cache.get('globex', 'user:42')   // undefined: another tenant's key
 * await cache.clear('acme')              // only acme's entries
 * // Tied to this tenant of the id, not to whoever holds it later:
 * await cache.set(c.var.tenant, 'profile', profile)
 * ```
 */
export class TenantCache<V = unknown> {
  readonly #store: CacheStore<V>
  readonly #prefix: string
  readonly #ttlMs: number | undefined
  readonly #maxKeyLength: number

  constructor(store: CacheStore<V>, options: TenantCacheOptions = {}) {
    assertMethods(store, 'store', ['get', 'set', 'delete', 'deletePrefix'])
    const {
      prefix = 'tenant:',
      ttlMs,
      maxKeyLength = DEFAULT_MAX_CACHE_KEY_LENGTH,
    } = parseOrThrow(tenantCacheOptionsSchema, options)
    const grouped = (store as { tenantCachePrefix?: unknown }).tenantCachePrefix
    if (grouped !== undefined && grouped !== prefix) {
      // Loud at start-up rather than one tenant's writes emptying every tenant's entries later.
      throw invalidOption(
        'TenantCache.prefix',
        `is ${JSON.stringify(prefix)}, but the store groups tenants under the TenantCache prefix ` +
          `${JSON.stringify(grouped)}: give the store tenantCachePrefix: ${JSON.stringify(prefix)}, or use one store per cache`,
      )
    }
    this.#store = store
    this.#prefix = prefix
    this.#ttlMs = ttlMs
    this.#maxKeyLength = maxKeyLength
  }

  /**
   * The store key for `key` of `tenant` (an id, or a {@link TenantRef} for that tenant of the id
   * alone). Throws `InvalidTenantIdError` for a bad id, and `InvalidTenantConfigError` for a
   * `TenantRef` whose `createdAt` is not a whole number of ms >= 0, or a key that is not a string,
   * is longer than `maxKeyLength`, or holds U+0000 or an unpaired surrogate.
   */
  keyFor(tenant: string | TenantRef, key: string): string {
    const tenantPrefix = this.#tenantPrefix(tenant)
    return tenantPrefix + this.#checkKey(key)
  }

  /** The cached value, or `undefined` when absent or expired. */
  get(tenant: string | TenantRef, key: string): Promise<V | undefined> {
    return this.#run(() => this.#store.get(this.keyFor(tenant, key)))
  }

  /** Caches `value` for `ttlMs` (default: the cache's `ttlMs`, then the store's default). */
  set(tenant: string | TenantRef, key: string, value: V, options?: { ttlMs?: number }): Promise<void> {
    return this.#run(() => {
      if (options !== undefined && (typeof options !== 'object' || options === null)) {
        throw invalidOption('TenantCache.set.options', `must be an object, got ${describeValue(options)}`)
      }
      const ttlMs = validateCacheTtl(options?.ttlMs) ?? this.#ttlMs
      return this.#store.set(this.keyFor(tenant, key), value, ttlMs === undefined ? undefined : { ttlMs })
    })
  }

  /** Removes one entry; resolves true when something was removed. */
  delete(tenant: string | TenantRef, key: string): Promise<boolean> {
    return this.#run(() => this.#store.delete(this.keyFor(tenant, key)))
  }

  /**
   * Removes every entry of the tenant's id and nothing else, those set with a {@link TenantRef}
   * of any tenant the id has had included; resolves the count.
   */
  clear(tenant: string | TenantRef): Promise<number> {
    return this.#run(() => this.#store.deletePrefix(tenantCacheKeyPrefix(this.#prefix, idOf(tenant))))
  }

  #tenantPrefix(tenant: string | TenantRef): string {
    const prefix = tenantCacheKeyPrefix(this.#prefix, idOf(tenant))
    if (typeof tenant === 'string') return prefix
    const { createdAt } = tenant
    if (!Number.isSafeInteger(createdAt) || createdAt < 0) {
      throw invalidOption(
        'TenantCache.tenant.createdAt',
        `must be a whole number of ms >= 0 (a TenantConfig's createdAt), got ${describeValue(createdAt)}`,
      )
    }
    // A key set by id alone can read the same (`@5:k`): the same id's entry, never another id's.
    return `${prefix}@${createdAt}:`
  }

  #checkKey(key: unknown): string {
    // Checked before any string operation: a Symbol would throw a plain TypeError, and a number
    // or an object would be coerced into (and collide with) a string key.
    if (typeof key !== 'string') {
      throw invalidOption('TenantCache.key', `must be a string, got ${key === null ? 'null' : typeof key}`)
    }
    if (key.length > this.#maxKeyLength) {
      throw invalidOption(
        'TenantCache.key',
        `must be at most ${this.#maxKeyLength} characters (maxKeyLength), got ${key.length}`,
      )
    }
    const problem = storableTextProblem(key)
    if (problem !== undefined) throw invalidOption('TenantCache.key', problem)
    return key
  }

  // Validation errors become rejections, like every other failure of these async methods.
  async #run<T>(fn: () => Promise<T>): Promise<T> {
    return fn()
  }
}

/** The id of an id or a {@link TenantRef}; what else is passed is left to the id's validation. */
function idOf(tenant: string | TenantRef): string {
  return typeof tenant === 'object' && tenant !== null ? tenant.id : tenant
}

/** Options of {@link memoryCacheStore}. */
export interface MemoryCacheStoreOptions {
  /**
   * Most entries kept; the least recently used one is dropped to make room.
   * @default 1000
   */
  max?: number
  /**
   * Most entries one tenant keeps in one `TenantCache` (keys `prefix{tenantId}:...`, whatever the
   * cache's prefix; other keys are bounded by `max` alone): a tenant past it drops its own least
   * recently used entry of that cache, so one tenant's writes cannot push every other tenant out.
   * @default a quarter of `max` (at least 1)
   */
  maxPerTenant?: number
  /**
   * TTL of entries set without one; `undefined` keeps them until evicted or deleted.
   * @default undefined
   */
  ttlMs?: number
  /**
   * Measures TTLs.
   * @default systemClock
   */
  clock?: Clock
}

interface MemoryEntry<V> {
  readonly key: string
  /** Owned by the expiry index (see ExpiringMap). */
  heapAt: number
  value: V
  expiresAt: number
  /** `prefix{tenantId}` of the TenantCache entry it is; '' for any other key. */
  tenant: string
  /** The keys of that group, least recently used first. */
  group: Set<string>
}

const entryCount = (name: string) =>
  z
    .number()
    .int(`${name} must be a whole number`)
    .min(1, `${name} must be >= 1`)
    .max(Number.MAX_SAFE_INTEGER)
    .optional()

const memoryOptionsSchema = z.strictObject({
  max: entryCount('max'),
  maxPerTenant: entryCount('maxPerTenant'),
  ttlMs: ttlSchema,
  clock: z
    .custom<Clock>((c) => typeof (c as Clock | undefined)?.now === 'function', 'clock must have now()')
    .optional(),
})

/**
 * A bounded in-process {@link CacheStore}: least-recently-used eviction at `max` entries, at most
 * `maxPerTenant` of them one tenant's (a tenant past it drops its own least recently used one),
 * and TTLs measured with the injected clock. Expired entries go first: a bound is enforced by
 * dropping every expired entry before any live one, so one tenant's dead entries never push out
 * another tenant's live ones (as in `RedisTenantCacheStore`). An entry set with `ttlMs` at time `t` is returned
 * through `t + ttlMs` and gone after. Values are kept by reference (like any in-process LRU):
 * do not mutate what you put in or get out.
 *
 * @example
 * ```ts
 * const cache = new TenantCache(memoryCacheStore({ max: 10_000, ttlMs: 60_000 }))
 * ```
 */
export function memoryCacheStore<V = unknown>(options: MemoryCacheStoreOptions = {}): CacheStore<V> {
  const {
    max = 1000,
    maxPerTenant = Math.max(1, Math.floor(max / 4)),
    ttlMs: defaultTtl,
    clock = systemClock,
  } = parseOrThrow(memoryOptionsSchema, options)
  // A Map iterates in insertion order; re-inserting on read makes its first key the LRU one. Each
  // tenant's keys are kept the same way in a Set of their own, which lives while it has keys.
  const entries = new Map<string, MemoryEntry<V>>()
  const groups = new Map<string, Set<string>>()
  // The entries with a TTL, earliest expiry first: what a bound drops before any live entry.
  // An entry's expiry never changes in place (a set replaces the entry), so it is filed once.
  const expiring = new ExpiringMap<MemoryEntry<V>>((entry) => entry.expiresAt)

  const remove = (key: string, entry: MemoryEntry<V>) => {
    entries.delete(key)
    if (entry.expiresAt !== Number.POSITIVE_INFINITY) expiring.delete(key)
    entry.group.delete(key)
    if (entry.group.size === 0) groups.delete(entry.tenant)
  }
  const dropExpired = (now: number) => {
    while (expiring.nextAt <= now) {
      const entry = expiring.evictEarliest(now)
      if (entry === undefined) return
      if (entry.expiresAt >= now) {
        // The earliest live one (the heap's top was a replaced entry's): it stays.
        expiring.add(entry, entry.expiresAt)
        return
      }
      remove(entry.key, entry)
    }
  }
  const live = (key: string, now: number): MemoryEntry<V> | undefined => {
    const entry = entries.get(key)
    // Written so that NaN (a clock that answered no number) counts as expired, never as live.
    if (entry && !(entry.expiresAt >= now)) {
      remove(key, entry)
      return undefined
    }
    return entry
  }
  const evictFirst = (keys: Iterable<string>) => {
    const key = keys[Symbol.iterator]().next().value as string
    remove(key, entries.get(key)!)
  }

  return {
    async get(key) {
      const entry = live(key, clock.now())
      if (!entry) return undefined
      entries.delete(key)
      entries.set(key, entry)
      entry.group.delete(key)
      entry.group.add(key)
      return entry.value
    },
    async set(key, value, setOptions) {
      const ttl = validateCacheTtl(setOptions?.ttlMs) ?? defaultTtl
      // Checked before anything changes: NaN + ttl would be an entry that never expires.
      const now = clock.now()
      if (!Number.isFinite(now)) {
        throw invalidOption(
          'memoryCacheStore.clock',
          `now() must answer a finite number, got ${describeValue(now)}`,
        )
      }
      const old = entries.get(key)
      if (old) remove(key, old)
      if (value === undefined) return
      // One group per cache and tenant: two caches on one store, or a store told one prefix and
      // used with another, never put every tenant in one group.
      const parsed = parseTenantCacheKey(key)
      const tenant = parsed === undefined ? '' : `${parsed.prefix}{${parsed.tenantId}}`
      let group = groups.get(tenant)
      if (group === undefined) {
        group = new Set()
        groups.set(tenant, group)
      }
      const expiresAt = ttl === undefined ? Number.POSITIVE_INFINITY : now + ttl
      const entry: MemoryEntry<V> = { key, heapAt: 0, value, expiresAt, tenant, group }
      entries.set(key, entry)
      if (ttl !== undefined) expiring.add(entry, expiresAt)
      group.add(key)
      const overTenant = tenant !== '' && group.size > maxPerTenant
      if (!overTenant && entries.size <= max) return
      dropExpired(now)
      if (tenant !== '' && group.size > maxPerTenant) evictFirst(group)
      while (entries.size > max) evictFirst(entries.keys())
    },
    async delete(key) {
      const existed = live(key, clock.now()) !== undefined
      const entry = entries.get(key)
      if (entry) remove(key, entry)
      return existed
    },
    async deletePrefix(prefix) {
      const now = clock.now()
      let count = 0
      // Collect first: deleting from a Map while iterating it is allowed but easy to misread.
      const keys = [...entries.keys()].filter((key) => key.startsWith(prefix))
      for (const key of keys) {
        const entry = live(key, now)
        if (entry) {
          count++
          remove(key, entry)
        }
      }
      return count
    },
  }
}

/**
 * The part of an `lru-cache` (v10+) `LRUCache<string, T>` that {@link lruCacheStore} uses.
 * Typed structurally so that core does not depend on `lru-cache`.
 */
export interface LruCacheLike {
  /** `LRUCache.get`. */
  get(key: string): unknown
  // `any`: an LRUCache<string, T> of any T must fit; the adapter only stores what V allows.
  /** `LRUCache.set`; `ttl` in ms. */
  set(key: string, value: any, options?: { ttl?: number }): unknown
  /** `LRUCache.delete`. */
  delete(key: string): boolean
  /** `LRUCache.has`. */
  has(key: string): boolean
  /** `LRUCache.keys`. */
  keys(): Iterable<string>
}

// lru-cache refuses null and undefined values; null is a useful cached answer ("no rate limit"),
// so it is stored as this marker instead.
const NULL_VALUE = Object.freeze({ '@tenant/core/null': true })

/**
 * Adapts a user-supplied `lru-cache` `LRUCache` to a {@link CacheStore}. The LRU keeps its own
 * `max`, default `ttl` and clock (its `perf` option); `ttlMs` maps to its per-entry `ttl`.
 * `deletePrefix` walks the LRU's keys, so it costs O(entries).
 *
 * @example
 * ```ts
 * // LRUCache is the user's own import of the lru-cache package; core never imports it.
 * const cache = new TenantCache(lruCacheStore(new LRUCache<string, {}>({ max: 10_000, ttl: 60_000 })))
 * ```
 */
export function lruCacheStore<V = unknown>(lru: LruCacheLike): CacheStore<V> {
  assertMethods(lru, 'lru', ['get', 'set', 'delete', 'has', 'keys'])
  return {
    async get(key) {
      const value = lru.get(key)
      return (value === NULL_VALUE ? null : value) as V | undefined
    },
    async set(key, value, setOptions) {
      const ttl = validateCacheTtl(setOptions?.ttlMs)
      if (value === undefined) {
        lru.delete(key)
        return
      }
      const stored = value === null ? NULL_VALUE : value
      if (ttl === undefined) lru.set(key, stored)
      else lru.set(key, stored, { ttl })
    },
    async delete(key) {
      // has() is false for an expired entry that delete() would still report as removed.
      const existed = lru.has(key)
      lru.delete(key)
      return existed
    },
    async deletePrefix(prefix) {
      let count = 0
      for (const key of [...lru.keys()]) {
        if (key.startsWith(prefix) && lru.delete(key)) count++
      }
      return count
    },
  }
}
