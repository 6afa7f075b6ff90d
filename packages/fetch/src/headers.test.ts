import type { QuotaWindowUsage, RateLimitDecision } from '@tenant/core'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  listItemsAt,
  quotaHeaders,
  rateLimitFields,
  rateLimitHeaders,
  retryAfterSeconds,
  withHeaders,
} from './index'

describe('headers', () => {
  it('Retry-After is whole seconds, rounded up, at least 1', () => {
    expect([0, 1, 999, 1000, 1001, 59_001].map(retryAfterSeconds)).toEqual([1, 1, 1, 1, 2, 60])
  })

  it('formats RateLimit-Policy and RateLimit items', () => {
    expect(
      rateLimitFields([
        { policy: 'minute', quota: 100, windowSeconds: 60, remaining: 42, resetSeconds: 17 },
        {
          policy: 'minute-tokens',
          quota: 5000,
          windowSeconds: 60,
          unit: 'tokens',
          remaining: 0,
          resetSeconds: 17,
        },
      ]),
    ).toEqual([
      ['RateLimit-Policy', '"minute";q=100;w=60, "minute-tokens";q=5000;w=60;qu="tokens"'],
      ['RateLimit', '"minute";r=42;t=17, "minute-tokens";r=0;t=17'],
    ])
    expect(rateLimitFields([])).toEqual([])
  })

  it('gives a month window the length of the calendar month it closes', () => {
    const now = Date.UTC(2024, 1, 10)
    const headers = quotaHeaders(
      [
        {
          window: 'month',
          limit: { requests: 10 },
          used: { requests: 1, tokens: 0 },
          remaining: { requests: 9 },
          resetAt: Date.UTC(2024, 2, 1),
        },
      ],
      now,
    )
    expect(headers).toEqual([
      ['RateLimit-Policy', `"month";q=10;w=${29 * 86_400}`],
      ['RateLimit', `"month";r=9;t=${20 * 86_400}`],
      ['X-Quota-Remaining-Requests', '9'],
    ])
  })

  it('formats large quotas digit for digit', () => {
    for (const n of [999_999_999, 1_000_000_000, 1_000_000_007, 1e12, 2 ** 53 - 1, 1_234_567_890_123]) {
      expect(rateLimitFields([{ policy: 'p', quota: n, remaining: n - 1, resetSeconds: 0 }])).toEqual([
        ['RateLimit-Policy', `"p";q=${String(n)}`],
        ['RateLimit', `"p";r=${String(n - 1)};t=0`],
      ])
    }
  })

  it('reports the smallest remaining of each limited dimension', () => {
    const usage = (window: 'minute' | 'day', requests: number | undefined, tokens: number | undefined) => ({
      window,
      limit: {
        ...(requests !== undefined && { requests: 100 }),
        ...(tokens !== undefined && { tokens: 100 }),
      },
      used: { requests: 0, tokens: 0 },
      remaining: { ...(requests !== undefined && { requests }), ...(tokens !== undefined && { tokens }) },
      resetAt: 0,
    })
    const headers = new Map(quotaHeaders([usage('minute', 7, undefined), usage('day', 3, 50)], 0))
    expect(headers.get('X-Quota-Remaining-Requests')).toBe('3')
    expect(headers.get('X-Quota-Remaining-Tokens')).toBe('50')
  })
})

