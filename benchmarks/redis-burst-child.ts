// Child process of the Redis section's burst rows: one store with its DEFAULT options (timeout,
// queue bounds) on a plain `new Redis(url)` client, as an application would create them, fires
// BURST concurrent decisions at one tenant whose limit is LIMIT, then reports what the callers saw
// and what Redis charged. Prints one JSON line.
//
// A process of its own, because "cold" means what a freshly started server meets: a client still
// connecting and code the JIT has not seen. "warm" first connects and runs WARMUP decisions on
// other tenants.
import { InMemoryConfigManager } from '@tenant/core'
import { RedisQuotaManager, RedisRateLimiter } from '@tenant/redis'
import { Redis } from 'ioredis'

/** What one burst did, as the callers saw it and as Redis counted it. */
export interface BurstResult {
  admitted: number
  denied: number
  /** Calls that rejected (TenantBackendError: a 503 at the HTTP edge). */
  failed: number
  /** What Redis charged the tenant once every reply (and any refund) was in. */
  charged: number
  /** Milliseconds from the first call to the last settled one. */
  ms: number
  /** The first failure's message, if any. */
  firstError?: string
}

const env = (name: string): string => {
  const value = process.env[name]
  if (value === undefined) throw new Error(`${name} is not set`)
  return value
}

const url = env('REDIS_URL')
const prefix = env('PREFIX')
const store = env('STORE') as 'fixed' | 'sliding' | 'rate'
const mode = env('MODE') as 'cold' | 'warm'
const burst = Number(env('BURST'))
const limit = Number(env('LIMIT'))
const warmup = Number(process.env.WARMUP ?? 0)

const configs = new InMemoryConfigManager()
const tenant = `burst-${store}-${mode}`
// Rate limiter: a bucket of `limit` tokens that refills one token a day, so the burst sees `limit`.
const rateLimit = { requestsPerSecond: 1 / 86_400, burst: limit }
await configs.setTenantConfig({
  id: tenant,
  quota: { limits: [{ window: 'day', requests: limit }] },
  rateLimit,
})
await configs.setTenantConfig({
  id: 'warmup',
  quota: { limits: [{ window: 'day', requests: 1e12 }] },
  rateLimit: { requestsPerSecond: 1e6, burst: 1e9 },
})

const redis = new Redis(url)
redis.on('error', () => {})

interface Store {
  decide(id: string): Promise<boolean>
  /** Waits for every reply, and for the refunds of late admissions. */
  drain(): Promise<void>
  /** What Redis counts for the tenant (a fresh store with a long timeout, on the same connection). */
  charged(id: string): Promise<number>
}

function makeStore(): Store {
  if (store === 'rate') {
    const limiter = new RedisRateLimiter(configs, { redis, prefix })
    return {
      decide: async (id) => (await limiter.consume(id)).allowed,
      drain: () => limiter.drain(),
      async charged(id) {
        const [tokens] = await redis.hmget(`{${prefix}:${id}}:b`, 'tokens')
        return tokens === null ? 0 : Math.round(limit - Number(tokens))
      },
    }
  }
  const quotas = new RedisQuotaManager(configs, { redis, prefix, algorithm: store })
  const reader = new RedisQuotaManager(configs, { redis, prefix, algorithm: store, timeoutMs: 10_000 })
  return {
    decide: async (id) => (await quotas.consume(id)).allowed,
    drain: () => quotas.drain(),
    charged: async (id) => (await reader.peek(id)).windows[0]!.used.requests,
  }
}

const subject = makeStore()
if (mode === 'warm') {
  await new Promise<void>((resolve) => redis.once('ready', () => resolve()))
  for (let done = 0; done < warmup; done += 100) {
    await Promise.allSettled(Array.from({ length: 100 }, () => subject.decide('warmup')))
  }
}

const started = performance.now()
const outcomes = await Promise.allSettled(Array.from({ length: burst }, () => subject.decide(tenant)))
const ms = performance.now() - started
await subject.drain()
const rejected = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected')
const result: BurstResult = {
  admitted: outcomes.filter((o) => o.status === 'fulfilled' && o.value).length,
  denied: outcomes.filter((o) => o.status === 'fulfilled' && !o.value).length,
  failed: rejected.length,
  // Same connection: Redis answers it after every command sent before it.
  charged: await subject.charged(tenant),
  ms,
  firstError: rejected[0] ? String(rejected[0].reason) : undefined,
}
process.stdout.write(`${JSON.stringify(result)}\n`)
redis.disconnect()
