import { LRUCache } from 'lru-cache'
import { describe, expect, it } from 'vitest'
import { testCacheStore } from '../testing/index'
import type { CacheStore } from './cache'
import { ManualClock } from './clock'
import { InvalidTenantConfigError, InvalidTenantIdError, isTenantError } from './errors'
import {
  DEFAULT_MAX_CACHE_KEY_LENGTH,
  lruCacheStore,
  memoryCacheStore,
  parseTenantCacheKey,
  TenantCache,
  type TenantRef,
  tenantOfCacheKey,
  validateCacheTtl,
} from './tenant-cache'

testCacheStore('memoryCacheStore', ({ clock }) => memoryCacheStore({ clock, max: 10_000 }))
testCacheStore('lruCacheStore(lru-cache)', ({ clock }) =>
  lruCacheStore(new LRUCache<string, NonNullable<unknown>>({ max: 10_000, perf: clock, ttlResolution: 0 })),
)

describe('validateCacheTtl', () => {
  it('accepts undefined and whole ms > 0', () => {
    expect(validateCacheTtl(undefined)).toBeUndefined()
    expect(validateCacheTtl(1)).toBe(1)
    expect(validateCacheTtl(Number.MAX_SAFE_INTEGER)).toBe(Number.MAX_SAFE_INTEGER)
  })
  it('rejects everything else with InvalidTenantConfigError', () => {
    for (const bad of [0, -5, 0.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, '5', null]) {
      expect(() => validateCacheTtl(bad), String(bad)).toThrow(InvalidTenantConfigError)
    }
  })
})

