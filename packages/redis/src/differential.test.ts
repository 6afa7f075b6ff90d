import {
  calendarWindow,
  InMemoryQuotaManager,
  ManualClock,
  type QuotaConfig,
  type QuotaManager,
  type QuotaWindow,
  quotaWindows,
  SlidingWindowQuotaManager,
  TokenBucketRateLimiter,
} from '@tenant/core'
import { randomTenantId, TestConfigProvider } from '@tenant/core/testing'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { REDIS_URL, useTestRedis } from '../test/helpers/redis-env'
import { toScriptClient } from './client'
import { RedisQuotaManager } from './quota-manager'
import { CALENDAR_PROBE_SCRIPT } from './quota-scripts'
import { RedisRateLimiter } from './rate-limiter'

// "One algorithm, several storages": random histories run against core's in-memory managers and
// the Redis ones on the same ManualClock must produce identical decisions, field for field.

// 0001-01-01T00:00:00Z (Date.UTC maps years 0 to 99 onto 1900 to 1999).
const YEAR_1 = -62_135_596_800_000
const YEAR_9999 = Date.UTC(9999, 11, 31, 23, 59, 59, 999)

type Op =
  | { kind: 'consume'; requests: number; tokens: number }
  | { kind: 'adjust'; tokens: number }
  | { kind: 'advance'; ms: number }
  | { kind: 'peek' }

const huge = fc.integer({ min: 2 ** 52, max: Number.MAX_SAFE_INTEGER })

// `scale` 1: small numbers that saturate quickly; 1e12: token counts in the trillions, where
// floating point would show any difference in how the two sides arrange the arithmetic.
const opArb = (scale: number): fc.Arbitrary<Op> =>
  fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        kind: fc.constant('consume' as const),
        requests: fc.nat(3),
        tokens: fc.nat(400 * scale),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('adjust' as const),
        tokens: fc.integer({ min: -300 * scale, max: 300 * scale }),
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        kind: fc.constant('advance' as const),
        ms: fc.oneof(fc.nat(2_000), fc.nat(90_000), fc.nat(3 * 86_400_000)),
      }),
    },
    { weight: 1, arbitrary: fc.constant({ kind: 'peek' as const }) },
    {
      // A cost near 2^53: refused by a limited dimension, saturating an unlimited one.
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('consume' as const),
        requests: fc.oneof(fc.nat(3), huge),
        tokens: huge,
      }),
    },
  )

const limitArb = (window: QuotaWindow, scale: number) =>
  fc.record({
    window: fc.constant(window),
    requests: fc.nat(12),
    tokens: fc.oneof(fc.constant(0), fc.nat(2_000 * scale)),
  })

const configArb = (scale: number): fc.Arbitrary<QuotaConfig> =>
  fc
    .subarray([...quotaWindows], { minLength: 1 })
    .chain((windows) => fc.tuple(...windows.map((w) => limitArb(w, scale))))
    .map((limits) => ({ limits }))

// Starts near calendar boundaries, where the arithmetic is most likely to go wrong.
const startArb = fc.oneof(
  fc.constantFrom(
    Date.UTC(2030, 0, 31, 23, 59, 30),
    Date.UTC(2032, 1, 29, 23, 59, 58),
    Date.UTC(2030, 11, 31, 23, 58),
    Date.UTC(2100, 1, 28, 23, 59, 59),
  ),
  fc.integer({ min: Date.UTC(2000, 0, 1), max: Date.UTC(2100, 0, 1) }),
)

