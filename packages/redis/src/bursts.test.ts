import { type RateLimitConfig, TenantBackendError } from '@tenant/core'
import { randomTenantId, TestConfigProvider } from '@tenant/core/testing'
import { Redis } from 'ioredis'
import { createClient } from 'redis'
import { afterAll, describe, expect, it } from 'vitest'
import { connectIoredis, usePrivateRedis } from '../test/helpers/redis-env'
import { CAN_SPAWN_REDIS } from '../test/helpers/redis-server'
import type { RedisClientInput } from './client'
import type { RedisStoreOptions } from './options'
import { RedisQuotaManager } from './quota-manager'
import { RedisRateLimiter } from './rate-limiter'

// Bursts and late replies, on real servers. What the callers were told must be what Redis
// charged: a call reported as failed never costs quota, whenever its reply arrives.

type StoreKind = 'fixed' | 'sliding' | 'rate'
const kinds: StoreKind[] = ['fixed', 'sliding', 'rate']

/** One store of `kind` allowing `limit` requests to one tenant, and how to read what it charged. */
interface Subject {
  id: string
  decide(): Promise<boolean>
  drain(): Promise<void>
  /** What Redis charged the tenant (read on `reader`, after `drain`). */
  charged(reader: Redis): Promise<number>
}

function subject(
  kind: StoreKind,
  redis: RedisClientInput,
  limit: number,
  options: Omit<RedisStoreOptions, 'redis'> = {},
): Subject {
  const provider = new TestConfigProvider()
  const id = randomTenantId('burst')
  const prefix = options.prefix ?? 'burst'
  if (kind === 'rate') {
    // Refills one token a day: the test sees `limit` tokens and no refill worth counting.
    const rate: RateLimitConfig = { requestsPerSecond: 1 / 86_400, burst: limit }
    provider.setRateLimit(id, rate)
    const limiter = new RedisRateLimiter(provider, { ...options, redis, prefix })
    return {
      id,
      decide: async () => (await limiter.consume(id)).allowed,
      drain: () => limiter.drain(),
      async charged(reader) {
        const tokens = await reader.hget(`{${prefix}:${id}}:b`, 'tokens')
        return tokens === null ? 0 : Math.round(limit - Number(tokens))
      },
    }
  }
  provider.setQuota(id, { limits: [{ window: 'day', requests: limit }] })
  const manager = new RedisQuotaManager(provider, { ...options, redis, prefix, algorithm: kind })
  return {
    id,
    decide: async () => (await manager.consume(id)).allowed,
    drain: () => manager.drain(),
    async charged(reader) {
      const peeker = new RedisQuotaManager(provider, {
        redis: reader,
        prefix,
        algorithm: kind,
        timeoutMs: 5_000,
      })
      return (await peeker.peek(id)).windows[0]!.used.requests
    },
  }
}

/** Fires `count` decisions at once and counts what the callers were told. */
async function burst(s: Subject, count: number) {
  const outcomes = await Promise.allSettled(Array.from({ length: count }, () => s.decide()))
  const failures = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as unknown] : []))
  for (const failure of failures) expect(failure).toBeInstanceOf(TenantBackendError)
  return {
    admitted: outcomes.filter((o) => o.status === 'fulfilled' && o.value).length,
    denied: outcomes.filter((o) => o.status === 'fulfilled' && !o.value).length,
    failed: failures.length,
    firstFailure: failures[0],
  }
}

