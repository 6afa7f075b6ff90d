import { TenantBackendError } from '@tenant/core'
import { randomTenantId, TestConfigProvider } from '@tenant/core/testing'
import { tenancy } from '@tenant/fetch'
import { Redis } from 'ioredis'
import { createClient } from 'redis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CAN_SPAWN_REDIS, RedisServerProcess } from '../test/helpers/redis-server'
import type { RedisClientInput } from './client'
import { RedisQuotaManager } from './quota-manager'
import { RedisRateLimiter } from './rate-limiter'

// Real outages: a private redis-server child process that the tests kill (SIGKILL) and start
// again on the same port. The managers are never re-created: recovery must need no restart.

const TIMEOUT_MS = 100
// "Within the timeout" with room for a loaded CI machine, yet far from hanging.
const BOUND_MS = 10 * TIMEOUT_MS

async function timed<T>(work: Promise<T>): Promise<{ ms: number; error: unknown; value: T | undefined }> {
  const started = performance.now()
  try {
    const value = await work
    return { ms: performance.now() - started, error: undefined, value }
  } catch (error) {
    return { ms: performance.now() - started, error, value: undefined }
  }
}

const clients: [string, (url: string) => Promise<{ client: RedisClientInput; close(): Promise<void> }>][] = [
  [
    'ioredis, recommended options',
    async (url) => {
      const client = new Redis(url, {
        maxRetriesPerRequest: 1,
        enableOfflineQueue: false,
        connectTimeout: 500,
        retryStrategy: (times) => Math.min(times * 50, 500),
        lazyConnect: true,
      })
      client.on('error', () => {})
      await client.connect()
      return { client, close: async () => client.disconnect() }
    },
  ],
  [
    'ioredis, default options (offline queue)',
    async (url) => {
      const client = new Redis(url, { lazyConnect: true })
      client.on('error', () => {})
      await client.connect()
      return { client, close: async () => client.disconnect() }
    },
  ],
  [
    'node-redis, recommended options',
    async (url) => {
      const client = createClient({
        url,
        disableOfflineQueue: true,
        socket: { connectTimeout: 500, reconnectStrategy: (retries) => Math.min(retries * 50, 500) },
      })
      client.on('error', () => {})
      await client.connect()
      return { client, close: async () => void client.destroy() }
    },
  ],
]

describe.runIf(CAN_SPAWN_REDIS).each(clients)('Redis stopped mid-run, %s', (_name, connect) => {
  let server: RedisServerProcess
  let connection: Awaited<ReturnType<typeof connect>>
  const provider = new TestConfigProvider()
  const id = randomTenantId('fault')
  provider.setQuota(id, { limits: [{ window: 'day', requests: 1_000_000 }] })
  provider.setRateLimit(id, { requestsPerSecond: 1000, burst: 1000 })

  beforeAll(async () => {
    server = await RedisServerProcess.launch()
    connection = await connect(server.url)
  })

  afterAll(async () => {
    await connection?.close()
    await server?.stop()
  })

  it('rejects with TenantBackendError within the timeout, and works again once Redis is back', async () => {
    const quotas = new RedisQuotaManager(provider, { redis: connection.client, timeoutMs: TIMEOUT_MS })
    const limiter = new RedisRateLimiter(provider, { redis: connection.client, timeoutMs: TIMEOUT_MS })
    expect((await quotas.consume(id)).allowed).toBe(true)
    expect((await limiter.consume(id)).allowed).toBe(true)

    // Requests in flight when the server dies, and requests sent while it is down.
    const inFlight = Array.from({ length: 200 }, () => timed(quotas.consume(id)))
    await server.stop()
    const outcomes = [
      ...(await Promise.all(inFlight)),
      await timed(quotas.consume(id)),
      await timed(quotas.peek(id)),
      await timed(quotas.adjust(id, { tokens: 1 })),
      await timed(limiter.consume(id)),
    ]
    for (const outcome of outcomes) {
      expect(outcome.ms).toBeLessThan(BOUND_MS)
      // Whatever did not complete before the kill is a backend error, never a denial.
      if (outcome.error === undefined) expect(outcome.value).toBeDefined()
      else expect(outcome.error).toBeInstanceOf(TenantBackendError)
    }
    const down = outcomes.at(-4)!
    expect(down.error).toMatchObject({ code: 'tenant_backend_unavailable', status: 503 })

    // Same port, empty server (no persistence, no cached scripts: NOSCRIPT is answered by EVAL).
    await server.start()
    await expect
      .poll(
        () =>
          quotas.consume(id).then(
            (d) => d.allowed,
            () => false,
          ),
        { timeout: 10_000, interval: 50 },
      )
      .toBe(true)
    await expect
      .poll(
        () =>
          limiter.consume(id).then(
            (d) => d.allowed,
            () => false,
          ),
        { timeout: 10_000, interval: 50 },
      )
      .toBe(true)
    expect((await quotas.peek(id)).windows[0]!.used.requests).toBeGreaterThanOrEqual(1)
  }, 30_000)
})

describe.runIf(CAN_SPAWN_REDIS)('the fetch stages follow their fail mode when Redis is down', () => {
  let server: RedisServerProcess
  let client: Redis

  beforeAll(async () => {
    server = await RedisServerProcess.launch()
    client = new Redis(server.url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true })
    client.on('error', () => {})
    await client.connect()
  })

  afterAll(async () => {
    client?.disconnect()
    await server?.stop()
  })

  it('503 tenant_backend_unavailable by default, the request passes under failOpen', async () => {
    const provider = new TestConfigProvider()
    provider.setQuota('acme', { limits: [{ window: 'minute', requests: 100 }] })
    provider.setRateLimit('acme', { requestsPerSecond: 10, burst: 10 })
    const quota = new RedisQuotaManager(provider, { redis: client, timeoutMs: TIMEOUT_MS })
    const rateLimit = new RedisRateLimiter(provider, { redis: client, timeoutMs: TIMEOUT_MS })
    const ok = async () => new Response('upstream')
    const reported: unknown[] = []
    const hooks = { onError: (error: unknown) => void reported.push(error) }
    const closed = tenancy({ quota, rateLimit, hooks })
    const open = tenancy({ quota, rateLimit, hooks, failOpen: true })
    const request = () => new Request('http://x/v1', { headers: { 'X-Tenant-ID': 'acme' } })

    const healthy = await closed(request(), ok)
    expect(healthy.status).toBe(200)
    expect(healthy.headers.get('X-Quota-Remaining-Requests')).toBe('99')

    await server.stop()
    const failed = await closed(request(), ok)
    expect(failed.status).toBe(503)
    expect(failed.headers.get('Content-Type')).toMatch(/application\/problem\+json/)
    expect(await failed.json()).toMatchObject({ code: 'tenant_backend_unavailable', status: 503 })
    const passed = await open(request(), ok)
    expect(passed.status).toBe(200)
    expect(await passed.text()).toBe('upstream')
    expect(reported.length).toBeGreaterThan(0)
    for (const error of reported) expect(error).toBeInstanceOf(TenantBackendError)

    await server.start()
    await expect
      .poll(async () => (await closed(request(), ok)).status, { timeout: 10_000, interval: 50 })
      .toBe(200)
  }, 30_000)
})
