// Micro benchmarks (mitata): the in-process hot paths, each group timed against its peers in the
// same run, and each preceded by a check that the compared variants decide alike.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { PGlite } from '@electric-sql/pglite'
import { createClient } from '@libsql/client'
import {
  ConfigPolicyEvaluator,
  consumeNow,
  deepFreeze,
  effectiveTenantConfig,
  evaluateNow,
  InMemoryConfigManager,
  InMemoryPlanStore,
  InMemoryQuotaManager,
  isTenantError,
  ManualClock,
  type PlanConfig,
  type PolicyConfig,
  type PolicyRequest,
  type QuotaConfig,
  SlidingWindowQuotaManager,
  type TenantConfig,
  type TenantConfigInput,
  TokenBucketRateLimiter,
  tenantConfigNow,
  withPlans,
} from '@tenant/core'
import {
  DrizzleConfigManager,
  DrizzlePlanStore,
  hashString,
  migrate,
  scoped,
  TenantShardRouter,
} from '@tenant/drizzle'
import { and, asc, eq, gt, sql } from 'drizzle-orm'
import { drizzle as drizzleLibsql } from 'drizzle-orm/libsql'
import * as pg from 'drizzle-orm/pg-core'
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite'
import * as sqlite from 'drizzle-orm/sqlite-core'
import { MemoryStore } from 'hono-rate-limiter'
import { LRUCache } from 'lru-cache'
import { RateLimiterMemory, RateLimiterUnion } from 'rate-limiter-flexible'
import { countAdmitted, sameDecisions } from './lib/check'
import { LIMITS } from './lib/limits'
import type { Report, Section } from './lib/report'
import { formatNs, formatRate, formatRatio, type Timing, timeVariants } from './lib/timing'

/** Tenants the round-robin variants cycle through. */
const TENANTS = 1000
/** A limit no benchmark reaches: the timed paths are all admissions. */
const UNREACHABLE = 1e12
/** The limit of the same-decision checks, and how many attempts they make. */
const CHECK_LIMIT = 100
const CHECK_ATTEMPTS = 150
/** A fixed instant for stores that stamp times, so configs read back equal across stores. */
const EPOCH = Date.UTC(2026, 0, 15, 12, 0, 30)
/** The cost of a request that names none: what the chain's quota stage charges without tokens. */
const ONE_REQUEST = Object.freeze({ requests: 1, tokens: 0 })

const ids = Array.from({ length: TENANTS }, (_, i) => `tenant-${String(i).padStart(4, '0')}`)

/** A function returning the next tenant id of the round robin on every call. */
function roundRobin(list: readonly string[] = ids): () => string {
  let i = 0
  return () => list[i++ % list.length]!
}

/** rate-limiter-flexible answers a refusal by rejecting with a RateLimiterRes; an Error is a bug. */
function rlfAdmitted(promise: Promise<unknown>): Promise<boolean> {
  return promise.then(
    () => true,
    (rejection: unknown) => {
      if (rejection instanceof Error) throw rejection
      return false
    },
  )
}

function honoStore(windowMs: number): MemoryStore {
  const store = new MemoryStore()
  store.init({ windowMs } as Parameters<MemoryStore['init']>[0])
  return store
}

async function configsWith(
  quota: QuotaConfig,
  extra: Partial<TenantConfigInput> = {},
  list: readonly string[] = ids,
): Promise<InMemoryConfigManager> {
  const configs = new InMemoryConfigManager()
  for (const id of list) await configs.setTenantConfig({ id, quota, ...extra })
  return configs
}

function ratioRows(timings: Timing[], baseline: string | undefined): string[][] {
  const base = timings.find((t) => t.name === baseline)
  return timings.map((t) => [
    t.name,
    formatRate(t.opsPerSec),
    formatNs(t.ns),
    formatNs(t.avgNs),
    base ? formatRatio(t.opsPerSec / base.opsPerSec) : '',
  ])
}

function addTimings(section: Section, title: string, timings: Timing[], baseline?: string, note?: string) {
  section.tables.push({
    title,
    columns: ['variant', 'ops/s', 'median', 'mean', baseline ? `throughput vs ${baseline}` : ''],
    rows: ratioRows(timings, baseline),
    ...(note ? { note } : {}),
  })
  console.log(`\n${title}`)
  for (const t of timings) console.log(`  ${t.name.padEnd(58)} ${formatRate(t.opsPerSec).padStart(8)} ops/s`)
}

function byName(timings: Timing[], name: string): Timing {
  const timing = timings.find((t) => t.name === name)
  if (!timing) throw new Error(`no timing named ${name}`)
  return timing
}

// --- quotas -------------------------------------------------------------------------------------

