import {
  calendarWindow,
  InvalidTenantConfigError,
  InvalidTenantIdError,
  ManualClock,
  type QuotaConfig,
  type QuotaDecision,
  TenantBackendError,
  TenantNotFoundError,
} from '@tenant/core'
import { randomTenantId, rejectionOf, TestConfigProvider } from '@tenant/core/testing'
import type { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { counting } from '../test/helpers/counting'
import { connectIoredis, REDIS_URL, useTestRedis } from '../test/helpers/redis-env'
import { CAN_SPAWN_REDIS, RedisServerProcess } from '../test/helpers/redis-server'
import { type RedisScriptClient, toScriptClient } from './client'
import { APP_CLOCK_TTL_MARGIN_MS } from './lua'
import { RedisQuotaManager } from './quota-manager'
import { RedisRateLimiter } from './rate-limiter'
import { RECEIPT_TTL_MS } from './receipts'

const MINUTE = 60_000
const T0 = Date.UTC(2030, 2, 14, 9, 26)

/** Wraps a client to count the scripts it runs. */
async function redisTime(redis: Redis): Promise<number> {
  const [seconds, micros] = await redis.time()
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)
}

/** The option an `InvalidTenantConfigError` thrown by `fn` names. */
function issuePath(fn: () => unknown): string {
  try {
    fn()
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidTenantConfigError)
    return (error as InvalidTenantConfigError).issues[0]!.path.join('.')
  }
  throw new Error('expected an InvalidTenantConfigError')
}

