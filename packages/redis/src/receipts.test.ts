import { type QuotaConfig, TenantBackendError } from '@tenant/core'
import { randomTenantId, TestConfigProvider } from '@tenant/core/testing'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connectIoredis, REDIS_URL, useTestRedis } from '../test/helpers/redis-env'
import { ReplyProxy } from '../test/helpers/reply-proxy'
import { toScriptClient } from './client'
import { CommandGate } from './command-gate'
import { RedisConcurrencyLimiter } from './concurrency-limiter'
import { RedisQuotaManager } from './quota-manager'
import { FIXED_WINDOW_SCRIPT } from './quota-scripts'
import { RedisRateLimiter, TOKEN_BUCKET_SCRIPT } from './rate-limiter'
import { MAX_OWED_COMMANDS, OwedCommands, RECEIPT_TTL_MS } from './receipts'

// Receipts: a decision is charged at most once however often its command runs, and a decision
// whose caller was told it failed is taken back once it can reach Redis. The lost replies are
// real: a proxy in front of the test server lets the commands through and drops the answers, then
// closes the connection, as a network failure does.

const config: QuotaConfig = {
  limits: [{ window: 'minute', requests: 1000, tokens: 1_000_000 }],
  subjects: [{ match: 'key:*', limits: [{ window: 'hour', requests: 500 }] }],
}