async function quotaSingleWindow(report: Report, section: Section): Promise<void> {
  // Same decisions: limit 100 per minute, 150 attempts by one tenant at one instant.
  {
    const clock = new ManualClock(EPOCH)
    const limit: QuotaConfig = deepFreeze({ limits: [{ window: 'minute', requests: CHECK_LIMIT }] })
    const ours = new InMemoryQuotaManager(await configsWith(limit, {}, ['check']), { clock })
    const oursStatic = new InMemoryQuotaManager({ quotaConfig: async () => limit }, { clock })
    const rlf = new RateLimiterMemory({ points: CHECK_LIMIT, duration: 60 })
    const hono = honoStore(60_000)
    sameDecisions(
      `fixed window, limit ${CHECK_LIMIT}/minute, ${CHECK_ATTEMPTS} attempts`,
      {
        InMemoryQuotaManager: await countAdmitted(
          CHECK_ATTEMPTS,
          async () => (await ours.consume('check')).allowed,
        ),
        'InMemoryQuotaManager (static provider)': await countAdmitted(
          CHECK_ATTEMPTS,
          async () => (await oursStatic.consume('check')).allowed,
        ),
        RateLimiterMemory: await countAdmitted(CHECK_ATTEMPTS, () => rlfAdmitted(rlf.consume('check', 1))),
        'hono-rate-limiter MemoryStore': await countAdmitted(
          CHECK_ATTEMPTS,
          () => hono.increment('check').totalHits <= CHECK_LIMIT,
        ),
      },
      CHECK_LIMIT,
    )
    hono.shutdown()
  }

  // Deeply frozen, as the config managers hand out their configs.
  const single: QuotaConfig = deepFreeze({ limits: [{ window: 'minute', requests: UNREACHABLE }] })
  const configs = await configsWith(single)
  const ours = new InMemoryQuotaManager(configs)
  const oursStatic = new InMemoryQuotaManager({ quotaConfig: async () => single })
  const rlf = new RateLimiterMemory({ points: UNREACHABLE, duration: 60 })
  const hono = honoStore(60_000)
  const [a, b, c, d, e] = [roundRobin(), roundRobin(), roundRobin(), roundRobin(), roundRobin()]
  const timings = await timeVariants([
    { name: 'InMemoryQuotaManager (configs from InMemoryConfigManager)', fn: () => ours.consume(a()) },
    { name: 'InMemoryQuotaManager (static provider)', fn: () => oursStatic.consume(b()) },
    {
      name: 'InMemoryQuotaManager fast path, config handed over (what tenancy() calls)',
      fn: () => {
        const id = e()
        return ours[consumeNow](id, ONE_REQUEST, configs[tenantConfigNow](id).quota)
      },
    },
    { name: 'rate-limiter-flexible RateLimiterMemory', fn: () => rlf.consume(c(), 1) },
    {
      name: 'hono-rate-limiter MemoryStore',
      fn: async () => (await hono.increment(d())).totalHits <= UNREACHABLE,
    },
  ])
  hono.shutdown()
  addTimings(
    section,
    `Quota consume, one fixed window (minute), ${TENANTS} tenants round robin`,
    timings,
    'rate-limiter-flexible RateLimiterMemory',
    'Every call is admitted (the limit is never reached). The first two rows call the public `consume()`, which returns a promise as RateLimiterMemory does. "static provider": one deeply frozen QuotaConfig object (as the config managers hand out) returned for every tenant, which isolates the engine from the config lookup. The fast-path row is the synchronous decision the tenancy chain calls, with the config of each tenant read as the resolver reads it (see `consumeNow` in the core README).',
  )
  const vsPeer = (name: string) =>
    byName(timings, name).opsPerSec / byName(timings, 'rate-limiter-flexible RateLimiterMemory').opsPerSec
  const ratio = vsPeer('InMemoryQuotaManager (configs from InMemoryConfigManager)')
  report.target({
    name: 'In-memory quota consume vs rate-limiter-flexible',
    goal: '>= 1.0x the throughput of RateLimiterMemory',
    measured: `${formatRatio(ratio)} with the public consume() and configs from InMemoryConfigManager (static provider: ${formatRatio(vsPeer('InMemoryQuotaManager (static provider)'))}; the chain's fast path: ${formatRatio(vsPeer('InMemoryQuotaManager fast path, config handed over (what tenancy() calls)'))})`,
    holds: ratio >= 1,
    limitedBy: LIMITS.consume({
      publicNs: byName(timings, 'InMemoryQuotaManager (configs from InMemoryConfigManager)').ns,
      fastNs: byName(timings, 'InMemoryQuotaManager fast path, config handed over (what tenancy() calls)').ns,
      peerNs: byName(timings, 'rate-limiter-flexible RateLimiterMemory').ns,
    }),
  })
}

/** Decisions the cold start of `quotaColdStart` keeps: with the decisions built by object
 * literals, 20,000 to 100,000 left consume at about 0.3M calls per second instead of 2.4M. */
const COLD_START_KEPT = 20_000
const COLD_START_PROCESSES = 5

/**
 * Consume in fresh processes (cold-start-child.ts), after a plain start and after a cold start that
 * kept its first decisions alive across a young collection: the second must not be slower.
 */
async function quotaColdStart(section: Section): Promise<void> {
  const execArgv = process.execArgv.filter((a) => !a.startsWith('--cpu-prof'))
  const best = async (start: 'plain' | 'kept') => {
    let ops = 0
    for (let i = 0; i < COLD_START_PROCESSES; i++) {
      const { stdout } = await promisify(execFile)(process.execPath, [
        ...execArgv,
        '--expose-gc',
        new URL('./cold-start-child.ts', import.meta.url).pathname,
        start,
        String(COLD_START_KEPT),
      ])
      ops = Math.max(ops, (JSON.parse(stdout.trim().split('\n').pop()!) as { opsPerSec: number }).opsPerSec)
    }
    return ops
  }
  const plain = await best('plain')
  const kept = await best('kept')
  const title = 'Quota consume after a cold start (fresh processes)'
  section.tables.push({
    title,
    columns: ['start', 'ops/s', 'vs a plain start'],
    rows: [
      ['plain: a short warm-up, then the measured rounds', formatRate(plain), formatRatio(1)],
      [
        `cold start that kept its first ${COLD_START_KEPT.toLocaleString('en-US')} decisions across a young collection`,
        formatRate(kept),
        formatRatio(kept / plain),
      ],
    ],
    note: `InMemoryQuotaManager.consume() (the public promise API, configs from InMemoryConfigManager, one minute window, 1000 tenants), best of 6 rounds of 200,000 calls in each process and best of ${COLD_START_PROCESSES} processes per start (a fresh Node process runs this loop at one of two speeds, about 1.4M or 2.6M calls per second, whichever way it starts, the kept start included, so each start keeps its best of several processes). A server's first burst of concurrent requests keeps its decisions alive like this; V8 then decides, for good, to allocate the objects of a site that most survived straight in the old generation. When the decisions were object literals, the kept start left consume at about 0.3M calls per second for the life of the process (measured by building the earlier code); they are now built by plain-object constructors, which V8 does not track that way.`,
  })
  console.log(`\n${title}\n  plain ${formatRate(plain)} ops/s, kept ${formatRate(kept)} ops/s`)
}

