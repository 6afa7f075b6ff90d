// Child process of the memory section (needs --expose-gc): heap bytes per active tenant in one
// in-memory quota manager (`fixed` or `sliding`, argv[2]), and the heap once every window has
// passed; the fixed run also measures the peers. Prints one JSON line.
//
// One manager per process, as in an application: running the other's code first makes the shared
// engine code polymorphic and was measured to add about 40 bytes per fixed-window tenant.
import {
  deepFreeze,
  InMemoryQuotaManager,
  ManualClock,
  type QuotaConfig,
  SlidingWindowQuotaManager,
} from '@tenant/core'
import { MemoryStore } from 'hono-rate-limiter'
import { RateLimiterMemory } from 'rate-limiter-flexible'

const gc = (globalThis as { gc?: () => void }).gc
if (!gc) throw new Error('run with node --expose-gc')

/** Collected heap in bytes, after full collections. */
function heap(): number {
  for (let i = 0; i < 3; i++) gc!()
  return process.memoryUsage().heapUsed
}

// Mid-minute, so every tenant's counter lives until the same window end.
const EPOCH = Date.UTC(2026, 0, 15, 12, 0, 30)
// Frozen, as the config stores hand out their configs (validated once, not per call).
const QUOTA: QuotaConfig = deepFreeze({ limits: [{ window: 'minute', requests: 1_000 }] })

/** Ids are built inside the loops: a server's ids come from requests, so the manager holds the only copy. */
const tenantId = (i: number) => `tenant-${String(i).padStart(7, '0')}`

export interface MemoryResult {
  tenants: number
  /** Calls per tenant before the heap was measured, one per bucket step (1 for the fixed window). */
  callsPerTenant: number
  bytesPerTenant: number
  peakBytes: number
  size: number
  /** Heap after every window passed and the manager swept, minus the baseline. */
  afterExpiryBytes: number
  sizeAfterExpiry: number
  /** Calls it took to sweep every tenant (each call forgets up to 1,024). */
  sweepCalls: number
}

type Manager = InMemoryQuotaManager | SlidingWindowQuotaManager

/** How a manager is measured: built on a clock, `calls` consumes per tenant `stepMs` apart. */
interface Subject {
  make: (clock: ManualClock) => Manager
  calls: number
  stepMs: number
  /** How far past the last call every tenant's state has expired. */
  expireMs: number
}

// The fixed window: one call per tenant; its counter lives until the minute ends.
const FIXED: Subject = {
  make: (clock) => new InMemoryQuotaManager({ quotaConfig: async () => QUOTA }, { clock }),
  calls: 1,
  stepMs: 0,
  expireMs: 60_000,
}

// The sliding window (precision 10, 6 s buckets): a call in each of the 11 buckets a minute can
// overlap, the most state a one-window tenant holds; it expires 11 buckets after its newest one.
const SLIDING: Subject = {
  make: (clock) =>
    new SlidingWindowQuotaManager({ quotaConfig: async () => QUOTA }, { clock, precision: 10 }),
  calls: 11,
  stepMs: 6_000,
  expireMs: 66_000,
}

/** Consumes for each of `tenants` tenants, then lets every window pass and sweeps them all. */
async function cycle(
  subject: Subject,
  manager: Manager,
  clock: ManualClock,
  tenants: number,
  afterConsume: () => void = () => {},
): Promise<number> {
  for (let call = 0; call < subject.calls; call++) {
    if (call > 0) clock.advance(subject.stepMs)
    for (let i = 0; i < tenants; i++) await manager.consume(tenantId(i))
  }
  afterConsume()
  clock.advance(subject.expireMs)
  let sweepCalls = 0
  while (manager.size > 0 && sweepCalls < tenants) {
    await manager.peek('sweeper')
    sweepCalls++
  }
  return sweepCalls
}

const kind = process.argv[2]
if (kind !== 'fixed' && kind !== 'sliding') throw new Error(`argv[2] must be fixed or sliding, got ${kind}`)
const SUBJECT = kind === 'fixed' ? FIXED : SLIDING

// A whole cycle on a throwaway manager before the first baseline: the code of the consume, heap
// and sweep paths (and its type feedback) is compiled once per process and is not tenant state.
{
  const clock = new ManualClock(EPOCH)
  const manager = SUBJECT.make(clock)
  await cycle(SUBJECT, manager, clock, 5_000)
  if (manager.size !== 0) throw new Error('the warm-up cycle did not sweep every tenant')
}

async function ours(subject: Subject, tenants: number): Promise<MemoryResult> {
  const clock = new ManualClock(EPOCH)
  // One config object for everyone: this measures the manager's state, not a config store.
  const manager = subject.make(clock)
  await manager.consume('warm-up')
  clock.advance(subject.expireMs)
  await manager.peek('warm-up')
  const base = heap()
  let peak = 0
  let size = 0
  const sweepCalls = await cycle(subject, manager, clock, tenants, () => {
    peak = heap() - base
    size = manager.size
  })
  const after = heap() - base
  return {
    tenants,
    callsPerTenant: subject.calls,
    bytesPerTenant: peak / tenants,
    peakBytes: peak,
    size,
    afterExpiryBytes: after,
    sizeAfterExpiry: manager.size,
    sweepCalls,
  }
}

async function peers(tenants: number): Promise<{ name: string; bytesPerTenant: number }[]> {
  const out: { name: string; bytesPerTenant: number }[] = []
  {
    const limiter = new RateLimiterMemory({ points: 1_000, duration: 60 })
    const base = heap()
    for (let i = 0; i < tenants; i++) await limiter.consume(tenantId(i))
    out.push({ name: 'rate-limiter-flexible RateLimiterMemory', bytesPerTenant: (heap() - base) / tenants })
    // Its keys expire by timers; drop them so they do not keep the process alive.
    for (let i = 0; i < tenants; i++) await limiter.delete(tenantId(i))
  }
  {
    const store = new MemoryStore()
    store.init({ windowMs: 60_000 } as Parameters<MemoryStore['init']>[0])
    const base = heap()
    for (let i = 0; i < tenants; i++) store.increment(tenantId(i))
    out.push({ name: 'hono-rate-limiter MemoryStore', bytesPerTenant: (heap() - base) / tenants })
    store.shutdown()
  }
  return out
}

const sizes = JSON.parse(process.argv[3] ?? '[10000]') as number[]
const peerTenants = Number(process.argv[4] ?? 100_000)
const results: MemoryResult[] = []
for (const n of sizes) results.push(await ours(SUBJECT, n))
const peerResults = kind === 'fixed' ? await peers(peerTenants) : []
process.stdout.write(
  `${JSON.stringify({ results, peers: { tenants: peerTenants, results: peerResults } })}\n`,
)
process.exit(0)
