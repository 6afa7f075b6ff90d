import {
  InvalidTenantConfigError,
  isTenantError,
  ManualClock,
  TenantBackendError,
  TenantCache,
} from '@tenant/core'
import { testCacheStore } from '@tenant/core/testing'
import type { Redis } from 'ioredis'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { connectIoredis, REDIS_URL, useNodeRedis, useTestRedis } from '../test/helpers/redis-env'
import { CAN_SPAWN_REDIS, RedisServerProcess } from '../test/helpers/redis-server'
import { RedisTenantCacheStore } from './cache-store'
import { APP_CLOCK_TTL_MARGIN_MS, MAX_TTL_MS } from './lua'

const T0 = Date.UTC(2026, 0, 1)

describe.runIf(REDIS_URL)('RedisTenantCacheStore', () => {
  const { client: redis, prefix } = useTestRedis('cache')
  const nodeRedis = useNodeRedis()

  // Generous timeouts: the conformance suite checks behaviour, and CI machines are shared.
  testCacheStore(
    'conformance, ioredis, TTLs on the ManualClock',
    ({ clock, tenantCachePrefix }) =>
      new RedisTenantCacheStore({ redis, prefix, clock, tenantCachePrefix, timeoutMs: 2000 }),
  )

  testCacheStore(
    'conformance, node-redis, TTLs on the Redis clock',
    ({ tenantCachePrefix }) =>
      new RedisTenantCacheStore({ redis: nodeRedis, prefix, tenantCachePrefix, timeoutMs: 2000 }),
    { manualClockTtl: false },
  )

  describe('layout', () => {
    let clock: ManualClock
    let store: RedisTenantCacheStore
    let p: string

    beforeEach(() => {
      clock = new ManualClock(T0)
      p = `${prefix}:${Math.random().toString(36).slice(2, 8)}`
      store = new RedisTenantCacheStore({ redis, prefix: p, clock, timeoutMs: 2000 })
    })

    it('holds at most maxEntriesPerTenant entries per group: a new key evicts those that expire first', async () => {
      const bounded = new RedisTenantCacheStore({
        redis,
        prefix: p,
        clock,
        timeoutMs: 2000,
        maxEntriesPerTenant: 3,
      })
      const cache = new TenantCache(bounded)
      await cache.set('acme', 'long', 1, { ttlMs: 60_000 })
      await cache.set('acme', 'short', 2, { ttlMs: 1_000 })
      await cache.set('acme', 'mid', 3, { ttlMs: 10_000 })
      await cache.set('globex', 'g', 4, { ttlMs: 1_000 })
      // Overwriting a key of a full group evicts nothing.
      await cache.set('acme', 'mid', 5, { ttlMs: 10_000 })
      expect(await redis.hlen(`{${p}:acme}:h`)).toBe(3)
      // A fourth key evicts the entry that expires first.
      await cache.set('acme', 'new', 6, { ttlMs: 30_000 })
      expect(await cache.get('acme', 'short')).toBeUndefined()
      expect(await cache.get('acme', 'long')).toBe(1)
      expect(await cache.get('acme', 'mid')).toBe(5)
      expect(await cache.get('acme', 'new')).toBe(6)
      expect(await redis.hlen(`{${p}:acme}:h`)).toBe(3)
      expect(await redis.zcard(`{${p}:acme}:x`)).toBe(3)
      // Another tenant's group is its own.
      expect(await cache.get('globex', 'g')).toBe(4)
    })

    it('keeps at most maxEntriesPerTenant expired entries behind a long-lived one', async () => {
      const bounded = new RedisTenantCacheStore({
        redis,
        prefix: p,
        clock,
        timeoutMs: 2000,
        maxEntriesPerTenant: 100,
      })
      const cache = new TenantCache(bounded)
      await Promise.all(
        Array.from({ length: 1_000 }, (_, i) => cache.set('acme', `k${i}`, i, { ttlMs: 1_000 })),
      )
      clock.advance(2_000)
      await cache.set('acme', 'day', 'x', { ttlMs: 86_400_000 })
      await cache.set('acme', 'one-more', 'y', { ttlMs: 1_000 })
      // Without the bound, 1,000 expired fields (less 64 per write) lived as long as the day entry.
      expect(await redis.hlen(`{${p}:acme}:h`)).toBeLessThanOrEqual(100)
      expect(await cache.get('acme', 'day')).toBe('x')
    })

    it('cuts an expiry beyond 10 years to 10 years', async () => {
      const cache = new TenantCache(store)
      await cache.set('acme', 'forever', 1, { ttlMs: Number.MAX_SAFE_INTEGER })
      const expiry = Number(await redis.zscore(`{${p}:acme}:x`, 'tenant:{acme}:forever'))
      expect(expiry).toBe(T0 + MAX_TTL_MS)
      expect(await redis.pttl(`{${p}:acme}:h`)).toBeLessThanOrEqual(MAX_TTL_MS + APP_CLOCK_TTL_MARGIN_MS + 1)
      expect(await cache.get('acme', 'forever')).toBe(1)
    })

    it("keeps a tenant's entries in two keys under its hash tag, expiring with the longest entry", async () => {
      const cache = new TenantCache(store)
      await cache.set('acme', 'a', 1, { ttlMs: 10_000 })
      await cache.set('acme', 'b:c', 2, { ttlMs: 60_000 })
      await cache.set('globex', 'a', 3, { ttlMs: 10_000 })
      expect((await redis.keys(`{${p}:*`)).sort()).toEqual([
        `{${p}:acme}:h`,
        `{${p}:acme}:x`,
        `{${p}:globex}:h`,
        `{${p}:globex}:x`,
      ])
      expect(await redis.hgetall(`{${p}:acme}:h`)).toEqual({
        'tenant:{acme}:a': '1',
        'tenant:{acme}:b:c': '2',
      })
      // On an application clock the server adds APP_CLOCK_TTL_MARGIN_MS: it cannot tell how that
      // clock moves against its own.
      const pttl = await redis.pttl(`{${p}:acme}:h`)
      expect(pttl).toBeGreaterThan(50_000 + APP_CLOCK_TTL_MARGIN_MS)
      expect(pttl).toBeLessThanOrEqual(60_001 + APP_CLOCK_TTL_MARGIN_MS)
      expect(await redis.pttl(`{${p}:globex}:x`)).toBeLessThanOrEqual(10_001 + APP_CLOCK_TTL_MARGIN_MS)
    })

    it('keeps a group while its entries are live on the application clock, whatever the server clock does', async () => {
      // A ManualClock that never moves: the entry is live on it however much real time passes, so
      // the group's keys must outlive the entry's ttl on the server's clock by the margin.
      const cache = new TenantCache(store)
      await cache.set('acme', 'k', 'v', { ttlMs: 50 })
      expect(await redis.pttl(`{${p}:acme}:h`)).toBeGreaterThan(APP_CLOCK_TTL_MARGIN_MS)
      expect(await redis.pttl(`{${p}:acme}:x`)).toBeGreaterThan(APP_CLOCK_TTL_MARGIN_MS)
      // A host whose clock runs far ahead writes a short entry: the group's lifetime is not cut,
      // so the first host's longer entry is still there for it.
      await cache.set('acme', 'long', 'v', { ttlMs: 10 * 60_000 })
      const ahead = new RedisTenantCacheStore({
        redis,
        prefix: p,
        clock: new ManualClock(T0 + 9 * 60_000),
        timeoutMs: 2000,
      })
      await new TenantCache(ahead).set('acme', 'short', 'v', { ttlMs: 100 })
      expect(await redis.pttl(`{${p}:acme}:h`)).toBeGreaterThan(10 * 60_000)
      expect(await cache.get('acme', 'long')).toBe('v')
    })

    it('keeps two TenantCaches whose prefixes extend each other apart', async () => {
      const usersStore = new RedisTenantCacheStore({
        redis,
        prefix: `${p}u`,
        tenantCachePrefix: 'app:users:',
      })
      const appStore = new RedisTenantCacheStore({ redis, prefix: p, tenantCachePrefix: 'app:' })
      const app = new TenantCache(appStore, { prefix: 'app:' })
      const users = new TenantCache(usersStore, { prefix: 'app:users:' })
      await users.set('acme', 'secret', 'acme secret')
      expect(await app.get('users', 'acme:secret')).toBeUndefined()
      await app.set('users', 'acme:secret', 'other')
      expect(await app.clear('users')).toBe(1)
      expect(await users.get('acme', 'secret')).toBe('acme secret')
    })

    it('gives a store for another TenantCache prefix a default prefix of its own', async () => {
      // On one prefix, clear('acme') of one cache emptied acme in the other.
      const sessionsStore = new RedisTenantCacheStore<string>({ redis })
      const usersStore = new RedisTenantCacheStore<string>({ redis, tenantCachePrefix: 'users:' })
      const sessions = new TenantCache(sessionsStore)
      const users = new TenantCache(usersStore, { prefix: 'users:' })
      const tenant = `acme-${p.replace(/[^A-Za-z0-9]/g, '')}`
      try {
        await sessions.set(tenant, 's1', 'session')
        await users.set(tenant, 'u1', 'user')
        expect(await redis.exists(`{tenant:cache:${tenant}}:h`)).toBe(1)
        expect(await sessions.clear(tenant)).toBe(1)
        expect(await users.get(tenant, 'u1')).toBe('user')
        // The same TenantCache prefix gives the same default, so its stores share their entries.
        const again = new TenantCache(
          new RedisTenantCacheStore<string>({ redis, tenantCachePrefix: 'users:' }),
          {
            prefix: 'users:',
          },
        )
        expect(await again.get(tenant, 'u1')).toBe('user')
      } finally {
        await users.clear(tenant)
        await sessions.clear(tenant)
      }
    })

    it('names each TenantCache prefix its own default store prefix, one to one', async () => {
      // Their 32-bit FNV-1a hashes, the default before, are one: clear() in one emptied the other.
      const a = new TenantCache(
        new RedisTenantCacheStore<string>({ redis, tenantCachePrefix: 'app1039599:' }),
        {
          prefix: 'app1039599:',
        },
      )
      const b = new TenantCache(
        new RedisTenantCacheStore<string>({ redis, tenantCachePrefix: 'app1222382:' }),
        {
          prefix: 'app1222382:',
        },
      )
      const tenant = `acme-${p.replace(/[^A-Za-z0-9]/g, '')}`
      try {
        await b.set(tenant, 'session', 'b secret')
        await a.set(tenant, 'x', 'a value')
        expect(await a.clear(tenant)).toBe(1)
        expect(await b.get(tenant, 'session')).toBe('b secret')
        expect(await redis.exists(`{tenant:cache:app1222382::${tenant}}:h`)).toBe(1)
      } finally {
        await b.clear(tenant)
      }
      // Characters outside the store prefix's set are written out, and '_' escapes itself.
      const named = (tenantCachePrefix: string) => new RedisTenantCacheStore({ redis, tenantCachePrefix })
      const odd = new TenantCache(named('a_b/c é:'), { prefix: 'a_b/c é:' })
      await odd.set(tenant, 'k', 'v')
      try {
        expect(await redis.exists(`{tenant:cache:a__b_002fc_0020_00e9::${tenant}}:h`)).toBe(1)
      } finally {
        await odd.clear(tenant)
      }
      // Too long to be written out within 128 characters: the store needs a prefix of its own.
      expect(() => named(`${'é'.repeat(40)}:`)).toThrow(
        expect.objectContaining({ issues: [expect.objectContaining({ path: ['prefix'] })] }),
      )
      expect(
        new RedisTenantCacheStore({ redis, prefix: p, tenantCachePrefix: `${'é'.repeat(40)}:` }),
      ).toBeDefined()
    })

    it('refuses a tenantCachePrefix no TenantCache can have', () => {
      // With a '}' in it, the tenant of a key was misread and deletePrefix missed the tenant's keys.
      for (const tenantCachePrefix of ['a}', '{a', 'x'.repeat(1025), 'a\u0000']) {
        expect(() => new RedisTenantCacheStore({ redis, prefix: p, tenantCachePrefix })).toThrow(
          expect.objectContaining({
            code: 'tenant_invalid_config',
            issues: [expect.objectContaining({ path: ['tenantCachePrefix'] })],
          }),
        )
      }
    })

    it('refuses a value over maxValueBytes before sending it, and keeps the entry it would replace', async () => {
      const small = new RedisTenantCacheStore({ redis, prefix: p, maxValueBytes: 16 })
      const cache = new TenantCache(small)
      await cache.set('acme', 'k', 'abcdefghijklmn') // 16 bytes as JSON
      expect(await cache.get('acme', 'k')).toBe('abcdefghijklmn')
      // Counted in UTF-8: 6 characters of 3 bytes each, plus the quotes.
      await expect(cache.set('acme', 'k', '€€€€€€')).rejects.toThrow(
        /at most 16 bytes \(maxValueBytes\), got 20/,
      )
      await expect(cache.set('acme', 'k', 'x'.repeat(15))).rejects.toThrow(InvalidTenantConfigError)
      expect(await cache.get('acme', 'k')).toBe('abcdefghijklmn')
      expect(() => new RedisTenantCacheStore({ redis, prefix: p, maxValueBytes: 0 })).toThrow(
        InvalidTenantConfigError,
      )
      expect(() => new RedisTenantCacheStore({ redis, prefix: p, maxValueBytes: 2 ** 30 })).toThrow(
        InvalidTenantConfigError,
      )
      // The default is 1 MiB.
      await expect(new TenantCache(store).set('acme', 'big', 'x'.repeat(1_048_576))).rejects.toThrow(
        /1048576/,
      )
    })

    it('clears a tenant by deleting its two keys, leaving look-alike tenants alone', async () => {
      const cache = new TenantCache(store)
      await cache.set('acme', 'k', 'acme')
      await cache.set('acme', 'k2', 'acme')
      await cache.set('acme-eu', 'k', 'acme-eu')
      await cache.set('acm', 'e:k', 'acm')
      expect(await cache.clear('acme')).toBe(2)
      expect(await redis.exists(`{${p}:acme}:h`, `{${p}:acme}:x`)).toBe(0)
      expect(await cache.get('acme-eu', 'k')).toBe('acme-eu')
      expect(await cache.get('acm', 'e:k')).toBe('acm')
    })

    it('is refused by a TenantCache with another prefix, whose tenants would share one group', async () => {
      // Before, such a cache worked, with all its tenants in the shared group: one tenant writing
      // maxEntriesPerTenant keys evicted every other tenant's entries.
      expect(store.tenantCachePrefix).toBe('tenant:')
      expect(() => new TenantCache(store, { prefix: 'app:' })).toThrow(InvalidTenantConfigError)
      expect(() => new TenantCache(store, { prefix: 'tenant:x' })).toThrow(/tenantCachePrefix: "tenant:x"/)
      const told = new RedisTenantCacheStore({
        redis,
        prefix: p,
        tenantCachePrefix: 'app:',
        maxEntriesPerTenant: 10,
      })
      const app = new TenantCache(told, { prefix: 'app:' })
      for (let i = 0; i < 5; i++) await app.set('globex', `g${i}`, i)
      for (let i = 0; i < 50; i++) await app.set('acme', `a${i}`, i)
      for (let i = 0; i < 5; i++) expect(await app.get('globex', `g${i}`)).toBe(i)
    })

    it('uses the TenantCache prefix it is told, and a shared group for other keys', async () => {
      store = new RedisTenantCacheStore({
        redis,
        prefix: p,
        clock,
        tenantCachePrefix: 'app:',
        timeoutMs: 2000,
      })
      const cache = new TenantCache(store, { prefix: 'app:' })
      await cache.set('acme', 'k', 1)
      await store.set('loose-key', 2)
      await store.set('app:{not/a/tenant}:k', 3)
      await store.set('app:acme:k', 4)
      expect(await redis.hkeys(`{${p}:acme}:h`)).toEqual(['app:{acme}:k'])
      expect((await redis.hkeys(`{${p}:}:h`)).sort()).toEqual([
        'app:acme:k',
        'app:{not/a/tenant}:k',
        'loose-key',
      ])
      expect(await store.deletePrefix('app:{not/')).toBe(1)
      expect(await store.deletePrefix('app:acme')).toBe(1)
      expect(await store.get('loose-key')).toBe(2)
      expect(await cache.get('acme', 'k')).toBe(1)
    })

    it('deletePrefix("tenant:{acme}") drops acme\'s group whole and searches the shared group', async () => {
      const cache = new TenantCache(store)
      await cache.set('acme', 'a', 1)
      await cache.set('acme-eu', 'a', 2)
      for (const key of ['tenant:{acme}x', 'tenant:{acme}}:z', 'tenant:{acme}', 'tenant:{acmex}y', 'other']) {
        await store.set(key, key)
      }
      expect(await store.deletePrefix('tenant:{acme}')).toBe(4)
      expect(await redis.exists(`{${p}:acme}:h`, `{${p}:acme}:x`)).toBe(0)
      expect((await redis.hkeys(`{${p}:}:h`)).sort()).toEqual(['other', 'tenant:{acmex}y'])
      expect(await cache.get('acme-eu', 'a')).toBe(2)
    })

    it('refuses keys and prefixes Redis would not keep as written, with InvalidTenantConfigError', async () => {
      await store.set('k\ufffd', 'replacement character')
      for (const bad of ['k\ud800', 'k\udc00', 'tenant:{acme}:k\ud800', 'k\u0000']) {
        const name = JSON.stringify(bad)
        await expect(store.set(bad, 'aliased'), name).rejects.toBeInstanceOf(InvalidTenantConfigError)
        await expect(store.get(bad), name).rejects.toBeInstanceOf(InvalidTenantConfigError)
        await expect(store.delete(bad), name).rejects.toBeInstanceOf(InvalidTenantConfigError)
        await expect(store.deletePrefix(bad), name).rejects.toBeInstanceOf(InvalidTenantConfigError)
      }
      await expect(store.get(1 as never)).rejects.toBeInstanceOf(InvalidTenantConfigError)
      await expect(store.deletePrefix(Symbol('p') as never)).rejects.toBeInstanceOf(InvalidTenantConfigError)
      expect(await store.get('k\ufffd')).toBe('replacement character')
      expect(await redis.hgetall(`{${p}:}:h`)).toEqual({ 'k\ufffd': '"replacement character"' })
    })

    it('deletes a prefix that spans tenants, and only this store’s keys', async () => {
      const cache = new TenantCache(store)
      const neighbour = new RedisTenantCacheStore({ redis, prefix: `${p}:x`, clock, timeoutMs: 2000 })
      const neighbourCache = new TenantCache(neighbour)
      for (const tenant of ['acme', 'acme-eu', 'globex']) await cache.set(tenant, 'k', tenant)
      await store.set('tenant:{ac', 'shared group')
      await store.set('other', 'outside the prefix')
      await neighbourCache.set('acme', 'k', 'neighbour')
      expect(await store.deletePrefix('tenant:{ac')).toBe(3)
      expect(await cache.get('acme', 'k')).toBeUndefined()
      expect(await cache.get('acme-eu', 'k')).toBeUndefined()
      expect(await cache.get('globex', 'k')).toBe('globex')
      expect(await store.get('tenant:{ac')).toBeUndefined()
      expect(await store.get('other')).toBe('outside the prefix')
      expect(await neighbourCache.get('acme', 'k')).toBe('neighbour')
      expect(await store.deletePrefix('')).toBe(2)
      expect(await store.get('other')).toBeUndefined()
      expect(await neighbourCache.get('acme', 'k')).toBe('neighbour')
    })

    it('prunes expired entries on write, so a busy tenant holds only live entries', async () => {
      const cache = new TenantCache(store)
      for (let i = 0; i < 50; i++) await cache.set('acme', `old${i}`, i, { ttlMs: 1000 })
      clock.advance(1001)
      await cache.set('acme', 'new', 'x', { ttlMs: 1000 })
      expect(await redis.hkeys(`{${p}:acme}:h`)).toEqual(['tenant:{acme}:new'])
      expect(await redis.zcard(`{${p}:acme}:x`)).toBe(1)
    })

    it('expires every entry on the server, with the default TTL when none is given', async () => {
      store = new RedisTenantCacheStore({ redis, prefix: p, ttlMs: 5_000, timeoutMs: 2000 })
      await store.set('tenant:{acme}:k', 'v')
      const pttl = await redis.pttl(`{${p}:acme}:h`)
      expect(pttl).toBeGreaterThan(0)
      expect(pttl).toBeLessThanOrEqual(5_001)
      expect(await store.get('tenant:{acme}:k')).toBe('v')
    })

    it('refuses values JSON would change, and accepts a custom serializer', async () => {
      await expect(store.set('k', { at: new Date(0) })).rejects.toThrow(TypeError)
      // JSON writes -0 as 0: refused rather than returned as another number.
      await expect(store.set('k', -0)).rejects.toThrow(/-0/)
      await expect(store.set('k', { n: [-0] })).rejects.toThrow(TypeError)
      expect(await store.get('k')).toBeUndefined()
      await store.set('k', 0)
      expect(Object.is(await store.get('k'), 0)).toBe(true)
      const dates = new RedisTenantCacheStore<Date>({
        redis,
        prefix: p,
        timeoutMs: 2000,
        serializer: { serialize: (d) => String(d.getTime()), deserialize: (s) => new Date(Number(s)) },
      })
      await dates.set('d', new Date(42))
      expect(await dates.get('d')).toEqual(new Date(42))
    })

    it('validates its options at construction', () => {
      expect(() => new RedisTenantCacheStore({ redis, prefix: '{x}' })).toThrow(InvalidTenantConfigError)
      expect(() => new RedisTenantCacheStore({ redis, prefix: 'a*' })).toThrow(InvalidTenantConfigError)
      expect(() => new RedisTenantCacheStore({ redis, timeoutMs: 0 })).toThrow(InvalidTenantConfigError)
      expect(() => new RedisTenantCacheStore({ redis: {} as never })).toThrow(InvalidTenantConfigError)
      expect(() => new RedisTenantCacheStore({ redis, tenantCachePrefix: 1 as never })).toThrow(
        InvalidTenantConfigError,
      )
      const error = (() => {
        try {
          new RedisTenantCacheStore({ redis, ttlMs: -1 })
        } catch (e) {
          return e
        }
      })()
      expect(isTenantError(error)).toBe(true)
    })
  })
})

describe.runIf(CAN_SPAWN_REDIS)('RedisTenantCacheStore when Redis is down', () => {
  let server: RedisServerProcess
  let client: Redis

  beforeAll(async () => {
    server = await RedisServerProcess.launch()
    client = await connectIoredis(server.url, { retryStrategy: () => 50 })
    client.on('error', () => {})
  })

  afterAll(async () => {
    client?.disconnect()
    await server?.stop()
  })

  it('rejects with TenantBackendError, and works again once Redis is back', async () => {
    const store = new RedisTenantCacheStore({ redis: client, timeoutMs: 200 })
    await store.set('k', 'v')
    await server.stop()
    await expect(store.get('k')).rejects.toBeInstanceOf(TenantBackendError)
    await server.start()
    await expect
      .poll(
        () =>
          store.set('k', 'again').then(
            () => true,
            () => false,
          ),
        { timeout: 5000 },
      )
      .toBe(true)
    expect(await store.get('k')).toBe('again')
  })
})