// quotaHeaders and rateLimitHeaders keep the policy values they wrote and reuse one when a
// decision matches what it was made from. These tests hold them to a formatter that keeps nothing.
describe('headers: reused policy values', () => {
  type Usage = QuotaWindowUsage

  const daysIn = (resetAt: number) => {
    const end = new Date(resetAt - 1)
    return new Date(Date.UTC(end.getUTCFullYear(), end.getUTCMonth() + 1, 0)).getUTCDate()
  }
  const seconds: Record<string, number> = { minute: 60, hour: 3_600, day: 86_400 }

  // The headers as the draft spells them, from scratch on every call.
  const reference = (windows: readonly Usage[], now: number): [string, string][] => {
    const policies: string[] = []
    const states: string[] = []
    const least: { requests?: number; tokens?: number } = {}
    for (const u of windows) {
      const name = u.subject === undefined ? u.window : `subject-${u.window}`
      const w = u.window === 'month' ? daysIn(u.resetAt) * 86_400 : seconds[u.window]
      const t = Math.max(0, Math.ceil((u.resetAt - now) / 1000))
      for (const dim of ['requests', 'tokens'] as const) {
        const q = u.limit[dim]
        if (q === undefined) continue
        const r = u.remaining[dim] ?? 0
        const policy = dim === 'requests' ? name : `${name}-tokens`
        policies.push(`"${policy}";q=${q};w=${w}${dim === 'tokens' ? ';qu="tokens"' : ''}`)
        states.push(`"${policy}";r=${r};t=${t}`)
        least[dim] = Math.min(least[dim] ?? r, r)
      }
    }
    if (policies.length === 0) return []
    const out: [string, string][] = [
      ['RateLimit-Policy', policies.join(', ')],
      ['RateLimit', states.join(', ')],
    ]
    if (least.requests !== undefined) out.push(['X-Quota-Remaining-Requests', String(least.requests)])
    if (least.tokens !== undefined) out.push(['X-Quota-Remaining-Tokens', String(least.tokens)])
    return out
  }

  const usage = (
    window: Usage['window'],
    limit: Usage['limit'],
    resetAt: number,
    subject?: string,
  ): Usage => ({
    window,
    limit,
    used: { requests: 1, tokens: 0 },
    remaining: {
      ...(limit.requests !== undefined && { requests: limit.requests - 1 }),
      ...(limit.tokens !== undefined && { tokens: limit.tokens }),
    },
    resetAt,
    ...(subject !== undefined && { subject }),
  })

  it('answers tenants with different limits taking turns, each with its own policy', () => {
    const now = Date.UTC(2026, 0, 1, 12)
    const a = [usage('minute', { requests: 5 }, now + 30_000)]
    const b = [usage('minute', { requests: 6 }, now + 30_000)]
    const c = [usage('minute', { requests: 5, tokens: 1_000_000_000 }, now + 30_000)]
    const d = [usage('hour', { requests: 5 }, now + 30_000)]
    for (let round = 0; round < 3; round++) {
      for (const windows of [a, b, c, d, a, a, c]) {
        expect(quotaHeaders(windows, now)).toEqual(reference(windows, now))
      }
    }
  })

  it('tells a subject window from the tenant window of the same limits', () => {
    const now = Date.UTC(2026, 0, 1, 12)
    const tenant = [usage('minute', { requests: 5 }, now + 1_000)]
    const subject = [usage('minute', { requests: 5 }, now + 1_000, 'user-1')]
    for (const windows of [tenant, subject, tenant, subject]) {
      expect(quotaHeaders(windows, now)).toEqual(reference(windows, now))
    }
    expect(new Map(quotaHeaders(subject, now)).get('RateLimit-Policy')).toBe('"subject-minute";q=5;w=60')
  })

  it("gives a month window the length of the month it closes, across a month's end", () => {
    const limits = { requests: 10, tokens: 500 }
    // January closes with 31 days, February 2024 with 29, then 2025's with 28.
    const resets = [Date.UTC(2024, 1, 1), Date.UTC(2024, 2, 1), Date.UTC(2025, 2, 1), Date.UTC(2024, 1, 1)]
    for (const resetAt of resets) {
      const windows = [usage('month', limits, resetAt)]
      expect(quotaHeaders(windows, resetAt - 5_000)).toEqual(reference(windows, resetAt - 5_000))
    }
    expect(new Map(quotaHeaders([usage('month', limits, resets[2]!)], 0)).get('RateLimit-Policy')).toBe(
      `"month";q=10;w=${28 * 86_400}, "month-tokens";q=500;w=${28 * 86_400};qu="tokens"`,
    )
  })

  it('skips windows with no limited dimension, and writes nothing when none is limited', () => {
    const now = 0
    const open = usage('minute', {}, 60_000)
    const day = usage('day', { tokens: 7 }, 86_400_000)
    expect(quotaHeaders([open], now)).toEqual([])
    for (const windows of [[open, day], [day], [day, open], [open]]) {
      expect(quotaHeaders(windows, now)).toEqual(reference(windows, now))
    }
  })

  it('keeps answering right after more distinct limits than it keeps', () => {
    const now = Date.UTC(2026, 0, 1, 12)
    const many = Array.from({ length: 80 }, (_, i) => [
      usage('minute', { requests: i + 1 }, now + 1_000),
      usage('day', { tokens: (i % 7) * 1_000_000_007 }, now + 2_000),
    ])
    for (const i of [...many.keys(), ...many.keys(), 0, 79, 40, 41, 0]) {
      expect(quotaHeaders(many[i]!, now)).toEqual(reference(many[i]!, now))
    }
  })

  it('matches the reference for any sequence of decisions', () => {
    const windowArb = fc.record({
      window: fc.constantFrom('minute', 'hour', 'day', 'month') as fc.Arbitrary<Usage['window']>,
      requests: fc.option(fc.constantFrom(1, 2, 100, 1_000_000_000), { nil: undefined }),
      tokens: fc.option(fc.constantFrom(1, 100, 2 ** 40), { nil: undefined }),
      // Month ends of different lengths.
      resetAt: fc.constantFrom(Date.UTC(2024, 1, 1), Date.UTC(2024, 2, 1), Date.UTC(2024, 4, 1)),
      subject: fc.option(fc.constant('s'), { nil: undefined }),
    })
    const decision = fc
      .array(windowArb, { maxLength: 4 })
      .map((ws) =>
        ws.map((w) => usage(w.window, { requests: w.requests, tokens: w.tokens }, w.resetAt, w.subject)),
      )
    fc.assert(
      fc.property(fc.array(decision, { minLength: 1, maxLength: 60 }), (decisions) => {
        for (const windows of decisions) {
          const now = Date.UTC(2024, 0, 20)
          expect(quotaHeaders(windows, now)).toEqual(reference(windows, now))
        }
      }),
      { numRuns: 200 },
    )
  })

  it('writes the rate policy of the burst each decision carries', () => {
    const decision = (limit: number | undefined, remaining: number): RateLimitDecision => ({
      allowed: true,
      ...(limit !== undefined && { limit, remaining }),
      resetAt: 3_000,
      retryAfterMs: 0,
    })
    for (const [limit, remaining] of [
      [5, 4],
      [5, 3],
      [7, 6],
      [5, 2],
      [2_000_000_000, 1],
    ] as const) {
      expect(rateLimitHeaders(decision(limit, remaining), 0)).toEqual([
        ['RateLimit-Policy', `"rate";q=${limit}`],
        ['RateLimit', `"rate";r=${remaining};t=3`],
      ])
    }
    expect(rateLimitHeaders(decision(undefined, 0), 0)).toEqual([])
  })
})

