// Redis: RedisQuotaManager against rate-limiter-flexible's RateLimiterRedis and hono-rate-limiter's
// RedisStore on the local Redis, at concurrency 1 and 64: throughput, latency, and round trips per
// decision counted twice, by the client (every command ioredis sends) and by the server (MONITOR).
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { InMemoryConfigManager, type QuotaConfig } from '@tenant/core'
import { RedisQuotaManager, RedisRateLimiter } from '@tenant/redis'
import { RedisStore } from 'hono-rate-limiter'
import { Redis } from 'ioredis'
import { RateLimiterRedis } from 'rate-limiter-flexible'
import { countAdmitted, sameDecisions } from './lib/check'
import { REDIS_ROUNDS, REDIS_SECONDS, REDIS_URL } from './lib/env'
import { LIMITS } from './lib/limits'
import type { Report } from './lib/report'
import { formatRate, formatRatio, percentile } from './lib/timing'
import type { BurstResult } from './redis-burst-child'

const UNREACHABLE = 1e12
const CHECK_LIMIT = 100
const CHECK_ATTEMPTS = 150
const TENANTS = 100
const CONCURRENCY = [1, 64] as const
/** Decisions made while MONITOR counts round trips. */
const COUNTED = 200
/** Generous, so a busy machine shows up as latency, not as failed decisions. */
const TIMEOUT_MS = 5_000

/** Burst rows: a fresh process fires `burst` concurrent decisions at one tenant allowed `limit`. */
const BURSTS = [
  { mode: 'cold', burst: 300, limit: 100 },
  { mode: 'warm', burst: 3000, limit: 1000 },
] as const
const BURST_STORES = ['fixed', 'sliding', 'rate'] as const
const BURST_WARMUP = 3000

const ids = Array.from({ length: TENANTS }, (_, i) => `tenant-${String(i).padStart(3, '0')}`)

/** A Redis client whose commands are counted as ioredis sends them. */
interface CountedClient {
  redis: Redis
  sent: number
  /** `host:port` of this connection as the server sees it (for MONITOR). */
  address: string
}

async function countedClient(): Promise<CountedClient> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 })
  const info = String(await redis.call('CLIENT', 'INFO'))
  const address = /addr=(\S+)/.exec(info)?.[1]
  if (!address) throw new Error(`cannot read the client address from CLIENT INFO: ${info}`)
  const counted: CountedClient = { redis, sent: 0, address }
  const send = redis.sendCommand.bind(redis)
  redis.sendCommand = ((...args: Parameters<Redis['sendCommand']>) => {
    counted.sent++
    return send(...args)
  }) as Redis['sendCommand']
  return counted
}

/** One contender: how it decides, on its own connection. */
interface Peer {
  name: string
  client: CountedClient
  decide(tenantId: string): Promise<boolean>
}

interface Factory {
  name: string
  /** A limiter allowing `limit` requests per minute per tenant, with keys under `prefix`. */
  create(
    client: CountedClient,
    limit: number,
    prefix: string,
  ): Promise<(tenantId: string) => Promise<boolean>>
}

async function quotaConfigs(limit: number): Promise<InMemoryConfigManager> {
  const configs = new InMemoryConfigManager()
  const quota: QuotaConfig = { limits: [{ window: 'minute', requests: limit }] }
  for (const id of [...ids, 'check']) await configs.setTenantConfig({ id, quota })
  return configs
}

/** RedisQuotaManager, one fixed minute window, with `options` on top of the bench's. */
function quotaFactory(name: string, keyPrefix: string, options: { receipts?: boolean } = {}): Factory {
  return {
    name,
    async create(client, limit, prefix) {
      const quotas = new RedisQuotaManager(await quotaConfigs(limit), {
        redis: client.redis,
        prefix: `${prefix}${keyPrefix}`,
        timeoutMs: TIMEOUT_MS,
        ...options,
      })
      return async (tenantId) => (await quotas.consume(tenantId)).allowed
    },
  }
}

