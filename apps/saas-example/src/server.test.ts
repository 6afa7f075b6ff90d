// /metrics of the Node/Bun composition (createServer, the app the entries serve, not listening):
// without METRICS_TOKEN it is served only on a loopback HOST, since its labels name every tenant.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createServer } from './server'

const dirs: string[] = []
afterAll(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })))
})

/** A server composed from `env` on its own libSQL file, and the log lines it wrote. */
async function compose(env: Record<string, string>) {
  const dir = await mkdtemp(join(tmpdir(), 'saas-server-'))
  dirs.push(dir)
  const lines: Record<string, unknown>[] = []
  const server = await createServer(
    { DATABASE_URL: `file:${join(dir, 'app.db')}`, ...env },
    { write: (line) => lines.push(JSON.parse(line)) },
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
