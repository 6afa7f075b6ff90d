import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { QuotaConfig } from '../schemas'
import { calendarWindow } from './calendar'
import type { FixedWindowState } from './fixed-window'
import {
  fixedWindowAdjust,
  fixedWindowConsume,
  fixedWindowExpiresAt,
  fixedWindowPeek,
  fixedWindowRefund,
} from './fixed-window'
import { MAX_QUOTA_COUNT } from './limits'
import { fixedWindowAlgorithm } from './quota-algorithm'

const T0 = Date.UTC(2030, 2, 14, 9, 26, 10)
const MINUTE = 60_000

describe('fixedWindowConsume', () => {
  const config: QuotaConfig = { limits: [{ window: 'minute', requests: 2, tokens: 100 }] }

  it('returns a new state and leaves the input untouched', () => {
    const first = fixedWindowConsume(undefined, config, { tokens: 10 }, T0)
    expect(first.state).toEqual({
      minute: { start: calendarWindow('minute', T0).start, requests: 1, tokens: 10 },
    })
    const frozen = Object.freeze({ minute: Object.freeze({ ...first.state.minute! }) }) as FixedWindowState
    const second = fixedWindowConsume(frozen, config, { tokens: 10 }, T0)
    expect(second.state.minute).toMatchObject({ requests: 2, tokens: 20 })
    expect(frozen.minute).toMatchObject({ requests: 1, tokens: 10 })
  })

  it('returns the very same state on a denial', () => {
    const { state } = fixedWindowConsume(undefined, config, { requests: 2 }, T0)
    const denied = fixedWindowConsume(state, config, {}, T0)
    expect(denied.decision.allowed).toBe(false)
    expect(denied.state).toBe(state)
    expect(fixedWindowConsume(undefined, config, { tokens: 101 }, T0).state).toEqual({})
  })

  it('reads a counter of an earlier window as zero and replaces it', () => {
    const stale: FixedWindowState = {
      minute: { start: calendarWindow('minute', T0).start - MINUTE, requests: 2, tokens: 100 },
    }
    const { decision, state } = fixedWindowConsume(stale, config, {}, T0)
    expect(decision.allowed).toBe(true)
    expect(state.minute).toEqual({ start: calendarWindow('minute', T0).start, requests: 1, tokens: 0 })
  })

  it('keeps the counter of a window the config does not name until that window ends, and no zero counts', () => {
    const hour = { start: calendarWindow('hour', T0).start, requests: 5, tokens: 0 }
    const old: FixedWindowState = { hour }
    // A config change (or an instance on an older config) never resets the hour's usage.
    const { state } = fixedWindowConsume(old, config, {}, T0)
    expect(state).toEqual({
      minute: { start: calendarWindow('minute', T0).start, requests: 1, tokens: 0 },
      hour,
    })
    expect(fixedWindowExpiresAt(state)).toBe(calendarWindow('hour', T0).end)
    // Once the hour is over it is dropped: state stays bounded.
    const later = calendarWindow('hour', T0).end
    expect(fixedWindowConsume(state, config, {}, later).state).toEqual({
      minute: { start: later, requests: 1, tokens: 0 },
    })
    expect(fixedWindowConsume(undefined, config, { requests: 0 }, T0).state).toEqual({})
  })

  it('names every refusing window in the reason, impossible requests first', () => {
    const two: QuotaConfig = {
      limits: [
        { window: 'minute', requests: 1, tokens: 50 },
        { window: 'day', requests: 10 },
      ],
    }
    const { state } = fixedWindowConsume(undefined, two, {}, T0)
    const denial = fixedWindowConsume(state, two, { tokens: 60 }, T0).decision
    expect(denial.reason).toBe(
      'request cost of 60 tokens exceeds the minute limit of 50 tokens: it can never be admitted; ' +
        'minute requests quota exhausted: 1 of 1 used, the request needs 1',
    )
    expect(denial.retryAfterMs).toBe(calendarWindow('minute', T0).end - T0)
  })

  it('takes the latest window end as the retry time when several windows refuse', () => {
    const two: QuotaConfig = {
      limits: [
        { window: 'minute', requests: 1 },
        { window: 'hour', requests: 1 },
      ],
    }
    const { state } = fixedWindowConsume(undefined, two, {}, T0)
    const denial = fixedWindowConsume(state, two, {}, T0).decision
    expect(denial.retryAfterMs).toBe(calendarWindow('hour', T0).end - T0)
    expect(denial.resetAt).toBe(calendarWindow('hour', T0).end)
  })

  it('reports the window with the smallest remaining share as resetAt when allowed', () => {
    const two: QuotaConfig = {
      limits: [
        { window: 'minute', requests: 10 },
        { window: 'day', requests: 4 },
      ],
    }
    const { decision } = fixedWindowConsume(undefined, two, {}, T0)
    expect(decision.remaining).toEqual({ requests: 3 })
    expect(decision.resetAt).toBe(calendarWindow('day', T0).end)
    const none = fixedWindowConsume(undefined, { limits: [] }, {}, T0).decision
    expect(none).toMatchObject({ allowed: true, remaining: {}, limit: {}, resetAt: T0, windows: [] })
  })

  it('never admits more than the limit within one calendar window (property)', () => {
    const window = fc.constantFrom('minute' as const, 'hour' as const)
    fc.assert(
      fc.property(
        window,
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 1, max: 200 }),
        fc.array(
          fc.record({ gap: fc.integer({ min: 0, max: 20_000 }), requests: fc.nat(3), tokens: fc.nat(80) }),
          { maxLength: 150 },
        ),
        (w, requestLimit, tokenLimit, traffic) => {
          const limits: QuotaConfig = { limits: [{ window: w, requests: requestLimit, tokens: tokenLimit }] }
          let state: FixedWindowState | undefined
          let now = T0
          const admitted = new Map<number, { requests: number; tokens: number }>()
          for (const { gap, requests, tokens } of traffic) {
            now += gap
            const step = fixedWindowConsume(state, limits, { requests, tokens }, now)
            state = step.state
            if (!step.decision.allowed) continue
            const key = calendarWindow(w, now).start
            const sum = admitted.get(key) ?? { requests: 0, tokens: 0 }
            sum.requests += requests
            sum.tokens += tokens
            admitted.set(key, sum)
          }
          for (const sum of admitted.values()) {
            expect(sum.requests).toBeLessThanOrEqual(requestLimit)
            expect(sum.tokens).toBeLessThanOrEqual(tokenLimit)
          }
        },
      ),
      { numRuns: 300 },
    )
  }, 30_000)

  it('admits exactly at now + retryAfterMs and not 1 ms before (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('minute' as const, 'hour' as const, 'day' as const, 'month' as const),
        fc.integer({ min: 0, max: 40 * 24 * 3_600_000 }),
        fc.integer({ min: 1, max: 5 }),
        (w, offset, limit) => {
          const limits: QuotaConfig = { limits: [{ window: w, requests: limit }] }
          const now = T0 + offset
          const full = fixedWindowConsume(undefined, limits, { requests: limit }, now).state
          const denial = fixedWindowConsume(full, limits, {}, now).decision
          expect(denial.allowed).toBe(false)
          expect(fixedWindowConsume(full, limits, {}, now + denial.retryAfterMs - 1).decision.allowed).toBe(
            false,
          )
          expect(fixedWindowConsume(full, limits, {}, now + denial.retryAfterMs).decision.allowed).toBe(true)
        },
      ),
      { numRuns: 500 },
    )
  }, 30_000)
})