async function quotaFourWindows(section: Section): Promise<void> {
  // rate-limiter-flexible's memory limiter expires keys with setTimeout, which cannot wait longer than
  // 2^31 - 1 ms (24.8 days): a 30-day duration fires after 1 ms and forgets the count. Its month
  // limiter therefore uses 24 days.
  const durations = { minute: 60, hour: 3600, day: 86_400, month: 24 * 86_400 } as const
  const windows = Object.keys(durations) as (keyof typeof durations)[]
  // Same decisions: the minute limit of 100 binds; the longer windows have room.
  {
    const clock = new ManualClock(EPOCH)
    const points = [CHECK_LIMIT, 1_000, 10_000, 100_000]
    const quota: QuotaConfig = { limits: windows.map((window, i) => ({ window, requests: points[i]! })) }
    const ours = new InMemoryQuotaManager(await configsWith(quota, {}, ['check']), { clock })
    const union = new RateLimiterUnion(
      ...windows.map(
        (w, i) =>
          new RateLimiterMemory({ keyPrefix: `check-${w}`, points: points[i]!, duration: durations[w] }),
      ),
    )
    const stores = windows.map((w) => honoStore(durations[w] * 1000))
    sameDecisions(
      `four windows (minute ${CHECK_LIMIT}, hour 1000, day 10000, month 100000), ${CHECK_ATTEMPTS} attempts`,
      {
        InMemoryQuotaManager: await countAdmitted(
          CHECK_ATTEMPTS,
          async () => (await ours.consume('check')).allowed,
        ),
        'rate-limiter-flexible RateLimiterUnion x4': await countAdmitted(CHECK_ATTEMPTS, () =>
          rlfAdmitted(union.consume('check', 1)),
        ),
        'hono-rate-limiter MemoryStore x4': await countAdmitted(CHECK_ATTEMPTS, () =>
          stores.map((s) => s.increment('check').totalHits).every((hits, i) => hits <= points[i]!),
        ),
      },
      CHECK_LIMIT,
    )
    for (const s of stores) s.shutdown()
  }

  const quota: QuotaConfig = { limits: windows.map((window) => ({ window, requests: UNREACHABLE })) }
  const ours = new InMemoryQuotaManager(await configsWith(quota))
  const union = new RateLimiterUnion(
    ...windows.map(
      (w) => new RateLimiterMemory({ keyPrefix: `bench-${w}`, points: UNREACHABLE, duration: durations[w] }),
    ),
  )
  const stores = windows.map((w) => honoStore(durations[w] * 1000))
  const [a, b, c] = [roundRobin(), roundRobin(), roundRobin()]
  const timings = await timeVariants([
    { name: 'InMemoryQuotaManager, 4 windows', fn: () => ours.consume(a()) },
    {
      name: 'rate-limiter-flexible RateLimiterUnion of 4 RateLimiterMemory',
      fn: () => union.consume(b(), 1),
    },
    {
      name: 'hono-rate-limiter 4 MemoryStores',
      fn: async () => {
        const key = c()
        let ok = true
        for (const s of stores) ok = (await s.increment(key)).totalHits <= UNREACHABLE && ok
        return ok
      },
    },
  ])
  for (const s of stores) s.shutdown()
  addTimings(
    section,
    'Quota consume, four fixed windows (minute, hour, day, month)',
    timings,
    'rate-limiter-flexible RateLimiterUnion of 4 RateLimiterMemory',
    'The peers have no multi-window limiter of their own: RateLimiterUnion consumes from four limiters (and, unlike the quota manager, charges the others when one refuses); the hono-rate-limiter row increments four stores, as four stacked middlewares would. Their "month" is 24 days: both expire keys with timers, which cannot wait 30 days.',
  )
}

async function quotaSliding(section: Section): Promise<void> {
  {
    const clock = new ManualClock(EPOCH)
    const quota: QuotaConfig = { limits: [{ window: 'minute', requests: CHECK_LIMIT }] }
    const configs = await configsWith(quota, {}, ['check'])
    const fixed = new InMemoryQuotaManager(configs, { clock })
    const sliding = new SlidingWindowQuotaManager(configs, { clock })
    sameDecisions(
      `sliding vs fixed window, limit ${CHECK_LIMIT}/minute, ${CHECK_ATTEMPTS} attempts at one instant`,
      {
        InMemoryQuotaManager: await countAdmitted(
          CHECK_ATTEMPTS,
          async () => (await fixed.consume('check')).allowed,
        ),
        SlidingWindowQuotaManager: await countAdmitted(
          CHECK_ATTEMPTS,
          async () => (await sliding.consume('check')).allowed,
        ),
      },
      CHECK_LIMIT,
    )
  }
  const quota: QuotaConfig = { limits: [{ window: 'minute', requests: UNREACHABLE }] }
  const configs = await configsWith(quota)
  const fixed = new InMemoryQuotaManager(configs)
  const sliding = new SlidingWindowQuotaManager(configs)
  const [a, b] = [roundRobin(), roundRobin()]
  const timings = await timeVariants([
    { name: 'InMemoryQuotaManager (fixed minute)', fn: () => fixed.consume(a()) },
    { name: 'SlidingWindowQuotaManager (minute, precision 10)', fn: () => sliding.consume(b()) },
  ])
  addTimings(
    section,
    'Sliding window vs fixed window (one minute limit)',
    timings,
    'InMemoryQuotaManager (fixed minute)',
    'Neither peer has an in-memory sliding window; the comparison is with the fixed window of the same manager family.',
  )
}

