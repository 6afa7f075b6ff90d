// `pnpm bench`: runs every section (micro, Redis, HTTP, memory), prints the results, and rewrites
// BENCHMARKS.md. BENCH_QUICK=1 for short runs, BENCH_ONLY=micro,redis to pick sections,
// BENCH_OUT=path to write elsewhere. A same-decision check that fails stops the run before anything
// is written.
import { readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import { runHttp } from './http'
import { passedChecks } from './lib/check'
import { enabled, FROM_SOURCE, ONLY, OUT, QUICK } from './lib/env'
import { markdownTable, Report, textTable, verdict } from './lib/report'
import { runMemory } from './memory'
import { runMicro } from './micro'
import { runRedis } from './redis'

const require = createRequire(import.meta.url)

function versionOf(name: string): string {
  try {
    const path = require.resolve(`${name}/package.json`)
    return (JSON.parse(readFileSync(path, 'utf8')) as { version: string }).version
  } catch {
    // Packages whose exports hide package.json: walk up from the entry point.
    const entry = require.resolve(name)
    const root = entry.slice(0, entry.lastIndexOf(`/node_modules/${name}/`) + `/node_modules/${name}/`.length)
    return (JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { version: string }).version
  }
}

function loadAverage(): string {
  return os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(', ')
}

const started = new Date()
const loadAtStart = loadAverage()
const report = new Report()
const sections: [string, (r: Report) => Promise<void>][] = [
  ['micro', runMicro],
  ['redis', runRedis],
  ['http', runHttp],
  ['memory', runMemory],
]
console.log(
  `tenancy benchmarks: ${QUICK ? 'QUICK run' : 'full run'}, load average ${loadAtStart}, packages from ${FROM_SOURCE ? 'TypeScript sources (tsx, @tenant/source)' : 'dist/'}`,
)
for (const [name, section] of sections) {
  if (!enabled(name)) continue
  console.log(`\n== ${name} ==`)
  await section(report)
}
const seconds = (Date.now() - started.getTime()) / 1000
const loadAtEnd = loadAverage()

const cpus = os.cpus()
const peers = [
  'rate-limiter-flexible',
  'hono-rate-limiter',
  'lru-cache',
  'hono',
  '@hono/node-server',
  'autocannon',
  'mitata',
  'ioredis',
  'drizzle-orm',
  '@libsql/client',
  '@electric-sql/pglite',
]
const lines: string[] = [
  '# Benchmarks',
  '',
  `Written by \`pnpm bench\` (\`benchmarks/run.ts\`) on ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC; do not edit by hand. ${QUICK ? '**QUICK RUN (`BENCH_QUICK=1`): short measurements for development, not for comparison.** ' : ''}${ONLY ? `Sections run: ${[...ONLY].join(', ')}. ` : ''}The run took ${seconds.toFixed(0)} s.`,
  '',
  'Benchmarks report; they are not tests, and `pnpm test` does not run them. Every comparison is preceded by a check that the compared variants make the same decisions for the same input (listed at the end); a failing check stops the run before this file is written.',
  '',
  '## Machine',
  '',
  `- CPU: ${cpus[0]?.model ?? 'unknown'}, ${cpus.length} cores; ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM; ${os.type()} ${os.release()} ${os.arch()}`,
  `- Load average (1, 5, 15 min): ${loadAtStart} at the start, ${loadAtEnd} at the end. The machine is shared: other processes run alongside, so absolute numbers are pessimistic and noisy; ratios between variants measured in the same run are the numbers to read.`,
  `- Node ${process.versions.node} (V8 ${process.versions.v8}); the @tenant packages are loaded from ${FROM_SOURCE ? 'their TypeScript sources through tsx with `--conditions=@tenant/source`' : 'their built `dist/` output'}`,
  ...report.environment.map(([name, value]) => `- ${name}: ${value}`),
  `- Peers and tools: ${peers.map((p) => `${p} ${versionOf(p)}`).join(', ')}`,
  '',
  '## Targets',
  '',
  markdownTable(
    {
      columns: ['target', 'goal', 'measured', 'verdict'],
      rows: report.targets.map((t) => [t.name, t.goal, t.measured, verdict(t.holds)]),
    },
    true,
  ),
  '',
]
const missed = report.targets.filter((t) => t.holds === false && t.limitedBy)
if (missed.length > 0) {
  lines.push('### What limits the missed targets', '')
  for (const t of missed) lines.push(`**${t.name}.** ${t.limitedBy}`, '')
}
for (const section of report.sections) {
  lines.push(`## ${section.title}`, '', section.intro, '')
  for (const table of section.tables) {
    lines.push(`### ${table.title}`, '', markdownTable(table), '')
    if (table.note) lines.push(table.note, '')
  }
  for (const note of section.notes) lines.push(`- ${note}`)
  if (section.notes.length > 0) lines.push('')
}
lines.push(
  '## Same-decision checks (all passed in this run)',
  '',
  ...passedChecks.map((c) => `- ${c}`),
  '',
  '## Running',
  '',
  '```sh',
  'pnpm bench                              # everything, rewrites BENCHMARKS.md (6 to 8 minutes)',
  'BENCH_QUICK=1 pnpm bench                # short measurements while developing',
  'BENCH_ONLY=micro,memory pnpm bench      # some sections: micro, redis, http, memory',
  'BENCH_OUT=/tmp/bench.md pnpm bench      # write elsewhere',
  'BENCH_FROM_SOURCE=1 pnpm bench          # the TypeScript sources (tsx) instead of dist/',
  '```',
  '',
  '`pnpm bench` measures the built packages (`dist/`, what users install) and first rebuilds any package whose sources are newer than its build.',
  '',
  'Redis comes from `BENCH_REDIS_URL` or `TEST_REDIS_URL` (default `redis://127.0.0.1:6379`); its section is skipped with a note when Redis does not answer. Every key is written under a per-run prefix and deleted at the end.',
  '',
)
writeFileSync(OUT, lines.join('\n'))

console.log('\n== targets ==')
console.log(
  textTable({
    columns: ['target', 'measured', 'verdict'],
    rows: report.targets.map((t) => [t.name, t.measured, verdict(t.holds)]),
  }),
)
console.log(`\n${passedChecks.length} same-decision checks passed; wrote ${OUT} in ${seconds.toFixed(0)} s`)
process.exit(0)