describe('RedisQuotaManager without a server', () => {
  const unreachable: RedisScriptClient = {
    evalScriptSha: () => Promise.reject(new Error('must not be called')),
    evalScript: () => Promise.reject(new Error('must not be called')),
  }
  const provider = new TestConfigProvider()
  provider.setQuota('acme', { limits: [{ window: 'minute', requests: 10 }] })
  provider.setQuota('free', { limits: [] })

  it('validates its options at construction', () => {
    const make = (options: object) => () =>
      new RedisQuotaManager(provider, { redis: unreachable, ...options })
    expect(issuePath(make({ prefix: 'a{b}' }))).toBe('prefix')
    expect(issuePath(make({ prefix: '' }))).toBe('prefix')
    expect(issuePath(make({ algorithm: 'leaky' }))).toBe('algorithm')
    expect(issuePath(make({ precision: 10 }))).toBe('precision')
    expect(issuePath(make({ algorithm: 'sliding', precision: 7 }))).toBe('precision')
    expect(issuePath(make({ timeoutMs: 0 }))).toBe('timeoutMs')
    // A timer longer than 2^31 - 1 ms fires after about 1 ms: refused, with the derived queue timeout.
    expect(issuePath(make({ timeoutMs: 2 ** 31 }))).toBe('timeoutMs')
    expect(issuePath(make({ queueTimeoutMs: 2 ** 31 }))).toBe('queueTimeoutMs')
    expect(() => make({ timeoutMs: 2 ** 31 - 1 })()).not.toThrow()
    expect(issuePath(make({ clock: {} }))).toBe('options.clock')
    expect(issuePath(make({ localDeny: { maxEntries: 0 } }))).toBe('localDeny.maxEntries')
    expect(issuePath(make({ localDeny: { maxHoldMs: -1 } }))).toBe('localDeny.maxHoldMs')
    expect(issuePath(() => new RedisQuotaManager(provider, { redis: 42 as never }))).toBe('redis')
    expect(issuePath(() => new RedisQuotaManager({} as never, { redis: unreachable }))).toBe('provider')
    expect(issuePath(() => new RedisQuotaManager(provider, undefined as never))).toBe('options')
    expect(new RedisQuotaManager(provider, { redis: unreachable, algorithm: 'sliding' }).algorithm).toBe(
      'sliding',
    )
  })

  it('refuses a bad tenant id or cost before any round trip', async () => {
    const manager = new RedisQuotaManager(provider, { redis: unreachable })
    for (const id of ['', 'a b', 'a:b', '{acme}', 'x'.repeat(256), 'acme*']) {
      expect(await rejectionOf(manager.consume(id))).toBeInstanceOf(InvalidTenantIdError)
      expect(await rejectionOf(manager.peek(id))).toBeInstanceOf(InvalidTenantIdError)
    }
    expect(await rejectionOf(manager.consume('acme', { tokens: -1 }))).toMatchObject({ code: 'invalid_cost' })
    expect(await rejectionOf(manager.adjust('acme', { tokens: 0.5 }))).toMatchObject({ code: 'invalid_cost' })
    expect(await rejectionOf(manager.consume('nobody'))).toBeInstanceOf(TenantNotFoundError)
  })

  it('answers a tenant without limits without a round trip', async () => {
    const manager = new RedisQuotaManager(provider, { redis: unreachable })
    expect(await manager.consume('free', { tokens: 10 ** 9 })).toMatchObject({ allowed: true, remaining: {} })
    expect(await manager.peek('free')).toEqual({ tenantId: 'free', windows: [] })
    expect(await manager.adjust('free', { tokens: 5 })).toEqual({ tenantId: 'free', windows: [] })
  })

  it('turns a malformed reply, or one that disagrees with core, into TenantBackendError', async () => {
    const replying = (reply: unknown): RedisScriptClient => ({
      evalScriptSha: async () => reply,
      evalScript: async () => reply,
    })
    // The fixed script replies now, applied, then requests and tokens of each configured window.
    for (const reply of [null, 'OK', [1], ['x', 1, 0, 0], [T0, 1, 0], [T0, 1, 0, 0, 0, 0], [T0, 1, 'x', 0]]) {
      const manager = new RedisQuotaManager(provider, { redis: replying(reply) })
      expect(await rejectionOf(manager.consume('acme'))).toBeInstanceOf(TenantBackendError)
    }
    // The script says it charged, but the counts it read leave no room: core would deny.
    const lying = replying([T0, 1, 10, 0])
    const manager = new RedisQuotaManager(provider, { redis: lying })
    const error = await rejectionOf(manager.consume('acme'))
    expect(error).toBeInstanceOf(TenantBackendError)
    expect((error as Error).message).toMatch(/disagree/)
  })
  it('reads a config it may not keep afresh on every call, and keeps what it derives from a frozen one', async () => {
    const sent: string[][] = []
    const recording: RedisScriptClient = {
      evalScriptSha: async (_sha, _keys, args) => {
        sent.push(args)
        return [T0, 1, 0, 0]
      },
      evalScript: async () => Promise.reject(new Error('must not be called')),
    }
    // A hand-written provider that changes its config object in place between calls.
    const mutable = { limits: [{ window: 'minute' as const, requests: 10 }] }
    const manager = new RedisQuotaManager({ quotaConfig: async () => mutable }, { redis: recording })
    await manager.consume('acme')
    mutable.limits[0]!.requests = 20
    await manager.consume('acme')
    expect(sent.map((args) => args.slice(4))).toEqual([
      ['minute', '10', '0'],
      ['minute', '20', '0'],
    ])
    // A deeply frozen config cannot change; the same arguments follow from it on every call.
    const frozen: QuotaConfig = { limits: [{ window: 'hour', tokens: 500 }] }
    Object.freeze(frozen.limits[0])
    Object.freeze(frozen.limits)
    Object.freeze(frozen)
    const cached = new RedisQuotaManager({ quotaConfig: async () => frozen }, { redis: recording })
    sent.length = 0
    await cached.consume('acme')
    await cached.consume('acme', { tokens: 7 })
    expect(sent).toEqual([
      ['', 'consume', '1', '0', 'hour', '0', '500'],
      ['', 'consume', '1', '7', 'hour', '0', '500'],
    ])
  })
})

