// /metrics of the Node/Bun composition (createServer, the app the entries serve, not listening):
// without METRICS_TOKEN it is served only on a loopback HOST, since its labels name every tenant.
// seed() creates tenants with the admin plane's resets.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Clock, ManualClock } from '@tenant/core'
import { afterAll, describe, expect, it } from 'vitest'
import { START } from '../test/in-process'
import { createServer } from './server'

const dirs: string[] = []
afterAll(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })))
})

/** A server composed from `env` on its own libSQL file, and the log lines it wrote. */
async function compose(env: Record<string, string>, clock?: Clock) {
  const dir = await mkdtemp(join(tmpdir(), 'saas-server-'))
  dirs.push(dir)
  const lines: Record<string, unknown>[] = []
  const server = await createServer(
    { DATABASE_URL: `file:${join(dir, 'app.db')}`, ...env },
    { write: (line) => lines.push(JSON.parse(line)), ...(clock ? { clock } : {}) },
  )
  const scrape = (headers: Record<string, string> = {}) => server.app.request('/metrics', { headers })
  const warnings = () => lines.filter((l) => l.msg === 'metrics disabled')
  return { server, scrape, warnings }
}

describe('createServer: /metrics', () => {
  it.each(['0.0.0.0', '::', '192.168.1.20', 'saas.internal'])(
    'is not served on HOST=%s without METRICS_TOKEN, and one warning says why',
    async (HOST) => {
      const { server, scrape, warnings } = await compose({ HOST })
      try {
        const response = await scrape()
        expect(response.status).toBe(503)
        const body = await response.json()
        expect(body).toMatchObject({ code: 'metrics_disabled', status: 503 })
        expect(JSON.stringify(body)).not.toContain('tenant_')
        expect(warnings()).toEqual([
          expect.objectContaining({
            level: 'warn',
            reason: expect.stringContaining(`HOST ${HOST} is not a loopback address`),
            fix: expect.stringContaining('set METRICS_TOKEN'),
          }),
        ])
      } finally {
        await server.close()
      }
    },
  )

  it.each(['127.0.0.1', '::1', 'localhost'])(
    'is open on the loopback HOST=%s, without a warning',
    async (HOST) => {
      const { server, scrape, warnings } = await compose({ HOST })
      try {
        const response = await scrape()
        expect(response.status).toBe(200)
        expect(await response.text()).toContain('# TYPE tenant_requests_total counter')
        expect(warnings()).toEqual([])
      } finally {
        await server.close()
      }
    },
  )

  it('needs the bearer token on any HOST when METRICS_TOKEN is set', async () => {
    const token = 'metrics-token-0123456789'
    for (const HOST of ['0.0.0.0', '127.0.0.1']) {
      const { server, scrape, warnings } = await compose({ HOST, METRICS_TOKEN: token })
      try {
        expect((await scrape()).status).toBe(401)
        expect((await scrape({ Authorization: `Bearer ${token}` })).status).toBe(200)
        expect(warnings()).toEqual([])
      } finally {
        await server.close()
      }
    }
  })
})

describe('createServer: seed()', () => {
  const TOKEN = 'server-test-admin-token-0123456789'
  const admin = { Authorization: `Bearer ${TOKEN}` }
  const asFree = { 'X-Tenant-ID': 'demo-free' }

  /** Deletes demo-free through /admin, then seeds again: a new customer under the old id. */
  async function reseed(server: Awaited<ReturnType<typeof compose>>['server']) {
    expect(
      (await server.app.request('/admin/tenants/demo-free', { method: 'DELETE', headers: admin })).status,
    ).toBe(204)
    const seeded = await server.seed()
    expect(seeded.find((r) => r.id === 'demo-free')?.outcome).toBe('created')
  }

  it("gives a demo tenant re-created under a deleted one's id none of its resources", async () => {
    const { server } = await compose({ ADMIN_TOKEN: TOKEN, LOG_LEVEL: 'error' })
    try {
      const app = server.app
      await server.seed()
      const created = await app.request('/api/v1/resources', {
        method: 'POST',
        headers: { ...asFree, 'Content-Type': 'application/json' },
        body: JSON.stringify({ name: 'old-customer-secret', data: { card: '4111' } }),
      })
      expect(created.status).toBe(201)
      await reseed(server)
      const list = await app.request('/api/v1/resources', { headers: asFree })
      expect(list.status).toBe(200)
      expect(((await list.json()) as { items: unknown[] }).items).toEqual([])
    } finally {
      await server.close()
    }
  })

  it("gives a demo tenant re-created under a deleted one's id none of its quota usage or spent burst", async () => {
    // A stopped clock: the free plan's bucket (burst 5, 2 a second) does not refill.
    const { server } = await compose({ ADMIN_TOKEN: TOKEN, LOG_LEVEL: 'error' }, new ManualClock(START))
    try {
      const app = server.app
      await server.seed()
      // Each body read to its end, so that no request holds one of the plan's 4 slots.
      const list = async () => {
        const response = await app.request('/api/v1/resources', { headers: asFree })
        await response.text()
        return response
      }
      for (let i = 0; i < 5; i++) expect((await list()).status).toBe(200)
      const spent = await app.request('/api/v1/resources', { headers: asFree })
      expect(await spent.json()).toMatchObject({ status: 429, code: 'tenant_rate_limited' })
      await reseed(server)
      const usage = await app.request('/admin/tenants/demo-free/usage', { headers: admin })
      const windows = ((await usage.json()) as { windows: { used: { requests: number } }[] }).windows
      expect(windows.map((w) => w.used.requests)).toEqual([0, 0])
      expect((await list()).status).toBe(200)
    } finally {
      await server.close()
    }
  })
})
