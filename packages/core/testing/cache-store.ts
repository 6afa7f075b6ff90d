import { type CacheStore, isTenantError, ManualClock, TenantCache } from '@tenant/core'
import { beforeEach, describe, expect, it } from 'vitest'

/** What a {@link testCacheStore} factory receives. */
export interface CacheStoreFactoryContext {
  /** The clock a store with in-process TTLs must measure them with. */
  clock: ManualClock
  /**
   * The `TenantCache` prefix of the test's keys (random, no `{` or `}`): every key the test
   * writes starts with it, and some follow the `TenantCache` layout `prefix{tenantId}:key`.
   * A store that groups tenants under one TenantCache prefix (the Redis store's
   * `tenantCachePrefix`) must be told it: the suite's `TenantCache` refuses it otherwise.
   */
  tenantCachePrefix: string
}

/** Builds the store under test; called once per test. */
export type CacheStoreFactory = (context: CacheStoreFactoryContext) => CacheStore | Promise<CacheStore>

/** Options of {@link testCacheStore}. */
export interface CacheStoreSuiteOptions {
  /**
   * Whether the store's TTLs follow the factory's `ManualClock`. Set false for stores whose
   * expiry runs on a server's clock (Redis), which the suite cannot move without sleeping; test
   * their TTLs with the server's own tools (`PTTL`) instead.
   * @default true
   */
  manualClockTtl?: boolean
}

const T0 = Date.UTC(2026, 0, 1)
let runCounter = 0

/**
 * The conformance suite every `CacheStore` passes: get/set/delete, falsy values told apart
 * from misses, keys that never alias (not even ones differing only in unpaired surrogates, which
 * UTF-8 clients turn into U+FFFD), `deletePrefix` that is literal (no pattern syntax), complete over
 * many keys and over a tenant prefix that stops right after the `}`, TTL validation and expiry, and
 * isolation through `TenantCache`.
 *
 * Safe on a shared server: every key a test writes starts with its own random prefix.
 *
 * @example
 * ```ts
 * import { testCacheStore } from '@tenant/core/testing'
 * testCacheStore('memoryCacheStore', ({ clock }) => memoryCacheStore({ clock }))
 * testCacheStore(
 *   'RedisTenantCacheStore',
 *   ({ tenantCachePrefix }) => new RedisTenantCacheStore({ redis, tenantCachePrefix }),
 *   { manualClockTtl: false },
 * )
 * ```
 */