/** Polls `check` until it holds: waits for an event (Redis ran a command), not for a time. */
async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 5_000
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`never happened: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
}

describe.runIf(REDIS_URL)('receipts: scripts', () => {
  const { client: redis, prefix } = useTestRedis('receipts')
  const client = toScriptClient(redis)
  const now = () => String(Date.now())
  const fixedArgs = (op: string) => [now(), op, '1', '7', 'minute', '10', '0']

  it('a consume run twice with one receipt charges once and answers the same both times', async () => {
    const key = `{${prefix}:${randomTenantId('twice')}}:f`
    const keys = [key, `${key}:op:a`]
    const first = (await FIXED_WINDOW_SCRIPT.run(client, keys, fixedArgs('consume'))) as unknown[]
    const second = (await FIXED_WINDOW_SCRIPT.run(client, keys, fixedArgs('consume'))) as unknown[]
    // The replay answers its numbers as text (exact, whatever their size).
    expect(second.map(String)).toEqual(first.map(String))
    expect((await redis.hget(key, 'minute'))?.split(',').slice(1)).toEqual(['1', '7'])
    // Another receipt is another decision.
    await FIXED_WINDOW_SCRIPT.run(client, [key, `${key}:op:b`], fixedArgs('consume'))
    expect((await redis.hget(key, 'minute'))?.split(',').slice(1)).toEqual(['2', '14'])
  })

  it('replays and voids exactly with an application clock past 14 digits', async () => {
    const key = `{${prefix}:${randomTenantId('digits')}}:f`
    const keys = [key, `${key}:op:a`]
    // One ms before a minute ends: a replay rounded to 14 digits would land in the next minute.
    const late = '1000000000079999'
    const args = (op: string) => [late, op, '1', '7', 'minute', '10', '0']
    const first = (await FIXED_WINDOW_SCRIPT.run(client, keys, args('consume'))) as unknown[]
    const replay = (await FIXED_WINDOW_SCRIPT.run(client, keys, args('consume'))) as unknown[]
    expect(replay.map(String)).toEqual(first.map(String))
    expect(String(replay[0])).toBe(late)
    expect(await FIXED_WINDOW_SCRIPT.run(client, keys, ['', 'void', ...args('x').slice(2)])).toEqual([
      'void',
      1,
    ])
    // The refund found the minute it was charged in.
    expect(await redis.hget(key, 'minute')).toBeNull()
  })

  it('a void takes an admission back once, however often it runs', async () => {
    const key = `{${prefix}:${randomTenantId('void')}}:f`
    await FIXED_WINDOW_SCRIPT.run(client, [key, `${key}:op:keep`], fixedArgs('consume'))
    const keys = [key, `${key}:op:a`]
    await FIXED_WINDOW_SCRIPT.run(client, keys, fixedArgs('consume'))
    expect(await FIXED_WINDOW_SCRIPT.run(client, keys, ['', 'void', ...fixedArgs('x').slice(2)])).toEqual([
      'void',
      1,
    ])
    expect(await FIXED_WINDOW_SCRIPT.run(client, keys, ['', 'void', ...fixedArgs('x').slice(2)])).toEqual([
      'void',
      0,
    ])
    expect((await redis.hget(key, 'minute'))?.split(',').slice(1)).toEqual(['1', '7'])
    // The decision cannot come back either.
    expect(await FIXED_WINDOW_SCRIPT.run(client, keys, fixedArgs('consume'))).toEqual(['void', 0])
    expect((await redis.hget(key, 'minute'))?.split(',').slice(1)).toEqual(['1', '7'])
  })

  it('a void that comes first stops its decision from charging', async () => {
    const key = `{${prefix}:${randomTenantId('first')}}:f`
    const keys = [key, `${key}:op:a`]
    expect(await FIXED_WINDOW_SCRIPT.run(client, keys, ['', 'void', '1', '7', 'minute', '10', '0'])).toEqual([
      'void',
      0,
    ])
    expect(await FIXED_WINDOW_SCRIPT.run(client, keys, fixedArgs('consume'))).toEqual(['void', 0])
    expect(await redis.exists(key)).toBe(0)
    // The tombstone expires like a receipt.
    const ttl = await redis.pttl(`${key}:op:a`)
    expect(ttl).toBeGreaterThan(RECEIPT_TTL_MS - 2_000)
    expect(ttl).toBeLessThanOrEqual(RECEIPT_TTL_MS)
  })

  it('a denial writes no receipt', async () => {
    const key = `{${prefix}:${randomTenantId('denied')}}:f`
    const args = [now(), 'consume', '11', '0', 'minute', '10', '0']
    const reply = (await FIXED_WINDOW_SCRIPT.run(client, [key, `${key}:op:a`], args)) as unknown[]
    expect(reply[1]).toBe(0)
    expect(await redis.exists(`${key}:op:a`)).toBe(0)
  })

  it('token bucket: a take run twice takes once, and its void gives the tokens back once', async () => {
    const key = `{${prefix}:${randomTenantId('bucket')}}:b`
    const keys = [key, `${key}:op:a`]
    const take = [now(), '3', '0.001', '10']
    await TOKEN_BUCKET_SCRIPT.run(client, keys, take)
    await TOKEN_BUCKET_SCRIPT.run(client, keys, take)
    expect(Math.round(Number(await redis.hget(key, 'tokens')))).toBe(7)
    const voidArgs = [now(), '3', '0.001', '10', 'void']
    expect(await TOKEN_BUCKET_SCRIPT.run(client, keys, voidArgs)).toEqual(['void', 1])
    expect(await TOKEN_BUCKET_SCRIPT.run(client, keys, voidArgs)).toEqual(['void', 0])
    // Full again: no bucket.
    expect(await redis.exists(key)).toBe(0)
  })
})

/** One store under test, seen through a client behind the proxy and, for reading, a direct one. */
interface Subject {
  /** true: admitted; false: denied; throws when the store says it failed. */
  decide(id: string): Promise<boolean>
  /** What the store holds against the tenant, read directly. */
  used(id: string): Promise<number>
  drain(): Promise<void>
}

type Kind = 'fixed' | 'sliding' | 'subject' | 'rate limit' | 'concurrency'

function subject(
  kind: Kind,
  through: Redis,
  direct: Redis,
  prefix: string,
  times: { timeoutMs: number; queueTimeoutMs: number },
): Subject {
  const provider = new TestConfigProvider()
  const remember = (id: string) => {
    provider.setQuota(id, config)
    provider.setRateLimit(id, { requestsPerSecond: 0.001, burst: 1000 })
  }
  if (kind === 'concurrency') {
    const store = new RedisConcurrencyLimiter({ redis: through, prefix, ...times, leaseTtlMs: 600_000 })
    const reader = new RedisConcurrencyLimiter({ redis: direct, prefix })
    return {
      decide: async (id) => (await store.acquire(id, 100)).allowed,
      used: (id) => reader.inFlight(id),
      drain: () => store.drain(),
    }
  }
  if (kind === 'rate limit') {
    const store = new RedisRateLimiter(provider, { redis: through, prefix, ...times })
    return {
      decide: async (id) => {
        remember(id)
        return (await store.consume(id)).allowed
      },
      used: async (id) => {
        const tokens = await direct.hget(`{${prefix}:${id}}:b`, 'tokens')
        return tokens === null ? 0 : Math.round(1000 - Number(tokens))
      },
      drain: () => store.drain(),
    }
  }
  const algorithm = kind === 'sliding' ? 'sliding' : 'fixed'
  const store = new RedisQuotaManager(provider, { redis: through, prefix, ...times, algorithm })
  const reader = new RedisQuotaManager(provider, { redis: direct, prefix, algorithm })
  const options = kind === 'subject' ? { subject: 'key:1' } : undefined
  return {
    decide: async (id) => {
      remember(id)
      return (await store.consume(id, { tokens: 5, ...options })).allowed
    },
    used: async (id) => {
      const { windows } = await reader.peek(id, options)
      // Every window (the tenant's and the subject's) must hold the same count.
      const counts = new Set(windows.map((w) => w.used.requests))
      expect(counts.size).toBe(1)
      return [...counts][0]!
    },
    drain: () => store.drain(),
  }
}

const KINDS: Kind[] = ['fixed', 'sliding', 'subject', 'rate limit', 'concurrency']

describe.runIf(REDIS_URL)('receipts: replies lost with the connection', () => {
  const { client: direct, prefix } = useTestRedis('lost')
  let proxy: ReplyProxy
  const clients: Redis[] = []
  beforeAll(async () => {
    const url = new URL(REDIS_URL!)
    proxy = await ReplyProxy.start({ host: url.hostname, port: Number(url.port || 6379) })
  })
  afterAll(async () => {
    for (const client of clients) client.disconnect()
    await proxy.close()
  })

  /**
   * How the client and the store meet a lost reply:
   * - 'rejected': the client fails the command when its connection closes (ioredis with
   *   maxRetriesPerRequest: 0), before the store's timeout;
   * - 're-sent': ioredis's default, which sends it again once reconnected;
   * - 'timed out': the README's settings (no re-send, maxRetriesPerRequest: 1), under which
   *   ioredis 6 forgets the command on reconnecting and never settles it: the store's timeout
   *   fails the call first.
   */
  type Mode = 'rejected' | 're-sent' | 'timed out'

  async function connectThroughProxy(mode: Mode): Promise<Redis> {
    const resend = mode === 're-sent'
    const client = new Redis({
      host: '127.0.0.1',
      port: proxy.port,
      lazyConnect: true,
      autoResendUnfulfilledCommands: resend,
      enableOfflineQueue: resend,
      maxRetriesPerRequest: mode === 'rejected' ? 0 : resend ? 20 : 1,
      retryStrategy: () => 5,
    })
    client.on('error', () => {})
    clients.push(client)
    await client.connect()
    return client
  }

  /**
   * One admission, then a decision whose reply is lost: Redis runs it, the answer is dropped,
   * the connection closes. Returns what the caller was told, once everything owed has landed.
   */
  async function loseOne(kind: Kind, mode: Mode) {
    const through = await connectThroughProxy(mode)
    const times =
      mode === 'timed out'
        ? { timeoutMs: 150, queueTimeoutMs: 300 }
        : { timeoutMs: 5_000, queueTimeoutMs: 5_000 }
    const store = subject(kind, through, direct, prefix, times)
    const id = randomTenantId('lost')
    let admitted = (await store.decide(id)) ? 1 : 0
    expect(admitted).toBe(1)
    proxy.swallowReplies()
    const lost = store.decide(id).then(
      (allowed) => (allowed ? 'admitted' : 'denied'),
      (error: unknown) => error,
    )
    // Redis has run it: its charge is there.
    await until(async () => (await store.used(id)) === 2, 'the lost decision ran')
    if (mode === 'timed out') {
      // The caller times out first, and its void reaches Redis on the same connection (which
      // still swallows replies): the charge goes back, and the void's own answer is lost too.
      expect(await lost).toBeInstanceOf(TenantBackendError)
      await until(async () => (await store.used(id)) === 1, 'the void ran')
    }
    proxy.cut()
    const outcome = await lost
    if (outcome === 'admitted') admitted++
    // Resolves once every void owed has landed, and every command the client forgot is given up.
    await store.drain()
    return { outcome, used: await store.used(id), admitted }
  }

  for (const kind of KINDS) {
    it(`${kind}: a reply lost and failed by the client fails the call, and its charge goes back`, async () => {
      const { outcome, used, admitted } = await loseOne(kind, 'rejected')
      expect(outcome).toBeInstanceOf(TenantBackendError)
      expect(used).toBe(admitted)
      expect(used).toBe(1)
    })

    it(`${kind}: a decision the client re-sends after losing its reply is charged once`, async () => {
      const { outcome, used, admitted } = await loseOne(kind, 're-sent')
      // The re-sent command finds its receipt: the caller gets the first answer, charged once.
      expect(outcome).toBe('admitted')
      expect(used).toBe(admitted)
      expect(used).toBe(2)
    })

    it(`${kind}: a call that timed out is taken back once, though the void's own reply is lost`, async () => {
      const { outcome, used, admitted } = await loseOne(kind, 'timed out')
      expect(outcome).toBeInstanceOf(TenantBackendError)
      expect(used).toBe(admitted)
      expect(used).toBe(1)
    })
  }
})

