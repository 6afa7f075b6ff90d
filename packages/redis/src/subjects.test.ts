import {
  InMemoryQuotaManager,
  ManualClock,
  type QuotaConfig,
  type QuotaManager,
  SlidingWindowQuotaManager,
  TenantBackendError,
} from '@tenant/core'
import { randomTenantId, TestConfigProvider } from '@tenant/core/testing'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { counting } from '../test/helpers/counting'
import { REDIS_URL, usePrivateRedis, useTestRedis } from '../test/helpers/redis-env'
import { CAN_SPAWN_REDIS } from '../test/helpers/redis-server'
import { toScriptClient } from './client'
import { RedisQuotaManager } from './quota-manager'
import { FIXED_SUBJECT_SCRIPT } from './subject-scripts'

// Subjects on Redis beyond the conformance suite: one round trip per decision, the subject index
// (bound, tenant reset), late replies refunded on both sides, and differential histories against
// core's in-memory managers.

const T0 = Date.UTC(2030, 2, 14, 9, 26)

const config: QuotaConfig = {
  limits: [{ window: 'minute', requests: 8, tokens: 1000 }],
  subjects: [
    { match: 'key:*', limits: [{ window: 'minute', requests: 3, tokens: 400 }] },
    { match: 'key:vip', limits: [{ window: 'hour', requests: 6 }] },
  ],
}

describe.runIf(REDIS_URL)('RedisQuotaManager subjects', () => {
  const { client: redis, prefix } = useTestRedis('subjects')

  function setup(algorithm: 'fixed' | 'sliding' = 'fixed', quota: QuotaConfig = config) {
    const provider = new TestConfigProvider()
    const id = randomTenantId('subj')
    provider.setQuota(id, quota)
    const clock = new ManualClock(T0)
    const client = counting(toScriptClient(redis))
    const manager = new RedisQuotaManager(provider, {
      redis: client,
      clock,
      prefix,
      timeoutMs: 5_000,
      algorithm,
    })
    return { provider, id, clock, client, manager }
  }

  for (const algorithm of ['fixed', 'sliding'] as const) {
    it(`decides tenant and subject in exactly one script call (${algorithm})`, async () => {
      const { id, client, manager } = setup(algorithm)
      await manager.consume(id, { subject: 'key:1' })
      expect(client.calls).toBe(1)
      await manager.consume(id, { tokens: 10, subject: 'key:1' })
      expect(client.calls).toBe(2)
      await manager.adjust(id, { tokens: 5, subject: 'key:1' })
      expect(client.calls).toBe(3)
      // A denial is one call too.
      await manager.consume(id, { tokens: 10_000, subject: 'key:1' })
      expect(client.calls).toBe(4)
    })
  }

  it('indexes subjects under the tenant, and a tenant reset deletes them all', async () => {
    const { id, manager } = setup()
    for (const s of ['key:1', 'key:2', 'key:vip']) await manager.consume(id, { subject: s })
    const index = `{${prefix}:${id}}:f:subjects`
    expect((await redis.zrange(index, '0', '-1')).sort()).toEqual(['key:1', 'key:2', 'key:vip'])
    expect(await redis.pttl(index)).toBeGreaterThan(0)
    expect(await redis.exists(`{${prefix}:${id}}:f:subject:key:1`)).toBe(1)
    await manager.reset(id, { subject: 'key:2' })
    expect((await redis.zrange(index, '0', '-1')).sort()).toEqual(['key:1', 'key:vip'])
    await manager.reset(id)
    expect(
      await redis.exists(index, `{${prefix}:${id}}:f:subject:key:1`, `{${prefix}:${id}}:f:subject:key:vip`),
    ).toBe(0)
  })

  it('keeps at most the bound of subjects in the index, deleting the one that expires first', async () => {
    const id = randomTenantId('subj')
    const key = `{${prefix}:${id}}:f`
    const client = toScriptClient(redis)
    const now = String(T0)
    // Two subjects on a one-minute window and one on an hour, with a bound of 2.
    const consume = (subject: string, window: string) =>
      FIXED_SUBJECT_SCRIPT.run(
        client,
        [key, `${key}:subject:${subject}`, `${key}:subjects`],
        [now, 'consume', subject, '2', '0', '1', '0', window, '10', '0'],
      )
    await consume('hourly', 'hour')
    await consume('early', 'minute')
    await consume('new', 'hour')
    expect((await redis.zrange(`${key}:subjects`, '0', '-1')).sort()).toEqual(['hourly', 'new'])
    expect(await redis.exists(`${key}:subject:early`)).toBe(0)
    expect(await redis.exists(`${key}:subject:hourly`, `${key}:subject:new`)).toBe(2)
  })

  it('is all-or-nothing under concurrency: tenant usage is the sum of its subjects, within every limit', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ subject: fc.constantFrom('key:a', 'key:b', 'key:vip'), tokens: fc.nat(150) }), {
          minLength: 1,
          maxLength: 40,
        }),
        async (calls) => {
          const { id, manager } = setup()
          const decisions = await Promise.all(calls.map((c) => manager.consume(id, c)))
          const admitted = calls.filter((_, i) => decisions[i]!.allowed)
          const tenant = (await manager.peek(id)).windows[0]!.used
          expect(tenant.requests).toBe(admitted.length)
          expect(tenant.tokens).toBe(admitted.reduce((sum, c) => sum + c.tokens, 0))
          expect(tenant.requests).toBeLessThanOrEqual(8)
          expect(tenant.tokens).toBeLessThanOrEqual(1000)
          let requests = 0
          for (const s of ['key:a', 'key:b', 'key:vip']) {
            const used = (await manager.peek(id, { subject: s })).windows[0]?.used ?? {
              requests: 0,
              tokens: 0,
            }
            const mine = admitted.filter((c) => c.subject === s)
            expect(used.requests).toBe(mine.length)
            requests += used.requests
          }
          expect(requests).toBe(tenant.requests)
        },
      ),
      { numRuns: 25 },
    )
  }, 60_000)

  for (const algorithm of ['fixed', 'sliding'] as const) {
    it(`equals the in-memory manager on random histories with subjects (${algorithm})`, async () => {
      const op = fc.oneof(
        fc.record({
          kind: fc.constant('consume' as const),
          requests: fc.nat(2),
          tokens: fc.nat(300),
          subject: fc.constantFrom(undefined, 'key:a', 'key:vip', 'user:1'),
        }),
        fc.record({
          kind: fc.constant('adjust' as const),
          tokens: fc.integer({ min: -200, max: 200 }),
          subject: fc.constantFrom(undefined, 'key:a', 'key:vip'),
        }),
        fc.record({
          kind: fc.constant('peek' as const),
          subject: fc.constantFrom(undefined, 'key:a', 'key:vip'),
        }),
        fc.record({ kind: fc.constant('advance' as const), ms: fc.oneof(fc.nat(5_000), fc.nat(120_000)) }),
      )
      await fc.assert(
        fc.asyncProperty(fc.array(op, { maxLength: 30 }), async (ops) => {
          const { provider, id, clock, manager } = setup(algorithm)
          const reference: QuotaManager =
            algorithm === 'fixed'
              ? new InMemoryQuotaManager(provider, { clock })
              : new SlidingWindowQuotaManager(provider, { clock })
          for (const o of ops) {
            if (o.kind === 'advance') {
              clock.advance(o.ms)
              continue
            }
            const subject = o.subject === undefined ? {} : { subject: o.subject }
            const call = (m: QuotaManager) =>
              o.kind === 'consume'
                ? m.consume(id, { requests: o.requests, tokens: o.tokens, ...subject })
                : o.kind === 'adjust'
                  ? m.adjust(id, { tokens: o.tokens, ...subject })
                  : m.peek(id, subject)
            expect(await call(manager), JSON.stringify(o)).toEqual(await call(reference))
          }
        }),
        { numRuns: 40 },
      )
    }, 120_000)
  }
})