describe('listItemsAt', () => {
  it('finds whole items only, never a prefix of a longer item', () => {
    expect(listItemsAt('"rate";q=100, "rate";q=10', '"rate";q=10')).toBe(14)
    expect(listItemsAt('"rate";q=100', '"rate";q=10')).toBe(-1)
    expect(listItemsAt('"a";r=1;t=450', '"a";r=1;t=45')).toBe(-1)
    expect(listItemsAt('x"a";q=1', '"a";q=1')).toBe(-1)
    expect(listItemsAt('"a";q=1,"b";q=2', '"a";q=1')).toBe(0)
    expect(listItemsAt('"own";q=5 ,\t"a";q=1, "b";q=2', '"a";q=1, "b";q=2')).toBe(12)
    expect(listItemsAt('"a";q=1', '')).toBe(-1)
  })

  it("lets a copy for another request take out the first request's items, not a longer one's", async () => {
    // One response object answered twice: the second request's copy drops what the first wrote.
    const upstream = new Response('x', { headers: { 'RateLimit-Policy': '"rate";q=100' } })
    const first = withHeaders(upstream, [['RateLimit-Policy', '"rate";q=10']], {})
    expect(first.headers.get('RateLimit-Policy')).toBe('"rate";q=100, "rate";q=10')
    expect(withHeaders(first, [], {}).headers.get('RateLimit-Policy')).toBe('"rate";q=100')
    const shared = new Response('x', { headers: { 'RateLimit-Policy': '"b";q=1, "a";q=12' } })
    const once = withHeaders(shared, [['RateLimit-Policy', '"a";q=1']], {})
    expect(once.headers.get('RateLimit-Policy')).toBe('"b";q=1, "a";q=12, "a";q=1')
    expect(withHeaders(once, [], {}).headers.get('RateLimit-Policy')).toBe('"b";q=1, "a";q=12')
  })
})