describe.runIf(REDIS_URL)('receiptTtlMs', () => {
  const { client: redis, prefix } = useTestRedis('receipt-ttl')

  it('sets how long receipts live, and is named in their keys', async () => {
    const provider = new TestConfigProvider()
    const id = randomTenantId('ttl')
    provider.setQuota(id, config)
    const quotas = new RedisQuotaManager(provider, { redis, prefix, timeoutMs: 5_000, receiptTtlMs: 2_000 })
    await quotas.consume(id)
    const [receipt] = await redis.keys(`{${prefix}:${id}}:f:op:*`)
    expect(receipt).toMatch(/:op:2000:/)
    const ttl = await redis.pttl(receipt!)
    expect(ttl).toBeGreaterThan(1_000)
    expect(ttl).toBeLessThanOrEqual(2_000)
  })

  it('refuses a value outside 1,000 to 600,000 ms', () => {
    const client = { evalScript: async () => null, evalScriptSha: async () => null }
    for (const receiptTtlMs of [999, 600_001, 1.5]) {
      expect(() => new RedisRateLimiter(new TestConfigProvider(), { redis: client, receiptTtlMs })).toThrow(
        expect.objectContaining({
          code: 'tenant_invalid_config',
          issues: [expect.objectContaining({ path: ['receiptTtlMs'] })],
        }),
      )
    }
  })
})