const factories: Factory[] = [
  quotaFactory('RedisQuotaManager (fixed minute)', 'q'),
  // The same without receipts (one key write per admission fewer): what a decision that counts
  // once costs.
  quotaFactory('RedisQuotaManager (fixed minute, receipts: false)', 'qn', { receipts: false }),
  {
    name: 'rate-limiter-flexible RateLimiterRedis',
    async create(client, limit, prefix) {
      const limiter = new RateLimiterRedis({
        storeClient: client.redis,
        keyPrefix: `${prefix}rlf`,
        points: limit,
        duration: 60,
      })
      return (tenantId) =>
        limiter.consume(tenantId, 1).then(
          () => true,
          (rejection: unknown) => {
            if (rejection instanceof Error) throw rejection
            return false
          },
        )
    },
  },
  {
    name: 'hono-rate-limiter RedisStore',
    async create(client, limit, prefix) {
      const redis = client.redis
      const store = new RedisStore({
        client: {
          scriptLoad: (script) => redis.script('LOAD', script) as Promise<string>,
          evalsha: (sha, keys, args) =>
            redis.evalsha(sha, keys.length, ...keys, ...(args as string[])) as Promise<never>,
          decr: (key) => redis.decr(key),
          del: (key) => redis.del(key),
        },
        prefix: `${prefix}hrl:`,
      })
      store.init({ windowMs: 60_000 } as Parameters<RedisStore['init']>[0])
      return async (tenantId) => (await store.increment(tenantId)).totalHits <= limit
    },
  },
  {
    name: 'RedisRateLimiter (token bucket, for reference)',
    async create(client, limit, prefix) {
      const configs = new InMemoryConfigManager()
      for (const id of [...ids, 'check'])
        await configs.setTenantConfig({ id, rateLimit: { requestsPerSecond: 1 / 60, burst: limit } })
      const limiter = new RedisRateLimiter(configs, {
        redis: client.redis,
        prefix: `${prefix}b`,
        timeoutMs: TIMEOUT_MS,
      })
      return async (tenantId) => (await limiter.consume(tenantId)).allowed
    },
  },
]

interface LoadResult {
  decisionsPerSec: number
  p50Ms: number
  p99Ms: number
}

async function load(
  decide: (tenantId: string) => Promise<boolean>,
  concurrency: number,
  seconds: number,
): Promise<LoadResult> {
  const latencies: number[] = []
  let next = 0
  let denied = 0
  const deadline = performance.now() + seconds * 1000
  const start = performance.now()
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const t0 = performance.now()
        if (!(await decide(ids[next++ % ids.length]!))) denied++
        latencies.push(performance.now() - t0)
      }
    }),
  )
  const elapsed = (performance.now() - start) / 1000
  if (denied > 0) throw new Error(`${denied} decisions were denials: the load run must only admit`)
  latencies.sort((a, b) => a - b)
  return {
    decisionsPerSec: latencies.length / elapsed,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
  }
}

/** Round trips per decision, counted by the client and by the server (MONITOR). */
async function roundTrips(peer: Peer): Promise<{ client: number; server: number }> {
  for (let i = 0; i < 10; i++) await peer.decide(ids[i]!) // scripts loaded, connection warm
  const monitor = await new Redis(REDIS_URL).monitor()
  const marker = `bench-marker-${process.pid}-${Date.now()}`
  let seen = 0
  let done: () => void = () => {}
  const finished = new Promise<void>((resolve) => {
    done = resolve
  })
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    if (source !== peer.client.address) return
    if (args[0]?.toLowerCase() === 'echo' && args[1] === marker) done()
    else seen++
  })
  // MONITOR takes effect once its own reply is in; a round trip on it makes sure of that.
  await new Promise((resolve) => setTimeout(resolve, 50))
  const sentBefore = peer.client.sent
  for (let i = 0; i < COUNTED; i++) await peer.decide(ids[i % ids.length]!)
  const sent = peer.client.sent - sentBefore
  await peer.client.redis.echo(marker)
  await Promise.race([finished, new Promise((resolve) => setTimeout(resolve, 10_000))])
  monitor.disconnect()
  return { client: sent / COUNTED, server: seen / COUNTED }
}