async function tokenBucket(section: Section): Promise<void> {
  {
    const clock = new ManualClock(EPOCH)
    const configs = await configsWith(
      { limits: [] },
      { rateLimit: { requestsPerSecond: 1, burst: CHECK_LIMIT } },
      ['check'],
    )
    const bucket = new TokenBucketRateLimiter(configs, { clock })
    const rlf = new RateLimiterMemory({ points: CHECK_LIMIT, duration: 60 })
    sameDecisions(
      `token bucket burst ${CHECK_LIMIT} vs a limit of ${CHECK_LIMIT}, ${CHECK_ATTEMPTS} attempts at one instant`,
      {
        TokenBucketRateLimiter: await countAdmitted(
          CHECK_ATTEMPTS,
          async () => (await bucket.consume('check')).allowed,
        ),
        RateLimiterMemory: await countAdmitted(CHECK_ATTEMPTS, () => rlfAdmitted(rlf.consume('check', 1))),
      },
      CHECK_LIMIT,
    )
  }
  const configs = await configsWith(
    { limits: [] },
    { rateLimit: { requestsPerSecond: UNREACHABLE, burst: UNREACHABLE } },
  )
  const bucket = new TokenBucketRateLimiter(configs)
  const rlf = new RateLimiterMemory({ points: UNREACHABLE, duration: 1 })
  const [a, b, c] = [roundRobin(), roundRobin(), roundRobin()]
  const rateLimitOf = (id: string) => configs[tenantConfigNow](id).rateLimit
  const timings = await timeVariants([
    { name: 'TokenBucketRateLimiter', fn: () => bucket.consume(a()) },
    {
      name: 'TokenBucketRateLimiter fast path, config handed over (what tenancy() calls)',
      fn: () => {
        const id = c()
        return bucket[consumeNow](id, undefined, rateLimitOf(id))
      },
    },
    { name: 'rate-limiter-flexible RateLimiterMemory (1 s window)', fn: () => rlf.consume(b(), 1) },
  ])
  addTimings(
    section,
    'Rate limit: token bucket',
    timings,
    'rate-limiter-flexible RateLimiterMemory (1 s window)',
    "rate-limiter-flexible has no token bucket; its per-second fixed window is what it offers for a requests-per-second limit. The fast-path row includes reading the tenant's config (as the resolver does) and hands it over.",
  )
}

// --- policy -------------------------------------------------------------------------------------

const POLICY: PolicyConfig = {
  allowedModels: ['gpt-4o-mini', 'gpt-4o', 'claude-sonnet'],
  allowedTools: [],
  allowedMethods: ['GET', 'POST'],
  allowedPaths: ['/v1/*', '/health'],
}

/** A hand-written evaluation of the same allow-lists: what an app would write without the library. */
function handWrittenPolicy(policy: PolicyConfig) {
  const models = new Set(policy.allowedModels)
  const tools = new Set(policy.allowedTools)
  const methods = new Set(policy.allowedMethods.map((m) => m.toUpperCase()))
  const exact = new Set(policy.allowedPaths.filter((p) => !p.endsWith('*')))
  const prefixes = policy.allowedPaths.filter((p) => p.endsWith('*')).map((p) => p.slice(0, -1))
  return (request: PolicyRequest): boolean =>
    (request.model === undefined || models.size === 0 || models.has(request.model)) &&
    (request.tool === undefined || tools.size === 0 || tools.has(request.tool)) &&
    (request.method === undefined || methods.size === 0 || methods.has(request.method.toUpperCase())) &&
    (request.path === undefined ||
      policy.allowedPaths.length === 0 ||
      exact.has(request.path) ||
      prefixes.some((p) => request.path!.startsWith(p)))
}

async function policyEvaluate(section: Section): Promise<void> {
  const configs = await configsWith({ limits: [] }, { policy: POLICY })
  const evaluator = new ConfigPolicyEvaluator(configs)
  const reference = handWrittenPolicy(POLICY)
  const requests: PolicyRequest[] = [
    { model: 'gpt-4o-mini', method: 'POST', path: '/v1/chat/completions' },
    { model: 'gpt-4o', method: 'get', path: '/v1/models' },
    { model: 'o1', method: 'POST', path: '/v1/chat/completions' },
    { method: 'DELETE', path: '/v1/files/1' },
    { method: 'GET', path: '/health' },
    { method: 'GET', path: '/admin' },
    { tool: 'search', path: '/v1/x' },
    {},
  ]
  const decisions = async (decide: (r: PolicyRequest) => Promise<boolean> | boolean) => {
    const out: boolean[] = []
    for (const r of requests) out.push(await decide(r))
    return out
  }
  sameDecisions(`policy evaluate, ${requests.length} requests`, {
    ConfigPolicyEvaluator: await decisions(async (r) => (await evaluator.evaluate('tenant-0001', r)).allowed),
    'hand-written allow-list check': await decisions(reference),
  })

  const allowed = requests[0]!
  const denied = requests[2]!
  const [a, b, c] = [roundRobin(), roundRobin(), roundRobin()]
  const timings = await timeVariants([
    { name: 'ConfigPolicyEvaluator, allowed request', fn: () => evaluator.evaluate(a(), allowed) },
    { name: 'ConfigPolicyEvaluator, denied request', fn: () => evaluator.evaluate(b(), denied) },
    {
      name: 'ConfigPolicyEvaluator fast path, allowed, config handed over (what tenancy() calls)',
      fn: () => {
        const id = c()
        return evaluator[evaluateNow](id, allowed, configs[tenantConfigNow](id).policy)
      },
    },
    { name: 'hand-written allow-list check (sync, no config lookup)', fn: () => reference(allowed) },
  ])
  addTimings(
    section,
    'Policy evaluate (model, method, path), configs from InMemoryConfigManager',
    timings,
    'hand-written allow-list check (sync, no config lookup)',
    'The public evaluate() reads the tenant policy from its provider on every call (the shared, frozen policy of InMemoryConfigManager) and answers through a promise; the fast-path row reads the config as the resolver does and decides synchronously. The hand-written check closes over prebuilt Sets of one fixed policy.',
  )
}

// --- config lookups -----------------------------------------------------------------------------

const NOTES_SQLITE = sqlite.sqliteTable('bench_notes', {
  id: sqlite.text('id').primaryKey(),
  tenantId: sqlite.text('tenant_id').notNull(),
  title: sqlite.text('title').notNull(),
  score: sqlite.integer('score').notNull(),
})
const NOTES_PG = pg.pgTable('bench_notes', {
  id: pg.text('id').primaryKey(),
  tenantId: pg.text('tenant_id').notNull(),
  title: pg.text('title').notNull(),
  score: pg.integer('score').notNull(),
})

interface Databases {
  libsql: ReturnType<typeof drizzleLibsql>
  pglite: ReturnType<typeof drizzlePglite>
  close(): Promise<void>
}

