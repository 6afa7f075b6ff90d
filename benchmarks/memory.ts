// Memory: heap per active tenant in InMemoryQuotaManager (and, for context, SlidingWindowQuotaManager)
// at 1e4, 1e5 and 1e6 tenants, and the heap after every window expired. Runs in a child process with --expose-gc, so the heap it measures
// holds nothing of the other sections.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { MEMORY_TENANTS } from './lib/env'
import { LIMITS } from './lib/limits'
import type { Report } from './lib/report'
import type { MemoryResult } from './memory-child'

const run = promisify(execFile)
const PEER_TENANTS = 100_000
/** Per-tenant budget of the target. */
const BUDGET = 200

function kb(bytes: number): string {
  return `${(bytes / 1024).toFixed(0)} KB`
}

function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`
}

/** Runs the memory section into `report`. */
export async function runMemory(report: Report): Promise<void> {
  const section = report.section(
    'Memory',
    'A child process with `--expose-gc`; `heapUsed` after full collections, before and after the `consume` calls of every tenant (one-minute limit, one shared QuotaConfig object, so only the manager state is counted). Tenant ids (`tenant-0000042`) are built inside the loop, so the manager holds the only copy of each, as it would for ids arriving in requests. Then the clock moves past the window and calls sweep the expired tenants (up to 1,024 per call).',
  )
  const execArgv = process.execArgv.filter((a) => !a.startsWith('--cpu-prof'))
  // One child per manager (see memory-child.ts): each measures a process that runs only its code.
  const child = async (kind: 'fixed' | 'sliding') => {
    const { stdout } = await run(
      process.execPath,
      [
        ...execArgv,
        '--expose-gc',
        '--max-old-space-size=4096',
        new URL('./memory-child.ts', import.meta.url).pathname,
        kind,
        JSON.stringify(MEMORY_TENANTS),
        String(PEER_TENANTS),
      ],
      { maxBuffer: 1 << 20 },
    )
    return JSON.parse(stdout.trim().split('\n').pop()!) as {
      results: MemoryResult[]
      peers: { tenants: number; results: { name: string; bytesPerTenant: number }[] }
    }
  }
  const { results, peers } = await child('fixed')
  const { results: sliding } = await child('sliding')
  const columns = [
    'tenants',
    'bytes per tenant',
    'heap growth',
    'after all windows expired',
    'tenants held after',
    'sweep calls',
  ]
  const rows = (list: MemoryResult[]) =>
    list.map((r) => [
      r.tenants.toLocaleString('en-US'),
      r.bytesPerTenant.toFixed(0),
      mb(r.peakBytes),
      `${r.afterExpiryBytes >= 0 ? '+' : ''}${kb(r.afterExpiryBytes)} vs baseline`,
      String(r.sizeAfterExpiry),
      String(r.sweepCalls),
    ])
  section.tables.push({ title: 'InMemoryQuotaManager heap per active tenant', columns, rows: rows(results) })
  section.tables.push({
    title: 'SlidingWindowQuotaManager heap per active tenant (for context)',
    columns,
    rows: rows(sliding),
    note: `Precision 10 (6 s buckets of the one-minute limit). Each tenant made ${sliding[0]?.callsPerTenant ?? 11} calls 6 s apart, one in each bucket a minute can overlap: the most state a tenant with one window holds (a tenant with one call holds one bucket). The target is stated for the fixed window; a sliding entry keeps a count per bucket.`,
  })
  section.tables.push({
    title: `Peers, ${peers.tenants.toLocaleString('en-US')} keys (for context)`,
    columns: ['store', 'bytes per key'],
    rows: peers.results.map((p) => [p.name, p.bytesPerTenant.toFixed(0)]),
    note: 'rate-limiter-flexible keeps a timer per key; hono-rate-limiter keeps two maps swapped by one interval. Neither holds more than a count and a reset time per key; the quota manager holds one flat entry per tenant (requests and tokens inline, the window start and the expiry as small integers) and its expiry-heap slot.',
  })
  for (const [name, list] of [
    ['fixed', results],
    ['sliding', sliding],
  ] as const)
    for (const r of list)
      console.log(
        `  ${name}, ${r.tenants} tenants: ${r.bytesPerTenant.toFixed(0)} bytes/tenant, after expiry ${kb(r.afterExpiryBytes)}`,
      )
  const worst = Math.max(...results.map((r) => r.bytesPerTenant))
  const released = results.every(
    (r) => r.sizeAfterExpiry === 0 && r.afterExpiryBytes < Math.max(0.02 * r.peakBytes, 256 * 1024),
  )
  report.target({
    name: 'Heap per active tenant (InMemoryQuotaManager)',
    goal: `< ${BUDGET} bytes per active tenant; heap back near the baseline once windows expire`,
    measured: `${results.map((r) => `${r.bytesPerTenant.toFixed(0)} B at ${r.tenants.toExponential(0).replace('+', '')}`).join(', ')}; after expiry ${results.map((r) => kb(r.afterExpiryBytes)).join(', ')} above baseline`,
    holds: worst < BUDGET && released,
    limitedBy: LIMITS.memory,
  })
}
