import { describe, expect, it } from 'vitest'
import { rejectionOf } from '../testing/quota-manager'
import { ManualClock } from './clock'
import type { RateLimitProvider } from './config'
import type { RateLimitConfig } from './schemas'
import { TokenBucketRateLimiter } from './token-bucket-rate-limiter'

const T0 = Date.UTC(2030, 2, 14, 9, 26)

function everyone(config: RateLimitConfig | null): RateLimitProvider & { calls: number } {
  return {
    calls: 0,
    async rateLimitConfig() {
      this.calls += 1
      return config
    },
  }
}

describe('TokenBucketRateLimiter', () => {
  it('holds state only for buckets that are not full, and forgets them once refilled', async () => {
    const clock = new ManualClock(T0)
    const limiter = new TokenBucketRateLimiter(everyone({ requestsPerSecond: 10, burst: 20 }), { clock })
    for (let i = 0; i < 100_000; i++) await limiter.consume(`tenant-${i}`)
    expect(limiter.size).toBe(100_000)
    clock.advance(100) // one token back: every bucket is full again
    for (let i = 0; i < 100; i++) await limiter.consume('active', { cost: 0 })
    expect(limiter.size).toBe(0)
  }, 60_000)

  it('drops a bucket the moment it is full, and keeps none for tenants without a rate limit', async () => {
    const clock = new ManualClock(T0)
    const limiter = new TokenBucketRateLimiter(everyone({ requestsPerSecond: 1, burst: 2 }), { clock })
    await limiter.consume('a')
    expect(limiter.size).toBe(1)
    clock.advance(1000)
    await limiter.consume('a', { cost: 0 })
    expect(limiter.size).toBe(0)
    const open = new TokenBucketRateLimiter(everyone(null), { clock })
    await open.consume('a', { cost: 50 })
    expect(open.size).toBe(0)
  })

  it('refuses a rate limit the bucket arithmetic cannot use, from a hand-written provider (400)', async () => {
    // burst 0 answered a denial saying "retry now" forever; requestsPerSecond 0 an Infinity wait.
    for (const config of [
      { requestsPerSecond: 10, burst: 0 },
      { requestsPerSecond: 0, burst: 1 },
      { requestsPerSecond: 1e-9, burst: 1 },
      { requestsPerSecond: Number.NaN, burst: 1 },
      { requestsPerSecond: Number.POSITIVE_INFINITY, burst: 1 },
      { requestsPerSecond: 1, burst: 1.5 },
      { requestsPerSecond: '5', burst: 1 },
    ]) {
      const limiter = new TokenBucketRateLimiter(
        { rateLimitConfig: async () => config as unknown as RateLimitConfig },
        { clock: new ManualClock(0) },
      )
      const error = await rejectionOf(limiter.consume('acme'))
      expect(error).toMatchObject({ code: 'tenant_invalid_config', status: 400 })
    }
  })

  it('validates the tenant id and the cost before asking the provider', async () => {
    const provider = everyone(null)
    const limiter = new TokenBucketRateLimiter(provider, { clock: new ManualClock(T0) })
    expect(await rejectionOf(limiter.consume('bad id'))).toMatchObject({ code: 'tenant_invalid_id' })
    expect(await rejectionOf(limiter.consume('a', 3 as unknown as { cost: number }))).toMatchObject({
      code: 'invalid_cost',
    })
    expect(await rejectionOf(limiter.consume('a', null as unknown as { cost: number }))).toMatchObject({
      code: 'invalid_cost',
    })
    expect(await rejectionOf(limiter.consume('a', { cost: -1 }))).toMatchObject({ code: 'invalid_cost' })
    expect(provider.calls).toBe(0)
    expect((await limiter.consume('a', {})).allowed).toBe(true)
  })

  it('rejects a provider without rateLimitConfig and a clock without now(); defaults to the system clock', async () => {
    expect(() => new TokenBucketRateLimiter({} as RateLimitProvider)).toThrow(/rateLimitConfig/)
    expect(() => new TokenBucketRateLimiter(everyone(null), { clock: {} as ManualClock })).toThrow(/clock/)
    const limiter = new TokenBucketRateLimiter(everyone({ requestsPerSecond: 1, burst: 1 }))
    const before = Date.now()
    const decision = await limiter.consume('a')
    expect(decision.resetAt).toBeGreaterThanOrEqual(before + 1000)
  })
})