describe('fixedWindowAdjust / fixedWindowPeek / fixedWindowExpiresAt', () => {
  const config: QuotaConfig = {
    limits: [
      { window: 'month', tokens: 1000 },
      { window: 'minute', tokens: 100 },
    ],
  }

  it('charges and refunds every window, flooring at zero, without touching requests', () => {
    const { state } = fixedWindowConsume(undefined, config, { tokens: 40 }, T0)
    const charged = fixedWindowAdjust(state, config, 500, T0)
    expect(charged.usage.map((u) => [u.window, u.used])).toEqual([
      ['minute', { requests: 1, tokens: 540 }],
      ['month', { requests: 1, tokens: 540 }],
    ])
    expect(charged.usage[0]!.remaining).toEqual({ tokens: 0 })
    const refunded = fixedWindowAdjust(charged.state, config, -10_000, T0)
    expect(refunded.usage.map((u) => u.used)).toEqual([
      { requests: 1, tokens: 0 },
      { requests: 1, tokens: 0 },
    ])
    // A refund in a later minute only touches what that minute counts.
    const later = fixedWindowAdjust(charged.state, config, -100, T0 + MINUTE)
    expect(later.usage.map((u) => u.used.tokens)).toEqual([0, 440])
  })

  it('peeks without changing anything', () => {
    const { state } = fixedWindowConsume(undefined, config, { tokens: 40 }, T0)
    const copy = JSON.parse(JSON.stringify(state))
    expect(fixedWindowPeek(state, config, T0).map((u) => u.remaining)).toEqual([
      { tokens: 60 },
      { tokens: 960 },
    ])
    expect(state).toEqual(copy)
    expect(fixedWindowPeek(undefined, config, T0).map((u) => u.used)).toEqual([
      { requests: 0, tokens: 0 },
      { requests: 0, tokens: 0 },
    ])
  })

  it('expires with the end of the latest window that counts something', () => {
    expect(fixedWindowExpiresAt(undefined)).toBe(0)
    expect(fixedWindowExpiresAt({})).toBe(0)
    const { state } = fixedWindowConsume(undefined, config, {}, T0)
    expect(fixedWindowExpiresAt(state)).toBe(Date.UTC(2030, 3, 1))
    expect(fixedWindowExpiresAt({ minute: state.minute! })).toBe(calendarWindow('minute', T0).end)
    expect(fixedWindowExpiresAt({ minute: { start: 0, requests: 0, tokens: 0 } })).toBe(0)
  })
})