export function testCacheStore(
  name: string,
  factory: CacheStoreFactory,
  options: CacheStoreSuiteOptions = {},
): void {
  const { manualClockTtl = true } = options

  describe(name, () => {
    let clock: ManualClock
    let store: CacheStore
    let p: string

    beforeEach(async () => {
      clock = new ManualClock(T0)
      runCounter += 1
      p = `cs${Math.random().toString(36).slice(2, 10).padEnd(8, '0')}${runCounter.toString(36)}:`
      store = await factory({ clock, tenantCachePrefix: p })
    })

    it('returns undefined for a missing key', async () => {
      expect(await store.get(`${p}missing`)).toBeUndefined()
    })

    it('round-trips JSON values, telling falsy values apart from a miss', async () => {
      const values: unknown[] = [
        { a: 1, b: [1, 'two', { c: null }], d: 'ünï 🚀' },
        ['x', 2],
        'text',
        '',
        0,
        -1.5,
        false,
        true,
        null,
      ]
      for (const [i, value] of values.entries()) await store.set(`${p}${i}`, value)
      for (const [i, value] of values.entries()) expect(await store.get(`${p}${i}`)).toEqual(value)
    })

    it('overwrites a value', async () => {
      await store.set(`${p}k`, 'first')
      await store.set(`${p}k`, 'second')
      expect(await store.get(`${p}k`)).toBe('second')
    })

    it('keeps keys with any characters apart', async () => {
      const keys = ['a:b', 'a*', 'a?', 'a[1]', 'a b', 'a\nb', 'ü', '🚀', 'a'.repeat(500), '%_\\']
      for (const [i, key] of keys.entries()) await store.set(p + key, i)
      for (const [i, key] of keys.entries()) expect(await store.get(p + key)).toBe(i)
    })

    it('deletes a key, resolving whether something was removed', async () => {
      await store.set(`${p}k`, 1)
      await store.set(`${p}other`, 2)
      expect(await store.delete(`${p}k`)).toBe(true)
      expect(await store.get(`${p}k`)).toBeUndefined()
      expect(await store.delete(`${p}k`)).toBe(false)
      expect(await store.delete(`${p}never`)).toBe(false)
      expect(await store.get(`${p}other`)).toBe(2)
    })

    it('deletePrefix removes exactly the keys that start with the prefix', async () => {
      const removed = [`${p}t1:`, `${p}t1:a`, `${p}t1:b:c`]
      const kept = [`${p}t1`, `${p}t10:a`, `${p}t2:a`, `${p}x${p}t1:a`]
      for (const key of [...removed, ...kept]) await store.set(key, key)
      expect(await store.deletePrefix(`${p}t1:`)).toBe(removed.length)
      for (const key of removed) expect(await store.get(key)).toBeUndefined()
      for (const key of kept) expect(await store.get(key)).toBe(key)
      expect(await store.deletePrefix(`${p}t1:`)).toBe(0)
    })

    it('deletePrefix of a tenant prefix without the ":" also removes other keys that start with it', async () => {
      // `p{t}x` and `p{t}}:z` are not keys of tenant t in the TenantCache layout, but they do start
      // with `p{t}`: a store that keeps tenant t's entries apart must look in both places.
      const removed = [`${p}{t}:a`, `${p}{t}:b:c`, `${p}{t}x`, `${p}{t}}:z`, `${p}{t}-a`, `${p}{t}`]
      const kept = [`${p}{t-2}:a`, `${p}{tx}x`, `${p}{u}:a`, `${p}t}:a`, `${p}{t`]
      for (const key of [...removed, ...kept]) await store.set(key, key)
      expect(await store.deletePrefix(`${p}{t}`)).toBe(removed.length)
      for (const key of removed) expect(await store.get(key), key).toBeUndefined()
      for (const key of kept) expect(await store.get(key), key).toBe(key)
      expect(await store.deletePrefix(`${p}{t}`)).toBe(0)
    })

    it('never lets keys that differ only in unpaired surrogates share an entry', async () => {
      // A UTF-8 client writes every lone surrogate as U+FFFD, so these three keys can become one.
      // A store may refuse the ill-formed ones (with a TenantError) but must not alias them.
      const settle = (promise: Promise<unknown>) =>
        promise.then(
          (value) => ({ ok: true as const, value }),
          (error: unknown) => ({ ok: false as const, error }),
        )
      for (const base of [`${p}u`, `${p}{t}:u`]) {
        const keys = [`${base}\ud800`, `${base}\udc00`, `${base}\ufffd`, `${base}\ud800\udc00`]
        const stored: string[] = []
        for (const key of keys) {
          const result = await settle(store.set(key, key))
          if (result.ok) stored.push(key)
          else expect(isTenantError(result.error), JSON.stringify(key)).toBe(true)
        }
        // Well-formed keys (U+FFFD itself, a proper pair) are ordinary keys.
        expect(stored).toContain(`${base}\ufffd`)
        expect(stored).toContain(`${base}\ud800\udc00`)
        for (const key of stored) expect(await store.get(key), JSON.stringify(key)).toBe(key)
        const cleared = await settle(store.deletePrefix(`${base}\udc00`))
        if (!cleared.ok) expect(isTenantError(cleared.error)).toBe(true)
        expect(await store.get(`${base}\ufffd`)).toBe(`${base}\ufffd`)
        expect(await store.get(`${base}\ud800\udc00`)).toBe(`${base}\ud800\udc00`)
      }
    })

    it('deletePrefix treats pattern characters literally', async () => {
      // Redis MATCH and SQL LIKE give these meaning; a prefix must not.
      const literal = ['*', '?', '[ab]', '%', '_', '\\']
      for (const [i, special] of literal.entries()) {
        await store.set(`${p}${i}${special}:k`, 'special')
        await store.set(`${p}${i}a:k`, 'plain')
        await store.set(`${p}${i}b]:k`, 'plain')
        expect(await store.deletePrefix(`${p}${i}${special}`), special).toBe(1)
        expect(await store.get(`${p}${i}${special}:k`)).toBeUndefined()
        expect(await store.get(`${p}${i}a:k`)).toBe('plain')
        expect(await store.get(`${p}${i}b]:k`)).toBe('plain')
      }
    })

    it('deletePrefix removes every matching key of a large set', async () => {
      const count = 300
      await Promise.all(Array.from({ length: count }, (_, i) => store.set(`${p}bulk:${i}`, i)))
      await store.set(`${p}keep`, 'k')
      expect(await store.deletePrefix(`${p}bulk:`)).toBe(count)
      for (const i of [0, 1, 150, count - 1]) expect(await store.get(`${p}bulk:${i}`)).toBeUndefined()
      expect(await store.get(`${p}keep`)).toBe('k')
    })

    it('rejects a TTL that is not a whole number of ms > 0', async () => {
      for (const ttlMs of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '10']) {
        const error = await store.set(`${p}ttl`, 'v', { ttlMs: ttlMs as number }).then(
          () => undefined,
          (e: unknown) => e,
        )
        expect(isTenantError(error), String(ttlMs)).toBe(true)
      }
      expect(await store.get(`${p}ttl`)).toBeUndefined()
      await store.set(`${p}ttl`, 'v', { ttlMs: 60_000 })
      expect(await store.get(`${p}ttl`)).toBe('v')
    })

    if (manualClockTtl) {
      it('expires an entry after its TTL, measured with the clock', async () => {
        await store.set(`${p}short`, 'v', { ttlMs: 1_000 })
        await store.set(`${p}long`, 'v', { ttlMs: 10_000 })
        clock.advance(999)
        expect(await store.get(`${p}short`)).toBe('v')
        clock.advance(2)
        expect(await store.get(`${p}short`)).toBeUndefined()
        expect(await store.get(`${p}long`)).toBe('v')
      })

      it('does not count or report expired entries', async () => {
        await store.set(`${p}e:1`, 'v', { ttlMs: 100 })
        await store.set(`${p}e:2`, 'v', { ttlMs: 100_000 })
        clock.advance(101)
        expect(await store.delete(`${p}e:1`)).toBe(false)
        await store.set(`${p}e:3`, 'v', { ttlMs: 100 })
        clock.advance(101)
        expect(await store.deletePrefix(`${p}e:`)).toBe(1)
      })

      it('restarts the TTL when a key is set again', async () => {
        await store.set(`${p}k`, 'old', { ttlMs: 1_000 })
        clock.advance(900)
        await store.set(`${p}k`, 'new', { ttlMs: 1_000 })
        clock.advance(900)
        expect(await store.get(`${p}k`)).toBe('new')
      })
    }

    it('handles concurrent writers on distinct keys', async () => {
      await Promise.all(Array.from({ length: 50 }, (_, i) => store.set(`${p}c:${i}`, { i })))
      const values = await Promise.all(Array.from({ length: 50 }, (_, i) => store.get(`${p}c:${i}`)))
      expect(values).toEqual(Array.from({ length: 50 }, (_, i) => ({ i })))
    })

    it('isolates tenants through TenantCache', async () => {
      const cache = new TenantCache(store, { prefix: p })
      await cache.set('acme', 'k', 'acme')
      await cache.set('acme-eu', 'k', 'acme-eu')
      await cache.set('acm', 'ek', 'acm')
      expect(await cache.get('acme', 'k')).toBe('acme')
      expect(await cache.get('acme-eu', 'k')).toBe('acme-eu')
      expect(await cache.get('acm', 'ek')).toBe('acm')
      expect(await cache.clear('acme')).toBe(1)
      expect(await cache.get('acme', 'k')).toBeUndefined()
      expect(await cache.get('acme-eu', 'k')).toBe('acme-eu')
      expect(await cache.get('acm', 'ek')).toBe('acm')
    })
  })
}
