import { TenantBackendError, TenantCache } from '@tenant/core'
import {
  randomTenantId,
  TestConfigProvider,
  testCacheStore,
  testQuotaManager,
  testRateLimiter,
} from '@tenant/core/testing'
import { Cluster, Redis } from 'ioredis'
import { createCluster } from 'redis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CAN_SPAWN_REDIS, RedisClusterProcess } from '../test/helpers/redis-server'
import { RedisTenantCacheStore } from './cache-store'
import { RedisQuotaManager } from './quota-manager'
import { RedisRateLimiter } from './rate-limiter'

// A real three-master Redis Cluster (redis-server child processes): every script touches the keys
// of one tenant, which share one hash tag and so one slot, wherever that slot lives.

describe.runIf(CAN_SPAWN_REDIS)('on a Redis Cluster', () => {
  let cluster: RedisClusterProcess
  let ioredis: Cluster
  let nodeRedis: ReturnType<typeof createCluster>
  const timeoutMs = 5_000
  const suite = { timeout: 30_000 }

  beforeAll(async () => {
    cluster = await RedisClusterProcess.launch()
    ioredis = new Cluster(cluster.addresses, { redisOptions: { maxRetriesPerRequest: 1 } })
    await new Promise<void>((resolve, reject) => {
      ioredis.once('ready', resolve)
      ioredis.once('error', reject)
    })
    nodeRedis = createCluster({
      rootNodes: cluster.addresses.map((a) => ({ url: `redis://${a.host}:${a.port}` })),
    })
    await nodeRedis.connect()
  }, 60_000)

  afterAll(async () => {
    ioredis?.disconnect()
    await nodeRedis?.close()
    await cluster?.stop()
  })

  testQuotaManager(
    'RedisQuotaManager fixed, ioredis Cluster',
    ({ provider, clock }) => new RedisQuotaManager(provider, { redis: ioredis, clock, timeoutMs }),
    { algorithm: 'fixed', ...suite },
  )

  testQuotaManager(
    'RedisQuotaManager sliding, node-redis cluster',
    ({ provider, clock }) =>
      new RedisQuotaManager(provider, { redis: nodeRedis, clock, timeoutMs, algorithm: 'sliding' }),
    { algorithm: 'sliding', ...suite },
  )

  testRateLimiter(
    'RedisRateLimiter, ioredis Cluster',
    ({ provider, clock }) => new RedisRateLimiter(provider, { redis: ioredis, clock, timeoutMs }),
    suite,
  )

  testCacheStore(
    'RedisTenantCacheStore, ioredis Cluster',
    ({ clock, tenantCachePrefix }) =>
      new RedisTenantCacheStore({ redis: ioredis, clock, tenantCachePrefix, timeoutMs }),
  )

  it('spreads tenants over every node, each tenant in one slot', async () => {
    const provider = new TestConfigProvider()
    const quotas = new RedisQuotaManager(provider, { redis: ioredis, timeoutMs })
    const limiter = new RedisRateLimiter(provider, { redis: ioredis, timeoutMs })
    const cache = new TenantCache<string>(new RedisTenantCacheStore({ redis: ioredis, timeoutMs }))
    const ids = Array.from({ length: 60 }, () => randomTenantId('spread'))
    for (const id of ids) {
      provider.setQuota(id, { limits: [{ window: 'hour', requests: 10 }] })
      provider.setRateLimit(id, { requestsPerSecond: 1, burst: 5 })
      await quotas.consume(id)
      await limiter.consume(id)
      await cache.set(id, 'k', id)
    }
    const perNode = await Promise.all(
      cluster.nodes.map(async (node) => {
        const client = new Redis(node.port, '127.0.0.1')
        try {
          return await client.dbsize()
        } finally {
          client.disconnect()
        }
      }),
    )
    expect(perNode.every((n) => n > 0)).toBe(true)
    for (const id of ids.slice(0, 5)) {
      // The two keys of a tenant's cache group hash to one slot, so one script may touch both.
      const slots = await Promise.all(
        [`{tenant:cache:${id}}:h`, `{tenant:cache:${id}}:x`].map((key) =>
          ioredis.call('CLUSTER', 'KEYSLOT', key),
        ),
      )
      expect(new Set(slots).size).toBe(1)
      expect(await cache.get(id, 'k')).toBe(id)
      expect(await cache.clear(id)).toBe(1)
      expect(await ioredis.exists(`{tenant:cache:${id}}:h`, `{tenant:cache:${id}}:x`)).toBe(0)
    }
  }, 60_000)

  it('refuses a deletePrefix spanning tenants instead of deleting on one node only', async () => {
    const store = new RedisTenantCacheStore({ redis: ioredis, timeoutMs })
    const error = await store.deletePrefix('tenant:').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(TenantBackendError)
    expect((error as Error).message).toMatch(/non-cluster/)
  })
})
