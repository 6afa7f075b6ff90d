import {
  InvalidTenantConfigError,
  isTenantError,
  ManualClock,
  TenantBackendError,
  type TenantConfig,
  TenantNotFoundError,
  tenantConfigNow,
} from '@tenant/core'
import { sql } from 'drizzle-orm'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  describeEachDatabase,
  describeEachKind,
  openDatabase,
  type TestDatabase,
  withD1,
} from '../test/databases'
import { ConfigCache, resolveConfigCacheOptions } from './config-cache'
import { DrizzleConfigManager } from './config-manager'
import { TenantRowDecodeError } from './tenant-row'

const T0 = Date.UTC(2026, 0, 1)

function config(id: string, v = 1): TenantConfig {
  return {
    id,
    status: 'active',
    plan: null,
    quota: { limits: [] },
    rateLimit: null,
    concurrency: null,
    policy: { allowedModels: [], allowedTools: [], allowedMethods: [], allowedPaths: [] },
    metadata: { v },
    createdAt: T0,
    updatedAt: T0,
  }
}

/** A loader the test resolves by hand, to order a lookup against a write deterministically. */
function deferred<T>() {
  let resolve!: (value: T) => void
  let reject!: (error: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

const never = async (): Promise<never> => {
  throw new Error('the cache should have answered without loading')
}

describe('ConfigCache', () => {
  it('validates its options once, listing every problem', () => {
    expect(resolveConfigCacheOptions()).toEqual({
      max: 10_000,
      ttl: 30_000,
      negativeTtl: 5_000,
      negativeMax: 10_000,
      staleTtl: 300_000,
    })
    const error = (() => {
      try {
        resolveConfigCacheOptions({ max: 0, ttl: 0, negativeTtl: -1, staleTtl: 1.5, extra: 1 } as never)
      } catch (e) {
        return e
      }
    })()
    expect(error).toBeInstanceOf(InvalidTenantConfigError)
    expect((error as InvalidTenantConfigError).issues.map((i) => i.path.join('.')).sort()).toEqual(
      ['', 'max', 'negativeTtl', 'staleTtl', 'ttl'].sort(),
    )
  })

  it('does not let a lookup that started before an invalidation repopulate the cache', async () => {
    const cache = new ConfigCache(resolveConfigCacheOptions(), new ManualClock(T0))
    const slow = deferred<TenantConfig | null>()
    const lookup = cache.get('a', () => slow.promise)
    cache.invalidate('a')
    slow.resolve(config('a', 1))
    // The lookup answers what it read (it began before the change)...
    expect((await lookup).metadata).toEqual({ v: 1 })
    // ...but the next one reads again.
    expect((await cache.get('a', async () => config('a', 3))).metadata).toEqual({ v: 3 })
  })

  it('shares one load between concurrent lookups of an id, including its failure', async () => {
    const cache = new ConfigCache(resolveConfigCacheOptions(), new ManualClock(T0))
    let loads = 0
    const slow = deferred<TenantConfig | null>()
    const load = () => {
      loads += 1
      return slow.promise
    }
    const lookups = Array.from({ length: 20 }, () => cache.get('a', load))
    slow.reject(new TenantBackendError('down'))
    const results = await Promise.allSettled(lookups)
    expect(loads).toBe(1)
    expect(results.every((r) => r.status === 'rejected' && isTenantError(r.reason))).toBe(true)
    // A failed load is not remembered: the next lookup tries again.
    expect((await cache.get('a', async () => config('a'))).id).toBe('a')
  })

  it('keeps unknown ids apart from configs, so a flood of them cannot evict real tenants', async () => {
    const cache = new ConfigCache(resolveConfigCacheOptions({ max: 2, negativeMax: 3 }), new ManualClock(T0))
    await cache.get('a', async () => config('a'))
    await cache.get('b', async () => config('b'))
    for (let i = 0; i < 100; i++) {
      await expect(cache.get(`ghost${i}`, async () => null)).rejects.toBeInstanceOf(TenantNotFoundError)
    }
    expect((await cache.get('a', never)).id).toBe('a')
    expect((await cache.get('b', never)).id).toBe('b')
    // Only the most recent unknown ids are remembered (bounded by negativeMax).
    await expect(cache.get('ghost99', never)).rejects.toBeInstanceOf(TenantNotFoundError)
    let reloaded = false
    await expect(
      cache.get('ghost0', async () => {
        reloaded = true
        return null
      }),
    ).rejects.toBeInstanceOf(TenantNotFoundError)
    expect(reloaded).toBe(true)
  })

  it('serves stale answers only for backend failures, not for rows that fail to decode', async () => {
    const clock = new ManualClock(T0)
    const cache = new ConfigCache(resolveConfigCacheOptions({ ttl: 10, staleTtl: 100 }), clock)
    await cache.get('a', async () => config('a'))
    clock.advance(20)
    const decode = new TenantRowDecodeError('tenants', 'a', new SyntaxError('bad'))
    await expect(
      cache.get('a', async () => {
        throw decode
      }),
    ).rejects.toBe(decode)
    const plain = new Error('not a TenantError')
    await expect(
      cache.get('a', async () => {
        throw plain
      }),
    ).rejects.toBe(plain)
    expect(
      (
        await cache.get('a', async () => {
          throw new TenantBackendError('down')
        })
      ).id,
    ).toBe('a')
  })
})

describe('ConfigCache ages', () => {
  it('ages an entry from when its read started, not from when the answer arrived', async () => {
    const clock = new ManualClock(T0)
    const cache = new ConfigCache(resolveConfigCacheOptions({ ttl: 1_000 }), clock)
    const slow = deferred<TenantConfig | null>()
    const lookup = cache.get('a', () => slow.promise)
    // The answer spends 900 ms in flight (network, a busy event loop, a queued connection).
    clock.advance(900)
    slow.resolve(config('a', 1))
    expect((await lookup).metadata).toEqual({ v: 1 })
    clock.advance(99)
    expect((await cache.get('a', never)).metadata).toEqual({ v: 1 })
    // ttl after the read started: a change made while the answer was in flight is seen now.
    clock.advance(1)
    expect((await cache.get('a', async () => config('a', 2))).metadata).toEqual({ v: 2 })
  })

  it('a load that arrives older than ttl is not served again', async () => {
    const clock = new ManualClock(T0)
    const cache = new ConfigCache(resolveConfigCacheOptions({ ttl: 1_000, negativeTtl: 500 }), clock)
    const slow = deferred<TenantConfig | null>()
    const lookup = cache.get('a', () => slow.promise)
    clock.advance(5_000)
    slow.resolve(config('a', 1))
    expect((await lookup).metadata).toEqual({ v: 1 })
    expect((await cache.get('a', async () => config('a', 2))).metadata).toEqual({ v: 2 })
  })

  it('treats an entry as expired when the clock went back past it (negative age)', async () => {
    const clock = new ManualClock(T0 + 3_600_000)
    const cache = new ConfigCache(resolveConfigCacheOptions({ ttl: 30_000, negativeTtl: 5_000 }), clock)
    await cache.get('a', async () => config('a', 1))
    await expect(cache.get('ghost', async () => null)).rejects.toBeInstanceOf(TenantNotFoundError)
    // An NTP correction or a VM restore steps the wall clock back one hour.
    clock.set(T0)
    expect((await cache.get('a', async () => config('a', 2))).metadata).toEqual({ v: 2 })
    expect((await cache.get('ghost', async () => config('ghost'))).id).toBe('ghost')
    // Entries read after the step age normally again.
    clock.advance(29_999)
    expect((await cache.get('a', never)).metadata).toEqual({ v: 2 })
    expect(cache.stats.hits).toBe(1)
  })

  it('does not serve an entry of negative age while the database fails: its age is unknown', async () => {
    const clock = new ManualClock(T0 + 10_000)
    const cache = new ConfigCache(resolveConfigCacheOptions({ ttl: 1_000, staleTtl: 300_000 }), clock)
    await cache.get('a', async () => config('a'))
    const down = async (): Promise<never> => {
      throw new TenantBackendError('down')
    }
    clock.set(T0)
    await expect(cache.get('a', down)).rejects.toBeInstanceOf(TenantBackendError)
    // Within ttl + staleTtl of the read, and after it, the stale copy stands in as before.
    clock.set(T0 + 12_000)
    expect((await cache.get('a', down)).id).toBe('a')
    expect(cache.stats.stale).toBe(1)
  })
})

// The manager's cache against real databases: hits and misses are counted from Drizzle's query
// log, not from the cache's own counters.
describeEachDatabase(
  'DrizzleConfigManager cache',
  (database) => {
    let clock: ManualClock
    beforeEach(async () => {
      await database.current.reset()
      clock = new ManualClock(T0)
    })

    const queriesDuring = async (fn: () => Promise<unknown>) => {
      const start = database.current.queries
      await fn()
      return database.current.queries - start
    }

    it('serves a change made while its read was in flight after at most ttl from the read', async () => {
      const admin = new DrizzleConfigManager(database.current.db, { clock, cache: false })
      const serving = new DrizzleConfigManager(database.current.db, { clock, cache: { ttl: 1_000 } })
      await admin.setTenantConfig({ id: 'acme' })
      // The read starts at T0; its answer (active) arrives 900 ms later on the cache's clock.
      const read = serving.getTenantConfig('acme')
      clock.advance(900)
      expect((await read).status).toBe('active')
      await admin.setTenantConfig({ id: 'acme', status: 'suspended' })
      clock.advance(99)
      expect((await serving.getTenantConfig('acme')).status).toBe('active')
      clock.advance(1)
      expect((await serving.getTenantConfig('acme')).status).toBe('suspended')
    })

    it('serves a change made after the clock stepped back at the next read, not ttl after the step', async () => {
      const admin = new DrizzleConfigManager(database.current.db, { clock, cache: false })
      const serving = new DrizzleConfigManager(database.current.db, {
        clock,
        cache: { ttl: 30_000, negativeTtl: 5_000 },
      })
      await admin.setTenantConfig({ id: 'acme' })
      clock.set(T0 + 3_600_000)
      expect((await serving.getTenantConfig('acme')).status).toBe('active')
      await expect(serving.getTenantConfig('newco')).rejects.toBeInstanceOf(TenantNotFoundError)
      clock.set(T0)
      await admin.setTenantConfig({ id: 'acme', status: 'suspended' })
      await admin.setTenantConfig({ id: 'newco' })
      expect((await serving.getTenantConfig('acme')).status).toBe('suspended')
      expect((await serving.getTenantConfig('newco')).id).toBe('newco')
    })

    it('answers repeat lookups from the cache until ttl, then asks the database again', async () => {
      const manager = new DrizzleConfigManager(database.current.db, { clock, cache: { ttl: 1000 } })
      await new DrizzleConfigManager(database.current.db, { clock, cache: false }).setTenantConfig({
        id: 'a',
      })
      expect(await queriesDuring(() => manager.getTenantConfig('a'))).toBe(1)
      expect(
        await queriesDuring(async () => {
          await manager.getTenantConfig('a')
          await manager.quotaConfig('a')
          await manager.policyConfig('a')
          await manager.rateLimitConfig('a')
        }),
      ).toBe(0)
      clock.advance(999)
      expect(await queriesDuring(() => manager.getTenantConfig('a'))).toBe(0)
      clock.advance(1)
      expect(await queriesDuring(() => manager.getTenantConfig('a'))).toBe(1)
      expect(manager.cacheStats).toEqual({ hits: 5, misses: 2, loads: 2, stale: 0 })
    })

    it('answers the fast read (tenantConfigNow) as a value on a fresh hit, a promise otherwise', async () => {
      const manager = new DrizzleConfigManager(database.current.db, { clock, cache: { ttl: 1000 } })
      await manager.setTenantConfig({ id: 'a' })
      const miss = manager[tenantConfigNow]('a')
      expect(miss).toBeInstanceOf(Promise)
      const loaded = await miss
      // A fresh hit: the same frozen object, with no promise and no query.
      expect(await queriesDuring(async () => expect(manager[tenantConfigNow]('a')).toBe(loaded))).toBe(0)
      await expect(manager.getTenantConfig('ghost')).rejects.toBeInstanceOf(TenantNotFoundError)
      // A fresh negative hit throws, as the promise of getTenantConfig rejects.
      expect(() => manager[tenantConfigNow]('ghost')).toThrow(TenantNotFoundError)
      clock.advance(1000)
      expect(manager[tenantConfigNow]('a')).toBeInstanceOf(Promise)
    })

    it('sees its own writes at once and others after ttl or invalidate()', async () => {
      const manager = new DrizzleConfigManager(database.current.db, { clock, cache: { ttl: 1000 } })
      const other = new DrizzleConfigManager(database.current.db, { clock, cache: false })
      await manager.setTenantConfig({ id: 'a', metadata: { v: 1 } })
      expect((await manager.getTenantConfig('a')).metadata).toEqual({ v: 1 })
      await manager.setTenantConfig({ id: 'a', metadata: { v: 2 } })
      expect((await manager.getTenantConfig('a')).metadata).toEqual({ v: 2 })
      await manager.applyChange({
        tenantId: 'a',
        action: 'tenant.update',
        actor: 'alice',
        apply: () => ({ id: 'a', metadata: { v: 3 } }),
      })
      expect((await manager.getTenantConfig('a')).metadata).toEqual({ v: 3 })
      expect(await queriesDuring(() => manager.getTenantConfig('a'))).toBe(0)

      await other.setTenantConfig({ id: 'a', metadata: { v: 4 } })
      expect((await manager.getTenantConfig('a')).metadata).toEqual({ v: 3 })
      manager.invalidate('a')
      expect((await manager.getTenantConfig('a')).metadata).toEqual({ v: 4 })

      await other.setTenantConfig({ id: 'a', metadata: { v: 5 } })
      manager.invalidate()
      expect((await manager.getTenantConfig('a')).metadata).toEqual({ v: 5 })
      await other.setTenantConfig({ id: 'a', metadata: { v: 6 } })
      clock.advance(1000)
      expect((await manager.getTenantConfig('a')).metadata).toEqual({ v: 6 })

      await manager.deleteTenantConfig('a')
      await expect(manager.getTenantConfig('a')).rejects.toBeInstanceOf(TenantNotFoundError)
      await manager.applyChange({
        tenantId: 'a',
        action: 'tenant.create',
        actor: 'alice',
        apply: () => ({ id: 'a' }),
      })
      expect((await manager.getTenantConfig('a')).metadata).toEqual({})
    })

    it('never keeps an older config cached after concurrent writes through it', async () => {
      const manager = new DrizzleConfigManager(database.current.db, { clock })
      await manager.setTenantConfig({ id: 'a', metadata: { v: -1 } })
      await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          i % 2
            ? manager.setTenantConfig({ id: 'a', metadata: { v: i } })
            : manager.applyChange({
                tenantId: 'a',
                action: 'tenant.update',
                actor: 'alice',
                apply: () => ({ id: 'a', metadata: { v: i } }),
              }),
        ),
      )
      const stored = await new DrizzleConfigManager(database.current.db, { cache: false }).getTenantConfig(
        'a',
      )
      expect(await manager.getTenantConfig('a')).toEqual(stored)
    })

    it('caches unknown ids for negativeTtl, so a flood of bogus ids costs one query per id', async () => {
      const manager = new DrizzleConfigManager(database.current.db, { clock, cache: { negativeTtl: 500 } })
      const bogus = Array.from({ length: 20 }, (_, i) => `bogus-${i}`)
      const flood = async () => {
        const results = await Promise.allSettled(
          Array.from({ length: 10 }, () => bogus.map((id) => manager.getTenantConfig(id))).flat(),
        )
        expect(results.every((r) => r.status === 'rejected' && r.reason instanceof TenantNotFoundError)).toBe(
          true,
        )
      }
      expect(await queriesDuring(flood)).toBe(bogus.length)
      clock.advance(499)
      expect(await queriesDuring(flood)).toBe(0)
      clock.advance(1)
      expect(await queriesDuring(flood)).toBe(bogus.length)
      // Creating one through the manager ends its negative entry at once.
      await manager.setTenantConfig({ id: 'bogus-3' })
      expect((await manager.getTenantConfig('bogus-3')).id).toBe('bogus-3')
    })

    it('with negativeTtl 0 asks the database about unknown ids every time', async () => {
      const manager = new DrizzleConfigManager(database.current.db, { clock, cache: { negativeTtl: 0 } })
      expect(
        await queriesDuring(async () => {
          for (let i = 0; i < 3; i++)
            await expect(manager.getTenantConfig('nobody')).rejects.toBeInstanceOf(TenantNotFoundError)
        }),
      ).toBe(3)
    })

    it('shares one query between concurrent misses for the same id', async () => {
      const manager = new DrizzleConfigManager(database.current.db, { clock })
      await new DrizzleConfigManager(database.current.db, { clock, cache: false }).setTenantConfig({
        id: 'hot',
      })
      await new DrizzleConfigManager(database.current.db, { clock, cache: false }).setTenantConfig({
        id: 'warm',
      })
      const count = await queriesDuring(async () => {
        const results = await Promise.all([
          ...Array.from({ length: 50 }, () => manager.getTenantConfig('hot')),
          ...Array.from({ length: 50 }, () => manager.policyConfig('warm')),
        ])
        expect(results).toHaveLength(100)
      })
      expect(count).toBe(2)
      expect(manager.cacheStats).toMatchObject({ misses: 100, loads: 2 })
    })

    it('queries every time with the cache off', async () => {
      const manager = new DrizzleConfigManager(database.current.db, { clock, cache: false })
      await manager.setTenantConfig({ id: 'a' })
      expect(
        await queriesDuring(() => Promise.all([manager.getTenantConfig('a'), manager.getTenantConfig('a')])),
      ).toBe(2)
      expect(manager.cacheStats).toBeUndefined()
    })

    it('does not hide a corrupted row behind the last good copy', async () => {
      const manager = new DrizzleConfigManager(database.current.db, { clock, cache: { ttl: 1000 } })
      await manager.setTenantConfig({ id: 'a', policy: { allowedModels: ['m'] } })
      await manager.getTenantConfig('a')
      await database.current.query(sql`update tenants set allowed_models = '[1]' where id = 'a'`)
      clock.advance(1000)
      await expect(manager.getTenantConfig('a')).rejects.toBeInstanceOf(TenantRowDecodeError)
    })
  },
  { kinds: withD1 },
)