describe('fixedWindowRefund', () => {
  const config: QuotaConfig = {
    limits: [
      { window: 'minute', requests: 5, tokens: 1000 },
      { window: 'hour', requests: 50 },
    ],
  }
  const minute = calendarWindow('minute', T0).start
  const hour = calendarWindow('hour', T0).start

  it('takes the admission back from the windows of its decision time, down to what was there before', () => {
    const before = fixedWindowConsume(undefined, config, { tokens: 30 }, T0).state
    const after = fixedWindowConsume(before, config, { tokens: 40 }, T0 + 5_000).state
    const undone = fixedWindowRefund(after, config, { tokens: 40 }, T0 + 5_000)
    expect(undone).toEqual(before)
    // The input is left untouched.
    expect(after.minute).toEqual({ start: minute, requests: 2, tokens: 70 })
    // The only admission taken back: nothing is left, and nothing is stored.
    expect(fixedWindowRefund(before, config, { tokens: 30 }, T0)).toEqual({})
    expect(fixedWindowAlgorithm.refund(after, config, { tokens: 40 }, T0)).toEqual(before)
  })

  it('never takes from a window that started after the decision, and never goes below zero', () => {
    // Decided in the previous minute; the minute counter now counts a newer window, the hour's
    // still holds the charge.
    const decidedAt = T0 - MINUTE
    const charged = fixedWindowConsume(undefined, config, { tokens: 10 }, decidedAt).state
    const now = fixedWindowConsume(charged, config, { tokens: 7 }, T0).state
    expect(now.minute).toEqual({ start: minute, requests: 1, tokens: 7 })
    const undone = fixedWindowRefund(now, config, { tokens: 10 }, decidedAt)
    expect(undone.minute).toEqual({ start: minute, requests: 1, tokens: 7 })
    expect(undone.hour).toEqual({ start: hour, requests: 1, tokens: 7 })
    // A refund larger than the count (an adjust took tokens back meanwhile) stops at zero.
    const floored = fixedWindowRefund(now, config, { requests: 1, tokens: 500 }, T0)
    expect(floored).toEqual({ hour: { start: hour, requests: 1, tokens: 0 } })
  })

  it('leaves windows the config does not name alone, and answers an empty state for none', () => {
    const day = { start: calendarWindow('day', T0).start, requests: 9, tokens: 0 }
    const { state } = fixedWindowConsume({ day }, config, {}, T0)
    expect(fixedWindowRefund(state, config, {}, T0)).toEqual({ day })
    expect(fixedWindowRefund(undefined, config, {}, T0)).toEqual({})
    expect(() => fixedWindowRefund(state, config, { tokens: -1 }, T0)).toThrow(/tokens/)
  })

  it('takes back what a saturated admission added, not its cost (the step says what it charged)', () => {
    // Tokens unlimited: a count near MAX_QUOTA_COUNT takes only what keeps it within the bound.
    const open: QuotaConfig = {
      limits: [
        { window: 'minute', requests: 100 },
        { window: 'day', requests: 100 },
      ],
    }
    const day = calendarWindow('day', T0).start
    const before: FixedWindowState = { day: { start: day, requests: 1, tokens: MAX_QUOTA_COUNT - 100 } }
    const step = fixedWindowConsume(before, open, { tokens: 1000 }, T0)
    expect(step.decision.allowed).toBe(true)
    expect(step.state.day).toEqual({ start: day, requests: 2, tokens: MAX_QUOTA_COUNT })
    expect(step.charged).toEqual({ minute: { requests: 1, tokens: 1000 }, day: { requests: 1, tokens: 100 } })
    expect(fixedWindowRefund(step.state, open, { tokens: 1000 }, T0, step.charged)).toEqual(before)
    expect(fixedWindowAlgorithm.refund(step.state, open, { tokens: 1000 }, T0, step.charged)).toEqual(before)
    // The cost alone takes 900 tokens of usage counted before the admission.
    expect(fixedWindowRefund(step.state, open, { tokens: 1000 }, T0).day?.tokens).toBe(MAX_QUOTA_COUNT - 1000)
    // A window the charge does not name loses nothing; a denial charges nothing.
    expect(fixedWindowRefund(step.state, open, { tokens: 1000 }, T0, {}).day).toEqual(step.state.day)
    expect(
      fixedWindowConsume(step.state, { limits: [{ window: 'day', requests: 2 }] }, {}, T0).charged,
    ).toBeUndefined()
  })

  it('consume then refund at the decision time restores every count (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ tokens: fc.nat(200), dt: fc.nat(3 * MINUTE) }), { maxLength: 8 }),
        fc.nat(300),
        fc.nat(5 * MINUTE),
        (traffic, tokens, dt) => {
          const big: QuotaConfig = {
            limits: [
              { window: 'minute', tokens: 100_000 },
              { window: 'hour' as const, requests: 1000 },
            ],
          }
          let state: FixedWindowState | undefined
          let t = T0
          for (const step of traffic) {
            t += step.dt
            state = fixedWindowConsume(state, big, { tokens: step.tokens }, t).state
          }
          t += dt
          const step = fixedWindowConsume(state, big, { tokens }, t)
          expect(step.decision.allowed).toBe(true)
          const undone = fixedWindowRefund(step.state, big, { tokens }, t, step.charged)
          // Usage at the decision time, and at every later time, is as if it had never run.
          for (const at of [t, t + MINUTE, t + 61 * MINUTE]) {
            expect(fixedWindowPeek(undone, big, at)).toEqual(fixedWindowPeek(state, big, at))
          }
        },
      ),
    )
  })
})
