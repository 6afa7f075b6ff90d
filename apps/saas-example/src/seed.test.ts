// `pnpm seed` (src/seed.ts) creates tenants through the admin plane's service (appAdminService),
// so a demo tenant it re-creates under the id of a deleted one starts with none of its rows.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { seed } from './seed'
import { createServer } from './server'

const dirs: string[] = []
afterAll(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })))
})

const TOKEN = 'seed-test-admin-token-0123456789'

describe('pnpm seed', () => {
  it("gives a demo tenant re-created under a deleted one's id none of its resources", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'saas-seed-'))
    dirs.push(dir)
    const env = { DATABASE_URL: `file:${join(dir, 'app.db')}`, ADMIN_TOKEN: TOKEN, LOG_LEVEL: 'error' }
    const asFree = { 'X-Tenant-ID': 'demo-free' }
    expect(await seed(env)).toContain('demo-free')
    // A customer of demo-free stores a row; then demo-free is deleted through /admin.
    const before = await createServer(env, { write: () => {} })
    try {
      const created = await before.app.request('/api/v1/resources', {
        method: 'POST',
        headers: { ...asFree, 'Content-Type': 'application/json' },
        body: JSON.stringify({ name: 'old-customer-secret', data: { card: '4111' } }),
      })
      expect(created.status).toBe(201)
      const deleted = await before.app.request('/admin/tenants/demo-free', {
        method: 'DELETE',
        headers: { Authorization: `Bearer ${TOKEN}` },
      })
      expect(deleted.status).toBe(204)
    } finally {
      await before.close()
    }
    // pnpm seed creates demo-free again: a new customer under the old id.
    expect(await seed(env)).toMatch(/created {2}demo-free +plan free/)
    const after = await createServer(env, { write: () => {} })
    try {
      const list = await after.app.request('/api/v1/resources', { headers: asFree })
      expect(list.status).toBe(200)
      expect(((await list.json()) as { items: unknown[] }).items).toEqual([])
    } finally {
      await after.close()
    }
  })
})
