import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { findNonJsonValue } from '../json'
import type { QuotaAmounts, QuotaDecision, QuotaWindowUsage } from '../quota'
import type { QuotaWindow } from '../schemas'
import { MAX_QUOTA_COUNT, type QuotaDimension } from './limits'
import type { QuotaDenial } from './quota-decision'
import { overLimit, quotaDecision, windowUsage } from './quota-decision'

const dimensions: QuotaDimension[] = ['requests', 'tokens']

// The rules of quotaDecision written the plain way (one candidate object per window and dimension):
// the optimised function must pick exactly the same windows, ties included.
function tighter(a: { room: number; resetAt: number }, b: { room: number; resetAt: number }): boolean {
  return a.room < b.room || (a.room === b.room && a.resetAt > b.resetAt)
}

function reference(now: number, windows: QuotaWindowUsage[], denials: QuotaDenial[]): QuotaDecision {
  const remaining: QuotaAmounts = {}
  const limit: QuotaAmounts = {}
  for (const d of dimensions) {
    let best: QuotaWindowUsage | undefined
    for (const usage of windows) {
      const room = usage.remaining[d]
      if (room === undefined) continue
      if (
        !best ||
        tighter({ room, resetAt: usage.resetAt }, { room: best.remaining[d]!, resetAt: best.resetAt })
      ) {
        best = usage
      }
    }
    if (best) {
      remaining[d] = best.remaining[d]!
      limit[d] = best.limit[d]!
    }
  }
  if (denials.length > 0) return { ...quotaDecision(now, windows, denials), remaining, limit }
  let tightest: { room: number; resetAt: number } | undefined
  for (const usage of windows) {
    for (const d of dimensions) {
      const allowance = usage.limit[d]
      if (allowance === undefined) continue
      const candidate = { room: usage.remaining[d]! / allowance, resetAt: usage.resetAt }
      if (!tightest || tighter(candidate, tightest)) tightest = candidate
    }
  }
  return {
    allowed: true,
    remaining,
    limit,
    resetAt: tightest?.resetAt ?? now,
    retryAfterMs: 0,
    windows,
    decidedAt: now,
  }
}

describe('quotaDecision', () => {
  it('picks the same windows as comparing every window and dimension one by one (property)', () => {
    const order: QuotaWindow[] = ['minute', 'hour', 'day', 'month']
    // Small numbers so that equal remaining amounts, equal shares and equal resets are common.
    const usage = fc.record({
      requests: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
      tokens: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
      usedRequests: fc.nat(5),
      usedTokens: fc.nat(5),
      resetAt: fc.integer({ min: 1, max: 3 }),
    })
    fc.assert(
      fc.property(fc.array(usage, { maxLength: 4 }), fc.boolean(), (rows, denied) => {
        const windows = rows.map((r, i) =>
          windowUsage(
            { window: order[i]!, requests: r.requests, tokens: r.tokens },
            { requests: r.usedRequests, tokens: r.usedTokens },
            r.resetAt,
          ),
        )
        const denials: QuotaDenial[] = denied
          ? [{ window: 'minute', dimension: 'requests', retryAt: 2, impossible: false, reason: 'r' }]
          : []
        expect(quotaDecision(0, windows, denials)).toEqual(reference(0, windows, denials))
      }),
      { numRuns: 2000 },
    )
  })

  it('answers an admission over one window as over several, zero limits included (property)', () => {
    // One window takes a shortcut; a second window with no limited dimension changes nothing in
    // the general path, so the two must agree on everything but the list of windows.
    const limit = fc.option(fc.nat(4), { nil: undefined })
    fc.assert(
      fc.property(
        limit,
        limit,
        fc.nat(5),
        fc.nat(5),
        fc.integer({ min: 1, max: 3 }),
        (requests, tokens, r, t, at) => {
          const only = windowUsage({ window: 'minute', requests, tokens }, { requests: r, tokens: t }, at)
          const unlimited = windowUsage({ window: 'month' }, { requests: 1, tokens: 1 }, 9)
          const { windows, ...one } = quotaDecision(0, [only], [])
          const { windows: _, ...general } = quotaDecision(0, [only, unlimited], [])
          expect(one).toEqual(general)
          expect(Object.keys(one)).toEqual(Object.keys(general))
          expect(windows).toEqual([only])
        },
      ),
      { numRuns: 2000 },
    )
  })
})

describe('decision objects', () => {
  // They are built by constructors (see plainConstructor) and must still be plain data: the JSON
  // checks of the stores refuse class instances, and callers compare and serialize them.
  it('are plain objects with the same keys, in the same order, as literals', () => {
    const usage = windowUsage(
      { window: 'minute', requests: 100, tokens: undefined },
      { requests: 40, tokens: 7 },
      60_000,
    )
    const denial: QuotaDenial = {
      window: 'minute',
      dimension: 'requests',
      retryAt: 60_000,
      impossible: false,
      reason: 'minute requests quota exhausted',
    }
    const allowed = quotaDecision(1_000, [usage], [])
    const denied = quotaDecision(1_000, [usage], [denial])
    for (const value of [usage, usage.limit, usage.used, usage.remaining, allowed, denied, allowed.limit]) {
      expect(Object.getPrototypeOf(value)).toBe(Object.prototype)
      expect(findNonJsonValue(value)).toBeUndefined()
    }
    expect(Object.keys(usage)).toEqual(['window', 'limit', 'used', 'remaining', 'resetAt'])
    expect(Object.keys(usage.limit)).toEqual(['requests'])
    expect(Object.keys(allowed)).toEqual([
      'allowed',
      'remaining',
      'limit',
      'resetAt',
      'retryAfterMs',
      'windows',
      'decidedAt',
    ])
    expect(Object.keys(denied)).toEqual([
      'allowed',
      'remaining',
      'limit',
      'resetAt',
      'retryAfterMs',
      'reason',
      'windows',
      'decidedAt',
    ])
    expect(JSON.parse(JSON.stringify(allowed))).toEqual({
      allowed: true,
      remaining: { requests: 60 },
      limit: { requests: 100 },
      resetAt: 60_000,
      retryAfterMs: 0,
      windows: [
        {
          window: 'minute',
          limit: { requests: 100 },
          used: { requests: 40, tokens: 7 },
          remaining: { requests: 60 },
          resetAt: 60_000,
        },
      ],
      decidedAt: 1_000,
    })
  })
})

describe('overLimit', () => {
  it('names only limited dimensions: an unlimited one never refuses, however large the cost', () => {
    const MAX = MAX_QUOTA_COUNT
    expect(
      overLimit(
        { window: 'month', requests: 10 },
        { requests: 1, tokens: MAX },
        { requests: 1, tokens: MAX },
      ),
    ).toEqual([])
    expect(
      overLimit({ window: 'month' }, { requests: MAX, tokens: MAX }, { requests: MAX, tokens: MAX }),
    ).toEqual([])
    expect(
      overLimit(
        { window: 'month', requests: 10, tokens: MAX },
        { requests: 10, tokens: MAX },
        { requests: 1, tokens: 1 },
      ),
    ).toEqual(['requests', 'tokens'])
  })
})
