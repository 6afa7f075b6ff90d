import { describe, expect, it } from 'vitest'
import { InvalidTenantConfigError } from '../errors'
import type { QuotaConfig } from '../schemas'
import { effectiveLimits } from './limits'
import { quotaDecision, windowUsage } from './quota-decision'

describe('effectiveLimits', () => {
  it('drops unlimited (missing or 0) allowances and sorts shortest window first', () => {
    expect(
      effectiveLimits({
        limits: [
          { window: 'month', tokens: 0, requests: 500 },
          { window: 'minute', tokens: 10 },
          { window: 'day' },
          { window: 'hour', requests: 0 },
        ],
      }),
    ).toEqual([
      { window: 'minute', tokens: 10 },
      { window: 'hour' },
      { window: 'day' },
      { window: 'month', requests: 500 },
    ])
    expect(effectiveLimits({ limits: [] })).toEqual([])
    expect(effectiveLimits({} as QuotaConfig)).toEqual([])
  })

  it('rejects what a hand-written provider might return, listing every problem', () => {
    const bad = {
      limits: [
        { window: 'week', requests: 1 },
        { window: 'minute', requests: -1, tokens: 1.5 },
        { window: 'minute', requests: 1 },
        null,
        { window: 'hour', tokens: '100' },
      ],
    } as unknown as QuotaConfig
    let error: unknown
    try {
      effectiveLimits(bad)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(InvalidTenantConfigError)
    expect((error as InvalidTenantConfigError).issues.map((i) => i.path.join('.'))).toEqual([
      'limits.0.window',
      'limits.1.requests',
      'limits.1.tokens',
      'limits.2.window',
      'limits.3.window',
      'limits.4.tokens',
    ])
    expect(() => effectiveLimits({ limits: 'minute' } as unknown as QuotaConfig)).toThrow(
      InvalidTenantConfigError,
    )
  })
})

describe('quotaDecision', () => {
  const minute = windowUsage(
    { window: 'minute', requests: 10, tokens: 100 },
    { requests: 9, tokens: 10 },
    1_000,
  )
  const day = windowUsage(
    { window: 'day', requests: 100, tokens: 1000 },
    { requests: 50, tokens: 950 },
    9_000,
  )

  it('reports, per dimension, the window with the least remaining', () => {
    const decision = quotaDecision(0, [minute, day], [])
    expect(decision.remaining).toEqual({ requests: 1, tokens: 50 })
    expect(decision.limit).toEqual({ requests: 10, tokens: 1000 })
    // The smallest remaining share: the day's 50 of 1000 tokens (5 %) beats the minute's 1 of 10.
    expect(decision.resetAt).toBe(9_000)
  })

  it('prefers the later reset when two windows have equal room', () => {
    const a = windowUsage({ window: 'minute', requests: 10 }, { requests: 5, tokens: 0 }, 1_000)
    const b = windowUsage({ window: 'hour', requests: 10 }, { requests: 5, tokens: 0 }, 5_000)
    expect(quotaDecision(0, [a, b], []).resetAt).toBe(5_000)
    expect(quotaDecision(0, [b, a], []).resetAt).toBe(5_000)
  })

  it('floors remaining at zero when usage went over the limit after the fact', () => {
    expect(windowUsage({ window: 'minute', tokens: 100 }, { requests: 1, tokens: 150 }, 0).remaining).toEqual(
      { tokens: 0 },
    )
  })

  it('on a denial, retries after the latest refusing window and never resets before that', () => {
    const decision = quotaDecision(
      100,
      [minute, day],
      [
        { window: 'minute', dimension: 'requests', retryAt: 1_000, impossible: false, reason: 'a' },
        { window: 'day', dimension: 'tokens', retryAt: 20_000, impossible: false, reason: 'b' },
        { window: 'minute', dimension: 'tokens', retryAt: 1_000, impossible: true, reason: 'c' },
      ],
    )
    expect(decision).toMatchObject({
      allowed: false,
      retryAfterMs: 19_900,
      resetAt: 20_000,
      reason: 'c; a; b',
    })
  })
})
