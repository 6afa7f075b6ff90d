import { ManualClock, type QuotaConfig, TenantCache } from '@tenant/core'
import {
  randomTenantId,
  TestConfigProvider,
  testCacheStore,
  testQuotaManager,
  testRateLimiter,
} from '@tenant/core/testing'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fastFailOptions, REDIS_URL, uniquePrefix } from '../test/helpers/redis-env'
import { RedisTenantCacheStore } from './cache-store'
import { RedisQuotaManager } from './quota-manager'
import { RedisRateLimiter } from './rate-limiter'

// ioredis puts its `keyPrefix` before every key a command names (KEYS of a script included) and
// before nothing else: a script that builds a key name out of an argument, or a SCAN pattern,
// would miss the app's own keys and reach those of an app on the same Redis without the prefix.
// The glob characters in this prefix check that a pattern built from it matches it literally.
const timeoutMs = 5_000
const suite = { timeout: 30_000 }

describe.runIf(REDIS_URL)('an ioredis client with a keyPrefix', () => {
  const prefix = uniquePrefix('kp')
  const keyPrefix = `${uniquePrefix('app')}[a*]?\\:`
  const plain = new Redis(REDIS_URL!, fastFailOptions)
  const prefixed = new Redis(REDIS_URL!, { ...fastFailOptions, keyPrefix })
  beforeAll(async () => {
    await Promise.all([plain.connect(), prefixed.connect()])
  })
  afterAll(async () => {
    // Everything this file wrote, through either client: names holding the store prefix.
    let cursor = '0'
    do {
      const [next, keys] = await plain.scan(cursor, 'MATCH', `*${prefix}*`, 'COUNT', 1000)
      cursor = next
      if (keys.length > 0) await plain.del(...keys)
    } while (cursor !== '0')
    plain.disconnect()
    prefixed.disconnect()
  })

  testQuotaManager(
    'RedisQuotaManager fixed',
    ({ provider, clock }) => new RedisQuotaManager(provider, { redis: prefixed, clock, prefix, timeoutMs }),
    { algorithm: 'fixed', ...suite },
  )
  testQuotaManager(
    'RedisQuotaManager sliding',
    ({ provider, clock }) =>
      new RedisQuotaManager(provider, { redis: prefixed, clock, prefix, timeoutMs, algorithm: 'sliding' }),
    { algorithm: 'sliding', ...suite },
  )
  testRateLimiter(
    'RedisRateLimiter',
    ({ provider, clock }) => new RedisRateLimiter(provider, { redis: prefixed, clock, prefix, timeoutMs }),
    suite,
  )
  testCacheStore('RedisTenantCacheStore', ({ clock, tenantCachePrefix }) => {
    return new RedisTenantCacheStore({ redis: prefixed, prefix, clock, tenantCachePrefix, timeoutMs })
  })

  const subjects: QuotaConfig = {
    limits: [{ window: 'minute', requests: 100 }],
    subjects: [{ match: 'model:*', limits: [{ window: 'minute', requests: 2 }] }],
  }

  it("reset() of a tenant clears its subjects' counters and leaves another app's alone", async () => {
    const provider = new TestConfigProvider()
    const id = randomTenantId('kp')
    provider.setQuota(id, subjects)
    // Another app on the same Redis without the key prefix: same store prefix, same tenant id.
    const other = new RedisQuotaManager(provider, { redis: plain, prefix, timeoutMs })
    const mine = new RedisQuotaManager(provider, { redis: prefixed, prefix, timeoutMs })
    for (const quotas of [other, mine]) {
      expect((await quotas.consume(id, { subject: 'model:x' })).allowed).toBe(true)
      expect((await quotas.consume(id, { subject: 'model:x' })).allowed).toBe(true)
      expect((await quotas.consume(id, { subject: 'model:x' })).allowed).toBe(false)
    }
    await mine.reset(id)
    const usage = await mine.peek(id, { subject: 'model:x' })
    expect(usage.windows.find((window) => window.subject === 'model:x')?.remaining).toEqual({ requests: 2 })
    expect((await mine.consume(id, { subject: 'model:x' })).allowed).toBe(true)
    expect((await other.consume(id, { subject: 'model:x' })).allowed).toBe(false)
  })

  it("deletePrefix over every tenant clears the app's own groups and leaves another app's alone", async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1))
    const storePrefix = `${prefix}:span`
    const myStore = new RedisTenantCacheStore({ redis: prefixed, prefix: storePrefix, clock, timeoutMs })
    const mine = new TenantCache(myStore)
    const other = new TenantCache(
      new RedisTenantCacheStore({ redis: plain, prefix: storePrefix, clock, timeoutMs }),
    )
    for (const cache of [mine, other]) {
      await cache.set('acme', 'a', 1)
      await cache.set('globex', 'g', 2)
    }
    // The empty prefix spans every tenant: a SCAN over the store's groups.
    expect(await myStore.deletePrefix('')).toBe(2)
    expect(await mine.get('acme', 'a')).toBeUndefined()
    expect(await mine.get('globex', 'g')).toBeUndefined()
    expect(await other.get('acme', 'a')).toBe(1)
    expect(await other.get('globex', 'g')).toBe(2)
  })
})
