import { testQuotaManager, testRateLimiter } from '@tenant/core/testing'
import { describe } from 'vitest'
import { REDIS_URL, useNodeRedis, useTestRedis } from '../test/helpers/redis-env'
import { RedisQuotaManager } from './quota-manager'
import { RedisRateLimiter } from './rate-limiter'

// Core's conformance suites, unchanged, against the Redis stores. The suites drive time with a
// ManualClock, which the stores take through their `clock` option (the app's time is then passed
// into the scripts instead of Redis TIME). The timeout is generous on purpose: the suites check
// semantics, including 1,000 concurrent consumes, not latency.
const timeoutMs = 5_000
const suite = { timeout: 30_000 }

describe.runIf(REDIS_URL)('Redis stores pass the core conformance suites', () => {
  const { client: ioredis, prefix } = useTestRedis('conformance')
  const nodeRedis = useNodeRedis()

  testQuotaManager(
    'RedisQuotaManager fixed, ioredis',
    ({ provider, clock }) => new RedisQuotaManager(provider, { redis: ioredis, clock, prefix, timeoutMs }),
    { algorithm: 'fixed', ...suite },
  )

  testQuotaManager(
    'RedisQuotaManager sliding, ioredis',
    ({ provider, clock }) =>
      new RedisQuotaManager(provider, { redis: ioredis, clock, prefix, timeoutMs, algorithm: 'sliding' }),
    { algorithm: 'sliding', ...suite },
  )

  testQuotaManager(
    'RedisQuotaManager fixed, node-redis',
    ({ provider, clock }) => new RedisQuotaManager(provider, { redis: nodeRedis, clock, prefix, timeoutMs }),
    { algorithm: 'fixed', ...suite },
  )

  testQuotaManager(
    'RedisQuotaManager sliding (precision 60), node-redis',
    ({ provider, clock }) =>
      new RedisQuotaManager(provider, {
        redis: nodeRedis,
        clock,
        prefix,
        timeoutMs,
        algorithm: 'sliding',
        precision: 60,
      }),
    { algorithm: 'sliding', ...suite },
  )

  // The local-deny cache must be invisible to the semantics: the same suites pass with it on.
  testQuotaManager(
    'RedisQuotaManager fixed with localDeny',
    ({ provider, clock }) =>
      new RedisQuotaManager(provider, { redis: ioredis, clock, prefix, timeoutMs, localDeny: true }),
    { algorithm: 'fixed', ...suite },
  )

  testQuotaManager(
    'RedisQuotaManager sliding with localDeny',
    ({ provider, clock }) =>
      new RedisQuotaManager(provider, {
        redis: ioredis,
        clock,
        prefix,
        timeoutMs,
        algorithm: 'sliding',
        localDeny: true,
      }),
    { algorithm: 'sliding', ...suite },
  )

  testRateLimiter(
    'RedisRateLimiter, ioredis',
    ({ provider, clock }) => new RedisRateLimiter(provider, { redis: ioredis, clock, prefix, timeoutMs }),
    suite,
  )

  testRateLimiter(
    'RedisRateLimiter, node-redis',
    ({ provider, clock }) => new RedisRateLimiter(provider, { redis: nodeRedis, clock, prefix, timeoutMs }),
    suite,
  )

  testRateLimiter(
    'RedisRateLimiter with localDeny',
    ({ provider, clock }) =>
      new RedisRateLimiter(provider, { redis: ioredis, clock, prefix, timeoutMs, localDeny: true }),
    suite,
  )
})
