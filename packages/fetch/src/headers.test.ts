import { describe, expect, it } from 'vitest'
import { quotaHeaders, rateLimitFields, retryAfterSeconds } from './index'

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
