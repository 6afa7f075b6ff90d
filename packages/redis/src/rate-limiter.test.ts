import {
  InvalidTenantConfigError,
  InvalidTenantIdError,
  TenantBackendError,
  TenantNotFoundError,
} from '@tenant/core'
import { randomTenantId, rejectionOf, TestConfigProvider } from '@tenant/core/testing'
import { describe, expect, it } from 'vitest'
import { REDIS_URL, useTestRedis } from '../test/helpers/redis-env'
import type { RedisScriptClient } from './client'
import { RedisRateLimiter } from './rate-limiter'

// Semantics are covered by core's conformance suite (conformance.test.ts) and the differential
// test against TokenBucketRateLimiter; these are the checks made before any round trip.
describe('RedisRateLimiter without a server', () => {
  const unreachable: RedisScriptClient = {
    evalScriptSha: () => Promise.reject(new Error('must not be called')),
    evalScript: () => Promise.reject(new Error('must not be called')),
  }
  const provider = new TestConfigProvider()
  provider.setRateLimit('acme', { requestsPerSecond: 10, burst: 10 })
  provider.setRateLimit('free', null)

  it('validates its options at construction', () => {
    expect(() => new RedisRateLimiter({} as never, { redis: unreachable })).toThrow(InvalidTenantConfigError)
    expect(() => new RedisRateLimiter(provider, { redis: unreachable, prefix: 'x}' })).toThrow(
      InvalidTenantConfigError,
    )
    expect(() => new RedisRateLimiter(provider, { redis: unreachable, timeoutMs: -5 })).toThrow(
      InvalidTenantConfigError,
    )
  })

  it('refuses bad ids and costs, and lets a tenant without a rate limit through, with no round trip', async () => {
    const limiter = new RedisRateLimiter(provider, { redis: unreachable })
    expect(await rejectionOf(limiter.consume('a/b'))).toBeInstanceOf(InvalidTenantIdError)
    for (const options of [{ cost: -1 }, { cost: 0.5 }, { cost: '1' }, 'x', null]) {
      expect(await rejectionOf(limiter.consume('acme', options as never))).toMatchObject({
        code: 'invalid_cost',
      })
    }
    expect(await rejectionOf(limiter.consume('nobody'))).toBeInstanceOf(TenantNotFoundError)
    expect(await limiter.consume('free', { cost: 1_000 })).toMatchObject({ allowed: true, retryAfterMs: 0 })
  })

  it('refuses a rate limit the bucket arithmetic cannot use, from a hand-written provider', async () => {
    for (const config of [
      { requestsPerSecond: 0, burst: 10 },
      { requestsPerSecond: Number.POSITIVE_INFINITY, burst: 10 },
      { requestsPerSecond: 10, burst: 0.5 },
    ]) {
      const limiter = new RedisRateLimiter({ rateLimitConfig: async () => config }, { redis: unreachable })
      expect(await rejectionOf(limiter.consume('acme'))).toBeInstanceOf(InvalidTenantConfigError)
    }
  })

  it('turns a malformed reply, or one that disagrees with core, into TenantBackendError', async () => {
    const replying = (reply: unknown): RedisScriptClient => ({
      evalScriptSha: async () => reply,
      evalScript: async () => reply,
    })
    const now = Date.UTC(2030, 2, 14, 9, 26)
    // The script replies now, taken, then the prior tokens and updatedAt when there is a bucket.
    for (const reply of [null, 'OK', [now], ['x', 1], [now, 1, '5'], [now, 1, '5', now, 0]]) {
      const limiter = new RedisRateLimiter(provider, { redis: replying(reply) })
      expect(await rejectionOf(limiter.consume('acme'))).toBeInstanceOf(TenantBackendError)
    }
    // The script says it took a token from a bucket that it read as empty: core would refuse.
    const limiter = new RedisRateLimiter(provider, { redis: replying([now, 1, '0', now]) })
    const error = await rejectionOf(limiter.consume('acme'))
    expect(error).toBeInstanceOf(TenantBackendError)
    expect((error as Error).message).toMatch(/disagree/)
    // And the reply core agrees with decides: a full bucket (no state) takes one token.
    const agreeing = new RedisRateLimiter(provider, { redis: replying([now, 1]) })
    expect(await agreeing.consume('acme')).toMatchObject({ allowed: true, remaining: 9 })
  })
})

describe.runIf(REDIS_URL)('RedisRateLimiter expiry', () => {
  const { client: redis, prefix } = useTestRedis('rate-expiry')

  // A bucket that would be full again only after PEXPIRE's range (about 9.2e18 ms): the script
  // must not fail after taking the tokens, and the bucket must still expire.
  it.each([
    ['a tiny rate from a hand-written provider', { requestsPerSecond: 1e-16, burst: 3 }, 1],
    ['a schema-valid rate with a huge burst and cost', { requestsPerSecond: 1e-6, burst: 1e12 }, 1e12],
  ])('%s: never errors after taking, and the bucket keeps an expiry', async (_name, config, cost) => {
    const limiter = new RedisRateLimiter(
      { rateLimitConfig: async () => config },
      { redis, prefix, timeoutMs: 5_000 },
    )
    const id = randomTenantId('tiny')
    const allowed: boolean[] = []
    for (let i = 0; i < 5; i++)
      allowed.push((await limiter.consume(id, { cost: i === 0 ? cost : 1 })).allowed)
    expect(allowed).toEqual(
      cost === 1 ? [true, true, true, false, false] : [true, false, false, false, false],
    )
    expect(await redis.pttl(`{${prefix}:${id}}:b`)).toBeGreaterThan(0)
  })
})