async function openDatabases(): Promise<Databases> {
  const client = createClient({ url: ':memory:' })
  const pglite = new PGlite()
  const dbs = {
    libsql: drizzleLibsql(client),
    pglite: drizzlePglite(pglite),
    async close() {
      client.close()
      await pglite.close()
    },
  }
  await migrate(dbs.libsql)
  await migrate(dbs.pglite)
  return dbs
}

function tenantInput(id: string, i: number): TenantConfigInput {
  return {
    id,
    quota: {
      limits: [
        { window: 'minute', requests: 600, tokens: 100_000 },
        { window: 'month', tokens: 5e7 },
      ],
    },
    rateLimit: { requestsPerSecond: 10, burst: 20 },
    policy: POLICY,
    metadata: { plan: i % 3 === 0 ? 'pro' : 'free', region: 'eu' },
  }
}

async function caught(promise: Promise<unknown>): Promise<string> {
  try {
    await promise
    return 'resolved'
  } catch (error) {
    return isTenantError(error) ? error.code : String(error)
  }
}

async function configLookup(report: Report, section: Section, dbs: Databases): Promise<void> {
  const LOOKUP_TENANTS = 200
  const list = ids.slice(0, LOOKUP_TENANTS)
  const unknown = list.map((id) => `${id}-unknown`)
  const clock = new ManualClock(EPOCH)
  // Long TTLs so that no entry expires while the benchmark runs: the timed rows are pure hits.
  const cache = { ttl: 3_600_000, negativeTtl: 3_600_000 }
  const cached = new DrizzleConfigManager(dbs.libsql, { cache, clock })
  // The same cache on the system clock (the default): a hit then reads Date.now() to check freshness.
  const cachedSystem = new DrizzleConfigManager(dbs.libsql, { cache })
  const uncachedLibsql = new DrizzleConfigManager(dbs.libsql, { cache: false, clock })
  const uncachedPglite = new DrizzleConfigManager(dbs.pglite, { cache: false, clock })
  const memory = new InMemoryConfigManager({ clock })
  for (const [i, id] of list.entries()) {
    await cached.setTenantConfig(tenantInput(id, i))
    await uncachedPglite.setTenantConfig(tenantInput(id, i))
    await memory.setTenantConfig(tenantInput(id, i))
  }
  const lru = new LRUCache<string, TenantConfig>({ max: 10_000 })
  // The same get with an expiry, as a config cache needs: by default lru-cache reads the clock at
  // most once per millisecond (a timer clears its cached reading; core may keep no timer), and with
  // ttlResolution 0 on every get, as our cache does.
  const lruTtl = new LRUCache<string, TenantConfig>({ max: 10_000, ttl: cache.ttl })
  const lruTtlEveryGet = new LRUCache<string, TenantConfig>({ max: 10_000, ttl: cache.ttl, ttlResolution: 0 })
  for (const id of list) {
    const config = await memory.getTenantConfig(id)
    lru.set(id, config)
    lruTtl.set(id, config)
    lruTtlEveryGet.set(id, config)
  }
  for (const id of list) await cached.getTenantConfig(id)
  for (const id of list) await cachedSystem.getTenantConfig(id)
  for (const id of unknown) await caught(cached.getTenantConfig(id))

  const sample = list.filter((_, i) => i % 10 === 0)
  const configsOf = async (get: (id: string) => Promise<TenantConfig> | TenantConfig | undefined) => {
    const out: unknown[] = []
    for (const id of sample) out.push(await get(id))
    return out
  }
  sameDecisions(`config lookup, ${sample.length} tenants: same TenantConfig from every store`, {
    'DrizzleConfigManager cached (libSQL)': await configsOf((id) => cached.getTenantConfig(id)),
    'DrizzleConfigManager cached, fast read': await configsOf((id) => cachedSystem[tenantConfigNow](id)),
    'DrizzleConfigManager uncached (libSQL)': await configsOf((id) => uncachedLibsql.getTenantConfig(id)),
    'DrizzleConfigManager uncached (PGlite)': await configsOf((id) => uncachedPglite.getTenantConfig(id)),
    InMemoryConfigManager: await configsOf((id) => memory.getTenantConfig(id)),
    'lru-cache': await configsOf((id) => lru.get(id)),
    'lru-cache with ttl': await configsOf((id) => lruTtl.get(id)),
    'lru-cache with ttl, ttlResolution 0': await configsOf((id) => lruTtlEveryGet.get(id)),
  })
  sameDecisions(
    'config lookup of an unknown tenant',
    {
      'DrizzleConfigManager negative cache': await caught(cached.getTenantConfig(unknown[0]!)),
      'DrizzleConfigManager uncached (libSQL)': await caught(uncachedLibsql.getTenantConfig(unknown[0]!)),
      'DrizzleConfigManager uncached (PGlite)': await caught(uncachedPglite.getTenantConfig(unknown[0]!)),
    },
    'tenant_not_found',
  )

  const loadsBefore = cached.cacheStats!.loads + cachedSystem.cacheStats!.loads
  const a = roundRobin(list)
  const i = roundRobin(list)
  const j = roundRobin(list)
  const b = roundRobin(list)
  const c = roundRobin(list)
  const d = roundRobin(list)
  const e = roundRobin(list)
  const f = roundRobin(list)
  const g = roundRobin(list)
  const h = roundRobin(list)
  const nextUnknown = roundRobin(unknown)
  const k = roundRobin(list)
  const l = roundRobin(list)
  const timings = await timeVariants([
    { name: 'lru-cache get (raw, sync)', fn: () => lru.get(a()) },
    { name: 'lru-cache get with ttl (clock read at most once per ms)', fn: () => lruTtl.get(k()) },
    {
      name: 'lru-cache get with ttl, ttlResolution 0 (clock read per get)',
      fn: () => lruTtlEveryGet.get(l()),
    },
    { name: 'Date.now() (the system clock a freshness check reads)', fn: () => Date.now() },
    {
      name: 'DrizzleConfigManager cached hit, fast read (what tenancy() calls)',
      fn: () => cachedSystem[tenantConfigNow](i()),
    },
    {
      name: 'DrizzleConfigManager cached hit, fast read, ManualClock (a field read for the clock)',
      fn: () => cached[tenantConfigNow](j()),
    },
    { name: 'lru-cache get in an async function', fn: async () => lru.get(b()) },
    {
      name: 'DrizzleConfigManager cached hit, getTenantConfig() (a promise)',
      fn: () => cached.getTenantConfig(c()),
    },
    { name: 'DrizzleConfigManager cached hit, quotaConfig()', fn: () => cached.quotaConfig(d()) },
    {
      name: 'DrizzleConfigManager negative-cache hit (unknown id)',
      fn: () => cached.getTenantConfig(nextUnknown()).catch(() => undefined),
    },
    { name: 'InMemoryConfigManager getTenantConfig', fn: () => memory.getTenantConfig(e()) },
    {
      name: 'DrizzleConfigManager uncached, libSQL (in memory)',
      fn: () => uncachedLibsql.getTenantConfig(f()),
    },
    { name: 'DrizzleConfigManager uncached, PGlite', fn: () => uncachedPglite.getTenantConfig(g()) },
    {
      name: 'DrizzleConfigManager uncached, PGlite, unknown id',
      fn: () => uncachedPglite.getTenantConfig(`${h()}-x`).catch(() => undefined),
    },
  ])
  if (cached.cacheStats!.loads + cachedSystem.cacheStats!.loads !== loadsBefore) {
    throw new Error('the cached rows queried the database: the benchmark is not measuring cache hits')
  }
  addTimings(
    section,
    `Config lookup (${LOOKUP_TENANTS} tenants; full TenantConfig with quota, rate limit, policy, metadata)`,
    timings,
    'lru-cache get (raw, sync)',
    "The fast read is what the tenancy chain calls (once per request, in the resolver): the stored, deeply frozen config as a value on a fresh hit. A hit checks freshness against the cache's clock: the system clock by default (the first fast-read row), a ManualClock in the second, which isolates that clock read. getTenantConfig() returns the same config through a promise (the ConfigManager interface is asynchronous); the async lru-cache row is a raw get behind an async function. The two lru-cache rows with a ttl are the same freshness check in lru-cache: by default it reads the clock at most once per millisecond (a timer clears its reading; in this synchronous loop the timer never runs, so no get reads the clock), with ttlResolution 0 on every get, as ours does. The cache was checked to make no database query during the cached rows.",
  )
  const fast = byName(timings, 'DrizzleConfigManager cached hit, fast read (what tenancy() calls)').ns
  const raw = byName(timings, 'lru-cache get (raw, sync)').ns
  const manual = byName(
    timings,
    'DrizzleConfigManager cached hit, fast read, ManualClock (a field read for the clock)',
  ).ns
  const ttlEveryGet = byName(timings, 'lru-cache get with ttl, ttlResolution 0 (clock read per get)').ns
  report.target({
    name: 'Cached config lookup vs raw lru-cache get',
    goal: 'within 2x of a raw lru-cache get',
    measured: `${formatRatio(fast / raw)} the time of a raw get (${formatNs(fast)} vs ${formatNs(raw)}) for the fast read on the system clock; ${formatRatio(manual / raw)} (${formatNs(manual)}) with a ManualClock; Date.now() alone ${formatNs(byName(timings, 'Date.now() (the system clock a freshness check reads)').ns)}; lru-cache with a ttl checked on every get (the same work) ${formatNs(ttlEveryGet)}, ${formatRatio(fast / ttlEveryGet)} of it`,
    holds: fast / raw <= 2,
    limitedBy: LIMITS.configLookup({
      fast,
      manual,
      raw,
      clock: byName(timings, 'Date.now() (the system clock a freshness check reads)').ns,
      ttl: byName(timings, 'lru-cache get with ttl (clock read at most once per ms)').ns,
      ttlEveryGet,
    }),
  })
}

