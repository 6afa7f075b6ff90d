import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { InvalidTenantConfigError } from '../errors'
import type { QuotaCost } from '../quota'
import type { QuotaConfig, QuotaWindow } from '../schemas'
import { MINUTE_MS, slidingWindowMs } from './calendar'
import { MAX_QUOTA_COUNT } from './limits'
import { slidingWindowAlgorithm } from './quota-algorithm'
import type { SlidingWindowState } from './sliding-window'
import {
  DEFAULT_SLIDING_PRECISION,
  slidingWindowAdjust,
  slidingWindowConsume,
  slidingWindowExpiresAt,
  slidingWindowPeek,
  slidingWindowRefund,
  validatePrecision,
} from './sliding-window'

const M = Date.UTC(2030, 2, 14, 9, 26) // a minute boundary, so also a bucket boundary of the minute window
const S = 1000

describe('slidingWindowConsume: weighting', () => {
  // precision 6: the minute window is six 10 s buckets.
  const config: QuotaConfig = { limits: [{ window: 'minute', requests: 10 }] }
  const P = 6
  function traffic(): SlidingWindowState {
    let state = slidingWindowConsume(undefined, config, { requests: 6 }, M + 5 * S, P).state
    state = slidingWindowConsume(state, config, { requests: 3 }, M + 25 * S, P).state
    return state
  }
  const usedAt = (state: SlidingWindowState, t: number) => slidingWindowPeek(state, config, t, P)[0]!

  it('counts every bucket in full while the window covers it', () => {
    const state = traffic()
    expect(state.minute).toEqual([
      [M, 6, 0],
      [M + 20 * S, 3, 0],
    ])
    expect(usedAt(state, M + 59 * S).used.requests).toBe(9)
    expect(usedAt(state, M + 60 * S).used.requests).toBe(9)
  })

  it('weights the oldest bucket by the share of it the window still overlaps', () => {
    const state = traffic()
    // At +65 s the window (5 s, 65 s] covers half of the first bucket: 6 * 0.5 + 3.
    expect(usedAt(state, M + 65 * S)).toMatchObject({ used: { requests: 6 }, remaining: { requests: 4 } })
    // At +68 s: 6 * 0.2 + 3 = 4.2, reported rounded up (remaining rounded down).
    expect(usedAt(state, M + 68 * S)).toMatchObject({ used: { requests: 5 }, remaining: { requests: 5 } })
    expect(usedAt(state, M + 70 * S).used.requests).toBe(3)
    // At +85 s the second bucket is the oldest, half covered: 1.5 -> 2.
    expect(usedAt(state, M + 85 * S)).toMatchObject({ used: { requests: 2 }, remaining: { requests: 8 } })
    expect(usedAt(state, M + 90 * S).used.requests).toBe(0)
  })

  it('includes the cost in the check and solves the retry time from the linear decay', () => {
    const state = traffic()
    expect(slidingWindowConsume(state, config, { requests: 4 }, M + 65 * S, P).decision.allowed).toBe(true)
    const denial = slidingWindowConsume(state, config, { requests: 5 }, M + 65 * S, P).decision
    expect(denial.allowed).toBe(false)
    // Needs 6 * overlap / 10 s <= 2, i.e. overlap <= 3.333 s: from +66.667 s.
    expect(denial.retryAfterMs).toBe(1667)
    expect(slidingWindowConsume(state, config, { requests: 5 }, M + 66_666, P).decision.allowed).toBe(false)
    expect(slidingWindowConsume(state, config, { requests: 5 }, M + 66_667, P).decision.allowed).toBe(true)
    // A retry that needs several buckets to pass: 9 must fit, so at most 1 may still count; that
    // is when the second bucket (3) is the oldest and 3 * overlap / 10 s <= 1: from +86.667 s.
    const far = slidingWindowConsume(state, config, { requests: 9 }, M + 30 * S, P).decision
    expect(M + 30 * S + far.retryAfterMs).toBe(M + 86_667)
  })

  it('frees requests and tokens alike as buckets age out', () => {
    const both: QuotaConfig = { limits: [{ window: 'minute', requests: 4, tokens: 400 }] }
    const { state } = slidingWindowConsume(undefined, both, { requests: 4, tokens: 400 }, M, P)
    const at = (t: number) => slidingWindowPeek(state, both, t, P)[0]!.remaining
    expect(at(M + 59_999)).toEqual({ requests: 0, tokens: 0 })
    expect(at(M + 65 * S)).toEqual({ requests: 2, tokens: 200 })
    expect(at(M + 70 * S)).toEqual({ requests: 4, tokens: 400 })
  })

  it('denies a cost above the limit outright, with a finite retry after every current bucket has left', () => {
    const { decision, state } = slidingWindowConsume(undefined, config, { requests: 11 }, M + 5 * S, P)
    expect(decision.allowed).toBe(false)
    expect(decision.reason).toMatch(/can never be admitted/)
    expect(state).toEqual({})
    // The current bucket [M, M + 10 s) leaves the window at M + 70 s.
    expect(decision.retryAfterMs).toBe(65 * S)
    expect(decision.resetAt).toBe(M + 70 * S)
  })

  it('keeps the input state untouched and prunes buckets that can no longer count', () => {
    const state = traffic()
    const snapshot = JSON.parse(JSON.stringify(state))
    const later = slidingWindowConsume(state, config, {}, M + 75 * S, P).state
    expect(state).toEqual(snapshot)
    expect(later.minute).toEqual([
      [M + 20 * S, 3, 0],
      [M + 70 * S, 1, 0],
    ])
    expect(slidingWindowConsume(state, config, { requests: 0 }, M + 2 * MINUTE_MS, P).state).toEqual({})
  })

  it('a window of one bucket is the two-bucket weighted counter (precision 1)', () => {
    const { state } = slidingWindowConsume(undefined, config, { requests: 10 }, M + 30 * S, 1)
    expect(slidingWindowPeek(state, config, M + 90 * S, 1)[0]!.used.requests).toBe(5)
    expect(slidingWindowPeek(state, config, M + 120 * S, 1)[0]!.used.requests).toBe(0)
  })
})