const run = promisify(execFile)

/** One burst in a child process (see redis-burst-child.ts), with the stores' default options. */
async function burstRun(
  store: (typeof BURST_STORES)[number],
  shape: (typeof BURSTS)[number],
  prefix: string,
): Promise<BurstResult> {
  const { stdout } = await run(
    process.execPath,
    [...process.execArgv, new URL('./redis-burst-child.ts', import.meta.url).pathname],
    {
      env: {
        ...process.env,
        REDIS_URL,
        PREFIX: `${prefix}burst`,
        STORE: store,
        MODE: shape.mode,
        BURST: String(shape.burst),
        LIMIT: String(shape.limit),
        WARMUP: String(BURST_WARMUP),
      },
      maxBuffer: 1 << 20,
    },
  )
  return JSON.parse(stdout.trim().split('\n').pop()!) as BurstResult
}

/** The burst table: what callers saw (admitted, denied, 503) against what Redis charged. */
async function burstTable(prefix: string): Promise<{ title: string; columns: string[]; rows: string[][] }> {
  const names = {
    fixed: 'RedisQuotaManager (fixed)',
    sliding: 'RedisQuotaManager (sliding)',
    rate: 'RedisRateLimiter',
  }
  const rows: string[][] = []
  for (const shape of BURSTS) {
    for (const store of BURST_STORES) {
      const r = await burstRun(store, shape, `${prefix}${store}:`)
      rows.push([
        `${names[store]}, ${shape.mode}: ${shape.burst} at limit ${shape.limit}`,
        String(r.admitted),
        String(r.denied),
        String(r.failed),
        String(r.charged),
        r.charged === r.admitted ? 'yes' : `NO (${r.charged - r.admitted} charged for nothing)`,
        `${r.ms.toFixed(0)} ms`,
      ])
    }
  }
  return {
    title: 'Redis bursts (default options, fresh process)',
    columns: ['burst', 'admitted', 'denied', 'failed (503)', 'charged', 'charged == admitted', 'burst took'],
    rows,
  }
}

async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0'
  do {
    const [nextCursor, keys] = await redis.scan(cursor, 'MATCH', `*${prefix}*`, 'COUNT', 1000)
    cursor = nextCursor
    if (keys.length > 0) await redis.del(...keys)
  } while (cursor !== '0')
}

