// A TenantCache keyed by the resolved tenant (a TenantRef) across a recycled id: a request of the
// deleted customer still running after AdminService's freshStart cleared the cache must not leave
// an entry the next customer of the id reads.
import {
  AdminService,
  auditedStore,
  InMemoryAuditLog,
  InMemoryConfigManager,
  ManualClock,
  memoryCacheStore,
  TenantCache,
  type TenantRef,
} from '@tenant/core'
import { describe, expect, it } from 'vitest'
import { getTenant, getTenantId, withTenancy } from './index'

describe('TenantCache across a deleted and re-created tenant', () => {
  async function recycle(keyOf: (request: Request) => string | TenantRef) {
    const clock = new ManualClock(1_000_000)
    const configs = new InMemoryConfigManager({ clock })
    const auditLog = new InMemoryAuditLog()
    const cache = new TenantCache<{ owner: string }>(memoryCacheStore({ max: 100, clock }))
    const admin = new AdminService({
      store: auditedStore(configs, auditLog),
      auditLog,
      freshStart: async (tenantId) => {
        await cache.clear(tenantId)
      },
    })
    const ctx = { actor: 'ops' }
    await admin.create({ id: 'acme' }, ctx)
    let release!: () => void
    const upstream = new Promise<void>((resolve) => (release = resolve))
    let entered!: () => void
    const waiting = new Promise<void>((resolve) => (entered = resolve))
    const handler = withTenancy(
      async (request) => {
        const tenant = keyOf(request)
        const cached = await cache.get(tenant, 'profile')
        if (cached) return Response.json(cached)
        const customer = request.headers.get('X-Customer')!
        if (customer === 'old') {
          // A slow upstream (an LLM call); then the answer is cached for the tenant.
          entered()
          await upstream
        }
        const profile = { owner: customer }
        await cache.set(tenant, 'profile', profile)
        return Response.json(profile)
      },
      { configManager: configs },
    )
    const call = (customer: string) =>
      handler(new Request('http://x/', { headers: { 'X-Tenant-ID': 'acme', 'X-Customer': customer } }))
    const old = call('old')
    await waiting
    await admin.delete('acme', ctx)
    clock.advance(1)
    await admin.create({ id: 'acme' }, ctx) // freshStart clears acme's entries
    release()
    expect(await (await old).json()).toEqual({ owner: 'old' })
    return (await call('new')).json()
  }

  it("keyed by the resolved tenant, the deleted customer's late entry is not the next customer's", async () => {
    expect(await recycle((request) => getTenant(request)!)).toEqual({ owner: 'new' })
  })

  it('keyed by the id alone, it is: why the README says to pass the tenant', async () => {
    expect(await recycle((request) => getTenantId(request)!)).toEqual({ owner: 'old' })
  })
})