describe('slidingWindowAdjust', () => {
  const config: QuotaConfig = { limits: [{ window: 'minute', tokens: 1000 }] }
  const P = 6

  it('charges the current bucket and refunds newest first, down to zero', () => {
    let state = slidingWindowConsume(undefined, config, { tokens: 300 }, M, P).state
    state = slidingWindowConsume(state, config, { tokens: 200 }, M + 20 * S, P).state
    const charged = slidingWindowAdjust(state, config, 50, M + 25 * S, P)
    expect(charged.state.minute).toEqual([
      [M, 1, 300],
      [M + 20 * S, 1, 250],
    ])
    const refunded = slidingWindowAdjust(charged.state, config, -400, M + 25 * S, P)
    expect(refunded.state.minute).toEqual([
      [M, 1, 150],
      [M + 20 * S, 1, 0],
    ])
    expect(refunded.usage[0]!.used).toEqual({ requests: 2, tokens: 150 })
    const floored = slidingWindowAdjust(refunded.state, config, -1e9, M + 25 * S, P)
    expect(floored.usage[0]!.used.tokens).toBe(0)
    // A new bucket for a charge in a later bucket; nothing for a refund with nothing to refund.
    expect(slidingWindowAdjust(undefined, config, 70, M + 41 * S, P).state.minute).toEqual([
      [M + 40 * S, 0, 70],
    ])
    expect(slidingWindowAdjust(undefined, config, -70, M, P).state).toEqual({})
  })
})

