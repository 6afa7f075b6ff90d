import { runInNewContext } from 'node:vm'
import { expect, it } from 'vitest'
import type { ConfigManager } from '../src/config'
import { InMemoryConfigManager } from '../src/in-memory-config-manager'
import { InMemoryPlanStore } from '../src/in-memory-plan-store'
import { withPlans } from '../src/with-plans'

// Stores without the fast read whose promises are not this realm's Promise (node:vm here; a
// promise library or a second copy of a polyfill alike): `withPlans` waits for them, as for any
// thenable, instead of taking the promise for the config and leaving its rejection unhandled.

// A user ConfigManager without the fast read, whose promises come from another realm.
function foreignPromises(inner: InMemoryConfigManager): ConfigManager {
  const foreign = <T>(p: Promise<T>): Promise<T> =>
    runInNewContext('new Promise((res, rej) => p.then(res, rej))', { p }) as Promise<T>
  return {
    getTenantConfig: (id) => foreign(inner.getTenantConfig(id)),
    setTenantConfig: (i) => inner.setTenantConfig(i),
    deleteTenantConfig: (id) => inner.deleteTenantConfig(id),
    listTenants: (o) => inner.listTenants(o),
    quotaConfig: (id) => inner.quotaConfig(id),
    policyConfig: (id) => inner.policyConfig(id),
    rateLimitConfig: (id) => inner.rateLimitConfig(id),
    concurrencyConfig: (id) => inner.concurrencyConfig(id),
  }
}

it("reads tenants from a store whose getTenantConfig answers another realm's promise", async () => {
  const inner = new InMemoryConfigManager()
  const plans = new InMemoryPlanStore({ tenants: inner })
  await plans.setPlan({ id: 'pro', quota: { limits: [{ window: 'day', requests: 10 }] } })
  await inner.setTenantConfig({ id: 'acme', plan: 'pro' })
  await inner.setTenantConfig({ id: 'solo' })
  const store = foreignPromises(inner)
  expect((await store.getTenantConfig('acme')).id).toBe('acme') // the store itself works
  const view = withPlans(store, plans)
  const solo = await view.getTenantConfig('solo').then(
    (c) => c.id,
    (e) => `${e.name} ${e.code}`,
  )
  const acme = await view.getTenantConfig('acme').then(
    (c) => JSON.stringify(c.quota),
    (e) => `${e.name} ${e.code}`,
  )
  expect(solo).toBe('solo')
  expect(acme).toBe(JSON.stringify({ limits: [{ window: 'day', requests: 10 }] }))
})

it("reads plans from a store whose getPlan answers another realm's promise", async () => {
  const configs = new InMemoryConfigManager()
  const inner = new InMemoryPlanStore({ tenants: configs })
  await inner.setPlan({ id: 'pro', quota: { limits: [{ window: 'day', requests: 10 }] } })
  await configs.setTenantConfig({ id: 'acme', plan: 'pro' })
  const plans = {
    getPlan: (id: string) =>
      runInNewContext('new Promise((res, rej) => p.then(res, rej))', { p: inner.getPlan(id) }),
  }
  const view = withPlans(configs, plans)
  const acme = await view.getTenantConfig('acme').then(
    (c) => JSON.stringify(c.quota),
    (e) => `${e.name} ${e.code} ${e.message}`,
  )
  expect(acme).toBe(JSON.stringify({ limits: [{ window: 'day', requests: 10 }] }))
})

it('answers an unknown tenant through such a store with tenant_not_found, leaving no rejection unhandled', async () => {
  const inner = new InMemoryConfigManager()
  const view = withPlans(foreignPromises(inner), new InMemoryPlanStore({ tenants: inner }))
  const unhandled: unknown[] = []
  const on = (e: unknown) => unhandled.push(e)
  process.on('unhandledRejection', on)
  const got = await view.getTenantConfig('nope').then(
    () => 'ok',
    (e) => e.code,
  )
  await new Promise((r) => setTimeout(r, 50))
  process.off('unhandledRejection', on)
  expect(got).toBe('tenant_not_found')
  expect(unhandled).toEqual([])
})
