import { InvalidTenantConfigError, TenantBackendError } from '@tenant/core'
import { rejectionOf, TestConfigProvider } from '@tenant/core/testing'
import { Redis } from 'ioredis'
import { describe, expect, it } from 'vitest'
import { usePrivateRedis } from '../test/helpers/redis-env'
import { CAN_SPAWN_REDIS, freePort } from '../test/helpers/redis-server'
import { ioredisClient, nodeRedisClient, type RedisScriptClient } from './client'
import { RedisQuotaManager } from './quota-manager'
import { RedisRateLimiter } from './rate-limiter'

const provider = new TestConfigProvider()
provider.setQuota('acme', { limits: [{ window: 'day', requests: 1_000 }] })
provider.setRateLimit('acme', { requestsPerSecond: 10, burst: 10 })

describe('queue options', () => {
  const unreachable: RedisScriptClient = {
    evalScriptSha: () => Promise.reject(new Error('must not be called')),
    evalScript: () => Promise.reject(new Error('must not be called')),
  }

  it.each([
    ['maxInFlight', 0],
    ['maxInFlight', 1.5],
    ['maxQueue', -1],
    ['maxQueue', Number.POSITIVE_INFINITY],
    ['queueTimeoutMs', 0],
    ['queueTimeoutMs', '100'],
  ])('%s: %s is InvalidTenantConfigError at construction', (option, value) => {
    for (const make of [
      () => new RedisQuotaManager(provider, { redis: unreachable, [option]: value }),
      () => new RedisRateLimiter(provider, { redis: unreachable, [option]: value }),
    ]) {
      let error: unknown
      try {
        make()
      } catch (e) {
        error = e
      }
      expect(error).toBeInstanceOf(InvalidTenantConfigError)
      expect((error as InvalidTenantConfigError).issues[0]!.path).toEqual([option])
    }
  })

  it('accepts the smallest values (one in flight, no queue)', () => {
    expect(
      new RedisQuotaManager(provider, { redis: unreachable, maxInFlight: 1, maxQueue: 0, queueTimeoutMs: 1 }),
    ).toBeInstanceOf(RedisQuotaManager)
  })
})

describe('connectionState of the adapters', () => {
  it('reads ioredis status and node-redis isReady / isOpen', () => {
    const io = (status: string) => ioredisClient({ evalsha: async () => 0, eval: async () => 0, status })
    expect(io('ready').connectionState?.()).toBe('ready')
    expect(io('connecting').connectionState?.()).toBe('connecting')
    expect(io('reconnecting').connectionState?.()).toBe('connecting')
    expect(io('close').connectionState?.()).toBe('connecting')
    expect(io('end').connectionState?.()).toBe('down')
    const node = (isReady: boolean, isOpen: boolean) =>
      nodeRedisClient({ evalSha: async () => 0, eval: async () => 0, isReady, isOpen })
    expect(node(true, true).connectionState?.()).toBe('ready')
    expect(node(false, true).connectionState?.()).toBe('connecting')
    expect(node(false, false).connectionState?.()).toBe('down')
    // A shape without a status is taken to be ready: no connectionState at all.
    expect(ioredisClient({ evalsha: async () => 0, eval: async () => 0 }).connectionState).toBeUndefined()
  })
})

describe.runIf(CAN_SPAWN_REDIS)('the store queue against a real server', () => {
  const server = usePrivateRedis()

  it('fails a call at once when maxQueue calls already wait, and sends the waiting ones later', async () => {
    const quotas = new RedisQuotaManager(provider, {
      redis: server.client,
      prefix: 'full',
      maxInFlight: 1,
      maxQueue: 2,
      timeoutMs: 10_000,
    })
    await quotas.consume('acme') // scripts loaded
    // The server holds every command for a while: one call is sent, two wait in the queue.
    await server.admin.call('CLIENT', 'PAUSE', '500', 'ALL')
    const accepted = [quotas.consume('acme'), quotas.consume('acme'), quotas.consume('acme')]
    // The fourth is refused while the server is still paused: it waited for nothing.
    const refused = await rejectionOf(quotas.consume('acme'))
    expect(refused).toBeInstanceOf(TenantBackendError)
    expect((refused as Error).message).toMatch(/not sent: 2 calls already wait to be sent \(maxQueue 2\)/)
    const decisions = await Promise.all(accepted)
    expect(decisions.map((d) => d.remaining.requests)).toEqual([998, 997, 996])
  })

  it('fails waiting and new calls at once when Redis stops answering, and recovers when it answers', async () => {
    const quotas = new RedisQuotaManager(provider, {
      redis: server.client,
      prefix: 'stall',
      maxInFlight: 1,
      timeoutMs: 50,
      queueTimeoutMs: 60_000,
    })
    await quotas.consume('acme')
    await server.admin.call('CLIENT', 'PAUSE', '1000', 'ALL')
    const sent = rejectionOf(quotas.consume('acme'))
    const waiting = [rejectionOf(quotas.consume('acme')), rejectionOf(quotas.consume('acme'))]
    // The sent one times out; nothing is answered for another timeoutMs either, so the queue gives
    // up on Redis rather than wait the minute queueTimeoutMs allows.
    expect(String(await sent)).toMatch(/timed out after 50 ms/)
    for (const error of await Promise.all(waiting)) {
      expect(String(error)).toMatch(
        /not sent: Redis has answered none of the 1 commands in flight for over 100 ms/,
      )
    }
    expect(String(await rejectionOf(quotas.consume('acme')))).toMatch(/not sent: Redis has answered none/)
    // Once the late answer is in (and refunded), calls go through again.
    await quotas.drain()
    expect(await quotas.consume('acme')).toMatchObject({ allowed: true, remaining: { requests: 998 } })
  })

  it('holds calls while a new client connects, and fails them after queueTimeoutMs if it never does', async () => {
    // Nothing listens on this port: the client keeps trying to connect, and never becomes ready.
    const nowhere = new Redis(await freePort(), '127.0.0.1', { retryStrategy: () => 20 })
    nowhere.on('error', () => {})
    try {
      const quotas = new RedisQuotaManager(provider, { redis: nowhere, queueTimeoutMs: 50 })
      const error = await rejectionOf(quotas.consume('acme'))
      expect(error).toBeInstanceOf(TenantBackendError)
      expect((error as Error).message).toMatch(
        /quota consume not sent: waited 50 ms \(queueTimeoutMs\): the client has not connected yet/,
      )
      // Never sent, so nothing is left to answer or refund.
      await quotas.drain()
    } finally {
      nowhere.disconnect()
    }
  })
})