describe('slidingWindowRefund', () => {
  const config: QuotaConfig = { limits: [{ window: 'minute', requests: 10, tokens: 1000 }] }
  const P = 6

  it('takes the admission back from the bucket of its decision time only', () => {
    let state = slidingWindowConsume(undefined, config, { tokens: 300 }, M, P).state
    const before = slidingWindowConsume(state, config, { tokens: 200 }, M + 20 * S, P).state
    state = slidingWindowConsume(before, config, { tokens: 50 }, M + 22 * S, P).state
    const after = slidingWindowConsume(state, config, { tokens: 5 }, M + 31 * S, P).state
    expect(after.minute).toEqual([
      [M, 1, 300],
      [M + 20 * S, 2, 250],
      [M + 30 * S, 1, 5],
    ])
    // The 50 tokens decided at +22 s went into the +20 s bucket; nothing else changes.
    const undone = slidingWindowRefund(after, config, { tokens: 50 }, M + 22 * S, P)
    expect(undone.minute).toEqual([
      [M, 1, 300],
      [M + 20 * S, 1, 200],
      [M + 30 * S, 1, 5],
    ])
    expect(slidingWindowAlgorithm(P).refund(after, config, { tokens: 50 }, M + 22 * S)).toEqual(undone)
    // Down to zero: the emptied bucket is dropped, then the whole window.
    const first = slidingWindowConsume(undefined, config, { tokens: 3 }, M, P).state
    expect(slidingWindowRefund(first, config, { tokens: 3 }, M + 9 * S, P)).toEqual({})
  })

  it('leaves a window alone once the charged bucket has left it, and never goes below zero', () => {
    const charged = slidingWindowConsume(undefined, config, { tokens: 40 }, M, P).state
    // 80 s later the bucket of M has left the minute window and is pruned by the next write.
    const later = slidingWindowConsume(charged, config, { tokens: 7 }, M + 80 * S, P).state
    expect(later.minute).toEqual([[M + 80 * S, 1, 7]])
    expect(slidingWindowRefund(later, config, { tokens: 40 }, M, P)).toEqual(later)
    expect(slidingWindowRefund(later, config, { requests: 5, tokens: 400 }, M + 81 * S, P)).toEqual({})
    expect(slidingWindowRefund(undefined, config, {}, M, P)).toEqual({})
  })

  it('takes back what a saturated admission added to its bucket, not its cost', () => {
    // Tokens unlimited: the buckets' sum stops at MAX_QUOTA_COUNT.
    const open: QuotaConfig = { limits: [{ window: 'day', requests: 100 }] }
    const first = slidingWindowConsume(undefined, open, { tokens: MAX_QUOTA_COUNT - 100 }, M, P)
    expect(first.charged).toEqual({ day: { requests: 1, tokens: MAX_QUOTA_COUNT - 100 } })
    const step = slidingWindowConsume(first.state, open, { tokens: 1000 }, M + S, P)
    expect(step.charged).toEqual({ day: { requests: 1, tokens: 100 } })
    const undone = slidingWindowRefund(step.state, open, { tokens: 1000 }, M + S, P, step.charged)
    expect(undone).toEqual(first.state)
    expect(slidingWindowAlgorithm(P).refund(step.state, open, { tokens: 1000 }, M + S, step.charged)).toEqual(
      first.state,
    )
    // The cost alone takes 900 tokens of usage counted before the admission.
    const bucket = slidingWindowRefund(step.state, open, { tokens: 1000 }, M + S, P).day![0]!
    expect(bucket[2]).toBe(MAX_QUOTA_COUNT - 1000)
  })

  it('consume then refund at the decision time restores the usage at every later time (property)', () => {
    const big: QuotaConfig = {
      limits: [
        { window: 'minute', tokens: 100_000 },
        { window: 'hour', requests: 1000 },
      ],
    }
    fc.assert(
      fc.property(
        fc.array(fc.record({ tokens: fc.nat(200), dt: fc.nat(90 * S) }), { maxLength: 8 }),
        fc.nat(300),
        fc.nat(90 * S),
        fc.constantFrom(1, 6, 10, 60),
        (traffic, tokens, dt, precision) => {
          let state: SlidingWindowState | undefined
          let t = M
          for (const step of traffic) {
            t += step.dt
            state = slidingWindowConsume(state, big, { tokens: step.tokens }, t, precision).state
          }
          t += dt
          const step = slidingWindowConsume(state, big, { tokens }, t, precision)
          expect(step.decision.allowed).toBe(true)
          const undone = slidingWindowRefund(step.state, big, { tokens }, t, precision, step.charged)
          for (const at of [t, t + 30 * S, t + 59 * MINUTE_MS]) {
            expect(slidingWindowPeek(undone, big, at, precision)).toEqual(
              slidingWindowPeek(state, big, at, precision),
            )
          }
        },
      ),
    )
  })
})