// A private server: the default timeout is 50 ms, and the shared local Redis may be busy for
// longer with another run's long scripts (a legitimate timeout, but not what these tests are about).
describe.runIf(CAN_SPAWN_REDIS)('bursts with default options', () => {
  const server = usePrivateRedis()
  const prefix = 'bursts'
  const closers: (() => void)[] = []
  afterAll(() => {
    for (const close of closers) close()
  })

  // Fresh clients, not yet connected, as a process that has just started creates them.
  const coldClients: [string, () => RedisClientInput][] = [
    [
      'ioredis, default options',
      () => {
        const client = new Redis(server.url)
        client.on('error', () => {})
        closers.push(() => client.disconnect())
        return client
      },
    ],
    [
      'ioredis, lazyConnect and never connected',
      () => {
        const client = new Redis(server.url, { lazyConnect: true })
        client.on('error', () => {})
        closers.push(() => client.disconnect())
        return client
      },
    ],
    [
      'node-redis, connect() called but not awaited',
      () => {
        const client = createClient({ url: server.url })
        client.on('error', () => {})
        void client.connect()
        closers.push(() => client.destroy())
        return client
      },
    ],
  ]

  for (const [name, fresh] of coldClients) {
    for (const kind of kinds) {
      it(`cold: 300 at a limit of 100 on a new ${kind} store admit exactly 100, none fails (${name})`, async () => {
        const s = subject(kind, fresh(), 100, { prefix })
        const seen = await burst(s, 300)
        expect({ ...seen, firstFailure: String(seen.firstFailure) }).toEqual({
          admitted: 100,
          denied: 200,
          failed: 0,
          firstFailure: 'undefined',
        })
        await s.drain()
        expect(await s.charged(server.admin)).toBe(100)
      })
    }
  }

  const warmClients: [string, () => Promise<RedisClientInput>][] = [
    [
      'ioredis',
      async () => {
        const client = await connectIoredis(server.url)
        closers.push(() => client.disconnect())
        return client
      },
    ],
    [
      'ioredis, enableAutoPipelining',
      async () => {
        const client = await connectIoredis(server.url, { enableAutoPipelining: true })
        closers.push(() => client.disconnect())
        return client
      },
    ],
    [
      'node-redis',
      async () => {
        const client = createClient({ url: server.url })
        client.on('error', () => {})
        await client.connect()
        closers.push(() => client.destroy())
        return client
      },
    ],
  ]

  for (const [name, connected] of warmClients) {
    for (const kind of kinds) {
      it(`warm: 3000 at a limit of 1000 (${kind}, ${name}): Redis charged exactly what was admitted`, async () => {
        const redis = await connected()
        await burst(subject(kind, redis, 10 ** 9, { prefix }), 500) // the connection and the code are warm
        const s = subject(kind, redis, 1000, { prefix })
        const seen = await burst(s, 3000)
        expect(seen.admitted + seen.denied + seen.failed).toBe(3000)
        expect(seen.admitted).toBeLessThanOrEqual(1000)
        await s.drain()
        expect(await s.charged(server.admin)).toBe(seen.admitted)
      }, 30_000)
    }
  }
})

// CLIENT PAUSE holds every command of every client of the server: a private server, so that no
// other test (or another run sharing the local Redis) is paused. The pause ends by itself (on
// Redis 7.0 a CLIENT UNPAUSE waits for it too); the timeout is a tenth of it.
const PAUSE_MS = 1_000
describe.runIf(CAN_SPAWN_REDIS)('a reply that arrives after its timeout', () => {
  const server = usePrivateRedis()
  const clients: [string, () => Promise<{ client: RedisClientInput; close(): void }>][] = [
    ['ioredis', async () => ({ client: server.client, close: () => {} })],
    [
      'node-redis',
      async () => {
        const client = createClient({ url: server.url })
        client.on('error', () => {})
        await client.connect()
        return { client, close: () => client.destroy() }
      },
    ],
  ]

  // With receipts the void sent at the timeout does it; without, the refund of the late reply.
  for (const [name, connect] of clients) {
    for (const kind of kinds) {
      for (const receipts of [true, false]) {
        it(`is refunded when it admitted: usage equals the admissions callers saw (${kind}, ${name}, receipts: ${receipts})`, async () => {
          const { client, close } = await connect()
          try {
            // Room for 3; one admitted while Redis answers.
            const s = subject(kind, client, 3, { timeoutMs: 100, receipts })
            const before = await burst(s, 1)

            // Redis holds every command for a second: these five are sent, and time out.
            await server.admin.call('CLIENT', 'PAUSE', String(PAUSE_MS), 'ALL')
            const during = await burst(s, 5)
            expect(during).toMatchObject({ admitted: 0, denied: 0, failed: 5 })
            expect(String(during.firstFailure)).toMatch(/timed out after 100 ms/)
            // Then they run: two fit and are charged, after their callers were told they failed.
            await s.drain()

            expect(await s.charged(server.admin)).toBe(before.admitted)
            // The refunded room is there for the next callers.
            const after = await burst(s, 5)
            expect(after.admitted).toBe(3 - before.admitted)
          } finally {
            close()
          }
        }, 30_000)
      }
    }
  }
})
