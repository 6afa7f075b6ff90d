import { describe, expect, it } from 'vitest'
import { testConfigManager } from '../testing/config-manager'
import { expectInvalidOption } from '../testing/options'
import { rejectionOf as rejects } from '../testing/quota-manager'
import { auditedStore } from './audited-store'
import { ManualClock } from './clock'
import { TenantBackendError } from './errors'
import { readTenantConfig, tenantConfigNow } from './fast-path'
import { InMemoryAuditLog } from './in-memory-audit-log'
import { InMemoryConfigManager } from './in-memory-config-manager'
import { InMemoryPlanStore } from './in-memory-plan-store'
import { InMemoryQuotaManager } from './in-memory-quota-manager'
import { ConfigPolicyEvaluator } from './policy-evaluator'
import { TokenBucketRateLimiter } from './token-bucket-rate-limiter'
import { withPlans } from './with-plans'

// With no plans at all, the view is a config manager like any other.
testConfigManager('withPlans(InMemoryConfigManager, InMemoryPlanStore)', ({ clock }) => {
  const configs = new InMemoryConfigManager({ clock })
  return withPlans(configs, new InMemoryPlanStore({ tenants: configs, clock }))
})

async function setUp() {
  const clock = new ManualClock(Date.UTC(2026, 0, 1, 12))
  const configs = new InMemoryConfigManager({ clock })
  const plans = new InMemoryPlanStore({ tenants: configs, clock })
  await plans.setPlan({
    id: 'free',
    quota: { limits: [{ window: 'minute', requests: 2 }] },
    rateLimit: { requestsPerSecond: 1, burst: 100 },
    policy: { allowedModels: ['small'] },
  })
  await configs.setTenantConfig({ id: 'acme', plan: 'free' })
  await configs.setTenantConfig({ id: 'globex', plan: 'free', policy: { allowedModels: ['large'] } })
  await configs.setTenantConfig({ id: 'solo', quota: { limits: [{ window: 'day', requests: 1 }] } })
  return { clock, configs, plans, view: withPlans(configs, plans) }
}