describe('slidingWindowExpiresAt / validatePrecision', () => {
  it('expires once the newest bucket has left its window', () => {
    expect(slidingWindowExpiresAt(undefined)).toBe(0)
    expect(slidingWindowExpiresAt({ minute: [] })).toBe(0)
    const config: QuotaConfig = {
      limits: [
        { window: 'minute', requests: 5 },
        { window: 'hour', requests: 50 },
      ],
    }
    const { state } = slidingWindowConsume(undefined, config, {}, M + 5 * S, 6)
    expect(slidingWindowExpiresAt(state, 6)).toBe(Math.floor((M + 5 * S) / 600_000) * 600_000 + 7 * 600_000)
    expect(slidingWindowExpiresAt({ minute: state.minute! }, 6)).toBe(M + 70 * S)
    expect(slidingWindowPeek(state, config, M + 70 * S, 6)[0]!.used.requests).toBe(0)
    expect(slidingWindowPeek(state, config, M + 70 * S - 1, 6)[0]!.used.requests).toBe(1)
  })

  it('accepts whole divisors of 60,000 from 1 to 1000 only', () => {
    for (const ok of [1, 2, 6, 10, 12, 60, 100, 600, 1000]) expect(validatePrecision(ok)).toBe(ok)
    for (const bad of [0, -1, 7, 1.5, 1200, 60_000, Number.NaN, '10', undefined]) {
      expect(() => validatePrecision(bad)).toThrow(InvalidTenantConfigError)
    }
    expect(() => slidingWindowPeek(undefined, { limits: [] }, M, 7)).toThrow(/divides 60000/)
    expect(DEFAULT_SLIDING_PRECISION).toBe(10)
  })
})

// A random workload against the pure functions: several windows, both dimensions.
const windowArb = fc.constantFrom<QuotaWindow>('minute', 'hour')
const precisionArb = fc.constantFrom(1, 2, 3, 6, 10, 60)
const trafficArb = fc.array(
  fc.record({ gap: fc.integer({ min: 0, max: 15_000 }), requests: fc.nat(3), tokens: fc.nat(60) }),
  { maxLength: 120 },
)