describe.runIf(REDIS_URL)('Redis stores decide exactly like core', () => {
  const { client: redis, prefix } = useTestRedis('differential')

  it('the Lua calendar windows equal calendarWindow from year 1 to 9999', async () => {
    const client = toScriptClient(redis)
    const probe = async (window: QuotaWindow, t: number) => {
      const [start, end] = (await CALENDAR_PROBE_SCRIPT.run(client, [], [window, String(t)])) as string[]
      return { start: Number(start), end: Number(end) }
    }
    // Every month boundary (first and last ms) from 1999 to 2101, leap years included.
    for (let year = 1999; year <= 2101; year++) {
      for (let month = 0; month < 12; month++) {
        const first = Date.UTC(year, month, 1)
        expect(await probe('month', first)).toEqual(calendarWindow('month', first))
        expect(await probe('month', first - 1)).toEqual(calendarWindow('month', first - 1))
      }
    }
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...quotaWindows),
        fc.integer({ min: YEAR_1, max: YEAR_9999 }),
        async (w, t) => {
          expect(await probe(w, t)).toEqual(calendarWindow(w, t))
        },
      ),
      { numRuns: 2_000 },
    )
  }, 60_000)

  async function replay(
    reference: QuotaManager,
    redisManager: QuotaManager,
    clock: ManualClock,
    id: string,
    ops: Op[],
  ): Promise<void> {
    for (const op of ops) {
      if (op.kind === 'advance') {
        clock.advance(op.ms)
        continue
      }
      const call = (m: QuotaManager) =>
        op.kind === 'consume'
          ? m.consume(id, { requests: op.requests, tokens: op.tokens })
          : op.kind === 'adjust'
            ? m.adjust(id, { tokens: op.tokens })
            : m.peek(id)
      expect(await call(redisManager), JSON.stringify(op)).toEqual(await call(reference))
    }
  }

  it.each([1, 1e12])(
    'fixed windows: RedisQuotaManager equals InMemoryQuotaManager (scale %d)',
    async (scale) => {
      await fc.assert(
        fc.asyncProperty(
          configArb(scale),
          startArb,
          fc.array(opArb(scale), { maxLength: 40 }),
          async (config, start, ops) => {
            const clock = new ManualClock(start)
            const provider = new TestConfigProvider()
            const id = randomTenantId('diff')
            provider.setQuota(id, config)
            const reference = new InMemoryQuotaManager(provider, { clock })
            const redisManager = new RedisQuotaManager(provider, { redis, clock, prefix, timeoutMs: 5_000 })
            await replay(reference, redisManager, clock, id, ops)
          },
        ),
        { numRuns: 60 },
      )
    },
    120_000,
  )

  it.each([1, 1e12])(
    'sliding windows: RedisQuotaManager equals SlidingWindowQuotaManager at several precisions (scale %d)',
    async (scale) => {
      await fc.assert(
        fc.asyncProperty(
          configArb(scale),
          startArb,
          fc.constantFrom(1, 6, 10, 60),
          fc.array(opArb(scale), { maxLength: 40 }),
          async (config, start, precision, ops) => {
            const clock = new ManualClock(start)
            const provider = new TestConfigProvider()
            const id = randomTenantId('diff')
            provider.setQuota(id, config)
            const reference = new SlidingWindowQuotaManager(provider, { clock, precision })
            const redisManager = new RedisQuotaManager(provider, {
              redis,
              clock,
              prefix,
              timeoutMs: 5_000,
              algorithm: 'sliding',
              precision,
            })
            await replay(reference, redisManager, clock, id, ops)
          },
        ),
        { numRuns: 60 },
      )
    },
    120_000,
  )

  it('token bucket: RedisRateLimiter equals TokenBucketRateLimiter, fractional rates included', async () => {
    const rateArb = fc.record({
      requestsPerSecond: fc.constantFrom(0.3, 1, 2.5, 7, 100, 1000, 33.333),
      burst: fc.integer({ min: 1, max: 50 }),
    })
    const stepArb = fc.oneof(
      fc.record({ kind: fc.constant('consume' as const), cost: fc.nat(8) }),
      fc.record({ kind: fc.constant('advance' as const), ms: fc.oneof(fc.nat(50), fc.nat(5_000)) }),
    )
    await fc.assert(
      fc.asyncProperty(rateArb, fc.array(stepArb, { maxLength: 60 }), async (rate, steps) => {
        const clock = new ManualClock(Date.UTC(2030, 2, 14))
        const provider = new TestConfigProvider()
        const id = randomTenantId('diff')
        provider.setRateLimit(id, rate)
        const reference = new TokenBucketRateLimiter(provider, { clock })
        const limiter = new RedisRateLimiter(provider, { redis, clock, prefix, timeoutMs: 5_000 })
        for (const step of steps) {
          if (step.kind === 'advance') clock.advance(step.ms)
          else
            expect(await limiter.consume(id, { cost: step.cost })).toEqual(
              await reference.consume(id, { cost: step.cost }),
            )
        }
      }),
      { numRuns: 80 },
    )
  }, 120_000)

  // The local-deny cache answers a repeated denied request in process with the retry time of the
  // denial it holds. A charge this instance made since (an admission of another cost) can push
  // the real retry later: the held time was too early, where core and Redis without the cache
  // said later.
  describe('with localDeny, after this instance charged the tenant again', () => {
    const T0 = Date.UTC(2030, 2, 14, 12, 0, 10)

    it('quota: a held denial does not answer with the retry time it had before the charge', async () => {
      const clock = new ManualClock(T0)
      const provider = new TestConfigProvider()
      const id = randomTenantId('ld')
      provider.setQuota(id, {
        limits: [
          { window: 'minute', requests: 2 },
          { window: 'hour', requests: 3 },
        ],
      })
      const reference = new InMemoryQuotaManager(provider, { clock })
      const manager = new RedisQuotaManager(provider, {
        redis,
        clock,
        prefix,
        timeoutMs: 5_000,
        localDeny: true,
      })
      expect(await manager.consume(id)).toEqual(await reference.consume(id))
      // Denied by the minute (retry at its end), and held.
      expect(await manager.consume(id, { requests: 2 })).toEqual(await reference.consume(id, { requests: 2 }))
      expect(await manager.consume(id)).toEqual(await reference.consume(id))
      // Two more now need the hour to end as well.
      const wanted = await reference.consume(id, { requests: 2 })
      expect(wanted).toMatchObject({ allowed: false, retryAfterMs: Date.UTC(2030, 2, 14, 13) - T0 })
      expect(await manager.consume(id, { requests: 2 })).toEqual(wanted)
    })

    it('rate limit: a held denial does not answer with the retry time it had before the take', async () => {
      const clock = new ManualClock(T0)
      const provider = new TestConfigProvider()
      const id = randomTenantId('ld')
      provider.setRateLimit(id, { requestsPerSecond: 1, burst: 5 })
      const reference = new TokenBucketRateLimiter(provider, { clock })
      const limiter = new RedisRateLimiter(provider, {
        redis,
        clock,
        prefix,
        timeoutMs: 5_000,
        localDeny: true,
      })
      expect(await limiter.consume(id, { cost: 3 })).toEqual(await reference.consume(id, { cost: 3 }))
      // 2 left: denied with a retry of 2 s, held.
      expect(await limiter.consume(id, { cost: 4 })).toEqual(await reference.consume(id, { cost: 4 }))
      expect(await limiter.consume(id, { cost: 2 })).toEqual(await reference.consume(id, { cost: 2 }))
      const wanted = await reference.consume(id, { cost: 4 })
      expect(wanted).toMatchObject({ allowed: false, retryAfterMs: 4_000 })
      expect(await limiter.consume(id, { cost: 4 })).toEqual(wanted)
    })
  })
})
