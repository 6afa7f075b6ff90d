import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { slidingWindowMs } from './algorithms/calendar'
import { limitsOf } from './algorithms/memo'
import type { SlidingWindowState } from './algorithms/sliding-window'
import {
  slidingWindowAdjust,
  slidingWindowConsume,
  slidingWindowExpiresAt,
  slidingWindowPeek,
} from './algorithms/sliding-window'
import { slidingWindowLayout } from './algorithms/sliding-window-layout'
import { ManualClock } from './clock'
import type { QuotaProvider } from './config'
import { normalizeCost } from './cost'
import { InvalidTenantConfigError } from './errors'
import { copyJson, deepFreeze } from './json'
import type { QuotaConfig, QuotaWindow } from './schemas'
import { SlidingWindowQuotaManager } from './sliding-window-quota-manager'

const provider: QuotaProvider = { quotaConfig: async () => ({ limits: [{ window: 'hour', requests: 60 }] }) }
const H = Date.UTC(2030, 2, 14, 9)

describe('SlidingWindowQuotaManager', () => {
  it('defaults to 10 buckets per window and validates precision once, in the constructor', () => {
    expect(new SlidingWindowQuotaManager(provider).precision).toBe(10)
    expect(new SlidingWindowQuotaManager(provider, { precision: 60 }).precision).toBe(60)
    // An object without a prototype (no toString) is described by its type, not a TypeError.
    for (const precision of [0, 7, 2.5, 5000, Number.NaN, Object.create(null)]) {
      expect(() => new SlidingWindowQuotaManager(provider, { precision })).toThrow(InvalidTenantConfigError)
    }
  })

  it('a finer precision gives capacity back in smaller steps', async () => {
    const steps = async (precision: number) => {
      const clock = new ManualClock(H)
      const manager = new SlidingWindowQuotaManager(provider, { clock, precision })
      await manager.consume('a', { requests: 60 })
      clock.set(H + 60 * 60_000 + 3 * 60_000)
      return (await manager.peek('a')).windows[0]!.remaining.requests
    }
    // Three minutes into the next hour: with 6-minute buckets half of the first bucket has left
    // (30 of 60 back); with 1-minute buckets (precision 60) the whole of it has.
    expect(await steps(10)).toBe(30)
    expect(await steps(60)).toBe(60)
    expect(await steps(1)).toBe(3)
  })

  it('treats a month as a rolling 30 days', async () => {
    const clock = new ManualClock(H)
    const monthly: QuotaProvider = {
      quotaConfig: async () => ({ limits: [{ window: 'month', tokens: 1000 }] }),
    }
    const manager = new SlidingWindowQuotaManager(monthly, { clock, precision: 1 })
    await manager.consume('a', { tokens: 1000 })
    const denial = await manager.consume('a', { tokens: 1 })
    // One bucket of 30 days: it counts in full until the window starts to leave it, at the end of
    // the bucket, then decays; 1 token fits once 1/1000 of it has left (30 days / 1000 = 2,592 s).
    const bucketStart = Math.floor(H / (30 * 86_400_000)) * 30 * 86_400_000
    expect(H + denial.retryAfterMs).toBe(bucketStart + 30 * 86_400_000 + 2_592_000)
  })
})

/** A deep-frozen copy, as the config managers hand out. */
const frozen = (quota: QuotaConfig): QuotaConfig => deepFreeze(copyJson(quota))

/** `toEqual`'s equality as a boolean. */
function equal(actual: unknown, expected: unknown): boolean {
  try {
    expect(actual).toEqual(expected)
    return true
  } catch {
    return false
  }
}

/** The states without repeats (`undefined` stands for "no state"). */
function distinct(states: Array<SlidingWindowState | undefined>): Array<SlidingWindowState | undefined> {
  const seen = new Map(states.map((state) => [JSON.stringify(state ?? null), state]))
  return [...seen.values()]
}

