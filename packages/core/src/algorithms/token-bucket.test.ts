import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { RateLimitConfig } from '../schemas'
import type { TokenBucketState } from './token-bucket'
import { tokenBucketConsume, tokenBucketFullAt, tokenBucketLevel, tokenBucketRefund } from './token-bucket'

const T0 = Date.UTC(2030, 2, 14, 9, 26)

describe('token bucket', () => {
  const config: RateLimitConfig = { requestsPerSecond: 10, burst: 5 }

  it('starts full, keeps no state for a full bucket and refills continuously up to the burst', () => {
    expect(tokenBucketLevel(undefined, config, T0)).toBe(5)
    const zero = tokenBucketConsume(undefined, config, 0, T0)
    expect(zero.state).toBeUndefined()
    expect(zero.decision).toEqual({ allowed: true, limit: 5, remaining: 5, resetAt: T0, retryAfterMs: 0 })
    const { state } = tokenBucketConsume(undefined, config, 3, T0)
    expect(state).toEqual({ tokens: 2, updatedAt: T0 })
    expect(tokenBucketLevel(state, config, T0 + 150)).toBeCloseTo(3.5)
    expect(tokenBucketLevel(state, config, T0 + 10_000)).toBe(5)
    expect(tokenBucketFullAt(state, config)).toBe(T0 + 300)
    expect(tokenBucketFullAt(undefined, config)).toBe(0)
    // Taken from a bucket that has refilled completely, the state is dropped again.
    expect(tokenBucketConsume(state, config, 0, T0 + 300).state).toBeUndefined()
  })

  it('denies with the state untouched and retryAfterMs = deficit / rate', () => {
    const { state } = tokenBucketConsume(undefined, config, 5, T0)
    const denial = tokenBucketConsume(state, config, 2, T0 + 50)
    expect(denial.state).toBe(state)
    expect(denial.decision).toMatchObject({
      allowed: false,
      remaining: 0,
      retryAfterMs: 150,
      resetAt: T0 + 500,
    })
    expect(denial.decision.reason).toBe(
      'rate limit exceeded: 10/s with a burst of 5, the request needs 2 and 0 are available',
    )
  })

  it('denies a cost above the burst for the time an empty bucket takes to fill', () => {
    const denial = tokenBucketConsume(undefined, config, 6, T0)
    expect(denial.decision).toMatchObject({ allowed: false, remaining: 5, retryAfterMs: 500 })
    expect(denial.decision.reason).toMatch(/exceeds the rate limit burst of 5: it can never be admitted/)
    expect(denial.state).toBeUndefined()
  })

  it('always allows a tenant without a rate limit and keeps no state', () => {
    expect(tokenBucketConsume({ tokens: 0, updatedAt: T0 }, null, 1e9, T0)).toEqual({
      decision: { allowed: true, resetAt: T0, retryAfterMs: 0 },
      state: undefined,
    })
  })

  it('refills from the state time when the clock stepped back, without a negative refill', () => {
    const state: TokenBucketState = { tokens: 0, updatedAt: T0 + 1000 }
    expect(tokenBucketLevel(state, config, T0)).toBe(0)
    const denial = tokenBucketConsume(state, config, 1, T0).decision
    expect(denial.retryAfterMs).toBe(1100)
    expect(tokenBucketConsume(state, config, 1, T0 + 1099).decision.allowed).toBe(false)
    expect(tokenBucketConsume(state, config, 1, T0 + 1100).decision.allowed).toBe(true)
  })

  it('admits exactly at now + retryAfterMs and not 1 ms before (property)', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.01, max: 100_000, noNaN: true }),
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.array(fc.record({ gap: fc.integer({ min: 0, max: 5_000 }), cost: fc.nat(20) }), { maxLength: 30 }),
        fc.integer({ min: 1, max: 1_000_000 }),
        (requestsPerSecond, burst, traffic, rawCost) => {
          const cfg = { requestsPerSecond, burst }
          let state: TokenBucketState | undefined
          let now = T0
          for (const { gap, cost } of traffic) {
            now += gap
            state = tokenBucketConsume(state, cfg, cost, now).state
          }
          const cost = Math.min(rawCost, burst)
          const { decision } = tokenBucketConsume(state, cfg, cost, now)
          if (decision.allowed) return
          expect(decision.retryAfterMs).toBeGreaterThan(0)
          const at = now + decision.retryAfterMs
          expect(tokenBucketConsume(state, cfg, cost, at).decision.allowed).toBe(true)
          if (at - 1 > now) expect(tokenBucketConsume(state, cfg, cost, at - 1).decision.allowed).toBe(false)
        },
      ),
      { numRuns: 1000 },
    )
  }, 30_000)

  it('never admits more than burst + rate * T in any span of T ms (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 1, max: 20 }),
        fc.array(fc.record({ gap: fc.integer({ min: 0, max: 400 }), cost: fc.nat(4) }), { maxLength: 200 }),
        (requestsPerSecond, burst, traffic) => {
          const cfg = { requestsPerSecond, burst }
          let state: TokenBucketState | undefined
          let now = T0
          const admitted: { t: number; cost: number }[] = []
          for (const { gap, cost } of traffic) {
            now += gap
            const step = tokenBucketConsume(state, cfg, cost, now)
            state = step.state
            if (step.decision.allowed) admitted.push({ t: now, cost })
          }
          for (let i = 0; i < admitted.length; i++) {
            let sum = 0
            for (let j = i; j < admitted.length; j++) {
              sum += admitted[j]!.cost
              const span = admitted[j]!.t - admitted[i]!.t
              expect(sum).toBeLessThanOrEqual(burst + (requestsPerSecond * span) / 1000 + 1e-9)
            }
          }
        },
      ),
      { numRuns: 300 },
    )
  }, 30_000)
})

describe('tokenBucketRefund', () => {
  const config: RateLimitConfig = { requestsPerSecond: 10, burst: 5 }

  it('gives the tokens back into the bucket as it is now, capped at the burst', () => {
    const before = tokenBucketConsume(undefined, config, 2, T0).state
    const after = tokenBucketConsume(before, config, 2, T0 + 50).state
    expect(after).toEqual({ tokens: 1.5, updatedAt: T0 + 50 })
    // Right away: the level is what it would have been without the take.
    const undone = tokenBucketRefund(after, config, 2, T0 + 50)
    expect(tokenBucketLevel(undone, config, T0 + 50)).toBeCloseTo(tokenBucketLevel(before, config, T0 + 50))
    expect(tokenBucketLevel(undone, config, T0 + 120)).toBeCloseTo(tokenBucketLevel(before, config, T0 + 120))
    // Later, once the bucket has refilled past the take, only what it lacks; full: no state.
    expect(tokenBucketRefund(after, config, 2, T0 + 250)).toBeUndefined()
    expect(tokenBucketRefund(undefined, config, 2, T0)).toBeUndefined()
    const partial = tokenBucketRefund(after, config, 1, T0 + 150)
    expect(partial?.updatedAt).toBe(T0 + 150)
    expect(partial?.tokens).toBeCloseTo(3.5)
  })

  it('never refills from before the state time when the clock stepped back', () => {
    const state: TokenBucketState = { tokens: 1, updatedAt: T0 }
    expect(tokenBucketRefund(state, config, 2, T0 - 10_000)).toEqual({ tokens: 3, updatedAt: T0 })
  })
})
