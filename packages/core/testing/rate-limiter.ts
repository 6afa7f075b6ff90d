import { ManualClock, type RateLimitConfig, type RateLimiter } from '@tenant/core'
import { describe, expect, it } from 'vitest'
import {
  expectExactRetry,
  type ManagerFactoryContext,
  randomTenantId,
  rejectionOf,
  TestConfigProvider,
} from './quota-manager'

/** Builds the rate limiter under test; called once per test. */
export type RateLimiterFactory = (context: ManagerFactoryContext) => RateLimiter | Promise<RateLimiter>

/** Options of {@link testRateLimiter}. */
export interface RateLimiterSuiteOptions {
  /**
   * Per-test timeout in ms (networked stores: Redis, Durable Objects).
   * @default 5000
   */
  timeout?: number
}

/** 2030-03-14T09:26:00.000Z. */
const T0 = Date.UTC(2030, 2, 14, 9, 26)

/**
 * The conformance suite every `RateLimiter` runs (in-memory token bucket, Redis, Durable
 * Objects): burst, continuous refill, `retryAfterMs = deficit / rate` (exact to the ms), costs,
 * tenants without a rate limit, bad costs, unknown tenants, 1,000 concurrent calls and `reset`. Each test
 * uses new random tenant ids.
 *
 * @example
 * ```ts
 * import { testRateLimiter } from '@tenant/core/testing'
 * testRateLimiter('RedisRateLimiter', ({ provider, clock }) => new RedisRateLimiter(provider, { redis, clock }))
 * ```
 */
