// The commands a new user runs first, as the README gives them: `pnpm start` (and `--seed`) from
// the repository root, `pnpm seed`, the Bun entry; and the curl commands the banner prints, run as
// printed. Each start uses its own temporary database and port 0.
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { appDir, bin, type Child, childEnv, repoRoot, runToEnd, startChild } from './process'

const sh = promisify(execFile)
const START_TIMEOUT_MS = 60_000
let dir: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'saas-e2e-start-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

/** The `curl` lines of the banner's "Try:" block. */
function printedCurls(output: string): string[] {
  return output
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('curl '))
}

/** Runs a printed command through the shell, as a user pasting it would. */
async function runPrinted(command: string): Promise<unknown> {
  const { stdout } = await sh('sh', ['-c', command], { timeout: 10_000 })
  return JSON.parse(stdout)
}

async function start(args: string[], env: Record<string, string>): Promise<{ child: Child; url: string }> {
  const child = startChild('pnpm', args, { cwd: repoRoot, env: childEnv({ PORT: '0', ...env }) })
  try {
    const [, url] = await child.waitFor(/listening on (http:\/\/\S+)/, START_TIMEOUT_MS)
    // The banner is one write; wait for its last line too.
    await child.waitFor(/Authorization: Bearer [^"]+"\n/, 5_000)
    return { child, url: url! }
  } catch (error) {
    await child.stop()
    throw error
  }
}

describe('pnpm start --seed (root), then pnpm seed', () => {
  const database = () => `file:${join(dir, 'seeded', 'nested', 'app.db')}`
  let server: { child: Child; url: string } | undefined

  afterAll(async () => {
    await server?.child.stop()
  })

  it('creates the folder and the database, seeds two demo tenants and prints the URL and curls that work', async () => {
    server = await start(['start', '--seed'], { DATABASE_URL: database() })
    const output = server.child.output()
    expect(output).toContain(`libSQL file ${join(dir, 'seeded', 'nested', 'app.db')}`)
    expect(output).toMatch(/admin token: \S+ \(generated for this run; set ADMIN_TOKEN to keep one\)/)
    expect(output).toContain('Demo tenants: demo-free (free, created), demo-pro (pro, created)')

    const [create, list, admin] = printedCurls(output)
    expect(await runPrinted(create!)).toMatchObject({ name: 'hello', data: {} })
    expect(await runPrinted(list!)).toMatchObject({ items: [expect.objectContaining({ name: 'hello' })] })
    const tenants = (await runPrinted(admin!)) as { items: { id: string; plan: string }[] }
    expect(tenants.items.map((t) => [t.id, t.plan])).toEqual([
      ['demo-free', 'free'],
      ['demo-pro', 'pro'],
    ])
  })

  it('demo tenants differ in plan: the free one may not use a pro model', async () => {
    // The limits come from the plans; the tenants themselves set none.
    const ask = (tenant: string) =>
      fetch(`${server!.url}/api/v1/resources`, { headers: { 'X-Tenant-ID': tenant, 'X-Model': 'gpt-4o' } })
    expect((await ask('demo-free')).status).toBe(403)
    expect((await ask('demo-pro')).status).toBe(200)
  })

  it('pnpm seed is idempotent: the plans and tenants are there already and stay as they are', async () => {
    const { code, output } = await runToEnd('pnpm', ['seed'], {
      cwd: repoRoot,
      env: childEnv({ DATABASE_URL: database() }),
      timeoutMs: START_TIMEOUT_MS,
    })
    expect(code, output).toBe(0)
    expect(output).toMatch(/^exists +demo-free +plan free$/m)
    expect(output).toMatch(/^exists +demo-pro +plan pro$/m)
  })
})

describe('pnpm start on an empty database', () => {
  let server: { child: Child; url: string } | undefined
  afterAll(async () => {
    await server?.child.stop()
  })

  it('prints a first curl that creates a tenant, and one that uses it', async () => {
    server = await start(['start'], {
      DATABASE_URL: `file:${join(dir, 'empty.db')}`,
      ADMIN_TOKEN: 'e2e-admin-token-0123456789',
    })
    const output = server.child.output()
    expect(output).toContain('admin token: from ADMIN_TOKEN')
    const [createTenant, createResource] = printedCurls(output)
    expect(createTenant).toContain('Bearer $ADMIN_TOKEN')
    const env = { ...process.env, ADMIN_TOKEN: 'e2e-admin-token-0123456789' }
    const { stdout } = await sh('sh', ['-c', createTenant!], { env, timeout: 10_000 })
    expect(JSON.parse(stdout)).toMatchObject({ id: 'acme', status: 'active' })
    expect(await runPrinted(createResource!)).toMatchObject({ name: 'hello' })
  })
})

describe('process life cycle', () => {
  it('stops cleanly on SIGTERM: closes the server and the database, exits 0', async () => {
    const child = startChild(bin('tsx'), ['--conditions=@tenant/source', 'src/node.ts'], {
      cwd: appDir,
      env: childEnv({ PORT: '0', DATABASE_URL: `file:${join(dir, 'sigterm.db')}` }),
    })
    try {
      await child.waitFor(/listening on/, START_TIMEOUT_MS)
    } finally {
      await child.stop()
    }
    expect(await child.exited()).toBe(0)
  })

  it('refuses invalid settings with every problem listed, and exits 1', async () => {
    const { code, output } = await runToEnd(bin('tsx'), ['--conditions=@tenant/source', 'src/node.ts'], {
      cwd: appDir,
      env: childEnv({ PORT: 'eighty', DATABASE_URL: 'mysql://x', ADMIN_TOKEN: 'short' }),
      timeoutMs: START_TIMEOUT_MS,
    })
    expect(code).toBe(1)
    expect(output).toContain('invalid settings:')
    expect(output).toMatch(/PORT: /)
    expect(output).toMatch(/DATABASE_URL: must start with file:, libsql: or postgres:/)
    expect(output).toMatch(/ADMIN_TOKEN: use at least 16 characters/)
  })
})

describe('the Bun entry (pnpm start:bun)', () => {
  let child: Child | undefined
  afterAll(async () => {
    await child?.stop()
  })

  it('serves the app on Bun.serve', async () => {
    child = startChild('pnpm', ['--filter', 'saas-example', 'start:bun'], {
      cwd: repoRoot,
      env: childEnv({ PORT: '0', DATABASE_URL: `file:${join(dir, 'bun.db')}` }),
    })
    const [, url] = await child.waitFor(/listening on (http:\/\/\S+)/, START_TIMEOUT_MS)
    const health = await fetch(`${url}/health`)
    expect(await health.json()).toEqual({ status: 'ok', checks: { database: 'ok' } })
  })
})