describe('SlidingWindowQuotaManager against slidingWindowConsume', () => {
  const windows: QuotaWindow[] = ['minute', 'hour', 'day', 'month']
  // Room for a few requests per window, so admissions (the in-place path) and denials both occur;
  // now and then counts past 2^53, where only the same sums in the same order give the same doubles.
  const huge = fc.integer({ min: 2 ** 52, max: Number.MAX_SAFE_INTEGER })
  const limit = fc.record(
    {
      window: fc.constantFrom(...windows),
      requests: fc.nat(12),
      tokens: fc.oneof({ weight: 9, arbitrary: fc.nat(120) }, { weight: 1, arbitrary: huge }),
    },
    { requiredKeys: ['window'] },
  )
  const quota = fc
    .uniqueArray(limit, { selector: (l) => l.window, minLength: 0, maxLength: 4 })
    .map((limits) => ({ limits }))
  const step = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        op: fc.constant('consume' as const),
        requests: fc.oneof({ weight: 19, arbitrary: fc.nat(2) }, { weight: 1, arbitrary: huge }),
        tokens: fc.oneof({ weight: 9, arbitrary: fc.nat(20) }, { weight: 1, arbitrary: huge }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        op: fc.constant('adjust' as const),
        tokens: fc.oneof(
          fc.integer({ min: -30, max: 30 }),
          huge,
          huge.map((t) => -t),
        ),
      }),
    },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('peek' as const) }) },
    {
      // Within a bucket, across a few buckets of a minute, across minute windows, across the
      // buckets of a day or month; backwards now and then (a clock that was set back).
      weight: 3,
      arbitrary: fc.record({
        op: fc.constant('advance' as const),
        ms: fc.oneof(
          fc.nat(3_000),
          fc.nat(90_000),
          fc.nat(2 * 3_600_000),
          fc.nat(8 * 86_400_000),
          fc.integer({ min: -120_000, max: -1 }),
          fc.integer({ min: -8_000, max: -1 }),
        ),
      }),
    },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('config' as const), index: fc.nat(2) }) },
  )

  // The manager forgets a tenant once its state has expired (on the first call at or after the
  // expiry), while the pure functions keep any state they are handed. The two only differ when the
  // clock is then set back into the expired state's last window, and either answer is right there:
  // the reference keeps every state the manager may hold, and each answer keeps those it matches.
  it('decides, charges and reports exactly as the pure algorithm, frozen configs or not (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(quota, { minLength: 3, maxLength: 3 }),
        fc.boolean(),
        fc.constantFrom(1, 2, 10, 60),
        fc.array(fc.tuple(fc.constantFrom('a', 'b'), step), { maxLength: 80 }),
        async (quotas, freeze, precision, steps) => {
          const configs = quotas.map((q) => (freeze ? frozen(q) : q))
          let config = configs[0]!
          const clock = new ManualClock(Date.UTC(2030, 0, 15, 10, 58, 58, 500))
          const manager = new SlidingWindowQuotaManager(
            { quotaConfig: async () => config },
            { clock, precision },
          )
          const reference = new Map<string, Array<SlidingWindowState | undefined>>()
          /** Checks `actual` against what each possible state gives; keeps the states it matches. */
          const expectOneOf = <R>(
            tenant: string,
            actual: unknown,
            outcome: (state: SlidingWindowState | undefined) => { answer: R; state?: SlidingWindowState },
          ) => {
            const outcomes = (reference.get(tenant) ?? [undefined]).map(outcome)
            const matching = outcomes.filter((o) => equal(actual, o.answer))
            if (matching.length === 0) expect(actual).toEqual(outcomes[0]!.answer)
            reference.set(tenant, distinct(matching.map((o) => o.state)))
          }
          for (const [tenant, s] of steps) {
            const now = clock.now()
            if (s.op === 'advance') {
              clock.advance(s.ms)
              continue
            }
            if (s.op === 'config') {
              config = configs[s.index]!
              continue
            }
            // Every call first forgets what has expired by `now`, whichever tenant it is for.
            for (const [id, states] of reference) {
              if (states.some((st) => st !== undefined && slidingWindowExpiresAt(st, precision) <= now))
                reference.set(id, distinct([...states, undefined]))
            }
            if (s.op === 'peek') {
              const actual = (await manager.peek(tenant)).windows
              expectOneOf(tenant, actual, (st) => ({
                answer: slidingWindowPeek(st, config, now, precision),
                state: st,
              }))
            } else if (s.op === 'adjust') {
              const actual = (await manager.adjust(tenant, { tokens: s.tokens })).windows
              expectOneOf(tenant, actual, (st) => {
                const expected = slidingWindowAdjust(st, config, s.tokens, now, precision)
                return { answer: expected.usage, state: expected.state }
              })
            } else {
              const cost = { requests: s.requests, tokens: s.tokens }
              const actual = await manager.consume(tenant, cost)
              expectOneOf(tenant, actual, (st) => {
                const expected = slidingWindowConsume(st, config, cost, now, precision)
                return { answer: expected.decision, state: expected.decision.allowed ? expected.state : st }
              })
            }
          }
        },
      ),
      { numRuns: 300 },
    )
  })

  it('forgets an expired tenant even when the clock is then set back into its window', async () => {
    const t0 = Date.UTC(2030, 0, 15, 10, 58, 58, 500)
    const clock = new ManualClock(t0)
    const config: QuotaConfig = { limits: [{ window: 'minute', tokens: 10 }] }
    const manager = new SlidingWindowQuotaManager(
      { quotaConfig: async () => config },
      { clock, precision: 1 },
    )
    const cost = { requests: 0, tokens: 1 }
    await manager.consume('b', cost)
    const { state } = slidingWindowConsume(undefined, config, normalizeCost(cost), t0, 1)
    const expiry = slidingWindowExpiresAt(state, 1)
    clock.set(expiry)
    await manager.consume('a')
    expect(manager.size).toBe(1)
    // The pure algorithm would still count a sliver of b's minute here; the manager has let it go.
    clock.set(expiry - 1)
    expect(slidingWindowPeek(state, config, expiry - 1, 1)[0]!.used.tokens).toBe(1)
    expect((await manager.peek('b')).windows[0]!.used.tokens).toBe(0)
  })

  // Nearer the layout: its entry must read back as the very state slidingWindowConsume returns
  // (pruned alike, so a clock set back cannot revive a bucket), and the in-place path must be the
  // one taken in a tenant's steady state (a fallback is always right, so only this shows it works).
  it('charges in place exactly as slidingWindowConsume, whenever the state is a steady one (property)', () => {
    fc.assert(
      fc.property(
        fc.array(quota, { minLength: 3, maxLength: 3 }),
        fc.constantFrom(1, 2, 10, 60),
        fc.array(step, { maxLength: 80 }),
        (configs, precision, steps) => {
          const layout = slidingWindowLayout(precision)
          let config = configs[0]!
          let now = Date.UTC(2030, 0, 15, 10, 58, 58, 500)
          let state: SlidingWindowState | undefined
          let entry: ReturnType<typeof layout.create> | undefined
          for (const s of steps) {
            if (s.op === 'advance') now += s.ms
            else if (s.op === 'config') config = configs[s.index]!
            else if (s.op === 'adjust') {
              state = slidingWindowAdjust(state, config, s.tokens, now, precision).state
              if (entry === undefined) entry = layout.create('a', state)
              else layout.write(entry, state)
            } else if (s.op === 'consume') {
              const cost = normalizeCost({ requests: s.requests, tokens: s.tokens })
              const expected = slidingWindowConsume(state, config, cost, now, precision)
              const limits = limitsOf(config)
              const decision = entry && layout.charge!(entry, limits, cost, now)
              if (decision !== undefined) {
                expect(decision).toEqual(expected.decision)
              } else if (expected.decision.allowed) {
                // What the in-place path takes: buckets for exactly the limits' windows, none after
                // the current one, and a cost that adds a bucket.
                const steady =
                  entry !== undefined &&
                  (cost.requests !== 0 || cost.tokens !== 0) &&
                  Object.keys(state ?? {}).join() === limits.map((l) => l.window).join() &&
                  limits.every((l) => {
                    const bucket = slidingWindowMs(l.window) / precision
                    return state![l.window]!.every(([start]) => start <= Math.floor(now / bucket) * bucket)
                  })
                expect(steady).toBe(false)
                if (entry === undefined) entry = layout.create('a', expected.state)
                else layout.write(entry, expected.state)
              }
              if (expected.decision.allowed) state = expected.state
            }
            expect(layout.read(entry)).toEqual(entry === undefined ? undefined : (state ?? {}))
            if (entry !== undefined)
              expect(layout.expiresAt(entry)).toBe(slidingWindowExpiresAt(state, precision))
          }
        },
      ),
      { numRuns: 500 },
    )
  })
})