describe('receipts option', () => {
  it('refuses anything but a boolean', () => {
    const redis = { evalScript: async () => null, evalScriptSha: async () => null }
    expect(
      () => new RedisQuotaManager(new TestConfigProvider(), { redis, receipts: 'yes' as never }),
    ).toThrow(
      expect.objectContaining({
        code: 'tenant_invalid_config',
        issues: [expect.objectContaining({ path: ['receipts'] })],
      }),
    )
  })
})

/** A client of a port nobody listens on, which fails its commands at once. */
function deadClient(): Redis {
  const dead = new Redis({ port: 1, lazyConnect: true, enableOfflineQueue: false, retryStrategy: () => null })
  dead.on('error', () => {})
  return dead
}

describe.runIf(REDIS_URL)('OwedCommands', () => {
  it('after giving up commands Redis never took, sends the next one at once, and drain() resolves', async () => {
    const live = await connectIoredis()
    const dead = deadClient()
    try {
      const gate = new CommandGate(toScriptClient(live), {
        timeoutMs: 1_000,
        maxInFlight: 64,
        maxQueue: 100,
        queueTimeoutMs: 1_000,
      })
      let now = 0
      const owed = new OwedCommands(gate, RECEIPT_TTL_MS, () => now)
      let attempts = 0
      owed.add(
        'acme',
        'test',
        () => {
          attempts++
          return toScriptClient(dead).evalScript('return 1', [], [])
        },
        () => {},
      )
      // Tried, failed, tried again after the first pause: Redis is unreachable for it.
      await until(async () => attempts >= 2, 'a retry')
      now += RECEIPT_TTL_MS
      await until(async () => owed.givenUp === 1, 'the command given up')
      expect(owed.owed).toBe(0)
      // Redis answers again: the next command is sent at once (it waited for a retry that never
      // came, and drain() with it).
      let landed = 0
      owed.add(
        'acme',
        'test',
        () => toScriptClient(live).evalScript('return 1', [], []),
        () => landed++,
      )
      await until(async () => landed === 1, 'the next command landed')
      await gate.drain()
    } finally {
      dead.disconnect()
      live.disconnect()
    }
  })

  it(`keeps at most ${MAX_OWED_COMMANDS} commands while Redis cannot be reached, giving up the oldest`, async () => {
    const dead = deadClient()
    const client = toScriptClient(dead)
    const gate = new CommandGate(client, {
      timeoutMs: 50,
      maxInFlight: 64,
      maxQueue: 0,
      queueTimeoutMs: 1_000,
    })
    const owed = new OwedCommands(gate)
    let landed = 0
    for (let i = 0; i < MAX_OWED_COMMANDS + 5; i++) {
      owed.add(
        'acme',
        'test',
        () => client.evalScript('return 1', [], []),
        () => landed++,
      )
    }
    // Each was tried at once and failed; they wait to be tried again, within the bound.
    await until(async () => owed.givenUp === 5, 'the bound gave up the oldest five')
    expect(owed.owed).toBe(MAX_OWED_COMMANDS)
    expect(landed).toBe(0)
    dead.disconnect()
  })
})
