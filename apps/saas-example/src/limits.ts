import {
  type Clock,
  type ConcurrencyLimiter,
  InMemoryConcurrencyLimiter,
  InMemoryQuotaManager,
  type QuotaManager,
  type QuotaProvider,
  type RateLimiter,
  type RateLimitProvider,
  SlidingWindowQuotaManager,
  TokenBucketRateLimiter,
} from '@tenant/core'
import { RedisConcurrencyLimiter, RedisQuotaManager, RedisRateLimiter } from '@tenant/redis'
import type { Redis } from 'ioredis'

/** The stores of the chain's concurrency, rate-limit and quota stages. */
export interface Limits {
  quotas: QuotaManager
  rateLimiter: RateLimiter
  /** In-flight counts against each tenant's `concurrency.maxInFlight` (free plan 4, pro 50). */
  concurrency: ConcurrencyLimiter
}

/** Where the limits come from: the tenant config store. */
export type LimitsProvider = QuotaProvider & RateLimitProvider

/**
 * Quotas and rate limits counted in this process: exact for one instance, and lost on restart.
 * Run one instance, or use {@link redisLimits}.
 *
 * @example
 * ```ts
 * const { quotas, rateLimiter } = memoryLimits(configs, { algorithm: 'fixed' })
 * ```
 */
export function memoryLimits(
  provider: LimitsProvider,
  options: { algorithm: 'fixed' | 'sliding'; clock?: Clock },
): Limits {
  const clock = options.clock === undefined ? {} : { clock: options.clock }
  return {
    quotas:
      options.algorithm === 'sliding'
        ? new SlidingWindowQuotaManager(provider, clock)
        : new InMemoryQuotaManager(provider, clock),
    rateLimiter: new TokenBucketRateLimiter(provider, clock),
    concurrency: new InMemoryConcurrencyLimiter(clock),
  }
}

/**
 * Quotas and rate limits in Redis, shared by every instance. Without `clock` they decide with the
 * Redis server's time (right for several hosts); tests pass a `ManualClock`.
 *
 * @example
 * ```ts
 * const limits = redisLimits(configs, { redis: new Redis(process.env.REDIS_URL!), prefix: 'app', algorithm: 'fixed' })
 * ```
 */
export function redisLimits(
  provider: LimitsProvider,
  options: { redis: Redis; prefix: string; algorithm: 'fixed' | 'sliding'; clock?: Clock },
): Limits {
  const clock = options.clock === undefined ? {} : { clock: options.clock }
  return {
    quotas: new RedisQuotaManager(provider, {
      redis: options.redis,
      prefix: `${options.prefix}:quota`,
      algorithm: options.algorithm,
      ...clock,
    }),
    rateLimiter: new RedisRateLimiter(provider, {
      redis: options.redis,
      prefix: `${options.prefix}:rate`,
      ...clock,
    }),
    concurrency: new RedisConcurrencyLimiter({
      redis: options.redis,
      prefix: `${options.prefix}:concurrency`,
      ...clock,
    }),
  }
}
