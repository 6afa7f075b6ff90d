// HTTP: autocannon (in this process) against each app variant served by @hono/node-server in a
// child process on loopback, for a fixed duration, connections spread over several tenants.
import { type ChildProcess, fork } from 'node:child_process'
import autocannon from 'autocannon'
import { Redis } from 'ioredis'
import { countAdmitted, sameDecisions } from './lib/check'
import { HTTP_SECONDS, HTTP_WARMUP_SECONDS, QUICK, REDIS_URL } from './lib/env'
import { loadExampleApp } from './lib/example-app'
import {
  buildApp,
  HTTP_PATH,
  HTTP_TENANTS,
  type HttpVariant,
  httpVariants,
  variantTitles,
} from './lib/http-apps'
import { LIMITS } from './lib/limits'
import type { Report } from './lib/report'
import { formatRate, formatRatio } from './lib/timing'

const CONNECTIONS = 16
const CHECK_LIMIT = 100
const CHECK_ATTEMPTS = 150
const ROUNDS = QUICK ? 1 : 2

interface Served {
  child: ChildProcess
  port: number
}

async function serveVariant(variant: HttpVariant, prefix: string): Promise<Served> {
  const child = fork(new URL('./http-server.ts', import.meta.url).pathname, [variant, prefix], {
    execArgv: process.execArgv.filter((a) => !a.startsWith('--cpu-prof')),
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m) => resolve((m as { port: number }).port))
    child.once('exit', (code) => reject(new Error(`the ${variant} server exited (${code}) before listening`)))
  })
  return { child, port }
}

async function stop(served: Served): Promise<void> {
  const exited = new Promise((resolve) => served.child.once('exit', resolve))
  served.child.send('close')
  await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))])
  if (served.child.exitCode === null) served.child.kill()
}

interface LoadResult {
  requestsPerSec: number
  p50Ms: number
  p99Ms: number
  non2xx: number
  errors: number
}

async function hammer(
  port: number,
  path: string,
  seconds: number,
  tenants: readonly string[],
): Promise<LoadResult> {
  let next = 0
  const result = await autocannon({
    url: `http://127.0.0.1:${port}${path}`,
    connections: CONNECTIONS,
    duration: seconds,
    setupClient: (client) => {
      client.setHeaders({ 'x-tenant-id': tenants[next++ % tenants.length]! })
    },
  })
  return {
    requestsPerSec: result.requests.total / result.duration,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors,
  }
}

async function redisAnswers(): Promise<boolean> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 2_000 })
  try {
    await redis.connect()
    await redis.ping()
    return true
  } catch {
    return false
  } finally {
    redis.disconnect()
  }
}

/** Same decisions over HTTP: one tenant, limit 100 per minute, 150 requests. */
async function checkDecisions(prefix: string, withRedis: boolean): Promise<void> {
  const outcomes: Record<string, number> = {}
  const checked = [
    'chain-memory',
    'hono-rate-limiter',
    ...(withRedis ? (['chain-redis'] as const) : []),
  ] as const
  for (const variant of checked) {
    const app = await buildApp(variant, { limit: CHECK_LIMIT, tenants: ['check'], prefix: `${prefix}check:` })
    try {
      outcomes[variantTitles[variant]] = await countAdmitted(CHECK_ATTEMPTS, async () => {
        const response = await app.fetch(
          new Request(`http://localhost${HTTP_PATH}`, { headers: { 'x-tenant-id': 'check' } }),
        )
        if (response.status !== 200 && response.status !== 429) {
          throw new Error(`${variant}: unexpected status ${response.status}: ${await response.text()}`)
        }
        return response.status === 200
      })
    } finally {
      await app.close()
    }
  }
  sameDecisions(
    `HTTP, limit ${CHECK_LIMIT}/minute, ${CHECK_ATTEMPTS} requests (200 vs 429)`,
    outcomes,
    CHECK_LIMIT,
  )
}

/** Runs the HTTP section into `report`. */
export async function runHttp(report: Report): Promise<void> {
  const section = report.section(
    'HTTP',
    `autocannon in the benchmark process against @hono/node-server in a child process, both on loopback; ${CONNECTIONS} connections, spread over ${HTTP_TENANTS.length} tenants (X-Tenant-ID), ${HTTP_SECONDS} s per run after a ${HTTP_WARMUP_SECONDS} s warm-up, ${ROUNDS} round(s), best round kept. Every response must be a 2xx (limits are never reached). Same handler everywhere: \`c.json({ ok: true })\`. The full chain is resolve (existence check in InMemoryConfigManager) -> policy (ConfigPolicyEvaluator) -> rate limit (token bucket) -> quota (fixed minute window).`,
  )
  const prefix = `bench:http:${process.pid}:${Date.now()}:`
  const withRedis = await redisAnswers()
  if (!withRedis)
    section.notes.push(`Redis at ${REDIS_URL} did not answer: the Redis chain was not measured.`)
  await checkDecisions(prefix, withRedis)

  const example = await loadExampleApp()
  if (!example.ok) section.notes.push(`Example app not measured: ${example.reason}`)
  else await example.app.close()
  const variants = httpVariants.filter(
    (v) => (v !== 'example-app' || example.ok) && (v !== 'chain-redis' || withRedis),
  )

  const best = new Map<HttpVariant, LoadResult>()
  for (let round = 0; round < ROUNDS; round++) {
    for (const variant of variants) {
      const served = await serveVariant(variant, `${prefix}${variant}:${round}:`)
      try {
        const path = variant === 'example-app' && example.ok ? example.path : HTTP_PATH
        const tenants = variant === 'example-app' && example.ok ? example.tenants : HTTP_TENANTS
        await hammer(served.port, path, HTTP_WARMUP_SECONDS, tenants)
        const result = await hammer(served.port, path, HTTP_SECONDS, tenants)
        if (result.non2xx > 0 || result.errors > 0) {
          throw new Error(
            `${variant}: ${result.non2xx} non-2xx responses and ${result.errors} errors under load; the run must only admit`,
          )
        }
        const previous = best.get(variant)
        if (!previous || result.requestsPerSec > previous.requestsPerSec) best.set(variant, result)
        console.log(`  ${variantTitles[variant].padEnd(56)} ${formatRate(result.requestsPerSec)} req/s`)
      } finally {
        await stop(served)
      }
    }
  }

  const bare = best.get('bare')!
  const rows = variants.map((variant) => {
    const r = best.get(variant)!
    return [
      variantTitles[variant],
      formatRate(r.requestsPerSec),
      `${r.p50Ms.toFixed(1)} ms`,
      `${r.p99Ms.toFixed(1)} ms`,
      variant === 'bare' ? '1.00' : `${(r.requestsPerSec / bare.requestsPerSec).toFixed(2)}`,
    ]
  })
  section.tables.push({
    title: 'HTTP throughput and latency',
    columns: ['app', 'req/s', 'p50', 'p99', 'req/s vs bare Hono'],
    rows,
  })
  const chain = best.get('chain-memory')!
  const ratio = chain.requestsPerSec / bare.requestsPerSec
  report.target({
    name: 'Full in-memory tenancy chain over HTTP',
    goal: "keeps >= 90% of bare Hono's req/s",
    measured: `${(ratio * 100).toFixed(0)}% (${formatRate(chain.requestsPerSec)} vs ${formatRate(bare.requestsPerSec)} req/s; overhead ${formatRatio(bare.requestsPerSec / chain.requestsPerSec)} the time per request)`,
    holds: ratio >= 0.9,
    limitedBy: LIMITS.chain,
  })
}