describe('slidingWindowLayout: an unlimited dimension saturates in place', () => {
  const MAX = Number.MAX_SAFE_INTEGER
  const now = Date.UTC(2030, 2, 14, 9, 26, 30)
  const config: QuotaConfig = {
    limits: [
      { window: 'minute', requests: 10 },
      { window: 'month', requests: 1000 },
    ],
  }

  for (const precision of [1, 10, 60]) {
    it(`admits a cost past MAX_QUOTA_COUNT in an unlimited dimension on the in-place path, as slidingWindowConsume does (precision ${precision})`, () => {
      const layout = slidingWindowLayout(precision)
      let state = slidingWindowConsume(undefined, config, { tokens: MAX - 10 }, now, precision).state
      const entry = layout.create('a', state)
      let t = now
      for (const [advance, cost] of [
        [0, { requests: 1, tokens: 4 }], // fits
        [0, { requests: 1, tokens: MAX }], // saturates in the current bucket
        [7_000, { requests: 0, tokens: 5 }], // nothing left to add: no new bucket
        [7_000, { requests: 1, tokens: 5 }], // a new bucket with the requests only
      ] as const) {
        t += advance
        const expected = slidingWindowConsume(state, config, cost, t, precision)
        expect(expected.decision.allowed).toBe(true)
        // Taken in place (not left to slidingWindowConsume), with the same decision and buckets.
        expect(layout.charge(entry, limitsOf(config), normalizeCost(cost), t)).toEqual(expected.decision)
        state = expected.state
        expect(layout.read(entry)).toEqual(state)
        expect(layout.expiresAt(entry)).toBe(slidingWindowExpiresAt(state, precision))
      }
      const minute = slidingWindowPeek(state, config, t, precision)[0]!
      expect(minute.used).toEqual({ requests: 4, tokens: MAX })
      // A limited dimension still refuses, and the refusal changes nothing.
      expect(slidingWindowConsume(state, config, { requests: 8 }, t, precision).decision.allowed).toBe(false)
      expect(layout.charge(entry, limitsOf(config), normalizeCost({ requests: 8 }), t)).toBeUndefined()
      expect(layout.read(entry)).toEqual(state)
    })
  }

  it('a limited dimension whose buckets would sum past MAX_QUOTA_COUNT is still refused, not saturated', () => {
    // tokens limited at the bound: the weighted count has room once the oldest bucket decays, the
    // unweighted sum does not (capRetryAt).
    const limited: QuotaConfig = { limits: [{ window: 'minute', tokens: MAX }] }
    const { state } = slidingWindowConsume(undefined, limited, { tokens: MAX }, now, 10)
    const later = now + 60_000 + 3_000
    const decision = slidingWindowConsume(state, limited, { tokens: 1 }, later, 10).decision
    expect(decision.allowed).toBe(false)
    expect(decision.reason).toMatch(/count is full/)
    const layout = slidingWindowLayout(10)
    expect(
      layout.charge(layout.create('a', state), limitsOf(limited), normalizeCost({ tokens: 1 }), later),
    ).toBeUndefined()
  })

  it('a tenant whose unlimited tokens were pushed to the bound keeps being admitted (SlidingWindowQuotaManager)', async () => {
    const clock = new ManualClock(now)
    const manager = new SlidingWindowQuotaManager({ quotaConfig: async () => frozen(config) }, { clock })
    expect((await manager.consume('acme', { tokens: MAX })).allowed).toBe(true)
    for (let i = 0; i < 5; i++) {
      clock.advance(2 * 60_000)
      const decision = await manager.consume('acme', { tokens: 1_000 })
      expect(decision).toMatchObject({ allowed: true, retryAfterMs: 0, remaining: { requests: 9 } })
    }
    const month = (await manager.peek('acme')).windows.find((w) => w.window === 'month')!
    expect(month.used).toEqual({ requests: 6, tokens: MAX })
  })
})