describe('memoryCacheStore', () => {
  it('evicts the least recently used entry beyond max', async () => {
    const store = memoryCacheStore<number>({ max: 3 })
    await store.set('a', 1)
    await store.set('b', 2)
    await store.set('c', 3)
    expect(await store.get('a')).toBe(1) // a is now the most recent; b the least
    await store.set('d', 4)
    expect(await store.get('b')).toBeUndefined()
    expect(await store.get('a')).toBe(1)
    expect(await store.get('c')).toBe(3)
    expect(await store.get('d')).toBe(4)
    await store.set('c', 30) // overwriting refreshes too
    await store.set('e', 5)
    expect(await store.get('a')).toBeUndefined()
    expect(await store.get('c')).toBe(30)
  })

  it("keeps at most maxPerTenant of one tenant's entries: a tenant past it drops its own LRU entry", async () => {
    const cache = new TenantCache(memoryCacheStore<number>({ max: 100, maxPerTenant: 3 }))
    await cache.set('globex', 'kept', 1)
    for (let i = 0; i < 1_000; i++) await cache.set('acme', `k${i}`, i)
    // acme holds its 3 most recent keys; globex's entry was never pushed out.
    expect(await cache.get('globex', 'kept')).toBe(1)
    expect(await cache.get('acme', 'k999')).toBe(999)
    expect(await cache.get('acme', 'k997')).toBe(997)
    expect(await cache.get('acme', 'k996')).toBeUndefined()
    // Reading refreshes within the tenant too.
    await cache.get('acme', 'k997')
    await cache.set('acme', 'new', 1)
    expect(await cache.get('acme', 'k997')).toBe(997)
    expect(await cache.get('acme', 'k998')).toBeUndefined()
    expect(await cache.clear('acme')).toBe(3)
    expect(await cache.get('globex', 'kept')).toBe(1)
  })

  it("drops expired entries before any live one: one tenant's dead entries never push out another's live one", async () => {
    const clock = new ManualClock(1_000_000)
    const cache = new TenantCache<string>(memoryCacheStore({ max: 4, maxPerTenant: 2, clock }))
    await cache.set('globex', 'k', 'live') // no TTL: live until evicted
    await cache.set('acme', 'a1', 'x', { ttlMs: 1 })
    await cache.set('acme', 'a2', 'x', { ttlMs: 5 })
    clock.advance(10) // acme's two entries have expired, unread
    await cache.set('initech', 'i1', 'x', { ttlMs: 60_000 })
    await cache.set('initech', 'i2', 'x') // five entries, two of them dead: those go
    expect(await cache.get('globex', 'k')).toBe('live')
    expect(await cache.get('initech', 'i1')).toBe('x')
    // Within a tenant too: its own expired entry goes before its live least recently used one.
    await cache.set('globex', 'short', 'x', { ttlMs: 1 })
    clock.advance(2)
    await cache.set('globex', 'new', 'x') // globex: k (least recent), short (dead), new
    expect(await cache.get('globex', 'k')).toBe('live')
    expect(await cache.get('globex', 'new')).toBe('x')
    // With nothing expired, the least recently used live entry goes, as before.
    await cache.set('umbrella', 'u', 'x')
    expect(await cache.get('initech', 'i2')).toBeUndefined()
    expect(await cache.get('initech', 'i1')).toBe('x')
    expect(await cache.get('umbrella', 'u')).toBe('x')
  })

  it('keys set with TTLs again and again keep their latest values, LRU order and expiry', async () => {
    const clock = new ManualClock(1_000_000)
    const store = memoryCacheStore<number>({ max: 3, clock })
    for (let i = 0; i < 50_000; i++) await store.set(`k${i % 5}`, i, { ttlMs: 60_000 })
    // Only the three most recent keys are kept, with their latest values.
    expect(await store.get('k4')).toBe(49_999)
    expect(await store.get('k2')).toBe(49_997)
    expect(await store.get('k1')).toBeUndefined()
    clock.advance(60_001)
    expect(await store.get('k4')).toBeUndefined()
  })

  it('bounds each tenant in every TenantCache on the store, whatever its prefix', async () => {
    // Before, only keys under the store's tenantCachePrefix were grouped by tenant: a cache with
    // another prefix put every tenant in one group, and one tenant's writes emptied it.
    const store = memoryCacheStore<number>({ max: 1_000, maxPerTenant: 5 })
    const app = new TenantCache(store, { prefix: 'app:' })
    const users = new TenantCache(store, { prefix: 'users:' })
    for (let i = 0; i < 50; i++) await app.set('globex', `g${i}`, i)
    for (let i = 0; i < 400; i++) await app.set('acme', `a${i}`, i)
    for (let i = 0; i < 400; i++) await users.set('acme', `u${i}`, i)
    expect(await app.clear('globex')).toBe(5)
    expect(await app.clear('acme')).toBe(5)
    // The same tenant in another cache is a group of its own.
    expect(await users.clear('acme')).toBe(5)
    expect(await app.get('globex', 'g49')).toBeUndefined()
  })

  it('refuses a store that groups tenants under another TenantCache prefix', async () => {
    const store = Object.assign(memoryCacheStore(), { tenantCachePrefix: 'tenant:' })
    expect(() => new TenantCache(store, { prefix: 'app:' })).toThrow(InvalidTenantConfigError)
    expect(new TenantCache(store).keyFor('acme', 'k')).toBe('tenant:{acme}:k')
  })

  it('puts keys of no TenantCache in one group bounded by max alone', async () => {
    const store = memoryCacheStore<number>({ max: 10, maxPerTenant: 2 })
    for (let i = 0; i < 8; i++) await store.set(`plain:${i}`, i)
    // `{x}` without ':' after it, a bad tenant id, and an unclosed brace are no tenant's keys.
    await store.set('p{acme}x', 1)
    await store.set('p{a b}:k', 1)
    await store.set('p{acme:k', 1)
    expect(await store.deletePrefix('plain:')).toBe(7)
    expect(await store.get('p{acme}x')).toBe(1)
    expect(await store.get('p{a b}:k')).toBe(1)
    expect(await store.get('p{acme:k')).toBe(1)
  })

  it('gives one tenant a quarter of max by default', async () => {
    const cache = new TenantCache(memoryCacheStore<number>({ max: 8 }))
    for (let i = 0; i < 10; i++) await cache.set('acme', `k${i}`, i)
    for (let i = 0; i < 2; i++) await cache.set('globex', `k${i}`, i)
    expect(await cache.clear('acme')).toBe(2)
    expect(await cache.clear('globex')).toBe(2)
  })

  it('stays bounded under many distinct keys', async () => {
    const store = memoryCacheStore<number>({ max: 100 })
    for (let i = 0; i < 5_000; i++) await store.set(`k${i}`, i)
    expect(await store.deletePrefix('k')).toBe(100)
    expect(await store.get('k4999')).toBeUndefined()
  })

  it('applies the default ttlMs to entries set without one, and keeps others forever', async () => {
    const clock = new ManualClock(1_000)
    const withDefault = memoryCacheStore({ clock, ttlMs: 500 })
    const forever = memoryCacheStore({ clock })
    await withDefault.set('a', 1)
    await withDefault.set('b', 1, { ttlMs: 5_000 })
    await forever.set('a', 1)
    clock.advance(500)
    expect(await withDefault.get('a')).toBe(1) // alive through t + ttl
    clock.advance(1)
    expect(await withDefault.get('a')).toBeUndefined()
    expect(await withDefault.get('b')).toBe(1)
    clock.advance(10 ** 12)
    expect(await forever.get('a')).toBe(1)
  })

  it('treats setting undefined as a delete', async () => {
    const store = memoryCacheStore()
    await store.set('a', 1)
    await store.set('a', undefined)
    expect(await store.get('a')).toBeUndefined()
    expect(await store.delete('a')).toBe(false)
  })

  it('keeps values by reference', async () => {
    const store = memoryCacheStore<{ n: number }>()
    const value = { n: 1 }
    await store.set('a', value)
    expect(await store.get('a')).toBe(value)
  })

  it('refuses a write on a clock that answers no number, and serves nothing such a clock dates', async () => {
    let now = 1_000
    const store = memoryCacheStore({ clock: { now: () => now } })
    const cache = new TenantCache(store)
    await cache.set('acme', 'k', 'kept', { ttlMs: 1_000 })
    now = Number.NaN
    // NaN + ttl would be an entry that never expires.
    await expect(cache.set('acme', 'k', 'new', { ttlMs: 1_000 })).rejects.toThrow(InvalidTenantConfigError)
    // An entry is live only while the clock says so: a read at NaN finds none (and drops it).
    expect(await cache.get('acme', 'k')).toBeUndefined()
  })

  it('validates its options once, when created', () => {
    for (const bad of [{ max: 0 }, { max: 1.5 }, { ttlMs: 0 }, { clock: {} }, { maxSize: 3 }]) {
      expect(() => memoryCacheStore(bad as never), JSON.stringify(bad)).toThrow(InvalidTenantConfigError)
    }
  })
})

