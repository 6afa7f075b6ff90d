import { ManualClock, TenantBackendError } from '@tenant/core'
import { concurrencyLimiterConformance } from '@tenant/core/testing'
import { Redis } from 'ioredis'
import { describe, expect, it, vi } from 'vitest'
import { fastFailOptions, REDIS_URL, useNodeRedis, useTestRedis } from '../test/helpers/redis-env'
import { toScriptClient } from './client'
import { ACQUIRE_SCRIPT, RedisConcurrencyLimiter } from './concurrency-limiter'

const timeoutMs = 5_000
const suite = { timeout: 30_000 }

describe.runIf(REDIS_URL)('RedisConcurrencyLimiter', () => {
  const { client: ioredis, prefix } = useTestRedis('concurrency')
  const nodeRedis = useNodeRedis()

  concurrencyLimiterConformance(
    'RedisConcurrencyLimiter, ioredis',
    () => new RedisConcurrencyLimiter({ redis: ioredis, prefix, timeoutMs }),
    suite,
  )
  concurrencyLimiterConformance(
    'RedisConcurrencyLimiter, node-redis',
    () => new RedisConcurrencyLimiter({ redis: nodeRedis, prefix, timeoutMs }),
    suite,
  )

  it('gives back the slots of a crashed process once their leases expire', async () => {
    const clock = new ManualClock(Date.UTC(2030, 0, 1))
    const limiter = new RedisConcurrencyLimiter({
      redis: ioredis,
      prefix,
      timeoutMs,
      clock,
      leaseTtlMs: 1_000,
    })
    const id = `crash-${Math.random().toString(36).slice(2)}`
    // Taken and never released: the process that held them is gone.
    await limiter.acquire(id, 2)
    clock.advance(500)
    await limiter.acquire(id, 2)
    expect((await limiter.acquire(id, 2)).allowed).toBe(false)
    clock.advance(500)
    expect(await limiter.inFlight(id)).toBe(1)
    expect(await limiter.acquire(id, 2)).toMatchObject({ allowed: true, inFlight: 2 })
    // Now the second has expired too; the third (taken at +1000) lives until +2000.
    clock.advance(999)
    expect(await limiter.inFlight(id)).toBe(1)
  })

  it('a limiter with a short leaseTtlMs never shortens the leases another limiter holds', async () => {
    // A streaming service and an API share the tenant's slots (one prefix) with different TTLs.
    const clock = new ManualClock(Date.now())
    const long = new RedisConcurrencyLimiter({
      redis: ioredis,
      prefix,
      timeoutMs,
      clock,
      leaseTtlMs: 600_000,
    })
    const short = new RedisConcurrencyLimiter({ redis: ioredis, prefix, timeoutMs, clock, leaseTtlMs: 30 })
    const id = `mixed-${Math.random().toString(36).slice(2)}`
    await long.acquire(id, 3)
    await long.acquire(id, 3)
    await short.acquire(id, 3)
    // The key lives as long as its longest lease.
    expect(await ioredis.pttl(`{${prefix}:${id}}:c`)).toBeGreaterThan(590_000)
    clock.advance(100)
    // The short lease has expired, the two long ones are still held.
    expect(await long.inFlight(id)).toBe(2)
    expect(await long.acquire(id, 3)).toMatchObject({ allowed: true, inFlight: 3 })
    expect((await short.acquire(id, 3)).allowed).toBe(false)
  })

  it('an acquire run twice (a command re-sent after its reply was lost) admits once and holds one slot', async () => {
    // ioredis re-sends commands whose replies a dropped connection lost: the script then runs twice
    // with the same lease id. The second run must answer as the first did, not count the lease
    // against itself (which denied the caller and left the lease holding its slot for the TTL).
    const client = toScriptClient(ioredis)
    const id = `resend-${Math.random().toString(36).slice(2)}`
    const key = `{${prefix}:${id}}:c`
    const now = String(Date.now())
    const acquire = (lease: string) => ACQUIRE_SCRIPT.run(client, [key], [now, lease, '1', '60000'])
    expect(await acquire('lease-a')).toEqual([1, 1])
    expect(await acquire('lease-a')).toEqual([1, 1])
    expect(await ioredis.zcard(key)).toBe(1)
    // Another lease still finds the one slot taken.
    expect(await acquire('lease-b')).toEqual([0, 1])
  })

  it('a release the client refuses (its connection dropped) is owed and lands once it is back', async () => {
    // The recommended ioredis options: no offline queue, so a command sent while the connection
    // is down is refused at once, never sent. Redis itself keeps the lease meanwhile.
    const client = new Redis(REDIS_URL!, {
      ...fastFailOptions,
      retryStrategy: () => 300,
    })
    client.on('error', () => {})
    await client.connect()
    try {
      const limiter = new RedisConcurrencyLimiter({ redis: client, prefix, timeoutMs })
      const id = `blip-${Math.random().toString(36).slice(2)}`
      const held = await limiter.acquire(id, 1)
      expect(held.allowed).toBe(true)
      await ioredis.client('KILL', 'ID', String(await client.client('ID')))
      await vi.waitFor(() => expect(client.status).not.toBe('ready'))
      await expect(held.lease!.release()).rejects.toBeInstanceOf(TenantBackendError)
      // Owed: drain() resolves once it landed, after the client reconnected by itself.
      await limiter.drain()
      expect(client.status).toBe('ready')
      expect(await limiter.inFlight(id)).toBe(0)
      expect((await limiter.acquire(id, 1)).allowed).toBe(true)
    } finally {
      client.disconnect()
    }
  })

  it('keeps each tenant in one key under its hash tag, and that key expires', async () => {
    const limiter = new RedisConcurrencyLimiter({ redis: ioredis, prefix, timeoutMs, leaseTtlMs: 60_000 })
    const id = `ttl-${Math.random().toString(36).slice(2)}`
    await limiter.acquire(id, 3)
    const key = `{${prefix}:${id}}:c`
    expect(await ioredis.zcard(key)).toBe(1)
    const ttl = await ioredis.pttl(key)
    expect(ttl).toBeGreaterThan(0)
    expect(ttl).toBeLessThanOrEqual(60_000)
  })
})

describe('RedisConcurrencyLimiter options', () => {
  it('refuses a bad leaseTtlMs at construction', () => {
    const redis = { evalScript: async () => null, evalScriptSha: async () => null }
    expect(() => new RedisConcurrencyLimiter({ redis, leaseTtlMs: 0 })).toThrow(
      expect.objectContaining({
        code: 'tenant_invalid_config',
        issues: [expect.objectContaining({ path: ['leaseTtlMs'] })],
      }),
    )
  })
})
