import { ManualClock, type QuotaWindow, quotaWindows } from '@tenant/core'
import { randomTenantId, TestConfigProvider } from '@tenant/core/testing'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { REDIS_URL, useTestRedis } from '../test/helpers/redis-env'
import { toScriptClient } from './client'
import { RedisQuotaManager } from './quota-manager'
import { FIXED_WINDOW_SCRIPT, SLIDING_WINDOW_SCRIPT } from './quota-scripts'
import { RESET_BUCKET_SCRIPT, refundRecordKey, TOKEN_BUCKET_SCRIPT } from './rate-limiter'

// The refund op of each script, driven directly: it takes an admission back from the windows or
// buckets its decision time names, never below zero, and never from a window that has moved on.
// The managers send it when an admitted reply arrives after its caller timed out (late-reply
// tests in bursts.test.ts); here the scripts are called by hand on an application clock.

const MINUTE = 60_000
const T0 = Date.UTC(2030, 2, 14, 9, 26, 10)

type Limit = { window: QuotaWindow; requests?: number; tokens?: number }

describe.runIf(REDIS_URL)('refund op of the quota and rate-limit scripts', () => {
  const { client: redis, prefix } = useTestRedis('refund')
  const client = toScriptClient(redis)

  function setup(limits: Limit[], algorithm: 'fixed' | 'sliding' = 'fixed') {
    const provider = new TestConfigProvider()
    const id = randomTenantId('rf')
    provider.setQuota(id, { limits })
    const clock = new ManualClock(T0)
    const manager = new RedisQuotaManager(provider, { redis, clock, prefix, timeoutMs: 5_000, algorithm })
    const key = `{${prefix}:${id}}:${algorithm === 'fixed' ? 'f' : 's10'}`
    // ARGV after the cost, as the manager builds them (limits are in core's order: shortest first).
    const limitArgs = limits.flatMap((l) => [l.window, String(l.requests ?? 0), String(l.tokens ?? 0)])
    const slidingArgs = [
      '10',
      ...limits.flatMap((l) => [
        l.window,
        String(l.requests ?? 0),
        String(l.tokens ?? 0),
        String({ minute: 6_000, hour: 360_000, day: 8_640_000, month: 259_200_000 }[l.window]),
      ]),
    ]
    const refund = (decidedAt: number, requests: number, tokens: number) =>
      (algorithm === 'fixed' ? FIXED_WINDOW_SCRIPT : SLIDING_WINDOW_SCRIPT).run(
        client,
        [key],
        [
          String(decidedAt),
          'refund',
          String(requests),
          String(tokens),
          ...(algorithm === 'fixed' ? limitArgs : slidingArgs),
        ],
      )
    const used = async () => (await manager.peek(id)).windows.map((w) => w.used)
    return { id, clock, manager, key, refund, used }
  }

  it.each(['fixed', 'sliding'] as const)(
    '%s: a refund of an admission decided before a reset takes nothing from the counts made after it',
    async (algorithm) => {
      const t = setup([{ window: 'day', requests: 2 }], algorithm)
      // The admission whose reply comes late: decided at T0.
      await t.manager.consume(t.id)
      t.clock.advance(1_000)
      await t.manager.reset(t.id)
      t.clock.advance(1_000)
      await t.manager.consume(t.id)
      await t.manager.consume(t.id)
      await t.refund(T0, 1, 0)
      expect(await t.used()).toEqual([{ requests: 2, tokens: 0 }])
      expect((await t.manager.consume(t.id)).allowed).toBe(false)
      // A refund of an admission decided after the reset still applies.
      await t.refund(T0 + 2_000, 1, 0)
      expect(await t.used()).toEqual([{ requests: 1, tokens: 0 }])
    },
  )

  it('fixed: takes the charge back from every window of its decision time, in place', async () => {
    const t = setup([
      { window: 'minute', requests: 10, tokens: 1000 },
      { window: 'day', tokens: 5000 },
    ])
    await t.manager.consume(t.id, { tokens: 100 })
    await t.manager.consume(t.id, { tokens: 30 })
    const ttl = await redis.pttl(t.key)
    await t.refund(T0, 1, 30)
    expect(await t.used()).toEqual([
      { requests: 1, tokens: 100 },
      { requests: 1, tokens: 100 },
    ])
    // In place: the key keeps the expiry of the windows it counts.
    expect(await redis.pttl(t.key)).toBeGreaterThan(ttl - 1_000)
    // The next admission counts on from there.
    expect(await t.manager.consume(t.id, { tokens: 5 })).toMatchObject({ allowed: true })
    expect(await t.used()).toEqual([
      { requests: 2, tokens: 105 },
      { requests: 2, tokens: 105 },
    ])
  })

  it('fixed: leaves a window that started afresh since the charge alone, and stops at zero', async () => {
    const t = setup([
      { window: 'minute', requests: 10 },
      { window: 'hour', requests: 100 },
    ])
    await t.manager.consume(t.id, { requests: 2 })
    t.clock.advance(MINUTE) // a new minute; the hour goes on
    await t.manager.consume(t.id, { requests: 3 })
    // Refund the first admission (decided at T0): its minute is gone, its hour is current.
    await t.refund(T0, 2, 0)
    expect(await t.used()).toEqual([
      { requests: 3, tokens: 0 },
      { requests: 3, tokens: 0 },
    ])
    // More than is counted: down to zero, and the emptied counters are gone.
    await t.refund(T0 + MINUTE, 50, 0)
    expect(await t.used()).toEqual([
      { requests: 0, tokens: 0 },
      { requests: 0, tokens: 0 },
    ])
    expect(await redis.exists(t.key)).toBe(0)
  })

  it('sliding: takes the charge back from the bucket it went into, not from later ones', async () => {
    const t = setup([{ window: 'minute', requests: 10, tokens: 1000 }], 'sliding')
    await t.manager.consume(t.id, { tokens: 40 })
    t.clock.advance(6_000) // the next bucket (a minute in 10 buckets of 6 s)
    await t.manager.consume(t.id, { tokens: 7 })
    await t.refund(T0, 1, 40)
    const start = Math.floor(T0 / 6_000) * 6_000
    // The first bucket is empty, so it is gone; the second is untouched.
    expect(await redis.hget(t.key, 'minute')).toBe(`${start + 6_000},1,7`)
    expect(await t.used()).toEqual([{ requests: 1, tokens: 7 }])
    // A bucket no longer held (refunded, or left the window) is not touched again; nothing goes below zero.
    await t.refund(T0, 1, 40)
    await t.refund(T0 + 6_000, 5, 500)
    expect(await t.used()).toEqual([{ requests: 0, tokens: 0 }])
    expect(await redis.exists(t.key)).toBe(0)
  })

  // Windows and clock steps per algorithm: every calendar window for fixed; minutes and hours,
  // with steps inside a bucket or two, for sliding.
  it.each([
    ['fixed', [...quotaWindows], 2 * MINUTE],
    ['sliding', ['minute', 'hour'], 20_000],
  ] as const)(
    '%s: an admission refunded at once leaves the state as it was, on random histories',
    async (algorithm, windowChoices, maxStep) => {
      await fc.assert(
        fc.asyncProperty(
          fc.subarray([...windowChoices] as QuotaWindow[], { minLength: 1 }),
          fc.array(fc.tuple(fc.nat(3), fc.nat(500), fc.nat(maxStep)), { maxLength: 12 }),
          fc.tuple(fc.nat(3), fc.nat(500)),
          async (windows, history, [requests, tokens]) => {
            const t = setup(
              windows.map((window) => ({ window, requests: 20, tokens: 3_000 })),
              algorithm,
            )
            for (const [r, k, advance] of history) {
              await t.manager.consume(t.id, { requests: r, tokens: k })
              t.clock.advance(advance)
            }
            const before = await t.used()
            const decision = await t.manager.consume(t.id, { requests, tokens })
            if (decision.allowed) await t.refund(t.clock.now(), requests, tokens)
            expect(await t.used()).toEqual(before)
          },
        ),
        { numRuns: 40 },
      )
    },
  )

  describe('token bucket', () => {
    // A take's reply as the limiter passes it to a refund: decision time, then the bucket before it.
    const takeOf = (reply: unknown) => {
      const [now, , tokens, updatedAt] = reply as unknown[]
      return [
        String(now),
        tokens === undefined ? '' : String(tokens),
        updatedAt === undefined ? '' : String(updatedAt),
      ]
    }
    function bucket(rate: number, burst: number) {
      const key = `{${prefix}:${randomTenantId('rb')}}:b`
      const keys = [key, refundRecordKey(key)]
      const config = [String(rate), String(burst)]
      const take = async (at: number, cost: number) =>
        (await TOKEN_BUCKET_SCRIPT.run(client, [key], [String(at), String(cost), ...config])) as unknown[]
      const refund = (at: number, cost: number, reply: unknown) =>
        TOKEN_BUCKET_SCRIPT.run(client, keys, [
          String(at),
          String(cost),
          ...config,
          'refund',
          ...takeOf(reply),
        ])
      const tokens = async () => {
        const stored = await redis.hget(key, 'tokens')
        return stored === null ? burst : Number(stored)
      }
      return { key, take, refund, tokens }
    }

    it('gives a take back at the current level, capped at the burst, while no other take ran', async () => {
      const b = bucket(1, 10)
      const x = await b.take(T0, 6)
      expect(await b.tokens()).toBe(4)
      // A second later the bucket holds 5; without the take it would be full: 5 back, no key.
      await b.refund(T0 + 1_000, 6, x)
      expect(await redis.exists(b.key)).toBe(0)
      // Full: nothing to give back, and nothing is written.
      await b.refund(T0 + 1_000, 6, x)
      expect(await redis.exists(b.key)).toBe(0)
      // Without the take's reply nothing is proven: nothing is given back.
      await b.take(T0 + 1_000, 3)
      await TOKEN_BUCKET_SCRIPT.run(client, [b.key], [String(T0 + 1_000), '3', '1', '10', 'refund'])
      expect(await b.tokens()).toBe(7)
    })

    it('after a later take, gives back only what the cap cannot have wasted', async () => {
      // Burst 4 at 1/s: X takes 3 (1 left), Y takes 3 two seconds later (0 left). Without X the
      // bucket sat full until Y, which would have left 1: 1 is owed, not 3.
      const b = bucket(1, 4)
      const x = await b.take(T0, 3)
      await b.take(T0 + 2_000, 3)
      await b.refund(T0 + 2_000, 3, x)
      expect(await b.tokens()).toBe(1)
      // Full again before the later take: none of what is missing is the first take's.
      const c = bucket(1, 4)
      const early = await c.take(T0, 2)
      await c.take(T0 + 5_000, 3)
      await c.refund(T0 + 5_000, 2, early)
      expect(await c.tokens()).toBe(1)
    })

    it('gives every take of a burst back, whatever the order of the voids', async () => {
      const b = bucket(0.001, 10)
      const replies = [await b.take(T0, 3), await b.take(T0, 3), await b.take(T0, 3)]
      for (const i of [1, 0, 2]) await b.refund(T0 + 1, 3, replies[i])
      expect(await redis.exists(b.key)).toBe(0)
    })

    it('gives nothing back once a take followed a refund made since the take (the refund record)', async () => {
      // Burst 2 at 0.5/s: A and B take 1 each; A's refund gives 1 back; C takes 1 after 300 ms.
      // Without A and B, C would leave 1; B's line (0.15 by then) misses the token C took from
      // A's refund, so refunding B would make 1.15.
      const b = bucket(0.5, 2)
      const a = await b.take(T0, 1)
      const later = await b.take(T0, 1)
      await b.refund(T0, 1, a)
      expect(await b.tokens()).toBe(1)
      expect(await redis.hget(refundRecordKey(b.key), 'at')).toBe(String(T0))
      expect(await redis.pttl(refundRecordKey(b.key))).toBeGreaterThan(590_000)
      await b.take(T0 + 300, 1)
      await b.refund(T0 + 300, 1, later)
      expect(await b.tokens()).toBeCloseTo(0.15)
      // A refund made before the take is no reason: a take after it is refunded as usual.
      const d = await b.take(T0 + 300, 0)
      expect(d[1]).toBe(1)
      const e = await b.take(T0 + 2_300, 1)
      await b.refund(T0 + 2_300, 1, e)
      expect(await b.tokens()).toBeCloseTo(1.15)
    })

    it('gives nothing back for a take decided before a reset, or in its millisecond', async () => {
      // Burst 10, no refill to speak of: X takes 5, the bucket is reset (full again), Y takes 8.
      // X's void must not land in the new bucket: 2 left, not 7 (15 admitted against a burst of 10).
      const b = bucket(0.001, 10)
      const reset = (at: number) =>
        RESET_BUCKET_SCRIPT.run(client, [b.key, refundRecordKey(b.key)], [String(at)])
      const x = await b.take(T0, 5)
      await reset(T0 + 1)
      const y = await b.take(T0 + 2, 8)
      await b.refund(T0 + 3, 5, x)
      expect(await b.tokens()).toBeCloseTo(2)
      // A take in the reset's own millisecond is taken for one before it: nothing is given back.
      await reset(T0 + 2)
      const z = await b.take(T0 + 2, 4)
      await b.refund(T0 + 3, 4, z)
      expect(await b.tokens()).toBeCloseTo(6)
      // A take after the reset is refunded as usual; an earlier one (Y) still gives nothing.
      const w = await b.take(T0 + 4, 3)
      await b.refund(T0 + 5, 3, w)
      await b.refund(T0 + 5, 8, y)
      expect(await b.tokens()).toBeCloseTo(6)
      // A reset on a clock that went back keeps the later time.
      await reset(T0 - 1_000)
      expect(await redis.hget(refundRecordKey(b.key), 'reset')).toBe(String(T0 + 2))
      expect(await redis.pttl(refundRecordKey(b.key))).toBeGreaterThan(590_000)
      // A bucket that is gone is full: a reset writes nothing (no key for a tenant that took nothing).
      const fresh = bucket(0.001, 10)
      await RESET_BUCKET_SCRIPT.run(client, [fresh.key, refundRecordKey(fresh.key)], [String(T0)])
      expect(await redis.exists(fresh.key, refundRecordKey(fresh.key))).toBe(0)
    })
  })
})