// --- plans ---------------------------------------------------------------------------------------

/**
 * What reading through `withPlans` costs on a cached lookup: the tenant lookup, the plan lookup
 * and the WeakMap hit of the memoized effective config, against the tenant lookup alone.
 */
export async function planView(section: Section, dbs: Pick<Databases, 'libsql'>): Promise<void> {
  const list = ids.slice(0, 200)
  const clock = new ManualClock(EPOCH)
  const cache = { ttl: 3_600_000, negativeTtl: 3_600_000 }
  const configs = new DrizzleConfigManager(dbs.libsql, { cache, clock })
  const plans = new DrizzlePlanStore(dbs.libsql, { cache, clock })
  const memory = new InMemoryConfigManager({ clock })
  const memoryPlans = new InMemoryPlanStore({ tenants: memory, clock })
  const plan = {
    id: 'bench-pro',
    quota: {
      limits: [
        { window: 'minute' as const, requests: 600 },
        { window: 'day' as const, tokens: 1e6 },
      ],
    },
    rateLimit: { requestsPerSecond: 10, burst: 20 },
    policy: POLICY,
  }
  await plans.setPlan(plan)
  await memoryPlans.setPlan(plan)
  for (const [i, id] of list.entries()) {
    // Half the tenants override a quota dimension, so their effective quota is a merged object.
    const input = {
      id: `${id}-p`,
      plan: 'bench-pro',
      ...(i % 2 === 0 ? { quota: { limits: [{ window: 'day' as const, tokens: 5e6 }] } } : {}),
      metadata: { region: 'eu' },
    }
    await configs.setTenantConfig(input)
    await memory.setTenantConfig(input)
    await configs.setTenantConfig(tenantInput(id, i))
    await memory.setTenantConfig(tenantInput(id, i))
  }
  const onPlan = list.map((id) => `${id}-p`)
  const view = withPlans(configs, plans)
  const memoryView = withPlans(memory, memoryPlans)
  const all = [...list, ...onPlan]
  for (const id of all) {
    await view.getTenantConfig(id)
    await memoryView.getTenantConfig(id)
  }
  sameDecisions(`plan view, ${onPlan.length} tenants on a plan: same effective config from both stores`, {
    'withPlans(DrizzleConfigManager, DrizzlePlanStore)': await Promise.all(
      onPlan.map((id) => view.getTenantConfig(id)),
    ),
    'withPlans(InMemoryConfigManager, InMemoryPlanStore)': await Promise.all(
      onPlan.map((id) => memoryView.getTenantConfig(id)),
    ),
  })

  // The memo hit alone: the effective config of a pair already combined, without the lookups.
  const pairs: [TenantConfig, PlanConfig][] = []
  for (const id of onPlan)
    pairs.push([await memory.getTenantConfig(id), await memoryPlans.getPlan('bench-pro')])
  let p = 0
  const nextPair = () => pairs[p++ % pairs.length]!

  const loads = configs.cacheStats!.loads + plans.cacheStats!.loads
  const a = roundRobin(onPlan)
  const b = roundRobin(onPlan)
  const c = roundRobin(onPlan)
  const d = roundRobin(onPlan)
  const e = roundRobin(onPlan)
  const f = roundRobin(onPlan)
  const noPlan = roundRobin(list)
  const timings = await timeVariants([
    { name: 'DrizzleConfigManager cached hit (no view)', fn: () => configs.getTenantConfig(a()) },
    { name: 'withPlans(Drizzle) cached hit, tenant on a plan', fn: () => view.getTenantConfig(b()) },
    { name: 'withPlans(Drizzle) quotaConfig(), tenant on a plan', fn: () => view.quotaConfig(c()) },
    {
      name: 'withPlans(Drizzle) cached hit, tenant without a plan',
      fn: () => view.getTenantConfig(noPlan()),
    },
    { name: 'InMemoryConfigManager getTenantConfig (no view)', fn: () => memory.getTenantConfig(d()) },
    {
      name: 'withPlans(InMemory) getTenantConfig, tenant on a plan',
      fn: () => memoryView.getTenantConfig(e()),
    },
    { name: 'withPlans(InMemory) quotaConfig(), tenant on a plan', fn: () => memoryView.quotaConfig(f()) },
    {
      name: 'effectiveTenantConfig (memo hit, sync)',
      fn: () => {
        const [tenant, plan] = nextPair()
        return effectiveTenantConfig(tenant, plan)
      },
    },
  ])
  if (configs.cacheStats!.loads + plans.cacheStats!.loads !== loads) {
    throw new Error('the plan view rows queried the database: the benchmark is not measuring cache hits')
  }
  addTimings(
    section,
    `Plan view: cached lookups through withPlans (${onPlan.length} tenants on one plan, half with an override)`,
    timings,
    'DrizzleConfigManager cached hit (no view)',
    'A tenant on a plan costs a second cached lookup (the plan), a second promise hop and a WeakMap hit for the memoized effective config; a tenant without a plan one extra promise hop. The caches were checked to make no database query during the rows.',
  )
}

