import { ManualClock, type QuotaWindow, quotaWindows } from '@tenant/core'
import { randomTenantId, TestConfigProvider } from '@tenant/core/testing'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { REDIS_URL, useTestRedis } from '../test/helpers/redis-env'
import { toScriptClient } from './client'
import { RedisQuotaManager } from './quota-manager'
import { FIXED_WINDOW_SCRIPT, SLIDING_WINDOW_SCRIPT } from './quota-scripts'
import { RedisRateLimiter, TOKEN_BUCKET_SCRIPT } from './rate-limiter'

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

  it('token bucket: gives the tokens back at the current level, capped at the burst', async () => {
    const provider = new TestConfigProvider()
    const id = randomTenantId('rf')
    provider.setRateLimit(id, { requestsPerSecond: 1, burst: 10 })
    const clock = new ManualClock(T0)
    const limiter = new RedisRateLimiter(provider, { redis, clock, prefix, timeoutMs: 5_000 })
    const key = `{${prefix}:${id}}:b`
    const refund = (cost: number) =>
      TOKEN_BUCKET_SCRIPT.run(client, [key], [String(clock.now()), String(cost), '1', '10', 'refund'])

    expect(await limiter.consume(id, { cost: 6 })).toMatchObject({ allowed: true, remaining: 4 })
    clock.advance(1_000) // refilled to 5
    await refund(3)
    expect(await limiter.consume(id, { cost: 8 })).toMatchObject({ allowed: true, remaining: 0 })
    await refund(8)
    expect(await limiter.consume(id, { cost: 8 })).toMatchObject({ allowed: true, remaining: 0 })
    // Past the burst the bucket is full, which is no bucket at all.
    await refund(50)
    expect(await redis.exists(key)).toBe(0)
    expect(await limiter.consume(id, { cost: 10 })).toMatchObject({ allowed: true, remaining: 0 })
    // A refund into a full bucket (no key) changes nothing.
    await redis.del(key)
    await refund(3)
    expect(await redis.exists(key)).toBe(0)
  })
})