describe('withPlans', () => {
  // A change through auditedStore reads the tenant, edits it and writes it back: read through the
  // view, a suspend wrote the plan's allow-lists into the tenant, and later plan changes never
  // reached it. The view is no store to edit, so it is refused where a store is wired.
  it('is refused as the store of auditedStore', async () => {
    const { view } = await setUp()
    expectInvalidOption(() => auditedStore(view, new InMemoryAuditLog()), 'auditedStore.configs', /withPlans/)
  })

  it('reads a tenant without a plan exactly as the store does', async () => {
    const { configs, view } = await setUp()
    expect(await view.getTenantConfig('solo')).toBe(await configs.getTenantConfig('solo'))
    expect(await view.quotaConfig('solo')).toBe(await configs.quotaConfig('solo'))
    await expect(view.getTenantConfig('nobody')).rejects.toMatchObject({ code: 'tenant_not_found' })
    await expect(view.quotaConfig('a/b')).rejects.toMatchObject({ code: 'tenant_invalid_id' })
  })

  it('hands out the same frozen effective config for every read of an unchanged pair', async () => {
    const { view } = await setUp()
    const first = await view.getTenantConfig('globex')
    expect(await view.getTenantConfig('globex')).toBe(first)
    expect(await view.policyConfig('globex')).toBe(first.policy)
    expect(first.policy.allowedModels).toEqual(['large'])
    expect(first.quota).toEqual({ limits: [{ window: 'minute', requests: 2 }] })
    expect(Object.isFrozen(first.policy)).toBe(true)
  })

  it('applies a plan change to every tenant of the plan at once, through the engines', async () => {
    const { plans, view, configs } = await setUp()
    const quotas = new InMemoryQuotaManager(view)
    const policy = new ConfigPolicyEvaluator(view)
    const limiter = new TokenBucketRateLimiter(view)
    expect((await quotas.consume('acme', {})).allowed).toBe(true)
    expect((await quotas.consume('acme', {})).allowed).toBe(true)
    expect((await quotas.consume('acme', {})).allowed).toBe(false)
    expect((await policy.evaluate('acme', { model: 'large' })).allowed).toBe(false)
    expect((await limiter.consume('acme')).allowed).toBe(true)
    const acmeBefore = await configs.getTenantConfig('acme')

    await plans.setPlan({ id: 'free', quota: { limits: [{ window: 'minute', requests: 5 }] } })
    expect((await quotas.consume('acme', {})).allowed).toBe(true)
    expect((await quotas.consume('globex', {})).limit).toEqual({ requests: 5 })
    expect((await policy.evaluate('acme', { model: 'large' })).allowed).toBe(true)
    expect((await policy.evaluate('globex', { model: 'small' })).allowed).toBe(false)
    expect(await view.rateLimitConfig('acme')).toBeNull()
    // No tenant was rewritten.
    expect(await configs.getTenantConfig('acme')).toBe(acmeBefore)
  })

  it('fails closed with TenantBackendError when a tenant names a plan that does not exist', async () => {
    const { configs } = await setUp()
    const gone = { getPlan: (id: string) => new InMemoryPlanStore({ tenants: configs }).getPlan(id) }
    const view = withPlans(configs, gone)
    for (const read of [
      () => view.getTenantConfig('acme'),
      () => view.quotaConfig('acme'),
      () => view.policyConfig('acme'),
      () => view.rateLimitConfig('acme'),
      () => view.listTenants(),
    ]) {
      const error = await rejects(read())
      expect(error).toBeInstanceOf(TenantBackendError)
      expect(error).toMatchObject({ code: 'tenant_backend_unavailable', status: 503, tenantId: 'acme' })
      expect((error as Error).message).toMatch(/plan "free", which does not exist/)
      expect((error as Error).cause).toMatchObject({ code: 'plan_not_found' })
    }
    const quotas = new InMemoryQuotaManager(view)
    await expect(quotas.consume('acme', {})).rejects.toBeInstanceOf(TenantBackendError)
    expect(await view.getTenantConfig('solo')).toBe(await configs.getTenantConfig('solo'))
  })

  it('with caching stores, reads the tenant and the plan once more past the caches before it fails closed', async () => {
    const { configs } = await setUp()
    const calls: string[] = []
    const cachedConfigs = {
      getTenantConfig: (id: string) => configs.getTenantConfig(id),
      setTenantConfig: configs.setTenantConfig.bind(configs),
      deleteTenantConfig: configs.deleteTenantConfig.bind(configs),
      listTenants: configs.listTenants.bind(configs),
      quotaConfig: configs.quotaConfig.bind(configs),
      policyConfig: configs.policyConfig.bind(configs),
      rateLimitConfig: configs.rateLimitConfig.bind(configs),
      concurrencyConfig: configs.concurrencyConfig.bind(configs),
      invalidate: (id?: string) => void calls.push(`configs.invalidate ${id}`),
    }
    const gone = {
      getPlan: (id: string) => {
        calls.push(`getPlan ${id}`)
        return new InMemoryPlanStore({ tenants: configs }).getPlan(id)
      },
      invalidate: (id?: string) => void calls.push(`plans.invalidate ${id}`),
    }
    const error = await rejects(withPlans(cachedConfigs, gone).getTenantConfig('acme'))
    expect(error).toMatchObject({ code: 'tenant_backend_unavailable', tenantId: 'acme' })
    // Once more, not in a loop.
    expect(calls).toEqual([
      'getPlan free',
      'configs.invalidate acme',
      'plans.invalidate free',
      'getPlan free',
    ])
  })

  it('answers the chain as a value when both stores do (no promise on the fast path)', async () => {
    const { view } = await setUp()
    const onPlan = view[tenantConfigNow]('acme')
    expect(onPlan).not.toBeInstanceOf(Promise)
    expect(onPlan).toBe(await view.getTenantConfig('acme'))
    expect(readTenantConfig(view, 'solo')).not.toBeInstanceOf(Promise)
    expect(() => view[tenantConfigNow]('nobody')).toThrow(
      expect.objectContaining({ code: 'tenant_not_found' }),
    )
    // A store without the fast read is awaited, with the same answer and the same fail-closed rule.
    const { configs } = await setUp()
    const plans = new InMemoryPlanStore({ tenants: configs })
    await plans.setPlan({ id: 'free', quota: { limits: [{ window: 'hour', requests: 9 }] } })
    const slow = withPlans(configs, { getPlan: (id) => plans.getPlan(id) })
    const answer = slow[tenantConfigNow]('acme')
    expect(answer).toBeInstanceOf(Promise)
    expect((await answer).quota).toEqual({ limits: [{ window: 'hour', requests: 9 }] })
    const broken = withPlans(configs, {
      getPlan: (id) => new InMemoryPlanStore({ tenants: configs }).getPlan(id),
    })
    expect(await rejects(broken[tenantConfigNow]('acme') as Promise<unknown>)).toBeInstanceOf(
      TenantBackendError,
    )
  })

  it('passes a failing plan store through as it failed', async () => {
    const { configs } = await setUp()
    const down = new TenantBackendError('plans are down')
    const view = withPlans(configs, { getPlan: () => Promise.reject(down) })
    expect(await rejects(view.quotaConfig('acme'))).toBe(down)
  })

  it('lists effective configs, one plan lookup per plan on the page', async () => {
    const { configs, plans } = await setUp()
    let lookups = 0
    const view = withPlans(configs, {
      getPlan: (id) => {
        lookups += 1
        return plans.getPlan(id)
      },
    })
    const page = await view.listTenants({ limit: 10 })
    expect(page.items.map((t) => [t.id, t.quota.limits[0]?.requests])).toEqual([
      ['acme', 2],
      ['globex', 2],
      ['solo', 1],
    ])
    expect(lookups).toBe(1)
    expect((await view.listTenants({ limit: 1 })).next).toBe('acme')
  })

  it('passes writes through, returning what the store stored', async () => {
    const { configs, view } = await setUp()
    const written = await view.setTenantConfig({ id: 'initech', plan: 'free' })
    expect(written).toBe(await configs.getTenantConfig('initech'))
    expect(written.quota).toEqual({ limits: [] })
    await view.deleteTenantConfig('initech')
    await expect(configs.getTenantConfig('initech')).rejects.toMatchObject({ code: 'tenant_not_found' })
  })

  it('checks its arguments when called', () => {
    const configs = new InMemoryConfigManager()
    expectInvalidOption(
      () => withPlans({} as never, { getPlan: async () => ({}) as never }),
      'withPlans.configs',
      /getTenantConfig/,
    )
    expectInvalidOption(() => withPlans(configs, {} as never), 'withPlans.plans', /getPlan/)
  })
})
