import { calendarWindow, ManualClock, type QuotaWindow, quotaWindows } from '@tenant/core'
import { TestConfigProvider } from '@tenant/core/testing'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { REDIS_URL, useTestRedis } from '../test/helpers/redis-env'
import { toScriptClient } from './client'
import { APP_CLOCK_TTL_MARGIN_MS } from './lua'
import { RedisQuotaManager } from './quota-manager'
import { FIXED_WINDOW_SCRIPT } from './quota-scripts'
import { LuaScript } from './script'

// The fixed-window script writes an admission in one of two ways: in place (fast path, when every
// window already counts its current calendar window) or by rewriting the key (slow path). These
// tests hold the two to the same results, and check when each one runs.

const MINUTE = 60_000
const T0 = Date.UTC(2030, 2, 14, 9, 26)

// The same script with its fast path switched off: every write takes the slow path.
const FAST_PATH = 'if all_current then'
const SLOW_ONLY_SCRIPT = new LuaScript(FIXED_WINDOW_SCRIPT.source.replace(FAST_PATH, 'if false then'))

type Step =
  | { kind: 'consume'; requests: number; tokens: number }
  | { kind: 'adjust'; tokens: number }
  | { kind: 'advance'; ms: number }
  | { kind: 'config' }

// Now and then a cost near 2^53, which an unlimited dimension saturates at MAX_QUOTA_COUNT.
const huge = fc.integer({ min: 2 ** 52, max: Number.MAX_SAFE_INTEGER })

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({ kind: fc.constant('consume' as const), requests: fc.nat(3), tokens: fc.nat(300) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('consume' as const),
      requests: fc.oneof(fc.nat(3), huge),
      tokens: fc.oneof(fc.nat(300), huge),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('adjust' as const),
      tokens: fc.integer({ min: -200, max: 200 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('advance' as const),
      ms: fc.oneof(fc.nat(5_000), fc.nat(2 * 3_600_000)),
    }),
  },
  // Switches to the other set of limits: windows leave the config and come back.
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('config' as const) }) },
)

const limitsArb = fc.subarray([...quotaWindows], { minLength: 1 }).chain((windows) =>
  fc.tuple(
    ...windows.map((window) =>
      fc.record({
        window: fc.constant(window),
        requests: fc.nat(20),
        tokens: fc.oneof(fc.constant(0), fc.nat(1_000)),
      }),
    ),
  ),
)

