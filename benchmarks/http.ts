// HTTP: autocannon (in this process) against each app variant served by @hono/node-server in a
// child process on loopback, for a fixed duration, connections spread over several tenants.
import { type ChildProcess, execFileSync, fork } from 'node:child_process'
import autocannon from 'autocannon'
import { Redis } from 'ioredis'
import { countAdmitted, sameDecisions } from './lib/check'
import { FROM_SOURCE, HTTP_ROUNDS, HTTP_SECONDS, HTTP_WARMUP, IN_PROCESS, REDIS_URL } from './lib/env'
import { type ExampleApp, loadExampleApp } from './lib/example-app'
import {
  type BuiltApp,
  buildApp,
  HTTP_PATH,
  HTTP_TENANTS,
  type HttpVariant,
  httpVariants,
  inProcessVariants,
  variantTitles,
} from './lib/http-apps'
import { LIMITS } from './lib/limits'
import type { Report } from './lib/report'
import { formatRate, formatRatio } from './lib/timing'

const CONNECTIONS = 50
const CHECK_LIMIT = 100
const CHECK_ATTEMPTS = 150
const ROUNDS = HTTP_ROUNDS

/** Where a server runs: Node with @hono/node-server, or Bun with Bun.serve. */
type Runtime = 'node' | 'bun'
const runtimeTitles: Record<Runtime, string> = { node: 'Node, @hono/node-server', bun: 'Bun, Bun.serve' }
const BUN = new URL('../node_modules/.bin/bun', import.meta.url).pathname
/** The variants served under Bun: the chain against bare Hono, the floors and the peer. */
const bunVariants: readonly HttpVariant[] = inProcessVariants
/** A chain may add at most this much server CPU per request over bare Hono (µs). */
const CPU_BUDGET_MICROS = 8

interface Served {
  child: ChildProcess
  port: number
}

/** Sends `message` to the server and resolves its first reply of type `replyType`. */
function ask<T>(served: Served, message: { type: string }, replyType: string): Promise<T> {
  return new Promise((resolve) => {
    const onMessage = (reply: { type: string }) => {
      if (reply.type !== replyType) return
      served.child.off('message', onMessage)
      resolve(reply as T)
    }
    served.child.on('message', onMessage)
    served.child.send(message)
  })
}

async function serveVariant(runtime: Runtime, variant: HttpVariant, prefix: string): Promise<Served> {
  const child = fork(new URL('./http-server.ts', import.meta.url).pathname, [variant, prefix], {
    ...(runtime === 'bun'
      ? { execPath: BUN, execArgv: FROM_SOURCE ? ['--conditions=@tenant/source'] : [] }
      : { execArgv: process.execArgv.filter((a) => !a.startsWith('--cpu-prof')) }),
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const port = await new Promise<number>((resolve, reject) => {
    child.on('message', (m: { type: string; port?: number }) => {
      if (m.type === 'listening') resolve(m.port!)
    })
    child.once('exit', (code) =>
      reject(new Error(`the ${runtime} ${variant} server exited (${code}) before listening`)),
    )
  })
  return { child, port }
}

async function stop(served: Served): Promise<void> {
  const exited = new Promise((resolve) => served.child.once('exit', resolve))
  served.child.send({ type: 'close' })
  await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))])
  if (served.child.exitCode === null) served.child.kill()
}

interface LoadResult {
  requestsPerSec: number
  /** Server CPU time (user + system) per request handled, µs. */
  cpuMicrosPerRequest: number
  /**
   * The user part of it, µs: without the kernel's time in the socket calls, which on this host
   * grows with how the load generator's process sleeps and wakes (the same writes cost more).
   */
  userMicrosPerRequest: number
  meanMs: number
  p99Ms: number
  non2xx: number
  errors: number
}

/** Loads a fresh server until the JIT has settled (see `HTTP_WARMUP`). */
async function warmUp(served: Served, path: string, tenants: readonly string[]): Promise<void> {
  const started = performance.now()
  let answered = 0
  while (answered < HTTP_WARMUP.requests && performance.now() - started < HTTP_WARMUP.maxSeconds * 1000) {
    const run = await hammer(served.port, path, 1, tenants)
    answered += run.requestsPerSec
  }
}