describe.runIf(CAN_SPAWN_REDIS)('RedisQuotaManager after SCRIPT FLUSH', () => {
  let server: RedisServerProcess
  let redis: Redis

  beforeAll(async () => {
    // A private server: flushing the shared one's script cache would be felt by other runs.
    server = await RedisServerProcess.launch()
    redis = await connectIoredis(server.url)
  })

  afterAll(async () => {
    redis?.disconnect()
    await server?.stop()
  })

  it('reloads its script in the same call (NOSCRIPT -> EVAL)', async () => {
    const provider = new TestConfigProvider()
    provider.setQuota('acme', { limits: [{ window: 'minute', requests: 10 }] })
    const client = counting(toScriptClient(redis))
    const manager = new RedisQuotaManager(provider, { redis: client, timeoutMs: 2_000 })
    await manager.consume('acme')
    await redis.script('FLUSH')
    expect(await manager.consume('acme')).toMatchObject({ allowed: true, remaining: { requests: 8 } })
    expect(client.calls).toBe(2)
    expect(client.evals).toBe(2)
  })
})

describe.runIf(REDIS_URL)('RedisQuotaManager against a real Redis', () => {
  const { client: redis, prefix } = useTestRedis('quota')

  afterEach(() => {
    vi.restoreAllMocks()
  })

  function tenant(
    limits: { window: 'minute' | 'hour' | 'day' | 'month'; requests?: number; tokens?: number }[],
  ) {
    const provider = new TestConfigProvider()
    const id = randomTenantId('rq')
    provider.setQuota(id, { limits })
    return { provider, id }
  }

  it('decides on the Redis clock by default: managers on skewed hosts share one window', async () => {
    const { provider, id } = tenant([{ window: 'minute', requests: 10 }])
    const a = new RedisQuotaManager(provider, { redis, timeoutMs: 2_000, prefix })
    const b = new RedisQuotaManager(provider, { redis, timeoutMs: 2_000, prefix })
    const real = Date.now.bind(Date)
    const skewed = (offset: number) => vi.spyOn(Date, 'now').mockImplementation(() => real() + offset)

    // Host A runs 3 hours ahead, host B 47 minutes behind.
    for (let attempt = 0; ; attempt++) {
      const before = await redisTime(redis)
      skewed(3 * 3_600_000)
      const fromA = await a.consume(id)
      skewed(-47 * MINUTE)
      const fromB = await b.consume(id)
      vi.restoreAllMocks()
      const after = await redisTime(redis)
      // Retry if the Redis clock crossed a minute boundary between the two calls.
      if (calendarWindow('minute', before).start !== calendarWindow('minute', after).start && attempt < 3) {
        await redis.del(`{${prefix}:${id}}:f`)
        continue
      }
      const window = calendarWindow('minute', before)
      expect(fromA.windows[0]).toMatchObject({ resetAt: window.end })
      expect(fromB.windows[0]).toMatchObject({ resetAt: window.end, used: { requests: 2 } })
      expect(fromB.remaining).toEqual({ requests: 8 })
      break
    }
  })

  it('keeps state in one hash per tenant under its hash tag, expiring with its last window', async () => {
    const { provider, id } = tenant([
      { window: 'minute', requests: 10 },
      { window: 'day', tokens: 1000 },
    ])
    const fixed = new RedisQuotaManager(provider, { redis, timeoutMs: 2_000, prefix })
    const sliding = new RedisQuotaManager(provider, { redis, timeoutMs: 2_000, prefix, algorithm: 'sliding' })
    const limiterProvider = new TestConfigProvider()
    limiterProvider.setRateLimit(id, { requestsPerSecond: 1, burst: 10 })
    const limiter = new RedisRateLimiter(limiterProvider, { redis, timeoutMs: 2_000, prefix })
    await fixed.consume(id, { tokens: 5 })
    await sliding.consume(id, { tokens: 5 })
    await limiter.consume(id, { cost: 3 })
    const keys = (await redis.keys(`{${prefix}:${id}}*`)).sort()
    const state = keys.filter((key) => !key.includes(':op:'))
    expect(state).toEqual([`{${prefix}:${id}}:b`, `{${prefix}:${id}}:f`, `{${prefix}:${id}}:s10`])
    // Beside each, the receipt of its one admission, under the same hash tag, for RECEIPT_TTL_MS.
    const receipts = keys.filter((key) => key.includes(':op:'))
    expect(receipts.map((key) => key.slice(0, key.indexOf(':op:')))).toEqual(state)
    for (const receipt of receipts) {
      const ttl = await redis.pttl(receipt)
      expect(ttl).toBeGreaterThan(RECEIPT_TTL_MS - 2_000)
      expect(ttl).toBeLessThanOrEqual(RECEIPT_TTL_MS)
    }

    const now = await redisTime(redis)
    const fixedTtl = await redis.pttl(`{${prefix}:${id}}:f`)
    // The day window is the last to end; no margin on the Redis clock.
    expect(fixedTtl).toBeGreaterThan(0)
    expect(fixedTtl).toBeLessThanOrEqual(calendarWindow('day', now).end - now + 50)
    expect(fixedTtl).toBeGreaterThan(calendarWindow('day', now).end - now - 5_000)
    // Sliding: until the newest bucket has left the day window, (precision + 1) buckets.
    const slidingTtl = await redis.pttl(`{${prefix}:${id}}:s10`)
    expect(slidingTtl).toBeGreaterThan(86_400_000)
    expect(slidingTtl).toBeLessThanOrEqual(86_400_000 * 1.1)
    // Token bucket: until it is full again, 3 tokens at 1/s.
    const bucketTtl = await redis.pttl(`{${prefix}:${id}}:b`)
    expect(bucketTtl).toBeGreaterThan(2_000)
    expect(bucketTtl).toBeLessThanOrEqual(3_000)
    expect(await redis.hgetall(`{${prefix}:${id}}:f`)).toEqual({
      minute: `${calendarWindow('minute', now).start},1,5`,
      day: `${calendarWindow('day', now).start},1,5`,
    })
  })

  it('adds a margin to expiry when deciding on the application clock', async () => {
    const { provider, id } = tenant([{ window: 'minute', requests: 10 }])
    const clock = new ManualClock(T0 + MINUTE - 10)
    await new RedisQuotaManager(provider, { redis, clock, timeoutMs: 2_000, prefix }).consume(id)
    const ttl = await redis.pttl(`{${prefix}:${id}}:f`)
    expect(ttl).toBeGreaterThan(APP_CLOCK_TTL_MARGIN_MS - 1_000)
    expect(ttl).toBeLessThanOrEqual(APP_CLOCK_TTL_MARGIN_MS + 10)
  })

  describe('localDeny', () => {
    it('answers repeated requests locally until the exact retry time, then asks Redis again', async () => {
      const { provider, id } = tenant([{ window: 'minute', requests: 2 }])
      const clock = new ManualClock(T0 + 20_000)
      const client = counting(toScriptClient(redis))
      const manager = new RedisQuotaManager(provider, {
        redis: client,
        clock,
        prefix,
        timeoutMs: 2_000,
        localDeny: { maxHoldMs: MINUTE },
      })
      await manager.consume(id)
      await manager.consume(id)
      const denial = await manager.consume(id)
      expect(denial).toMatchObject({ allowed: false, retryAfterMs: 40_000 })
      expect(client.calls).toBe(3)
      clock.advance(10_000)
      const held: QuotaDecision[] = []
      for (let i = 0; i < 100; i++) held.push(await manager.consume(id, { requests: 1, tokens: i }))
      expect(client.calls).toBe(3)
      expect(held.every((d) => !d.allowed && d.retryAfterMs === 30_000)).toBe(true)
      expect(held[0]!.reason).toBe(denial.reason)
      clock.set(T0 + MINUTE)
      expect((await manager.consume(id)).allowed).toBe(true)
      expect(client.calls).toBe(4)
    })

    it('never holds a request Redis would admit', async () => {
      const { provider, id } = tenant([{ window: 'minute', requests: 3, tokens: 100 }])
      const clock = new ManualClock(T0)
      const client = counting(toScriptClient(redis))
      const options = { redis: client, clock, prefix, timeoutMs: 2_000, localDeny: true } as const
      const manager = new RedisQuotaManager(provider, options)
      const otherHost = new RedisQuotaManager(provider, { ...options, localDeny: false })

      // A token denial is not held: another host's refund frees tokens at once.
      expect((await manager.consume(id, { tokens: 90 })).allowed).toBe(true)
      expect((await manager.consume(id, { tokens: 20 })).allowed).toBe(false)
      await otherHost.adjust(id, { tokens: -50 })
      expect((await manager.consume(id, { tokens: 20 })).allowed).toBe(true)

      // A request denial is held, but only for a request of the same cost.
      expect((await manager.consume(id)).allowed).toBe(true)
      expect(await manager.consume(id, { requests: 2 })).toMatchObject({ allowed: false })
      const calls = client.calls
      expect((await manager.consume(id, { requests: 2 })).allowed).toBe(false)
      expect(client.calls).toBe(calls)
      expect((await manager.consume(id, { requests: 0, tokens: 1 })).allowed).toBe(true)
      expect(client.calls).toBe(calls + 1)

      // A raised limit is seen at once.
      provider.setQuota(id, { limits: [{ window: 'minute', requests: 5, tokens: 100 }] })
      expect((await manager.consume(id, { requests: 2 })).allowed).toBe(true)
    })

    it('answers locally only a request of the denied cost: another one gets its own reason and retry time', async () => {
      // Minute: 1 request; hour: 1000 tokens. The second request of 1000 tokens is refused by both
      // (retry in an hour); one of no tokens is refused by the minute alone (retry in a minute).
      const { provider, id } = tenant([
        { window: 'minute', requests: 1 },
        { window: 'hour', tokens: 1_000 },
      ])
      const clock = new ManualClock(T0)
      const client = counting(toScriptClient(redis))
      const manager = new RedisQuotaManager(provider, {
        redis: client,
        clock,
        prefix,
        timeoutMs: 2_000,
        localDeny: { maxHoldMs: MINUTE },
      })
      const minuteLeft = MINUTE - (T0 % MINUTE)
      const hourLeft = 3_600_000 - (T0 % 3_600_000)
      expect((await manager.consume(id, { tokens: 1_000 })).allowed).toBe(true)
      expect(await manager.consume(id, { tokens: 1_000 })).toMatchObject({
        allowed: false,
        retryAfterMs: hourLeft,
      })
      const calls = client.calls
      expect(await manager.consume(id, { tokens: 1_000 })).toMatchObject({
        allowed: false,
        retryAfterMs: hourLeft,
      })
      expect(client.calls).toBe(calls)
      expect(await manager.consume(id, { tokens: 0 })).toMatchObject({
        allowed: false,
        retryAfterMs: minuteLeft,
      })
      expect(client.calls).toBe(calls + 1)
    })

    it('sees a reset made through another instance within maxHoldMs (1 s by default)', async () => {
      const { provider, id } = tenant([{ window: 'month', requests: 2 }])
      const clock = new ManualClock(T0)
      const options = { redis, clock, prefix, timeoutMs: 2_000 } as const
      const held = new RedisQuotaManager(provider, { ...options, localDeny: true })
      const admin = new RedisQuotaManager(provider, options)
      await held.consume(id)
      await held.consume(id)
      expect((await held.consume(id)).allowed).toBe(false)
      await admin.reset(id)
      clock.advance(999)
      // Still held (the bound trades this short delay for the saved round trips)...
      expect((await held.consume(id)).allowed).toBe(false)
      clock.advance(1)
      // ...but never longer than a second, not until the month ends.
      expect((await held.consume(id)).allowed).toBe(true)
      expect(await held.consume(id)).toMatchObject({ allowed: true, remaining: { requests: 0 } })
    })

    it('holds at most maxEntries tenants', async () => {
      const clock = new ManualClock(T0)
      const provider = new TestConfigProvider()
      const client = counting(toScriptClient(redis))
      const manager = new RedisQuotaManager(provider, {
        redis: client,
        clock,
        prefix,
        timeoutMs: 2_000,
        localDeny: { maxEntries: 2 },
      })
      const ids = [randomTenantId('ld'), randomTenantId('ld'), randomTenantId('ld')]
      for (const id of ids) {
        provider.setQuota(id, { limits: [{ window: 'minute', requests: 1 }] })
        await manager.consume(id)
        await manager.consume(id)
      }
      const calls = client.calls
      // The first tenant was evicted: its next request goes to Redis; the other two do not.
      await manager.consume(ids[1]!)
      await manager.consume(ids[2]!)
      expect(client.calls).toBe(calls)
      await manager.consume(ids[0]!)
      expect(client.calls).toBe(calls + 1)
    })
  })
})
