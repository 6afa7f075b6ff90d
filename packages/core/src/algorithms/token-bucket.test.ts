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

  it('gives the tokens back into the bucket as it is now, capped at the burst, while no take ran since', () => {
    const before = tokenBucketConsume(undefined, config, 2, T0).state
    const after = tokenBucketConsume(before, config, 2, T0 + 50).state
    expect(after).toEqual({ tokens: 1.5, updatedAt: T0 + 50 })
    // Right away: the level is what it would have been without the take.
    const undone = tokenBucketRefund(after, config, 2, T0 + 50, after)
    expect(tokenBucketLevel(undone, config, T0 + 50)).toBeCloseTo(tokenBucketLevel(before, config, T0 + 50))
    expect(tokenBucketLevel(undone, config, T0 + 120)).toBeCloseTo(tokenBucketLevel(before, config, T0 + 120))
    // Later, once the bucket has refilled past the take, only what it lacks; full: no state.
    expect(tokenBucketRefund(after, config, 2, T0 + 250, after)).toBeUndefined()
    expect(tokenBucketRefund(undefined, config, 2, T0, after)).toBeUndefined()
    const partial = tokenBucketRefund(after, config, 1, T0 + 150, after)
    expect(partial?.updatedAt).toBe(T0 + 150)
    expect(partial?.tokens).toBeCloseTo(3.5)
  })

  it('never refills from before the state time when the clock stepped back', () => {
    const state: TokenBucketState = { tokens: 1, updatedAt: T0 }
    expect(tokenBucketRefund(state, config, 2, T0 - 10_000, state)).toEqual({ tokens: 3, updatedAt: T0 })
  })

  it('after a later take, gives back only what the cap cannot have wasted', () => {
    // Burst 4 at 1/s. X takes 3 (1 left), Y takes 3 two seconds later (0 left). Without X the
    // bucket sat full until Y, which would have left 1: giving X's 3 back (3 left) over-credits.
    const slow: RateLimitConfig = { requestsPerSecond: 1, burst: 4 }
    const x = tokenBucketConsume(undefined, slow, 3, T0).state
    const y = tokenBucketConsume(x, slow, 3, T0 + 2000).state
    expect(y).toEqual({ tokens: 0, updatedAt: T0 + 2000 })
    expect(tokenBucketRefund(y, slow, 3, T0 + 2000, x)).toEqual({ tokens: 1, updatedAt: T0 + 2000 })
    // Full again before the later take: none of what is missing now is X's.
    const z = tokenBucketConsume(x, slow, 3, T0 + 5000).state
    expect(tokenBucketRefund(z, slow, 3, T0 + 5000, x)).toBe(z)
    // Takes in the same millisecond (a burst whose answers were lost): each is owed in full.
    const a = tokenBucketConsume(undefined, slow, 1, T0).state
    const b = tokenBucketConsume(a, slow, 1, T0).state
    const undoneA = tokenBucketRefund(b, slow, 1, T0 + 1, a)
    expect(undoneA?.tokens).toBeCloseTo(3.001)
    expect(tokenBucketRefund(undoneA, slow, 1, T0 + 1, b)).toBeUndefined()
    // A take that left a full bucket (cost 0 from full) took nothing.
    expect(tokenBucketRefund(y, slow, 0, T0 + 2000, undefined)).toBe(y)
  })

  it('cannot see a refund that a later take used: after one, the store gives nothing back', () => {
    // Burst 2 at 0.5/s: a and b take 1 each (0 left); a's void gives 1 back; c takes 1 after
    // 300 ms (0.15 left). Without a and b, c would have left 1; b's line (0.15 by then) misses the
    // token c took out of a's refund, so refunding b would make 1.15. Hence the store's record.
    const slow: RateLimitConfig = { requestsPerSecond: 0.5, burst: 2 }
    const a = tokenBucketConsume(undefined, slow, 1, T0).state
    const b = tokenBucketConsume(a, slow, 1, T0).state
    const undoneA = tokenBucketRefund(b, slow, 1, T0, a)
    expect(undoneA).toEqual({ tokens: 1, updatedAt: T0 })
    const c = tokenBucketConsume(undoneA, slow, 1, T0 + 300).state
    expect(tokenBucketLevel(tokenBucketRefund(c, slow, 1, T0 + 300, b), slow, T0 + 300)).toBeCloseTo(1.15)
    expect(tokenBucketLevel(tokenBucketConsume(undefined, slow, 1, T0 + 300).state, slow, T0 + 300)).toBe(1)
  })

  // A store's side: it refunds a take only while no take has followed a refund since that take
  // (README: the refund record), and never refunds a take twice. Whatever the order of takes and
  // voids, the bucket then never holds more than it would without the voided takes.
  it('never credits more than the bucket would hold without the voided takes (property)', () => {
    const event = fc.oneof(
      fc.record({ take: fc.nat(9), dt: fc.constantFrom(0, 0, 1, 7, 300, 1500, 4000) }),
      fc.record({ void: fc.nat(40), dt: fc.constantFrom(0, 0, 1, 7, 300, 1500, 4000) }),
    )
    fc.assert(
      fc.property(
        fc.record({
          requestsPerSecond: fc.constantFrom(0.5, 1, 3, 10),
          burst: fc.integer({ min: 1, max: 8 }),
        }),
        fc.array(event, { maxLength: 40 }),
        (bucket, events) => {
          type Take = {
            cost: number
            at: number
            seq: number
            left: TokenBucketState | undefined
            voided?: boolean
          }
          let state: TokenBucketState | undefined
          let t = T0
          let seq = 0
          // The latest refund, and the latest refund that a take followed (the store's record).
          let lastRefund = -1
          let refundBeforeTake = -1
          const takes: Take[] = []
          for (const e of events) {
            t += e.dt
            seq++
            if ('take' in e) {
              const step = tokenBucketConsume(state, bucket, e.take, t)
              if (!step.decision.allowed) continue
              state = step.state
              if (e.take > 0) refundBeforeTake = lastRefund
              takes.push({ cost: e.take, at: t, seq, left: step.state })
              continue
            }
            const open = takes.filter((k) => !k.voided)
            const voided = open[e.void % Math.max(1, open.length)]
            if (voided === undefined) continue
            voided.voided = true
            if (refundBeforeTake > voided.seq) continue
            const refunded = tokenBucketRefund(state, bucket, voided.cost, t, voided.left)
            if (refunded !== state) lastRefund = seq
            state = refunded
            // At every void: no more than the bucket without the voided takes.
            let without: TokenBucketState | undefined
            for (const k of takes) {
              if (k.voided) continue
              const again = tokenBucketConsume(without, bucket, k.cost, k.at)
              expect(again.decision.allowed).toBe(true)
              without = again.state
            }
            for (const at of [t, t + 700]) {
              expect(tokenBucketLevel(state, bucket, at)).toBeLessThanOrEqual(
                tokenBucketLevel(without, bucket, at) + 1e-9,
              )
            }
          }
        },
      ),
      { numRuns: 20000 },
    )
  })

  it('gives back the whole of a take when no other take ran since (property)', () => {
    fc.assert(
      fc.property(
        fc.record({
          requestsPerSecond: fc.constantFrom(0.5, 1, 3, 10),
          burst: fc.integer({ min: 1, max: 8 }),
        }),
        fc.array(fc.record({ cost: fc.nat(8), dt: fc.nat(3000) }), { maxLength: 8 }),
        fc.nat(8),
        fc.nat(3000),
        (bucket, history, cost, wait) => {
          let state: TokenBucketState | undefined
          let t = T0
          for (const take of history) {
            t += take.dt
            state = tokenBucketConsume(state, bucket, take.cost, t).state
          }
          const step = tokenBucketConsume(state, bucket, cost, t)
          if (!step.decision.allowed) return
          const refunded = tokenBucketRefund(step.state, bucket, cost, t + wait, step.state)
          for (const at of [t + wait, t + wait + 700]) {
            expect(tokenBucketLevel(refunded, bucket, at)).toBeCloseTo(tokenBucketLevel(state, bucket, at), 9)
          }
        },
      ),
      { numRuns: 500 },
    )
  })
})