// A database that starts failing for real: the libSQL client or PGlite instance is closed, or the
// postgres.js pool ended, after the cache was filled. Each test opens its own database for that.
describeEachKind(
  'stale-on-error',
  (kind) => {
    let database: TestDatabase
    beforeEach(async () => {
      database = await openDatabase(kind)
    })
    afterEach(async () => {
      await database.close()
    })

    it('serves cached answers up to staleTtl past ttl while the database is down, then fails', async () => {
      const clock = new ManualClock(T0)
      const manager = new DrizzleConfigManager(database.db, {
        clock,
        cache: { ttl: 1_000, negativeTtl: 500, staleTtl: 5_000 },
      })
      await manager.setTenantConfig({ id: 'cached', metadata: { v: 1 } })
      await manager.getTenantConfig('cached')
      await expect(manager.getTenantConfig('ghost')).rejects.toBeInstanceOf(TenantNotFoundError)

      await database.fail()

      // Fresh entries never needed the database.
      expect((await manager.getTenantConfig('cached')).metadata).toEqual({ v: 1 })
      clock.advance(2_000)
      // Expired: the database is asked, fails, and the stale answers stand in.
      expect((await manager.getTenantConfig('cached')).metadata).toEqual({ v: 1 })
      expect((await manager.quotaConfig('cached')).limits).toEqual([])
      await expect(manager.getTenantConfig('ghost')).rejects.toBeInstanceOf(TenantNotFoundError)
      expect(manager.cacheStats!.stale).toBe(3)

      // Nothing cached: the failure is reported, as a backend error (503), never as "not found".
      const uncached = await manager.getTenantConfig('never-seen').catch((e: unknown) => e)
      expect(uncached).toBeInstanceOf(TenantBackendError)
      expect(uncached).toMatchObject({
        code: 'tenant_backend_unavailable',
        status: 503,
        tenantId: 'never-seen',
      })
      expect((uncached as Error).cause).toBeDefined()
      // Writes fail the same way; the cached copy is unchanged.
      await expect(manager.setTenantConfig({ id: 'cached', metadata: { v: 2 } })).rejects.toBeInstanceOf(
        TenantBackendError,
      )
      await expect(manager.listTenants()).rejects.toBeInstanceOf(TenantBackendError)
      await expect(manager.deleteTenantConfig('cached')).rejects.toBeInstanceOf(TenantBackendError)
      await expect(
        manager.applyChange({ tenantId: 'cached', action: 'tenant.update', actor: 'a', apply: () => null }),
      ).rejects.toBeInstanceOf(TenantBackendError)

      // ttl (1s) + staleTtl (5s) after the config was read: too old to stand in any more.
      clock.set(T0 + 6_000)
      await expect(manager.getTenantConfig('cached')).rejects.toBeInstanceOf(TenantBackendError)
      await expect(manager.getTenantConfig('ghost')).rejects.toBeInstanceOf(TenantBackendError)
    })

    it('with staleTtl 0 fails as soon as an entry expires', async () => {
      const clock = new ManualClock(T0)
      const manager = new DrizzleConfigManager(database.db, { clock, cache: { ttl: 1_000, staleTtl: 0 } })
      await manager.setTenantConfig({ id: 'cached' })
      await manager.getTenantConfig('cached')
      await database.fail()
      expect((await manager.getTenantConfig('cached')).id).toBe('cached')
      clock.advance(1_000)
      await expect(manager.getTenantConfig('cached')).rejects.toBeInstanceOf(TenantBackendError)
    })
  },
  withD1,
)