// --- scoped queries -----------------------------------------------------------------------------

async function scopedQueries(section: Section, dbs: Databases): Promise<void> {
  const tenants = ids.slice(0, 10)
  const rows = tenants.flatMap((tenantId, t) =>
    Array.from({ length: 100 }, (_, i) => ({
      id: `${tenantId}-note-${i}`,
      tenantId,
      title: `note ${i} of ${tenantId}`,
      score: (i * 7 + t) % 100,
    })),
  )
  await dbs.libsql.run(
    sql`create table bench_notes (id text primary key, tenant_id text not null, title text not null, score integer not null)`,
  )
  await dbs.libsql.run(sql`create index bench_notes_tenant on bench_notes (tenant_id, score)`)
  await dbs.pglite.execute(
    sql`create table bench_notes (id text primary key, tenant_id text not null, title text not null, score integer not null)`,
  )
  await dbs.pglite.execute(sql`create index bench_notes_tenant on bench_notes (tenant_id, score)`)
  for (let i = 0; i < rows.length; i += 200) {
    await dbs.libsql.insert(NOTES_SQLITE).values(rows.slice(i, i + 200))
    await dbs.pglite.insert(NOTES_PG).values(rows.slice(i, i + 200))
  }

  const pairs = tenants.flatMap((tenantId, t) => [
    { tenantId, id: `${tenantId}-note-${t * 7}` },
    // Another tenant's note: the scoped and the hand-written query must both find nothing.
    { tenantId, id: `${tenants[(t + 1) % tenants.length]}-note-3` },
  ])
  const variants = {
    libsql: {
      point: (p: { tenantId: string; id: string }) =>
        scoped(dbs.libsql, p.tenantId).select().from(NOTES_SQLITE).where(eq(NOTES_SQLITE.id, p.id)),
      pointHand: (p: { tenantId: string; id: string }) =>
        dbs.libsql
          .select()
          .from(NOTES_SQLITE)
          .where(and(eq(NOTES_SQLITE.tenantId, p.tenantId), eq(NOTES_SQLITE.id, p.id))),
      list: (tenantId: string) =>
        scoped(dbs.libsql, tenantId)
          .select()
          .from(NOTES_SQLITE)
          .where(gt(NOTES_SQLITE.score, 50))
          .orderBy(asc(NOTES_SQLITE.id))
          .limit(20),
      listHand: (tenantId: string) =>
        dbs.libsql
          .select()
          .from(NOTES_SQLITE)
          .where(and(eq(NOTES_SQLITE.tenantId, tenantId), gt(NOTES_SQLITE.score, 50)))
          .orderBy(asc(NOTES_SQLITE.id))
          .limit(20),
    },
    pglite: {
      point: (p: { tenantId: string; id: string }) =>
        scoped(dbs.pglite, p.tenantId).select().from(NOTES_PG).where(eq(NOTES_PG.id, p.id)),
      pointHand: (p: { tenantId: string; id: string }) =>
        dbs.pglite
          .select()
          .from(NOTES_PG)
          .where(and(eq(NOTES_PG.tenantId, p.tenantId), eq(NOTES_PG.id, p.id))),
      list: (tenantId: string) =>
        scoped(dbs.pglite, tenantId)
          .select()
          .from(NOTES_PG)
          .where(gt(NOTES_PG.score, 50))
          .orderBy(asc(NOTES_PG.id))
          .limit(20),
      listHand: (tenantId: string) =>
        dbs.pglite
          .select()
          .from(NOTES_PG)
          .where(and(eq(NOTES_PG.tenantId, tenantId), gt(NOTES_PG.score, 50)))
          .orderBy(asc(NOTES_PG.id))
          .limit(20),
    },
  }
  for (const [name, v] of Object.entries(variants)) {
    const collect = async (run: (p: { tenantId: string; id: string }) => Promise<unknown[]>) => {
      const out: unknown[] = []
      for (const p of pairs) out.push(await run(p))
      for (const tenantId of tenants) out.push(await run({ tenantId, id: '' }))
      return out
    }
    sameDecisions(
      `scoped vs hand-written query on ${name}: same rows for ${pairs.length} lookups and ${tenants.length} lists`,
      {
        'scoped(db, tenantId)': await collect((p) => (p.id ? v.point(p) : v.list(p.tenantId))),
        'hand-written where tenant_id = ?': await collect((p) =>
          p.id ? v.pointHand(p) : v.listHand(p.tenantId),
        ),
      },
    )
  }

  for (const [name, v] of Object.entries(variants)) {
    const next = () => {
      let i = 0
      return () => pairs[i++ % pairs.length]!
    }
    const [a, b, c, d] = [next(), next(), next(), next()] as const
    const timings = await timeVariants([
      { name: 'hand-written Drizzle, point lookup', fn: async () => await v.pointHand(a()) },
      { name: 'scoped(db, tenantId), point lookup', fn: async () => await v.point(b()) },
      { name: 'hand-written Drizzle, list of 20', fn: async () => await v.listHand(c().tenantId) },
      { name: 'scoped(db, tenantId), list of 20', fn: async () => await v.list(d().tenantId) },
    ])
    const title = `Scoped query vs hand-written Drizzle query, ${name === 'libsql' ? 'libSQL (in memory)' : 'PGlite'}`
    section.tables.push({
      title,
      columns: ['variant', 'ops/s', 'median', 'mean', 'scoped overhead'],
      rows: timings.map((t, i) => {
        const hand = timings[i - (i % 2)]!
        return [
          t.name,
          formatRate(t.opsPerSec),
          formatNs(t.ns),
          formatNs(t.avgNs),
          i % 2 === 1 ? `${formatNs(t.ns - hand.ns)} (${formatRatio(t.ns / hand.ns)} the time)` : '',
        ]
      }),
      note: 'Each scoped row builds scoped(db, tenantId) for the query, as a request handler does. 10 tenants x 100 rows, index on (tenant_id, score).',
    })
    console.log(`\n${title}`)
    for (const t of timings)
      console.log(`  ${t.name.padEnd(58)} ${formatRate(t.opsPerSec).padStart(8)} ops/s`)
  }
}

