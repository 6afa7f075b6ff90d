// The resolver's decision rides on the Request object, which outlives the run it was made for: a
// Request can be sent again, and a module-level Request can serve several requests' internal calls.
// No later run may take that decision as its own: it would skip the tenant check (a tenant
// suspended or deleted since), decide on an old config, or run and charge as another tenant.
import { InMemoryConfigManager, InMemoryQuotaManager, ManualClock } from '@tenant/core'
import { beforeEach, describe, expect, it } from 'vitest'
import { okHandler, recorder, req } from '../test/helpers'
import { currentTenantId, getTenant, getTenantId, tenancy, tenantQuota } from './index'

describe('a Request object used by more than one run', () => {
  let clock: ManualClock
  let configs: InMemoryConfigManager
  let quotas: InMemoryQuotaManager
  beforeEach(async () => {
    clock = new ManualClock(Date.UTC(2026, 0, 15, 10, 20, 30))
    configs = new InMemoryConfigManager({ clock })
    quotas = new InMemoryQuotaManager(configs, { clock })
    for (const id of ['acme', 'globex'])
      await configs.setTenantConfig({
        id,
        quota: { limits: [{ window: 'day', requests: 100, tokens: 10_000 }] },
      })
  })
  const used = async (manager: InMemoryQuotaManager, id: string) =>
    (await manager.peek(id)).windows[0]!.used.requests

  it('sent again, is checked again: a tenant suspended or deleted since is refused', async () => {
    const chain = tenancy({ configManager: configs, quota: quotas, clock })
    const request = req('/', { tenant: 'acme' })
    expect((await chain(request, okHandler().next)).status).toBe(200)
    await configs.setTenantConfig({ id: 'acme', status: 'suspended' })
    expect((await chain(request, okHandler().next)).status).toBe(403)
    await configs.deleteTenantConfig('acme')
    expect((await chain(request, okHandler().next)).status).toBe(403)
    // A handler that threw ends its run too.
    const thrown = req('/', { tenant: 'globex' })
    await expect(
      chain(thrown, () => {
        throw new Error('handler failed')
      }),
    ).rejects.toThrow('handler failed')
    await configs.setTenantConfig({ id: 'globex', status: 'suspended' })
    expect((await chain(thrown, okHandler().next)).status).toBe(403)
  })

  it("sent again after its tenant was re-created, runs under the new tenant's config and settles as its own", async () => {
    const { hooks, errors } = recorder()
    const chain = tenancy({
      configManager: configs,
      quota: { manager: quotas, actualTokens: () => 500 },
      clock,
      hooks,
    })
    const request = req('/', { tenant: 'acme', headers: { 'X-Token-Count': '100' } })
    expect((await chain(request, okHandler().next)).status).toBe(200)
    await configs.deleteTenantConfig('acme')
    await quotas.reset('acme')
    clock.advance(1_000)
    await configs.setTenantConfig({ id: 'acme', quota: { limits: [{ window: 'day', requests: 1 }] } })
    // The old config allowed 100 requests a day, the new one 1.
    expect((await chain(request, okHandler().next)).status).toBe(200)
    expect((await chain(request, okHandler().next)).status).toBe(429)
    expect(errors).toEqual([])
  })

  it('used for internal calls by two requests at once, getTenantId answers each handler its own tenant', async () => {
    // Both sub-chains decide on the shared Request before either handler reads it: the object
    // carries the later decision, the other handler still reads its own.
    const ping = new Request('https://api.example.com/internal/usage')
    const sub = tenantQuota({ manager: quotas, clock })
    let decided = 0
    let bothDecided!: () => void
    const gate = new Promise<void>((resolve) => (bothDecided = resolve))
    const outer = tenancy({ configManager: configs, clock })
    const handler = () =>
      sub(ping, async (r) => {
        if (++decided === 2) bothDecided()
        await gate
        return new Response(`${currentTenantId()}|${getTenantId(r ?? ping)}|${getTenant(r ?? ping)?.id}`)
      })
    const answers = await Promise.all(
      ['acme', 'globex'].map(async (tenant) => (await outer(req('/', { tenant }), handler)).text()),
    )
    expect(answers).toEqual(['acme|acme|acme', 'globex|globex|globex'])
  })

  for (const [name, makeSub] of [
    [
      'with its own tenancy()',
      (sub: InMemoryQuotaManager) => tenancy({ configManager: configs, quota: sub, clock }),
    ],
    ['with tenantQuota() alone', (sub: InMemoryQuotaManager) => tenantQuota({ manager: sub, clock })],
  ] as const) {
    it(`used for an internal call by several requests, a sub-app ${name} runs and charges as the tenant being handled`, async () => {
      const subQuotas = new InMemoryQuotaManager(configs, { clock })
      const sub = makeSub(subQuotas)
      // A module-level Request for an internal call (no body: reusable under the Fetch spec).
      const ping = new Request('https://api.example.com/internal/usage')
      const outer = tenancy({ configManager: configs, quota: quotas, clock })
      const handler = () =>
        sub(ping, async (r) => new Response(`${currentTenantId()}|${getTenantId(r ?? ping)}`))
      expect(await (await outer(req('/', { tenant: 'acme' }), handler)).text()).toBe('acme|acme')
      expect(await (await outer(req('/', { tenant: 'globex' }), handler)).text()).toBe('globex|globex')
      // Both at once: each in its own scope.
      const [a, g] = await Promise.all(
        ['acme', 'globex'].map(async (tenant) => (await outer(req('/', { tenant }), handler)).text()),
      )
      expect([a, g]).toEqual(['acme|acme', 'globex|globex'])
      expect([await used(subQuotas, 'acme'), await used(subQuotas, 'globex')]).toEqual([2, 2])
    })
  }

  // Code of one request that reads another request's own Request object (a batch flushed from the
  // first request's work, a listener one request registered and another fired): it got the tenant
  // of the scope it ran in, since the previous fix for a shared Request object took any decision
  // read in another request's scope for a stale one.
  it("read from another request's code, a Request answers its own run's tenant and config", async () => {
    await configs.setTenantConfig({ id: 'globex', metadata: { plan: 'G' } })
    let queued!: Request
    let onQueued!: () => void
    const isQueued = new Promise<void>((resolve) => (onQueued = resolve))
    let release!: () => void
    const held = new Promise<void>((resolve) => (release = resolve))
    const chain = tenancy({ configManager: configs, quota: quotas, clock })
    const handler = async (passed?: Request) => {
      const request = passed!
      if (getTenantId(request) === 'globex') {
        queued = request
        onQueued()
        await held
        return new Response('globex done')
      }
      await isQueued
      return new Response(`${getTenantId(queued)}|${getTenant(queued)?.metadata.plan}`)
    }
    const globex = chain(req('/', { tenant: 'globex' }), handler)
    const acme = await chain(req('/', { tenant: 'acme' }), handler)
    expect(await acme.text()).toBe('globex|G')
    release()
    expect(await (await globex).text()).toBe('globex done')
  })
})
