import { spawn } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createClient } from '@libsql/client'
import { drizzle } from 'drizzle-orm/libsql'
import { expect, it } from 'vitest'
import { migrate } from './migrate'

const pkg = resolve(__dirname, '..')
const child = `
import { createRequire } from 'node:module'
const require = createRequire(${JSON.stringify(pkg + '/package.json')})
const { createClient } = await import(require.resolve('@libsql/client'))
const { drizzle } = await import(require.resolve('drizzle-orm/libsql'))
const { migrate } = await import(${JSON.stringify(pkg + '/dist/index.js')})
const [url, at] = process.argv.slice(1)
const db = drizzle({ client: createClient({ url }) })
while (Date.now() < Number(at)) {}
try { console.log(JSON.stringify({ ok: await migrate(db) })) }
catch (e) { console.log(JSON.stringify({ err: String(e?.code) + ': ' + e?.message })) }
`

function run(url: string, at: number): Promise<string> {
  return new Promise((res) => {
    const p = spawn(process.execPath, ['--input-type=module', '-e', child, url, String(at)], { cwd: pkg })
    let out = ''
    p.stdout.on('data', (d) => (out += d))
    p.stderr.on('data', (d) => (out += d))
    p.on('close', () => res(out.trim()))
  })
}

// Several processes starting at once on one libSQL file: every migration is applied once and
// whole, and a process that finds the file locked (SQLite does not wait for another process's
// lock) fails with a TenantBackendError, never a raw driver error. Runs the built package.
it('migrates one libSQL file from several processes at once: each migration once, failures typed', async () => {
  const url = `file:${join(mkdtempSync(join(tmpdir(), 'tenant-migrate-')), 'x.db')}`
  const at = Date.now() + 1500
  const outs = (await Promise.all(Array.from({ length: 4 }, () => run(url, at)))).map(
    (out) => JSON.parse(out.split('\n').pop()!) as { ok?: string[]; err?: string },
  )
  for (const out of outs) {
    if (out.ok === undefined) expect(out.err).toMatch(/^tenant_backend_unavailable: /)
  }
  // The retry the README asks of a start that failed (on a loaded machine every process can find
  // the file locked): it applies what none of them did.
  const client = createClient({ url })
  const retried = await migrate(drizzle({ client }))
  // What the processes and the retry applied adds up to every migration, each once.
  const tags = (await client.execute('select tag from __tenant_migrations order by tag')).rows.map(
    (r) => r.tag,
  )
  client.close()
  const applied = [...outs.flatMap((out) => out.ok ?? []), ...retried]
  expect(new Set(applied).size).toBe(applied.length)
  expect(tags.length).toBeGreaterThan(0)
  expect([...applied].sort()).toEqual(tags)
}, 60_000)