// --- shard router -------------------------------------------------------------------------------

async function shardRouter(section: Section): Promise<void> {
  const shardNames = (n: number) => Array.from({ length: n }, (_, i) => `shard-${i}`)
  const router4 = new TenantShardRouter({ shards: Object.fromEntries(shardNames(4).map((s) => [s, s])) })
  const router16 = new TenantShardRouter({ shards: Object.fromEntries(shardNames(16).map((s) => [s, s])) })
  const pinned = ids.slice(0, 100)
  const routerPinned = new TenantShardRouter({
    shards: Object.fromEntries(shardNames(16).map((s) => [s, s])),
    pins: pinned.map((id, i) => [id, `shard-${i % 16}`] as [string, string]),
  })
  // An independent rendezvous-hash computation over the exported hash: highest score wins.
  const reference = (tenantId: string, shards: string[]) => {
    let best = ''
    let bestScore = -1
    for (const s of shards) {
      const score = hashString(tenantId, hashString(s))
      if (score > bestScore || (score === bestScore && s < best)) {
        best = s
        bestScore = score
      }
    }
    return best
  }
  const directory = new Map(ids.map((id) => [id, reference(id, shardNames(16))]))
  sameDecisions(`shard router, ${ids.length} tenants on 16 shards: router = independent rendezvous hash`, {
    'TenantShardRouter.shardIdFor': ids.map((id) => router16.shardIdFor(id)),
    'reference rendezvous hash': ids.map((id) => directory.get(id)),
  })
  sameDecisions(`shard router, ${pinned.length} pinned tenants go to their pin`, {
    'TenantShardRouter.shardIdFor': pinned.map((id) => routerPinned.shardIdFor(id)),
    'pin directory': pinned.map((_, i) => `shard-${i % 16}`),
  })

  const [a, b, c, d] = [roundRobin(), roundRobin(), roundRobin(pinned), roundRobin()]
  const timings = await timeVariants([
    { name: 'TenantShardRouter.shardFor, 4 shards', fn: () => router4.shardFor(a()) },
    { name: 'TenantShardRouter.shardFor, 16 shards', fn: () => router16.shardFor(b()) },
    { name: 'TenantShardRouter.shardFor, pinned tenant', fn: () => routerPinned.shardFor(c()) },
    { name: 'Map.get of a precomputed directory', fn: () => directory.get(d()) },
  ])
  addTimings(
    section,
    'Shard router lookup',
    timings,
    'Map.get of a precomputed directory',
    'The hash is computed on every lookup (murmur3 over the UTF-8 id, once per shard); a pinned tenant is one Map lookup after the id check.',
  )
}

/** Runs every micro benchmark group into `report`. */
export async function runMicro(report: Report): Promise<void> {
  const section = report.section(
    'Micro benchmarks',
    'mitata, in one process. Each row is the best of the interleaved rounds (median time per operation); `ops/s` is 1 / median. Ratios compare throughput with the named peer measured in the same run.',
  )
  await quotaSingleWindow(report, section)
  await quotaColdStart(section)
  await quotaFourWindows(section)
  await quotaSliding(section)
  await tokenBucket(section)
  await policyEvaluate(section)
  const dbs = await openDatabases()
  try {
    await configLookup(report, section, dbs)
    await planView(section, dbs)
    await scopedQueries(section, dbs)
  } finally {
    await dbs.close()
  }
  await shardRouter(section)
}