describe.runIf(REDIS_URL)('fixed-window script: fast and slow path', () => {
  const { client: redis, prefix } = useTestRedis('fixed-fast')
  const client = toScriptClient(redis)

  it('the fast path is in the script, so the slow-only copy really differs', () => {
    expect(FIXED_WINDOW_SCRIPT.source).toContain(FAST_PATH)
    expect(SLOW_ONLY_SCRIPT.source).not.toContain(FAST_PATH)
  })

  it('replies and stores exactly what the slow path does, on random histories with config changes', async () => {
    let run = 0
    await fc.assert(
      fc.asyncProperty(
        fc.tuple(limitsArb, limitsArb),
        fc.array(stepArb, { minLength: 1, maxLength: 30 }),
        async (configs, steps) => {
          run++
          const fastKey = `{${prefix}:fast${run}}:f`
          const slowKey = `{${prefix}:slow${run}}:f`
          const [a, b] = configs.map((limits) =>
            limits.flatMap((l) => [l.window, String(l.requests), String(l.tokens)]),
          )
          let limitArgs = a!
          let now = T0 + 59_000
          for (const step of steps) {
            if (step.kind === 'advance') {
              now += step.ms
              continue
            }
            if (step.kind === 'config') {
              limitArgs = limitArgs === a ? b! : a!
              continue
            }
            const args =
              step.kind === 'consume'
                ? [String(now), 'consume', String(step.requests), String(step.tokens), ...limitArgs]
                : [String(now), 'adjust', String(step.tokens), '0', ...limitArgs]
            const fast = await FIXED_WINDOW_SCRIPT.run(client, [fastKey], args)
            const slow = await SLOW_ONLY_SCRIPT.run(client, [slowKey], args)
            expect(fast, JSON.stringify(step)).toEqual(slow)
            expect(await redis.hgetall(fastKey)).toEqual(await redis.hgetall(slowKey))
            // Whatever path wrote it, the state expires.
            if ((await redis.exists(fastKey)) === 1) expect(await redis.pttl(fastKey)).toBeGreaterThan(0)
          }
          await redis.del(fastKey, slowKey)
        },
      ),
      { numRuns: 60 },
    )
  }, 60_000)

  it('takes the fast path only while every window counts its current calendar window', async () => {
    const provider = new TestConfigProvider()
    provider.setQuota('acme', { limits: [{ window: 'minute', requests: 100 }] })
    const clock = new ManualClock(T0 + 10_000)
    const quotas = new RedisQuotaManager(provider, { redis, clock, prefix, timeoutMs: 2_000 })
    const key = `{${prefix}:acme}:f`
    const ttlAfterSlowWrite = MINUTE - 10_000 + APP_CLOCK_TTL_MARGIN_MS

    // First request: no counter yet, the slow path creates it with the TTL of its window.
    await quotas.consume('acme')
    expect(await redis.pttl(key)).toBeGreaterThan(ttlAfterSlowWrite - 5_000)
    // Same minute, 40 s later: the fast path counts in place and leaves the TTL alone, which a
    // slow write (TTL from the new now) would have shortened by 40 s.
    clock.advance(40_000)
    expect(await quotas.consume('acme')).toMatchObject({ allowed: true, remaining: { requests: 98 } })
    expect(await redis.hgetall(key)).toEqual({ minute: `${calendarWindow('minute', T0).start},2,0` })
    expect(await redis.pttl(key)).toBeGreaterThan(ttlAfterSlowWrite - 5_000)

    // The next minute: the stored counter is stale, so the slow path starts a fresh one.
    clock.advance(MINUTE)
    expect(await quotas.consume('acme')).toMatchObject({ allowed: true, remaining: { requests: 99 } })
    const next = calendarWindow('minute', clock.now())
    expect(await redis.hgetall(key)).toEqual({ minute: `${next.start},1,0` })
    expect(await redis.pttl(key)).toBeLessThanOrEqual(next.end - clock.now() + APP_CLOCK_TTL_MARGIN_MS)

    // A window added to the config has no counter yet: slow path, and both windows count.
    provider.setQuota('acme', {
      limits: [
        { window: 'minute', requests: 100 },
        { window: 'hour', requests: 1_000 },
      ],
    })
    const both = await quotas.consume('acme')
    expect(both.windows.map((w) => [w.window, w.used.requests])).toEqual([
      ['minute', 2],
      ['hour', 1],
    ])
    expect(await redis.hgetall(key)).toEqual({
      minute: `${next.start},2,0`,
      hour: `${calendarWindow('hour', clock.now()).start},1,0`,
    })

    // A window that leaves the config: the minute is current, so the fast path charges it in
    // place and leaves the hour's counter alone; it counts on when the hour comes back, as in core
    // (a config change never resets usage).
    provider.setQuota('acme', { limits: [{ window: 'minute', requests: 100 }] })
    await quotas.consume('acme')
    expect(await redis.hgetall(key)).toEqual({
      minute: `${next.start},3,0`,
      hour: `${calendarWindow('hour', clock.now()).start},1,0`,
    })
    provider.setQuota('acme', {
      limits: [
        { window: 'minute', requests: 100 },
        { window: 'hour', requests: 1_000 },
      ],
    })
    const back = await quotas.consume('acme')
    expect(back.windows.map((w) => [w.window, w.used.requests])).toEqual([
      ['minute', 4],
      ['hour', 2],
    ])

    // Once its window is over, a counter the config does not name leaves on the next slow write.
    provider.setQuota('acme', { limits: [{ window: 'minute', requests: 100 }] })
    clock.set(calendarWindow('hour', clock.now()).end)
    await quotas.consume('acme')
    expect(await redis.hgetall(key)).toEqual({ minute: `${clock.now()},1,0` })
  })

  it('an unlimited dimension saturates at MAX_QUOTA_COUNT on the fast path too, exactly', async () => {
    const MAX = Number.MAX_SAFE_INTEGER
    const key = `{${prefix}:saturate}:f`
    const at = String(T0)
    // Requests limited (minute 10, month 1000), tokens unlimited: the red-team's month lock-out.
    const limits = ['minute', '10', '0', 'month', '1000', '0']
    const consume = (requests: number, tokens: number) =>
      FIXED_WINDOW_SCRIPT.run(client, [key], [at, 'consume', String(requests), String(tokens), ...limits])
    await consume(1, MAX) // slow path: creates the counters
    expect(await consume(1, 1)).toEqual([T0, 1, '1', String(MAX), '1', String(MAX)]) // fast path
    expect(await consume(1, MAX)).toEqual([T0, 1, '2', String(MAX), '2', String(MAX)])
    const minute = calendarWindow('minute', T0).start
    const month = calendarWindow('month', T0).start
    expect(await redis.hgetall(key)).toEqual({ minute: `${minute},3,${MAX}`, month: `${month},3,${MAX}` })
    // The limited dimension still refuses, writing nothing.
    expect(((await consume(8, 0)) as unknown[])[1]).toBe(0)
    expect(await redis.hgetall(key)).toEqual({ minute: `${minute},3,${MAX}`, month: `${month},3,${MAX}` })
  })

  it('a denial writes nothing, with every counter current', async () => {
    const key = `{${prefix}:deny}:f`
    const at = String(T0)
    const limit = (window: QuotaWindow) => [window, '2', '0']
    const args = [at, 'consume', '1', '0', ...limit('minute'), ...limit('day')]
    // Counts come back as exact decimal text (RESP integers near 2^53 are misread by clients).
    expect(await FIXED_WINDOW_SCRIPT.run(client, [key], args)).toEqual([T0, 1, '0', '0', '0', '0'])
    expect(await FIXED_WINDOW_SCRIPT.run(client, [key], args)).toEqual([T0, 1, '1', '0', '1', '0'])
    const full = await redis.hgetall(key)
    const ttl = await redis.pttl(key)
    expect(await FIXED_WINDOW_SCRIPT.run(client, [key], args)).toEqual([T0, 0, '2', '0', '2', '0'])
    expect(await redis.hgetall(key)).toEqual(full)
    expect(await redis.pttl(key)).toBeLessThanOrEqual(ttl)
  })
})
