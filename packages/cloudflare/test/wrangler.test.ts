// The README's wrangler.toml, taken verbatim from the README, under wrangler's own local dev
// server (bundling, Durable Object binding and SQLite migration, rate-limit binding).
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { calendarWindow } from '@tenant/core'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { type Unstable_DevWorker, unstable_dev } from 'wrangler'

const root = fileURLToPath(new URL('..', import.meta.url))
let dir: string
let worker: Unstable_DevWorker

/** The first ```toml block of the README, pointed at the fixture Worker and our sources. */
async function readmeConfig(): Promise<string> {
  const readme = await readFile(join(root, 'README.md'), 'utf8')
  const toml = /```toml\n([\s\S]*?)```/.exec(readme)?.[1]
  if (!toml) throw new Error('README.md has no toml block')
  const alias = {
    '@tenant/cloudflare': join(root, 'src/index.ts'),
    '@tenant/core': join(root, '../core/src/index.ts'),
  }
  const aliasLine = `alias = { ${Object.entries(alias)
    .map(([name, path]) => `${JSON.stringify(name)} = ${JSON.stringify(path)}`)
    .join(', ')} }`
  return toml.replace(
    /^main = .*$/m,
    `main = ${JSON.stringify(join(root, 'test/fixtures/readme-worker.ts'))}\n${aliasLine}`,
  )
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tenant-wrangler-'))
  const config = join(dir, 'wrangler.toml')
  await writeFile(config, await readmeConfig())
  worker = await unstable_dev(join(root, 'test/fixtures/readme-worker.ts'), {
    config,
    persistTo: join(dir, 'state'),
    logLevel: 'error',
    ip: '127.0.0.1',
    experimental: { disableExperimentalWarning: true, disableDevRegistry: true, testMode: true },
  })
}, 120_000)

afterAll(async () => {
  await worker?.stop()
  await rm(dir, { recursive: true, force: true })
})

it('the README set-up runs under wrangler: exact quota through TenantQuotaObject', async () => {
  for (let attempt = 0; attempt < 3; attempt++) {
    const tenant = `readme-${Math.random().toString(36).slice(2, 10)}`
    const before = Date.now()
    const decisions = []
    for (let i = 0; i < 3; i++) {
      const response = await worker.fetch(`http://localhost/?tenant=${tenant}`)
      decisions.push((await response.json()) as { allowed: boolean; resetAt: number; reason?: string })
    }
    // Workers time decides the month; a run across a month boundary is repeated.
    if (calendarWindow('month', before).end !== calendarWindow('month', Date.now()).end) continue
    expect(decisions.map((d) => d.allowed)).toEqual([true, true, false])
    expect(decisions[2]!.reason).toMatch(/month requests/)
    expect(decisions[0]!.resetAt).toBe(calendarWindow('month', before).end)
    return
  }
  throw new Error('three runs straddled a month boundary')
}, 60_000)