export function testRateLimiter(
  name: string,
  factory: RateLimiterFactory,
  options: RateLimiterSuiteOptions = {},
): void {
  const timeout = options.timeout ?? 5_000

  async function setup(rateLimit: RateLimitConfig | null) {
    const clock = new ManualClock(T0)
    const provider = new TestConfigProvider()
    const id = randomTenantId('rl')
    provider.setRateLimit(id, rateLimit)
    const limiter = await factory({ provider, clock })
    return { clock, provider, id, limiter }
  }

  describe(`${name} (RateLimiter conformance)`, () => {
    it(
      'admits a burst, then denies with retryAfterMs = deficit / rate',
      async () => {
        const { limiter, id } = await setup({ requestsPerSecond: 1, burst: 5 })
        const remaining: (number | undefined)[] = []
        for (let i = 0; i < 5; i++) {
          const decision = await limiter.consume(id)
          expect(decision).toMatchObject({ allowed: true, limit: 5, retryAfterMs: 0 })
          remaining.push(decision.remaining)
        }
        expect(remaining).toEqual([4, 3, 2, 1, 0])
        const denial = await limiter.consume(id)
        expect(denial).toMatchObject({ allowed: false, limit: 5, remaining: 0, retryAfterMs: 1000 })
        expect(denial.reason).toMatch(/rate limit/)
        expect(denial.resetAt).toBe(T0 + 5000)
      },
      timeout,
    )

    it(
      'refills continuously at requestsPerSecond, up to the burst',
      async () => {
        const { limiter, id, clock } = await setup({ requestsPerSecond: 4, burst: 8 })
        for (let i = 0; i < 8; i++) await limiter.consume(id)
        clock.advance(250)
        expect(await limiter.consume(id)).toMatchObject({ allowed: true, remaining: 0 })
        clock.advance(625) // 2.5 tokens
        expect((await limiter.consume(id)).allowed).toBe(true)
        expect((await limiter.consume(id)).allowed).toBe(true)
        const denial = await limiter.consume(id)
        expect(denial.allowed).toBe(false)
        expect(denial.retryAfterMs).toBe(125) // the missing half token at 4/s
        clock.advance(60_000)
        // Never more than the burst, however long the wait.
        expect(await limiter.consume(id)).toMatchObject({ allowed: true, remaining: 7 })
      },
      timeout,
    )

    it(
      'retryAfterMs is exact: denied 1 ms before, admitted at it (rates that do not divide 1000)',
      async () => {
        for (const rate of [3, 7, 0.3, 1000 / 3]) {
          const { limiter, id, clock } = await setup({ requestsPerSecond: rate, burst: 2 })
          await limiter.consume(id)
          await limiter.consume(id)
          for (const cost of [1, 2, 1]) {
            clock.advance(17)
            let denial = await limiter.consume(id, { cost })
            while (denial.allowed) denial = await limiter.consume(id, { cost })
            await expectExactRetry(clock, denial, () => limiter.consume(id, { cost }))
          }
        }
      },
      timeout,
    )

    it(
      'a cost takes that many tokens, and the deficit sets the retry time',
      async () => {
        const { limiter, id } = await setup({ requestsPerSecond: 2, burst: 10 })
        expect(await limiter.consume(id, { cost: 8 })).toMatchObject({
          allowed: true,
          remaining: 2,
          resetAt: T0 + 4000,
        })
        const denial = await limiter.consume(id, { cost: 5 })
        expect(denial).toMatchObject({ allowed: false, remaining: 2, retryAfterMs: 1500 })
        // The denial took nothing: two single requests still fit.
        expect((await limiter.consume(id)).allowed).toBe(true)
        expect(await limiter.consume(id)).toMatchObject({ allowed: true, remaining: 0 })
        // A zero cost is admitted even from an empty bucket.
        expect(await limiter.consume(id, { cost: 0 })).toMatchObject({ allowed: true, remaining: 0 })
      },
      timeout,
    )

    it(
      'a cost above the burst is denied with a finite retry, a reason, and takes nothing',
      async () => {
        const { limiter, id, clock } = await setup({ requestsPerSecond: 10, burst: 20 })
        const denial = await limiter.consume(id, { cost: 21 })
        expect(denial.allowed).toBe(false)
        expect(denial.reason).toMatch(/never/)
        expect(Number.isFinite(denial.retryAfterMs)).toBe(true)
        expect(denial.retryAfterMs).toBeGreaterThan(0)
        expect(await limiter.consume(id, { cost: 20 })).toMatchObject({ allowed: true, remaining: 0 })
        clock.advance(denial.retryAfterMs)
        expect((await limiter.consume(id, { cost: 21 })).allowed).toBe(false)
      },
      timeout,
    )

    it(
      'a tenant without a rate limit is always allowed and reports no limit or remaining',
      async () => {
        const { limiter, id } = await setup(null)
        for (let i = 0; i < 500; i++) {
          const decision = await limiter.consume(id, { cost: 1000 })
          expect(decision.allowed).toBe(true)
          expect(decision.retryAfterMs).toBe(0)
          expect(decision.limit).toBeUndefined()
          expect(decision.remaining).toBeUndefined()
        }
      },
      timeout,
    )

    it(
      'admits exactly the burst out of 1,000 concurrent calls',
      async () => {
        const { limiter, id } = await setup({ requestsPerSecond: 1, burst: 100 })
        const decisions = await Promise.all(Array.from({ length: 1000 }, () => limiter.consume(id)))
        expect(decisions.filter((d) => d.allowed)).toHaveLength(100)
      },
      timeout * 2,
    )

    it(
      'propagates TenantNotFoundError from the provider',
      async () => {
        const { limiter } = await setup(null)
        expect(await rejectionOf(limiter.consume(randomTenantId('missing')))).toMatchObject({
          code: 'tenant_not_found',
          status: 404,
        })
      },
      timeout,
    )

    it(
      'rejects negative, fractional and non-numeric costs with InvalidCostError and takes nothing',
      async () => {
        const { limiter, id } = await setup({ requestsPerSecond: 1, burst: 3 })
        await limiter.consume(id)
        for (const cost of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '1', null]) {
          const error = await rejectionOf(limiter.consume(id, { cost: cost as number }))
          expect(error).toMatchObject({ code: 'invalid_cost', status: 400 })
        }
        expect(await limiter.consume(id)).toMatchObject({ allowed: true, remaining: 1 })
      },
      timeout,
    )

    it(
      'reset gives the tenant a full bucket and leaves other tenants as they were',
      async () => {
        const { limiter, id, provider } = await setup({ requestsPerSecond: 0.01, burst: 2 })
        const other = randomTenantId('rl')
        provider.setRateLimit(other, { requestsPerSecond: 0.01, burst: 2 })
        for (const tenant of [id, id, other]) expect((await limiter.consume(tenant)).allowed).toBe(true)
        expect((await limiter.consume(id)).allowed).toBe(false)
        expect(typeof limiter.reset).toBe('function')
        await limiter.reset!(id)
        await limiter.reset!(id) // idempotent
        expect(await limiter.consume(id)).toMatchObject({ allowed: true, remaining: 1 })
        expect(await limiter.consume(other)).toMatchObject({ allowed: true, remaining: 0 })
        await expect(limiter.reset!('bad id!')).rejects.toMatchObject({ code: 'tenant_invalid_id' })
      },
      timeout,
    )

    it(
      'keeps tenants apart and applies a changed config at once',
      async () => {
        const { limiter, id, provider } = await setup({ requestsPerSecond: 1, burst: 1 })
        const other = randomTenantId('rl')
        provider.setRateLimit(other, { requestsPerSecond: 1, burst: 1 })
        expect((await limiter.consume(id)).allowed).toBe(true)
        expect((await limiter.consume(id)).allowed).toBe(false)
        expect((await limiter.consume(other)).allowed).toBe(true)
        provider.setRateLimit(id, null)
        expect((await limiter.consume(id)).allowed).toBe(true)
      },
      timeout,
    )

    it(
      'a rate limit removed and set again finds the bucket as it stood, not a full one',
      async () => {
        const { limiter, id, provider, clock } = await setup({ requestsPerSecond: 1, burst: 10 })
        for (let i = 0; i < 10; i++) expect((await limiter.consume(id)).allowed).toBe(true)
        provider.setRateLimit(id, null)
        expect(await limiter.consume(id, { cost: 5 })).toMatchObject({ allowed: true, retryAfterMs: 0 })
        clock.advance(2_000)
        provider.setRateLimit(id, { requestsPerSecond: 1, burst: 10 })
        // Two tokens refilled in the 2 s: not the whole burst.
        expect(await limiter.consume(id, { cost: 3 })).toMatchObject({ allowed: false, retryAfterMs: 1_000 })
        expect(await limiter.consume(id, { cost: 2 })).toMatchObject({ allowed: true, remaining: 0 })
      },
      timeout,
    )
  })
}