describe('slidingWindowConsume: properties', () => {
  it('the weighted count never exceeds the limit, and no bucket-aligned window admits more', () => {
    fc.assert(
      fc.property(
        precisionArb,
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 150 }),
        trafficArb,
        (P, requestLimit, tokenLimit, traffic) => {
          const config: QuotaConfig = {
            limits: [{ window: 'minute', requests: requestLimit, tokens: tokenLimit }],
          }
          const B = MINUTE_MS / P
          let state: SlidingWindowState | undefined
          let now = M + 3_333
          const perBucket = new Map<number, { requests: number; tokens: number }>()
          const events: { t: number; requests: number; tokens: number }[] = []
          for (const { gap, requests, tokens } of traffic) {
            now += gap
            const step = slidingWindowConsume(state, config, { requests, tokens }, now, P)
            state = step.state
            if (!step.decision.allowed) continue
            events.push({ t: now, requests, tokens })
            const used = slidingWindowPeek(state, config, now, P)[0]!.used
            expect(used.requests).toBeLessThanOrEqual(requestLimit)
            expect(used.tokens).toBeLessThanOrEqual(tokenLimit)
            const k = Math.floor(now / B)
            const sum = perBucket.get(k) ?? { requests: 0, tokens: 0 }
            sum.requests += requests
            sum.tokens += tokens
            perBucket.set(k, sum)
          }
          // Every run of P consecutive buckets (the window at each bucket boundary) holds at most the limit.
          const indices = [...perBucket.keys()]
          for (const first of indices) {
            let requests = 0
            let tokens = 0
            for (let k = first; k < first + P; k++) {
              requests += perBucket.get(k)?.requests ?? 0
              tokens += perBucket.get(k)?.tokens ?? 0
            }
            expect(requests).toBeLessThanOrEqual(requestLimit)
            expect(tokens).toBeLessThanOrEqual(tokenLimit)
          }
          // At any window position the true count is at most the limit plus what the partly
          // covered oldest bucket holds (the approximation's known error, shrinking with precision).
          for (const end of events) {
            const inWindow = events.filter((e) => e.t > end.t - MINUTE_MS && e.t <= end.t)
            const oldest = perBucket.get(Math.floor((end.t - MINUTE_MS) / B)) ?? { requests: 0, tokens: 0 }
            expect(inWindow.reduce((a, e) => a + e.requests, 0)).toBeLessThanOrEqual(
              requestLimit + oldest.requests,
            )
            expect(inWindow.reduce((a, e) => a + e.tokens, 0)).toBeLessThanOrEqual(tokenLimit + oldest.tokens)
          }
        },
      ),
      { numRuns: 300 },
    )
  }, 30_000)

  it('admits exactly at now + retryAfterMs and not 1 ms before', () => {
    fc.assert(
      fc.property(
        precisionArb,
        windowArb,
        trafficArb,
        fc.record({ requests: fc.nat(4), tokens: fc.nat(120) }),
        fc.integer({ min: 0, max: 90_000 }),
        (P, w, traffic, cost: QuotaCost, probeGap) => {
          const config: QuotaConfig = {
            limits: [
              { window: w, requests: 8, tokens: 300 },
              { window: 'day', tokens: 1500 },
            ],
          }
          let state: SlidingWindowState | undefined
          let now = M + 777
          for (const { gap, requests, tokens } of traffic) {
            now += gap
            state = slidingWindowConsume(state, config, { requests, tokens }, now, P).state
          }
          now += probeGap
          const { decision } = slidingWindowConsume(state, config, cost, now, P)
          if (decision.allowed) return
          expect(Number.isInteger(decision.retryAfterMs)).toBe(true)
          expect(decision.retryAfterMs).toBeGreaterThan(0)
          if (decision.reason!.includes('never')) return
          const at = now + decision.retryAfterMs
          expect(slidingWindowConsume(state, config, cost, at - 1, P).decision.allowed).toBe(false)
          expect(slidingWindowConsume(state, config, cost, at, P).decision.allowed).toBe(true)
        },
      ),
      { numRuns: 500 },
    )
  }, 30_000)

  it('stays exact with token counts far beyond 2^53 / bucket length (a rolling month of tokens)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            gap: fc.integer({ min: 0, max: 5 * 86_400_000 }),
            tokens: fc.integer({ min: 0, max: 4e13 }),
          }),
          {
            minLength: 1,
            maxLength: 20,
          },
        ),
        fc.integer({ min: 1, max: 1e14 }),
        (traffic, cost) => {
          const config: QuotaConfig = { limits: [{ window: 'month', tokens: 1e14 }] }
          let state: SlidingWindowState | undefined
          let now = M
          for (const { gap, tokens } of traffic) {
            now += gap
            state = slidingWindowConsume(state, config, { tokens }, now).state
          }
          const { decision } = slidingWindowConsume(state, config, { tokens: cost }, now)
          if (decision.allowed) return
          const at = now + decision.retryAfterMs
          expect(slidingWindowConsume(state, config, { tokens: cost }, at - 1).decision.allowed).toBe(false)
          expect(slidingWindowConsume(state, config, { tokens: cost }, at).decision.allowed).toBe(true)
          expect(decision.retryAfterMs).toBeLessThanOrEqual(
            slidingWindowMs('month') + slidingWindowMs('month') / 10,
          )
        },
      ),
      { numRuns: 300 },
    )
  }, 30_000)
})
