import {
  InvalidTenantConfigError,
  InvalidTenantIdError,
  ManualClock,
  TenantBackendError,
  TenantNotFoundError,
} from '@tenant/core'
import { randomTenantId, rejectionOf, TestConfigProvider } from '@tenant/core/testing'
import { describe, expect, it } from 'vitest'
import { counting } from '../test/helpers/counting'
import { losingReplies } from '../test/helpers/losing-replies'
import { REDIS_URL, useTestRedis } from '../test/helpers/redis-env'
import { type RedisScriptClient, toScriptClient } from './client'
import { RedisRateLimiter } from './rate-limiter'

const T0 = Date.UTC(2030, 2, 14, 9, 26, 10)

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
      // Below rateLimitConfigSchema's floor (MIN_REQUESTS_PER_SECOND), as every store refuses it.
      { requestsPerSecond: 1e-16, burst: 3 },
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
    ['the smallest rate with a huge burst', { requestsPerSecond: 1e-8, burst: 1e12 }, 1e12],
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

describe.runIf(REDIS_URL)('RedisRateLimiter localDeny', () => {
  const { client: redis, prefix } = useTestRedis('rate-local-deny')

  it('answers locally only a take of the denied cost: a larger one gets its own retry time', async () => {
    const provider = new TestConfigProvider()
    const id = randomTenantId('ld')
    provider.setRateLimit(id, { requestsPerSecond: 1, burst: 10 })
    const client = counting(toScriptClient(redis))
    const sent = () => client.calls + client.evals
    const limiter = new RedisRateLimiter(provider, {
      redis: client,
      clock: new ManualClock(T0),
      prefix,
      timeoutMs: 5_000,
      localDeny: true,
    })
    expect((await limiter.consume(id, { cost: 10 })).allowed).toBe(true)
    expect(await limiter.consume(id, { cost: 1 })).toMatchObject({ allowed: false, retryAfterMs: 1_000 })
    const before = sent()
    expect(await limiter.consume(id, { cost: 1 })).toMatchObject({ allowed: false, retryAfterMs: 1_000 })
    expect(sent()).toBe(before)
    // Five tokens come back in 5 s, not in the 1 s the held denial of one says.
    expect(await limiter.consume(id, { cost: 5 })).toMatchObject({ allowed: false, retryAfterMs: 5_000 })
    expect(sent()).toBe(before + 1)
  })
})

describe.runIf(REDIS_URL)('RedisRateLimiter: the void of a take whose reply was lost', () => {
  const { client: redis, prefix } = useTestRedis('rate-void')

  function setup(config: { requestsPerSecond: number; burst: number }) {
    const provider = new TestConfigProvider()
    const id = randomTenantId('rv')
    provider.setRateLimit(id, config)
    const clock = new ManualClock(T0)
    const client = losingReplies(toScriptClient(redis))
    const limiter = new RedisRateLimiter(provider, { redis: client, clock, prefix, timeoutMs: 5_000 })
    /** Starts a take whose reply is lost once Redis has run it; `lose()` fails it, and its void follows. */
    const takeLosingReply = async (cost: number) => {
      // A take's ARGV is now, cost, rate, burst: a void or refund has more.
      const lost = client.loseNext((args) => args.length === 4)
      const outcome = limiter.consume(id, { cost }).then(
        () => 'answered',
        (error: unknown) => error,
      )
      await lost.ran
      return {
        fail: async () => {
          lost.lose()
          expect(await outcome).toBeInstanceOf(TenantBackendError)
          await limiter.drain()
        },
      }
    }
    return { id, clock, limiter, takeLosingReply }
  }

  it('after a later take, gives back only what the cap cannot have wasted', async () => {
    // Burst 4 at 1/s: X takes 3 (1 left), Y takes 3 two seconds later (0 left). Without X the
    // bucket sat full until Y, which would have left 1: 1 is owed, not 3.
    const t = setup({ requestsPerSecond: 1, burst: 4 })
    const x = await t.takeLosingReply(3)
    t.clock.advance(2_000)
    expect(await t.limiter.consume(t.id, { cost: 3 })).toMatchObject({ allowed: true, remaining: 0 })
    await x.fail()
    expect(await t.limiter.consume(t.id, { cost: 1 })).toMatchObject({ allowed: true, remaining: 0 })
    expect((await t.limiter.consume(t.id, { cost: 1 })).allowed).toBe(false)
  })

  it('with no take since, gives the whole take back', async () => {
    const t = setup({ requestsPerSecond: 1, burst: 4 })
    expect(await t.limiter.consume(t.id, { cost: 1 })).toMatchObject({ remaining: 3 })
    const x = await t.takeLosingReply(3)
    await x.fail()
    expect(await t.limiter.consume(t.id, { cost: 3 })).toMatchObject({ allowed: true, remaining: 0 })
  })

  it('gives nothing back into the bucket a reset made after the take', async () => {
    // Burst 10, no refill to speak of, the clock still: X takes 5 and its reply is lost; the tenant
    // is reset (a full bucket) and Y takes 8 before X's void lands. Exactly 10 are admitted after
    // the reset, not 15.
    const t = setup({ requestsPerSecond: 0.001, burst: 10 })
    const x = await t.takeLosingReply(5)
    await t.limiter.reset(t.id)
    expect(await t.limiter.consume(t.id, { cost: 8 })).toMatchObject({ allowed: true, remaining: 2 })
    await x.fail()
    expect(await t.limiter.consume(t.id, { cost: 2 })).toMatchObject({ allowed: true, remaining: 0 })
    expect((await t.limiter.consume(t.id, { cost: 1 })).allowed).toBe(false)
  })
})