describe.runIf(CAN_SPAWN_REDIS)('RedisQuotaManager subjects, late replies', () => {
  const server = usePrivateRedis()

  it('refunds a timed-out admission from both the tenant and the subject', async () => {
    const provider = new TestConfigProvider()
    const id = randomTenantId('late')
    provider.setQuota(id, config)
    // One fixed instant for both clients: on Redis's own clock the minute could roll over during
    // the paused second and empty the window being checked.
    const clock = new ManualClock(T0)
    const manager = new RedisQuotaManager(provider, {
      redis: server.client,
      prefix: 'late',
      timeoutMs: 100,
      clock,
    })
    expect((await manager.consume(id, { tokens: 50, subject: 'key:a' })).allowed).toBe(true)
    await server.admin.call('CLIENT', 'PAUSE', '1000', 'ALL')
    const late = await Promise.allSettled(
      [1, 2].map(() => manager.consume(id, { tokens: 20, subject: 'key:a' })),
    )
    for (const outcome of late) {
      expect(outcome.status).toBe('rejected')
      expect((outcome as PromiseRejectedResult).reason).toBeInstanceOf(TenantBackendError)
    }
    await manager.drain()
    const reader = new RedisQuotaManager(provider, {
      redis: server.admin,
      prefix: 'late',
      timeoutMs: 5_000,
      clock,
    })
    expect((await reader.peek(id)).windows[0]!.used).toEqual({ requests: 1, tokens: 50 })
    expect((await reader.peek(id, { subject: 'key:a' })).windows[0]!.used).toEqual({
      requests: 1,
      tokens: 50,
    })
  }, 30_000)
})
