// One Request object through more than one run on Hono: `app.request(request)` hands Hono the very
// object, so its resolver's decision stays on it. No later run may take it as its own.
import { InMemoryConfigManager, InMemoryQuotaManager, ManualClock } from '@tenant/core'
import { Hono } from 'hono'
import { beforeEach, describe, expect, it } from 'vitest'
import { currentTenantId, type TenantEnv, tenancy } from './index'

describe('a Request object used by more than one run (Hono)', () => {
  let clock: ManualClock
  let configs: InMemoryConfigManager
  let quotas: InMemoryQuotaManager
  beforeEach(async () => {
    clock = new ManualClock(Date.UTC(2026, 0, 15, 10, 20, 30))
    configs = new InMemoryConfigManager({ clock })
    quotas = new InMemoryQuotaManager(configs, { clock })
    for (const id of ['acme', 'globex'])
      await configs.setTenantConfig({ id, quota: { limits: [{ window: 'day', requests: 100 }] } })
  })
  const used = async (id: string) => (await quotas.peek(id)).windows[0]!.used.requests

  it('sent again with app.request(), is checked again: a tenant suspended since is refused', async () => {
    const app = new Hono<TenantEnv>()
    app.use('*', tenancy({ configManager: configs, quota: quotas, clock }))
    app.get('/x', (c) => c.text(c.var.tenantId))
    const request = new Request('http://localhost/x', { headers: { 'X-Tenant-ID': 'acme' } })
    expect((await app.request(request)).status).toBe(200)
    await configs.setTenantConfig({ id: 'acme', status: 'suspended' })
    expect((await app.request(request)).status).toBe(403)
  })

  it('used for an internal call by several requests, runs and charges as the tenant being handled', async () => {
    const internal = new Hono<TenantEnv>()
    internal.use('*', tenancy({ configManager: configs, quota: quotas, clock }))
    internal.get('/usage', (c) => c.text(`${c.var.tenantId}|${currentTenantId()}`))
    const ping = new Request('http://internal/usage')
    const app = new Hono<TenantEnv>()
    app.use('*', tenancy({ configManager: configs, clock }))
    app.get('/me', async (c) => c.text(await (await internal.request(ping)).text()))
    const a = await app.request('/me', { headers: { 'X-Tenant-ID': 'acme' } })
    expect(await a.text()).toBe('acme|acme')
    const g = await app.request('/me', { headers: { 'X-Tenant-ID': 'globex' } })
    expect(await g.text()).toBe('globex|globex')
    expect([await used('acme'), await used('globex')]).toEqual([1, 1])
  })
})