describe('lruCacheStore', () => {
  it('uses the LRU default ttl and honours per-entry ttlMs', async () => {
    const clock = new ManualClock(1_000)
    const lru = new LRUCache<string, NonNullable<unknown>>({
      max: 10,
      ttl: 500,
      perf: clock,
      ttlResolution: 0,
    })
    const store = lruCacheStore(lru)
    await store.set('default', 1)
    await store.set('long', 1, { ttlMs: 5_000 })
    clock.advance(501)
    expect(await store.get('default')).toBeUndefined()
    expect(await store.get('long')).toBe(1)
  })

  it('stores null as a value but leaves no null in the LRU', async () => {
    const lru = new LRUCache<string, NonNullable<unknown>>({ max: 10 })
    const store = lruCacheStore(lru)
    await store.set('n', null)
    expect(await store.get('n')).toBeNull()
    expect(lru.get('n')).not.toBeNull()
    await store.set('n', undefined)
    expect(lru.has('n')).toBe(false)
  })

  it('is bounded by the LRU max', async () => {
    const lru = new LRUCache<string, NonNullable<unknown>>({ max: 2 })
    const store = lruCacheStore(lru)
    for (const k of ['a', 'b', 'c']) await store.set(k, k)
    expect(await store.get('a')).toBeUndefined()
    expect(lru.size).toBe(2)
  })

  it('accepts an LRUCache of any value type', async () => {
    const store = lruCacheStore<string>(new LRUCache<string, string>({ max: 2 }))
    await store.set('a', 'x')
    expect(await store.get('a')).toBe('x')
  })

  it('refuses something that is not an LRU', () => {
    expect(() => lruCacheStore({ get() {}, set() {} } as never)).toThrow(/delete, has, keys/)
    expect(() => lruCacheStore(undefined as never)).toThrow(InvalidTenantConfigError)
  })
})

