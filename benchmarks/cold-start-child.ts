// Child process of the micro section: in-memory quota consume throughput in a fresh process, after
// one of two starts. `plain`: nothing before the measured rounds but a short warm-up. `kept`: a
// cold start that keeps its first decisions alive across a young-generation collection, as a
// server's first burst of concurrent requests does. V8 decides per allocation site whether to
// place new objects straight in the old generation from how many survived such a collection, and
// keeps that decision; a site of the decision objects switched that way once made every later
// consume several times slower for the life of the process. Prints one JSON line:
// { opsPerSec } (the best of the rounds).
//
// argv[2] = 'plain' | 'kept', argv[3] = how many decisions the `kept` start holds. Needs
// --expose-gc (for the young collection of the `kept` start).
import { InMemoryConfigManager, InMemoryQuotaManager } from '@tenant/core'

const gc = (globalThis as { gc?: (options?: { type: 'minor' | 'major' }) => void }).gc
if (!gc) throw new Error('run with node --expose-gc')

const start = process.argv[2]
const TENANTS = Array.from({ length: 1000 }, (_, i) => `tenant-${i}`)
const configs = new InMemoryConfigManager()
for (const id of TENANTS) {
  await configs.setTenantConfig({
    id,
    quota: { limits: [{ window: 'minute', requests: 1e12, tokens: 1e12 }] },
  })
}
const manager = new InMemoryQuotaManager(configs)
const cost = { tokens: 1 }
const KEPT = Number(process.argv[3])

if (start === 'kept') {
  // The first decisions stay referenced over young collections (the ones their allocation
  // brings, and one forced), then are dropped.
  const kept: unknown[] = []
  for (let i = 0; i < KEPT; i++) kept.push(await manager.consume(TENANTS[i % TENANTS.length]!, cost))
  gc({ type: 'minor' })
  kept.length = 0
}

async function round(calls: number): Promise<number> {
  const started = process.hrtime.bigint()
  for (let i = 0; i < calls; i++) await manager.consume(TENANTS[i % TENANTS.length]!, cost)
  return calls / (Number(process.hrtime.bigint() - started) / 1e9)
}

let best = 0
for (let r = 0; r < 6; r++) best = Math.max(best, await round(200_000))
console.log(JSON.stringify({ opsPerSec: best }))