/** Runs the Redis section into `report`; records it as unavailable when Redis does not answer. */
export async function runRedis(report: Report): Promise<void> {
  const section = report.section(
    'Redis',
    `Each contender on its own ioredis connection to ${REDIS_URL.replace(/\/\/[^@]*@/, '//')}; ${TENANTS} tenants round robin; every decision admitted (limit never reached); each contender warmed up at each concurrency, then ${REDIS_ROUNDS} interleaved round(s) of ${REDIS_SECONDS} s, best round kept. Latency is per decision as the caller sees it (includes the client library). Round trips: commands the client sent per decision (ioredis sendCommand) and commands the server received from that connection per decision (MONITOR), over ${COUNTED} sequential decisions after warm-up. Bursts: a fresh child process per row creates a plain \`new Redis(url)\` client and one store with its default options, fires the burst at one tenant at once (cold: before the client has connected; warm: after connecting and ${BURST_WARMUP} warm-up decisions on another tenant), waits for every reply, then reads what Redis charged the tenant.`,
  )
  const prefix = `bench:${process.pid}:${Date.now()}:`
  const admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1, lazyConnect: true })
  try {
    await admin.connect()
    await admin.ping()
  } catch (error) {
    section.notes.push(`Redis at ${REDIS_URL} did not answer (${String(error)}); section not measured.`)
    report.target({
      name: 'Redis quota check',
      goal: 'exactly one round trip per decision, and more throughput than RateLimiterRedis',
      measured: 'Redis unavailable',
      holds: undefined,
    })
    admin.disconnect()
    return
  }
  const version = /redis_version:(\S+)/.exec(await admin.info('server'))?.[1] ?? 'unknown'
  report.environment.push(['Redis', `${version} on ${REDIS_URL.replace(/\/\/[^@]*@/, '//')}`])
  const clients: CountedClient[] = []
  try {
    // Same decisions: 150 attempts of one tenant against a limit of 100.
    const outcomes: Record<string, number> = {}
    for (const factory of factories) {
      const client = await countedClient()
      clients.push(client)
      const decide = await factory.create(client, CHECK_LIMIT, `${prefix}check:`)
      outcomes[factory.name] = await countAdmitted(CHECK_ATTEMPTS, () => decide('check'))
    }
    sameDecisions(`Redis, limit ${CHECK_LIMIT}/minute, ${CHECK_ATTEMPTS} attempts`, outcomes, CHECK_LIMIT)

    const peers: Peer[] = []
    for (const factory of factories) {
      const client = await countedClient()
      clients.push(client)
      peers.push({ name: factory.name, client, decide: await factory.create(client, UNREACHABLE, prefix) })
    }
    const trips = new Map<string, { client: number; server: number }>()
    for (const peer of peers) trips.set(peer.name, await roundTrips(peer))

    // Warm every contender at each concurrency, then interleaved rounds; the best round is kept
    // (other processes on the machine only ever take throughput away).
    const results = new Map<string, LoadResult>()
    for (const concurrency of CONCURRENCY) {
      for (const peer of peers) await load(peer.decide, concurrency, REDIS_SECONDS / 2)
      for (let round = 0; round < REDIS_ROUNDS; round++) {
        for (const peer of peers) {
          const key = `${peer.name}@${concurrency}`
          const result = await load(peer.decide, concurrency, REDIS_SECONDS)
          const previous = results.get(key)
          if (!previous || result.decisionsPerSec > previous.decisionsPerSec) results.set(key, result)
        }
      }
    }

    const rlf = 'rate-limiter-flexible RateLimiterRedis'
    for (const concurrency of CONCURRENCY) {
      const base = results.get(`${rlf}@${concurrency}`)!
      const rows = peers.map((peer) => {
        const r = results.get(`${peer.name}@${concurrency}`)!
        const t = trips.get(peer.name)!
        return [
          peer.name,
          formatRate(r.decisionsPerSec),
          `${r.p50Ms.toFixed(2)} ms`,
          `${r.p99Ms.toFixed(2)} ms`,
          `${t.client.toFixed(2)} / ${t.server.toFixed(2)}`,
          formatRatio(r.decisionsPerSec / base.decisionsPerSec),
        ]
      })
      const table = {
        title: `Redis decisions at concurrency ${concurrency}`,
        columns: ['contender', 'decisions/s', 'p50', 'p99', 'round trips (client / server)', `vs ${rlf}`],
        rows,
      }
      section.tables.push(table)
      console.log(`\n${table.title}`)
      for (const row of rows) console.log(`  ${row.join('  ')}`)
    }

    // Each burst runs in a process of its own, started after the load runs.
    const bursts = await burstTable(prefix)
    section.tables.push(bursts)
    console.log(`\n${bursts.title}`)
    for (const row of bursts.rows) console.log(`  ${row.join('  ')}`)

    const ours = 'RedisQuotaManager (fixed minute)'
    const ourTrips = trips.get(ours)!
    const ratios = CONCURRENCY.map(
      (c) => results.get(`${ours}@${c}`)!.decisionsPerSec / results.get(`${rlf}@${c}`)!.decisionsPerSec,
    )
    report.target({
      name: 'Redis quota check',
      goal: 'exactly one round trip per decision, and more throughput than RateLimiterRedis',
      measured: `${ourTrips.client.toFixed(2)} round trips (client) / ${ourTrips.server.toFixed(2)} (server); throughput ${CONCURRENCY.map((c, i) => `${formatRatio(ratios[i]!)} at concurrency ${c}`).join(', ')}`,
      holds: ourTrips.client === 1 && ourTrips.server === 1 && ratios.every((r) => r > 1),
      limitedBy: LIMITS.redis,
    })
  } finally {
    await deleteKeys(admin, prefix).catch(() => undefined)
    for (const c of clients) c.redis.disconnect()
    admin.disconnect()
  }
}