describe('TenantCache', () => {
  const fresh = () => {
    const clock = new ManualClock(1_000)
    const store = memoryCacheStore({ clock })
    return { clock, store, cache: new TenantCache(store, { prefix: 'app:' }) }
  }

  it("given a TenantRef, keeps each tenant of an id apart, and clear(id) removes every tenant's entries", async () => {
    const { store, cache } = fresh()
    const old = { id: 'acme', createdAt: 1_000 }
    const next = { id: 'acme', createdAt: 2_000 }
    expect(cache.keyFor(old, 'profile')).toBe('app:{acme}:@1000:profile')
    await cache.set(old, 'profile', 'old customer')
    expect(await cache.get(old, 'profile')).toBe('old customer')
    // The next tenant of the id, and a read by id alone, see none of it.
    expect(await cache.get(next, 'profile')).toBeUndefined()
    expect(await cache.get('acme', 'profile')).toBeUndefined()
    await cache.set(next, 'profile', 'new customer')
    await cache.set('acme', 'profile', 'by id')
    expect(await cache.get(old, 'profile')).toBe('old customer')
    expect(await cache.get(next, 'profile')).toBe('new customer')
    expect(await cache.delete(old, 'profile')).toBe(true)
    expect(await cache.get(next, 'profile')).toBe('new customer')
    // A TenantConfig is a TenantRef; extra fields are ignored.
    await cache.set({ id: 'globex', createdAt: 5, status: 'active' } as TenantRef, 'k', 'g')
    expect(await cache.clear(next)).toBe(2)
    expect(await cache.get(next, 'profile')).toBeUndefined()
    expect(await cache.get('acme', 'profile')).toBeUndefined()
    expect(await store.get('app:{globex}:@5:k')).toBe('g')
  })

  it('refuses a TenantRef with a bad id or createdAt before asking the store', async () => {
    const { cache } = fresh()
    for (const createdAt of [-1, 1.5, Number.NaN, '1000', undefined, 2 ** 53]) {
      const ref = { id: 'acme', createdAt } as unknown as TenantRef
      const error = await cache.set(ref, 'k', 'v').catch((e: unknown) => e)
      expect(error).toBeInstanceOf(InvalidTenantConfigError)
      expect((error as InvalidTenantConfigError).issues[0]?.path).toEqual(['TenantCache.tenant.createdAt'])
      expect(() => cache.keyFor(ref, 'k')).toThrow(InvalidTenantConfigError)
    }
    for (const ref of [{ id: 'a b', createdAt: 1 }, { createdAt: 1 }, null]) {
      await expect(cache.get(ref as unknown as TenantRef, 'k')).rejects.toBeInstanceOf(InvalidTenantIdError)
    }
  })

  it('stores keys as prefix + "{" + tenant id + "}:" + key', async () => {
    const { store, cache } = fresh()
    expect(cache.keyFor('acme', 'user:1')).toBe('app:{acme}:user:1')
    await cache.set('acme', 'user:1', 'v')
    expect(await store.get('app:{acme}:user:1')).toBe('v')
    expect(new TenantCache(store).keyFor('acme', 'k')).toBe('tenant:{acme}:k')
    expect(tenantOfCacheKey('app:', 'app:{acme}:user:1')).toBe('acme')
    for (const key of ['app:acme:k', 'app:{acme}k', 'app:{a b}:k', 'other:{acme}:k', 'app:{acme']) {
      expect(tenantOfCacheKey('app:', key)).toBeUndefined()
    }
    expect(parseTenantCacheKey('app:users:{acme}:k}:x')).toEqual({ prefix: 'app:users:', tenantId: 'acme' })
    expect(parseTenantCacheKey('{acme}:')).toEqual({ prefix: '', tenantId: 'acme' })
    for (const key of ['app:acme:k', 'app:{acme}k', 'app:{a b}:k', 'app:{acme', 'a}{acme}:k', 'a{{acme}:k']) {
      expect(parseTenantCacheKey(key)).toBeUndefined()
    }
  })

  it('keeps caches whose prefixes extend each other apart on one store', async () => {
    const store = memoryCacheStore()
    const app = new TenantCache(store, { prefix: 'app:' })
    const users = new TenantCache(store, { prefix: 'app:users:' })
    await users.set('acme', 'secret', 'acme secret')
    // Plain concatenation would make (app:, users, acme:secret) and (app:users:, acme, secret) one key.
    expect(await app.get('users', 'acme:secret')).toBeUndefined()
    await app.set('users', 'acme:secret', 'other')
    expect(await users.get('acme', 'secret')).toBe('acme secret')
    expect(await app.clear('users')).toBe(1)
    expect(await users.get('acme', 'secret')).toBe('acme secret')
    await app.set('app', 'k', 1)
    expect(await users.clear('acme')).toBe(1)
    expect(await app.get('app', 'k')).toBe(1)
  })

  it('refuses a prefix with a brace, which would make keys ambiguous', () => {
    for (const prefix of ['app:{', 'a}b', '{x}']) {
      expect(() => new TenantCache(memoryCacheStore(), { prefix })).toThrow(InvalidTenantConfigError)
    }
    expect(() => new TenantCache(memoryCacheStore(), { prefix: 'x'.repeat(1025) })).toThrow(
      InvalidTenantConfigError,
    )
  })

  it('gives each (tenant, key) pair its own entry, even where plain concatenation collides', async () => {
    const { cache } = fresh()
    const pairs: [string, string][] = [
      ['a', 'b:c'],
      ['a:b', 'c'],
      ['ab', 'c'],
      ['a', 'bc'],
      ['a.b', 'c'],
      ['a', '.bc'],
      ['a', ''],
      ['a-', ''],
    ]
    for (const [i, [tenant, key]] of pairs.entries()) {
      if (tenant.includes(':')) {
        await expect(cache.set(tenant, key, i)).rejects.toBeInstanceOf(InvalidTenantIdError)
        continue
      }
      await cache.set(tenant, key, i)
    }
    for (const [i, [tenant, key]] of pairs.entries()) {
      if (!tenant.includes(':')) expect(await cache.get(tenant, key)).toBe(i)
    }
  })

  it('clears one tenant and nothing else', async () => {
    const { cache } = fresh()
    await cache.set('acme', 'a', 1)
    await cache.set('acme', 'b', 2)
    await cache.set('acme-eu', 'a', 3)
    await cache.set('acm', 'ea', 4)
    await cache.set('ACME', 'a', 5)
    expect(await cache.clear('acme')).toBe(2)
    expect(await cache.get('acme', 'a')).toBeUndefined()
    expect(await cache.get('acme-eu', 'a')).toBe(3)
    expect(await cache.get('acm', 'ea')).toBe(4)
    expect(await cache.get('ACME', 'a')).toBe(5)
  })

  it('deletes one entry', async () => {
    const { cache } = fresh()
    await cache.set('acme', 'a', 1)
    expect(await cache.delete('acme', 'a')).toBe(true)
    expect(await cache.delete('acme', 'a')).toBe(false)
  })

  it('applies its default ttlMs, overridable per entry', async () => {
    const clock = new ManualClock(1_000)
    const cache = new TenantCache(memoryCacheStore({ clock }), { ttlMs: 100 })
    await cache.set('t', 'short', 1)
    await cache.set('t', 'long', 1, { ttlMs: 1_000 })
    clock.advance(101)
    expect(await cache.get('t', 'short')).toBeUndefined()
    expect(await cache.get('t', 'long')).toBe(1)
  })

  it('refuses set options that are no object, and keeps what was cached', async () => {
    const cache = new TenantCache(memoryCacheStore())
    await cache.set('acme', 'k', 'kept')
    for (const options of [null, 5, 'ttl']) {
      await expect(cache.set('acme', 'k', 'new', options as unknown as { ttlMs?: number })).rejects.toThrow(
        InvalidTenantConfigError,
      )
    }
    expect(await cache.get('acme', 'k')).toBe('kept')
  })

  it('rejects invalid tenant ids and TTLs as rejected promises', async () => {
    const { cache } = fresh()
    for (const id of ['', 'a:b', 'a/b', 'é', 'x'.repeat(256)]) {
      await expect(cache.get(id, 'k')).rejects.toBeInstanceOf(InvalidTenantIdError)
      await expect(cache.set(id, 'k', 1)).rejects.toBeInstanceOf(InvalidTenantIdError)
      await expect(cache.delete(id, 'k')).rejects.toBeInstanceOf(InvalidTenantIdError)
      await expect(cache.clear(id)).rejects.toBeInstanceOf(InvalidTenantIdError)
    }
    await expect(cache.set('t', 'k', 1, { ttlMs: 0 })).rejects.toBeInstanceOf(InvalidTenantConfigError)
  })

  it('refuses a prefix with U+0000 or an unpaired surrogate, which a store could not keep apart', () => {
    for (const prefix of ['app\ud800:', 'app\udc00:', 'a\udc00\ud800:', 'app\u0000:']) {
      expect(() => new TenantCache(memoryCacheStore(), { prefix }), JSON.stringify(prefix)).toThrow(
        InvalidTenantConfigError,
      )
    }
    // U+FFFD and a proper surrogate pair are ordinary text.
    expect(new TenantCache(memoryCacheStore(), { prefix: 'app\ufffd\ud83d\ude80:' }).keyFor('a', 'k')).toBe(
      'app\ufffd\ud83d\ude80:{a}:k',
    )
  })

  it('refuses a key with U+0000 or an unpaired surrogate as InvalidTenantConfigError', async () => {
    const { store, cache } = fresh()
    for (const key of ['k\ud800', 'k\udc00', '\udc00\ud800', 'k\u0000']) {
      const name = JSON.stringify(key)
      expect(() => cache.keyFor('acme', key), name).toThrow(InvalidTenantConfigError)
      await expect(cache.set('acme', key, 1), name).rejects.toBeInstanceOf(InvalidTenantConfigError)
      await expect(cache.get('acme', key), name).rejects.toBeInstanceOf(InvalidTenantConfigError)
      await expect(cache.delete('acme', key), name).rejects.toBeInstanceOf(InvalidTenantConfigError)
    }
    await cache.set('acme', 'k\ufffd', 'replacement character')
    await cache.set('acme', 'k\ud83d\ude80', 'pair')
    expect(await cache.get('acme', 'k\ufffd')).toBe('replacement character')
    expect(await cache.get('acme', 'k\ud83d\ude80')).toBe('pair')
    expect(await store.deletePrefix('')).toBe(2)
  })

  it('refuses a key that is not a string, instead of coercing it into another key', async () => {
    const { store, cache } = fresh()
    await cache.set('acme', '1', 'string one')
    await cache.set('acme', 'undefined', 'string undefined')
    for (const key of [1, undefined, null, Symbol('k'), { toString: () => '1' }, ['1'], 1n, true]) {
      const name = typeof key === 'symbol' ? 'Symbol' : String(key)
      expect(() => cache.keyFor('acme', key as never), name).toThrow(InvalidTenantConfigError)
      for (const call of [
        () => cache.get('acme', key as never),
        () => cache.set('acme', key as never, 'overwritten'),
        () => cache.delete('acme', key as never),
      ]) {
        const error = await call().then(
          () => undefined,
          (e: unknown) => e,
        )
        expect(error, name).toBeInstanceOf(InvalidTenantConfigError)
        expect(isTenantError(error)).toBe(true)
        expect((error as InvalidTenantConfigError).issues[0]?.path).toEqual(['TenantCache.key'])
      }
    }
    expect(await cache.get('acme', '1')).toBe('string one')
    expect(await cache.get('acme', 'undefined')).toBe('string undefined')
    expect(await store.deletePrefix('')).toBe(2)
  })

  it(`bounds the key length: ${DEFAULT_MAX_CACHE_KEY_LENGTH} characters unless maxKeyLength says otherwise`, async () => {
    const { cache } = fresh()
    const longest = 'k'.repeat(DEFAULT_MAX_CACHE_KEY_LENGTH)
    await cache.set('acme', longest, 'fits')
    expect(await cache.get('acme', longest)).toBe('fits')
    for (const key of [`${longest}k`, 'k'.repeat(5_000_000)]) {
      await expect(cache.set('acme', key, 'too long')).rejects.toBeInstanceOf(InvalidTenantConfigError)
      await expect(cache.get('acme', key)).rejects.toBeInstanceOf(InvalidTenantConfigError)
      await expect(cache.delete('acme', key)).rejects.toBeInstanceOf(InvalidTenantConfigError)
    }
    // Counted in UTF-16 code units, like String.length: an emoji is 2.
    const small = new TenantCache(memoryCacheStore(), { maxKeyLength: 4 })
    expect(small.keyFor('a', 'ab\ud83d\ude80')).toBe('tenant:{a}:ab\ud83d\ude80')
    expect(() => small.keyFor('a', 'abc\ud83d\ude80')).toThrow(InvalidTenantConfigError)
    const large = new TenantCache(memoryCacheStore(), { maxKeyLength: 65_536 })
    expect(large.keyFor('a', 'k'.repeat(65_536))).toHaveLength('tenant:{a}:'.length + 65_536)
  })

  it('validates maxKeyLength: a whole number from 1 to 65536', () => {
    for (const maxKeyLength of [0, -1, 1.5, 65_537, Number.POSITIVE_INFINITY, Number.NaN, '10']) {
      expect(
        () => new TenantCache(memoryCacheStore(), { maxKeyLength: maxKeyLength as number }),
        String(maxKeyLength),
      ).toThrow(InvalidTenantConfigError)
    }
  })

  it('validates its store and options when created', () => {
    const store: CacheStore = memoryCacheStore()
    expect(() => new TenantCache({} as never)).toThrow(InvalidTenantConfigError)
    expect(() => new TenantCache(store, { ttlMs: -1 })).toThrow(InvalidTenantConfigError)
    expect(() => new TenantCache(store, { prefix: 1 } as never)).toThrow(InvalidTenantConfigError)
    expect(() => new TenantCache(store, { ttl: 1 } as never)).toThrow(InvalidTenantConfigError)
  })
})