/** A measured run: autocannon's numbers plus the server's CPU per request over the same time. */
async function measured(served: Served, path: string, tenants: readonly string[]): Promise<LoadResult> {
  await ask(served, { type: 'start' }, 'started')
  const load = await hammer(served.port, path, HTTP_SECONDS, tenants)
  const stats = await ask<{ cpuMicros: number; userMicros: number; handled: number }>(
    served,
    { type: 'stop' },
    'stats',
  )
  return {
    ...load,
    cpuMicrosPerRequest: stats.cpuMicros / stats.handled,
    userMicrosPerRequest: stats.userMicros / stats.handled,
  }
}

async function hammer(
  port: number,
  path: string,
  seconds: number,
  tenants: readonly string[],
): Promise<Omit<LoadResult, 'cpuMicrosPerRequest' | 'userMicrosPerRequest'>> {
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
    meanMs: result.latency.average,
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

/** GET `path` as `tenantId` through an in-process app; 200 is admitted, 429 refused, else an error. */
async function admitted(app: BuiltApp, path: string, tenantId: string, label: string): Promise<boolean> {
  const response = await app.fetch(
    new Request(`http://localhost${path}`, { headers: { 'x-tenant-id': tenantId } }),
  )
  if (response.status !== 200 && response.status !== 429) {
    throw new Error(`${label}: unexpected status ${response.status}: ${await response.text()}`)
  }
  await response.arrayBuffer()
  return response.status === 200
}

/** Same decisions over HTTP: one tenant, limit 100 per minute, 150 requests. */
async function checkDecisions(prefix: string, withRedis: boolean, example: ExampleApp): Promise<void> {
  const outcomes: Record<string, number> = {}
  const checked = [
    'chain-memory',
    'chain-no-context',
    'hono-rate-limiter',
    ...(withRedis ? (['chain-redis'] as const) : []),
  ] as const
  for (const variant of checked) {
    const app = await buildApp(variant, { limit: CHECK_LIMIT, tenants: ['check'], prefix: `${prefix}check:` })
    try {
      outcomes[variantTitles[variant]] = await countAdmitted(CHECK_ATTEMPTS, () =>
        admitted(app, HTTP_PATH, 'check', variant),
      )
    } finally {
      await app.close()
    }
  }
  if (example.ok) {
    outcomes[variantTitles['example-app']] = await countAdmitted(CHECK_ATTEMPTS, () =>
      admitted(example.app, example.path, 'check', 'example app'),
    )
  }
  sameDecisions(
    `HTTP, limit ${CHECK_LIMIT}/minute, ${CHECK_ATTEMPTS} requests (200 vs 429)`,
    outcomes,
    CHECK_LIMIT,
  )
  if (example.ok) {
    // The measured route must answer each tenant with its own rows only.
    const owners: Record<string, { own: number; foreign: number }> = {}
    for (const tenantId of example.tenants) {
      const response = await example.app.fetch(
        new Request(`http://localhost${example.path}`, { headers: { 'x-tenant-id': tenantId } }),
      )
      const page = (await response.json()) as { items: { name: string }[] }
      const own = page.items.filter((item) => item.name.endsWith(` of ${tenantId}`)).length
      owners[tenantId] = { own, foreign: page.items.length - own }
    }
    sameDecisions(
      `example app GET ${example.path}: each of ${example.tenants.length} tenants gets a page of 20 of its own resources and none of another's`,
      owners,
      { own: 20, foreign: 0 },
    )
  }
}

/** The in-process variants of the cost table: the Node and Bun ones, and the stage cuts on Node. */
const stageVariants = ['stage-resolve', 'stage-policy', 'stage-rate-limit'] as const

/**
 * Least ns per request of each variant in process under `runtime` (see in-process-child.ts): one
 * child per variant, all alive at once, asked for their rounds in turn.
 */
async function inProcessCosts(
  runtime: Runtime,
  variants: readonly HttpVariant[],
): Promise<Map<string, number>> {
  const children = new Map<HttpVariant, ChildProcess>()
  const reply = (child: ChildProcess, type: string) =>
    new Promise<{ nanos?: number }>((resolve, reject) => {
      const onMessage = (m: { type: string; nanos?: number }) => {
        if (m.type !== type) return
        child.off('message', onMessage)
        child.off('exit', onExit)
        resolve(m)
      }
      const onExit = (code: number | null) =>
        reject(new Error(`the ${runtime} in-process run exited (${code}) before its ${type}`))
      child.on('message', onMessage)
      child.once('exit', onExit)
    })
  const costs = new Map<string, number>()
  try {
    for (const variant of variants) {
      const child = fork(
        new URL('./in-process-child.ts', import.meta.url).pathname,
        [variant, String(IN_PROCESS.perRound)],
        {
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
          ...(runtime === 'bun'
            ? { execPath: BUN, execArgv: FROM_SOURCE ? ['--conditions=@tenant/source'] : [] }
            : { execArgv: process.execArgv.filter((a) => !a.startsWith('--cpu-prof')) }),
        },
      )
      children.set(variant, child)
      await reply(child, 'ready')
    }
    for (let r = 0; r < IN_PROCESS.rounds; r++) {
      for (const [variant, child] of children) {
        const answer = reply(child, 'round')
        child.send({ type: 'round' })
        const { nanos } = await answer
        costs.set(variant, Math.min(costs.get(variant) ?? Infinity, nanos!))
      }
    }
  } finally {
    for (const child of children.values()) if (child.connected) child.send({ type: 'close' })
  }
  return costs
}

/** A server to measure: one variant on one runtime. */
interface Contender {
  runtime: Runtime
  variant: HttpVariant
}

const keyOf = (c: Contender) => `${c.runtime}:${c.variant}`

/** Runs the HTTP section into `report`. */
export async function runHttp(report: Report): Promise<void> {
  const section = report.section(
    'HTTP',
    `autocannon in the benchmark process against a server in a child process (Node with @hono/node-server, and Bun with Bun.serve), both on loopback; ${CONNECTIONS} connections, spread over ${HTTP_TENANTS.length} tenants (X-Tenant-ID), each server warmed up with ${HTTP_WARMUP.requests.toLocaleString('en-US')} requests (at most ${HTTP_WARMUP.maxSeconds} s), then ${ROUNDS} interleaved round(s) of ${HTTP_SECONDS} s per server, best round kept. Every response must be a 2xx (limits are never reached). Same handler everywhere: \`c.json({ ok: true })\`. The full chain is \`tenancy()\` from @tenant/hono: resolve (existence check in InMemoryConfigManager) -> policy (ConfigPolicyEvaluator) -> rate limit (token bucket) -> quota (fixed minute window, requests and tokens), with four response headers (\`RateLimit-Policy\`, \`RateLimit\`, \`X-Quota-Remaining-Requests\`, \`X-Quota-Remaining-Tokens\`) and the tenant context (\`currentTenantId()\`). The floor is the least a tenancy middleware does: an async middleware that reads X-Tenant-ID and sets one response header before \`await next()\`; the floor with the chain's I/O also sets the chain's four response headers and runs the handler in the tenant context, the cheapest middleware that sends and sets what the chain does.`,
  )
  const prefix = `bench:http:${process.pid}:${Date.now()}:`
  report.environment.push(['Bun', execFileSync(BUN, ['--version']).toString().trim()])
  const withRedis = await redisAnswers()
  if (!withRedis)
    section.notes.push(`Redis at ${REDIS_URL} did not answer: the Redis chain was not measured.`)
  const example = await loadExampleApp(CHECK_LIMIT)
  if (!example.ok) section.notes.push(`Example app not measured: ${example.reason}`)
  try {
    await checkDecisions(prefix, withRedis, example)
  } finally {
    if (example.ok) await example.app.close()
  }
  const nodeVariants = httpVariants.filter(
    (v) => (v !== 'example-app' || example.ok) && (v !== 'chain-redis' || withRedis),
  )
  const contenders: Contender[] = [
    ...nodeVariants.map((variant) => ({ runtime: 'node' as const, variant })),
    ...bunVariants.map((variant) => ({ runtime: 'bun' as const, variant })),
  ]

  // Every server lives through all rounds: warmed once, then measured round by round, interleaved.
  const servers = new Map<string, Served>()
  const best = new Map<string, LoadResult>()
  const leastCpu = new Map<string, number>()
  const leastUser = new Map<string, number>()
  const routeOf = (variant: HttpVariant) =>
    variant === 'example-app' && example.ok
      ? { path: example.path, tenants: example.tenants }
      : { path: HTTP_PATH, tenants: HTTP_TENANTS }
  try {
    for (const c of contenders) {
      servers.set(keyOf(c), await serveVariant(c.runtime, c.variant, `${prefix}${keyOf(c)}:`))
    }
    for (const c of contenders) {
      const { path, tenants } = routeOf(c.variant)
      await warmUp(servers.get(keyOf(c))!, path, tenants)
    }
    for (let round = 0; round < ROUNDS; round++) {
      for (const c of contenders) {
        const key = keyOf(c)
        const { path, tenants } = routeOf(c.variant)
        const result = await measured(servers.get(key)!, path, tenants)
        if (result.non2xx > 0 || result.errors > 0) {
          throw new Error(
            `${key}: ${result.non2xx} non-2xx responses and ${result.errors} errors under load; the run must only admit`,
          )
        }
        const previous = best.get(key)
        if (!previous || result.requestsPerSec > previous.requestsPerSec) best.set(key, result)
        leastCpu.set(key, Math.min(leastCpu.get(key) ?? Infinity, result.cpuMicrosPerRequest))
        leastUser.set(key, Math.min(leastUser.get(key) ?? Infinity, result.userMicrosPerRequest))
        console.log(
          `  ${c.runtime.padEnd(5)} ${variantTitles[c.variant].padEnd(72)} ${formatRate(result.requestsPerSec).padStart(6)} req/s  ${result.cpuMicrosPerRequest.toFixed(1).padStart(6)} µs CPU/request`,
        )
      }
    }
  } finally {
    for (const served of servers.values()) await stop(served)
  }

  // In process, after the servers are gone, so nothing else of ours runs beside it.
  const inProcess = {
    node: await inProcessCosts('node', [...inProcessVariants, ...stageVariants]),
    bun: await inProcessCosts('bun', inProcessVariants),
  }
  for (const runtime of ['node', 'bun'] as const) {
    for (const [variant, ns] of inProcess[runtime]) {
      console.log(
        `  ${runtime.padEnd(5)} in process: ${variantTitles[variant as HttpVariant].padEnd(72)} ${(ns / 1000).toFixed(2)} µs/request`,
      )
    }
  }

  const columns = [
    'app',
    'req/s',
    'mean latency',
    'p99',
    'req/s vs bare Hono',
    'server CPU per request',
    'CPU vs bare',
    'user CPU vs bare',
  ]
  const row = (runtime: Runtime) => (variant: HttpVariant) => {
    const r = best.get(`${runtime}:${variant}`)!
    const cpu = leastCpu.get(`${runtime}:${variant}`)!
    const bare = best.get(`${runtime}:bare`)!
    const bareCpu = leastCpu.get(`${runtime}:bare`)!
    const user = leastUser.get(`${runtime}:${variant}`)!
    const bareUser = leastUser.get(`${runtime}:bare`)!
    return [
      variantTitles[variant],
      formatRate(r.requestsPerSec),
      `${r.meanMs.toFixed(1)} ms`,
      r.p99Ms < 1 ? '< 1 ms' : `${r.p99Ms.toFixed(0)} ms`,
      (r.requestsPerSec / bare.requestsPerSec).toFixed(2),
      `${cpu.toFixed(1)} µs`,
      variant === 'bare' ? '' : `${signed(cpu - bareCpu)} µs (${formatRatio(cpu / bareCpu)})`,
      variant === 'bare' ? `(${bareUser.toFixed(1)} µs)` : `${signed(user - bareUser)} µs`,
    ]
  }
  const isStage = (v: HttpVariant) => v.startsWith('stage-')
  section.tables.push({
    title: `HTTP throughput and latency (${runtimeTitles.node})`,
    columns,
    rows: nodeVariants.filter((v) => !isStage(v)).map(row('node')),
    note: "req/s and latency: the best round (autocannon records latency in whole milliseconds). Server CPU per request: user + system CPU time of the server process divided by the requests it answered during the measured run (lowest round); it is steadier than req/s when other processes compete for the cores, and the load generator shares the two cores with the server. User CPU vs bare: the user part alone (lowest round), bare Hono's in brackets; it leaves out the kernel's time in the socket calls, which on this host is not fixed per request: a CPU profile of the servers under load (2026-12-07) put the socket write (writev) at 18.1 µs per request for bare Hono and 18.3 µs for the floor with the chain's I/O but 27.5 µs for the chain, with the same one writev of the same 478 bytes per response (strace), so the write costs more when the load generator has gone to sleep and must be woken.",
  })
  section.tables.push({
    title: `HTTP throughput and latency (${runtimeTitles.bun})`,
    columns,
    rows: bunVariants.map(row('bun')),
    note: 'The same apps (built from the same dist/ output) served by Bun.serve, measured in the same rounds as the Node servers. Bun answers faster than the load generator (autocannon, on Node, on the same two cores) can ask, so its req/s mostly measures the load generator and swings from round to round (a ratio above 1 is such a swing); server CPU per request is the number to read.',
  })
  section.tables.push({
    title: 'In-memory chain stage by stage (Node)',
    columns,
    rows: ['bare', 'floor', ...nodeVariants.filter(isStage), 'chain-memory'].map((v) =>
      row('node')(v as HttpVariant),
    ),
    note: 'The same tenancy() chain cut after each stage (resolve with the existence check, then + policy, + token-bucket rate limit, + quota): what each stage adds. Neighbouring rows closer than about 2 µs of CPU per request are within run-to-run noise on this machine.',
  })
  const costRow = (runtime: Runtime) => (variant: HttpVariant) => {
    const ns = inProcess[runtime].get(variant)!
    const bare = inProcess[runtime].get('bare')!
    return [
      variantTitles[variant],
      `${(ns / 1000).toFixed(2)} µs`,
      variant === 'bare' ? '' : `${signed((ns - bare) / 1000, 2)} µs (${formatRatio(ns / bare)})`,
    ]
  }
  for (const runtime of ['node', 'bun'] as const) {
    const variants: HttpVariant[] =
      runtime === 'node' ? [...inProcessVariants, ...stageVariants] : [...inProcessVariants]
    section.tables.push({
      title: `Cost per request in process (${runtime === 'node' ? "Node, through @hono/node-server's request listener" : 'Bun'})`,
      columns: ['app', 'time per request', 'vs bare Hono'],
      rows: variants.map(costRow(runtime)),
      note: `${runtime === 'node' ? "The same apps without the network: each request goes through @hono/node-server's request listener with a real IncomingMessage and ServerResponse, which write the response head and body to a socket that drops the bytes, so the server's own work per request counts (the Request it builds, how it turns the response's headers into the head) and the kernel's does not" : 'The same apps without a socket: `app.fetch()` and one pass over the response headers (what the server adapter does to write them); Bun.serve cannot be driven without a socket, so what it does with the response is left out'}. One variant per process, as in the load runs (the tenant context's AsyncLocalStorage turns on hooks for the whole process on Node 20, which a shared process would charge to every variant); one request after another; the variants take turns over ${IN_PROCESS.rounds} rounds of ${IN_PROCESS.perRound.toLocaleString('en-US')} requests after a warm-up round, and each keeps its least time per request. What other work on the machine adds comes and goes, so these numbers hold steady where the req/s above swing.`,
    })
  }
  if (best.has('node:example-app')) {
    section.notes.push(
      "The example app's row is a whole application request: a page of 20 resources read from a libSQL file database, the config from DrizzleConfigManager's cache, Prometheus metrics and the logging hooks (at level `silent`). Compare it with the libSQL rows of the micro section rather than with bare Hono.",
    )
  }
  for (const runtime of ['node', 'bun'] as const) {
    const at = (variant: HttpVariant) => ({
      rate: best.get(`${runtime}:${variant}`)!.requestsPerSec,
      cpu: leastCpu.get(`${runtime}:${variant}`)!,
    })
    const bare = at('bare')
    const chain = at('chain-memory')
    const floor = at('floor')
    const context = at('floor-context')
    const headers = at('floor-headers')
    const io = at('floor-io')
    const noContext = at('chain-no-context')
    const peer = at('hono-rate-limiter')
    const ratio = chain.rate / bare.rate
    const added = chain.cpu - bare.cpu
    const userAdded = (variant: HttpVariant) =>
      leastUser.get(`${runtime}:${variant}`)! - leastUser.get(`${runtime}:bare`)!
    const cost = (variant: HttpVariant) => inProcess[runtime].get(variant)! / 1000
    const inProcessText = `; in process ${signed(cost('chain-memory') - cost('bare'), 2)} µs over bare (${formatRatio(cost('chain-memory') / cost('bare'))}), the floor with the chain's I/O (four headers, tenant context) ${signed(cost('floor-io') - cost('bare'), 2)} µs`
    report.target({
      name: `Full in-memory tenancy chain over HTTP (${runtime === 'node' ? 'Node' : 'Bun'})`,
      goal: `keeps >= 90% of bare Hono's req/s and adds <= ${CPU_BUDGET_MICROS} µs of server CPU per request`,
      measured: `${(ratio * 100).toFixed(0)}% of the req/s (${formatRate(chain.rate)} vs ${formatRate(bare.rate)}), ${signed(added)} µs CPU per request (${chain.cpu.toFixed(1)} vs ${bare.cpu.toFixed(1)}); floor ${(100 * (floor.rate / bare.rate)).toFixed(0)}% and ${signed(floor.cpu - bare.cpu)} µs, floor with the chain's I/O ${(100 * (io.rate / bare.rate)).toFixed(0)}% and ${signed(io.cpu - bare.cpu)} µs, hono-rate-limiter ${(100 * (peer.rate / bare.rate)).toFixed(0)}% and ${signed(peer.cpu - bare.cpu)} µs; user CPU alone: chain ${signed(userAdded('chain-memory'))} µs, floor with the chain's I/O ${signed(userAdded('floor-io'))} µs${inProcessText}`,
      holds: ratio >= 0.9 && added <= CPU_BUDGET_MICROS,
      limitedBy: LIMITS.chain({
        runtime,
        added,
        ratio,
        floor: floor.cpu - bare.cpu,
        context: context.cpu - floor.cpu,
        headers: headers.cpu - floor.cpu,
        withoutContext: noContext.cpu - bare.cpu,
        peer: peer.cpu - bare.cpu,
        io: io.cpu - bare.cpu,
        work: {
          underLoad: at('floor-io-work').cpu - io.cpu,
          inProcess: cost('floor-io-work') - cost('floor-io'),
        },
        inProcess: {
          added: cost('chain-memory') - cost('bare'),
          floor: cost('floor') - cost('bare'),
          headers: cost('floor-headers') - cost('floor'),
          context: cost('floor-context') - cost('floor'),
          io: cost('floor-io') - cost('bare'),
          withoutContext: cost('chain-no-context') - cost('bare'),
        },
      }),
    })
  }
}

function signed(micros: number, digits = 1): string {
  return `${micros >= 0 ? '+' : '-'}${Math.abs(micros).toFixed(digits)}`
}
