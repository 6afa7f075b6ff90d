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

// A keyPrefix in the Cluster hash-tag style ('{app}:') holds braces of its own. The scripts read a
// subject's hash key to find its reset marker; they took the first '}' for the end of the hash
// tag, read the subject's hash as a tenant's, and named its marker '<subject hash>:reset': the hash
// of the subject '<id>:reset', which the reset then overwrote and every consume of the other one
// failed on (WRONGTYPE).
describe.runIf(REDIS_URL)('an ioredis client with a keyPrefix in braces', () => {
  const prefix = uniquePrefix('kpb')
  const keyPrefix = `{${uniquePrefix('app')}}:`
  const plain = new Redis(REDIS_URL!, fastFailOptions)
  const prefixed = new Redis(REDIS_URL!, { ...fastFailOptions, keyPrefix })
  const config: QuotaConfig = {
    limits: [{ window: 'day', requests: 1000 }],
    subjects: [{ match: '*', limits: [{ window: 'month', requests: 50 }] }],
  }
  beforeAll(async () => {
    await Promise.all([plain.connect(), prefixed.connect()])
  })
  afterAll(async () => {
    const keys = await plain.keys(`*${prefix}*`)
    if (keys.length > 0) await plain.del(...keys)
    plain.disconnect()
    prefixed.disconnect()
  })

  for (const algorithm of ['fixed', 'sliding'] as const) {
    const manager = (id: string, receipts = true) => {
      const provider = new TestConfigProvider()
      provider.setQuota(id, config)
      const clock = new ManualClock(Date.UTC(2030, 2, 14, 9, 26, 10))
      return new RedisQuotaManager(provider, {
        redis: prefixed,
        clock,
        prefix,
        timeoutMs,
        algorithm,
        receipts,
      })
    }

    it(`${algorithm}: subjects "model:gpt" and "model:gpt:reset" keep apart through consumes and resets`, async () => {
      const id = randomTenantId('kpb')
      const m = manager(id)
      expect((await m.consume(id, { subject: 'model:gpt:reset' })).allowed).toBe(true)
      expect((await m.consume(id, { subject: 'model:gpt' })).allowed).toBe(true)
      await m.reset(id, { subject: 'model:gpt' })
      const hash = `${keyPrefix}{${prefix}:${id}}:${algorithm === 'fixed' ? 'f' : 's10'}:subject:model:gpt:reset`
      expect(await plain.type(hash)).toBe('hash')
      expect((await m.peek(id, { subject: 'model:gpt:reset' })).windows[0]!.used.requests).toBe(1)
      expect((await m.consume(id, { subject: 'model:gpt:reset' })).allowed).toBe(true)
      expect((await m.peek(id, { subject: 'model:gpt' })).windows[0]!.used.requests).toBe(0)
      await m.reset(id)
      expect((await m.consume(id, { subject: 'model:gpt:reset' })).allowed).toBe(true)
      expect((await m.consume(id, { subject: 'model:gpt' })).allowed).toBe(true)
      expect((await m.peek(id, { subject: 'model:gpt:reset' })).windows[0]!.used.requests).toBe(1)
    })

    it(`${algorithm}: without receipts, a subject reset leaves the sibling's hash a hash`, async () => {
      const id = randomTenantId('kpb')
      const m = manager(id, false)
      await m.consume(id, { subject: 'model:gpt:reset' })
      await m.consume(id, { subject: 'model:gpt' })
      await m.reset(id, { subject: 'model:gpt' })
      expect((await m.consume(id, { subject: 'model:gpt:reset' })).allowed).toBe(true)
      expect((await m.peek(id, { subject: 'model:gpt:reset' })).windows[0]!.used.requests).toBe(2)
    })
  }
})
