import { describe, expect, it } from 'vitest'
import { InvalidTenantConfigError } from './errors'
import { deepFreeze, isDeeplyFrozen } from './json'
import { effectiveTenantConfig, toPlanConfigInput, validatePlanId } from './plans'
import {
  type PlanConfig,
  type PlanConfigInput,
  planConfigInputSchema,
  planConfigSchema,
  type TenantConfig,
  type TenantConfigInput,
  tenantConfigInputSchema,
  tenantConfigSchema,
} from './schemas'

const T0 = Date.UTC(2026, 0, 1)

function plan(input: PlanConfigInput): PlanConfig {
  return deepFreeze({ ...planConfigInputSchema.parse(input), createdAt: T0, updatedAt: T0 })
}
function tenant(input: TenantConfigInput): TenantConfig {
  return deepFreeze({ ...tenantConfigInputSchema.parse(input), createdAt: T0 + 1, updatedAt: T0 + 2 })
}

const pro = plan({
  id: 'pro',
  quota: {
    limits: [
      { window: 'minute', requests: 60 },
      { window: 'day', requests: 10_000, tokens: 1_000_000 },
    ],
  },
  rateLimit: { requestsPerSecond: 5, burst: 10 },
  policy: { allowedModels: ['small', 'large'], allowedTools: ['search'], allowedPaths: ['/v1/*'] },
  metadata: { tier: 2 },
})

describe('plan schemas', () => {
  it('gives a plan the defaults of a tenant, without status or plan', () => {
    expect(planConfigInputSchema.parse({ id: 'free' })).toEqual({
      id: 'free',
      quota: { limits: [] },
      rateLimit: null,
      concurrency: null,
      policy: { allowedModels: [], allowedTools: [], allowedMethods: [], allowedPaths: [] },
      metadata: {},
    })
    for (const key of ['status', 'plan', 'createdAt']) {
      expect(planConfigInputSchema.safeParse({ id: 'free', [key]: 'x' }).error?.issues[0]?.code, key).toBe(
        'unrecognized_keys',
      )
    }
    expect(planConfigSchema.safeParse({ ...planConfigInputSchema.parse({ id: 'free' }) }).success).toBe(false)
  })

  it('checks plan ids like tenant ids, in the input and on a tenant', () => {
    expect(planConfigInputSchema.safeParse({ id: 'a/b' }).error?.issues[0]?.message).toMatch(/plan id/)
    expect(tenantConfigInputSchema.safeParse({ id: 'acme', plan: 'a b' }).error?.issues[0]?.path).toEqual([
      'plan',
    ])
    expect(tenantConfigInputSchema.parse({ id: 'acme', plan: 'pro' }).plan).toBe('pro')
    expect(validatePlanId('pro-2026.v1_x')).toBe('pro-2026.v1_x')
    for (const bad of ['', 'a/b', 'x'.repeat(256), 42]) {
      expect(() => validatePlanId(bad)).toThrow(InvalidTenantConfigError)
    }
  })

  it('reads a stored tenant written before plans as one without a plan', () => {
    const { plan: _plan, ...old } = tenant({ id: 'acme' })
    expect(tenantConfigSchema.parse(old).plan).toBeNull()
  })

  it('toPlanConfigInput drops the timestamps', () => {
    expect(toPlanConfigInput(pro)).toEqual(planConfigInputSchema.parse(toPlanConfigInput(pro)))
    expect(toPlanConfigInput(pro)).not.toHaveProperty('createdAt')
  })
})

describe('effectiveTenantConfig', () => {
  it('returns the tenant itself without a plan', () => {
    const solo = tenant({ id: 'solo', quota: { limits: [{ window: 'day', requests: 1 }] } })
    expect(effectiveTenantConfig(solo, null)).toBe(solo)
  })

  // A plan not found (getPlanOrNull's null) answered the tenant's own config: every allow-list
  // empty and no plan quota, where withPlans fails closed.
  it('refuses no plan for a tenant on a plan', () => {
    const acme = tenant({ id: 'acme', plan: 'pro' })
    expect(() => effectiveTenantConfig(acme, null)).toThrowError(
      expect.objectContaining({ code: 'tenant_invalid_config', message: expect.stringMatching(/not found/) }),
    )
  })

  it('inherits everything the tenant does not set, sharing the plan objects', () => {
    const acme = tenant({ id: 'acme', plan: 'pro', metadata: { name: 'Acme' }, status: 'suspended' })
    const effective = effectiveTenantConfig(acme, pro)
    expect(effective).toEqual({ ...acme, quota: pro.quota, rateLimit: pro.rateLimit, policy: pro.policy })
    // Tenants without overrides share the plan's objects (and what the quota engines derive from them).
    expect(effective.quota).toBe(pro.quota)
    expect(effective.policy).toBe(pro.policy)
    expect(effective.rateLimit).toBe(pro.rateLimit)
    expect(effective.status).toBe('suspended')
    expect(effective.plan).toBe('pro')
    expect(effective.metadata).toEqual({ name: 'Acme' })
  })

  it('overrides quota per window and dimension: omitted inherited, 0 unlimited, tenant-only windows added', () => {
    const acme = tenant({
      id: 'acme',
      plan: 'pro',
      quota: {
        limits: [{ window: 'month', tokens: 5_000_000 }, { window: 'day', tokens: 0 }, { window: 'minute' }],
      },
    })
    expect(effectiveTenantConfig(acme, pro).quota).toEqual({
      limits: [
        { window: 'minute', requests: 60 },
        { window: 'day', requests: 10_000, tokens: 0 },
        { window: 'month', tokens: 5_000_000 },
      ],
    })
    const empty = plan({ id: 'empty' })
    const own = tenant({ id: 'own', plan: 'empty', quota: { limits: [{ window: 'hour', requests: 3 }] } })
    expect(effectiveTenantConfig(own, empty).quota).toBe(own.quota)
  })

  it('merges subject patterns: a tenant pattern replaces the plan one of the same match, the rest is inherited', () => {
    const gateway = plan({
      id: 'gateway',
      quota: {
        limits: [{ window: 'minute', requests: 60 }],
        subjects: [
          { match: 'model:*', limits: [{ window: 'minute', tokens: 10_000 }] },
          { match: 'key:*', limits: [{ window: 'day', requests: 1000 }] },
        ],
      },
    })
    const acme = tenant({
      id: 'acme',
      plan: 'gateway',
      quota: { limits: [], subjects: [{ match: 'model:*', limits: [{ window: 'minute', tokens: 50_000 }] }] },
    })
    expect(effectiveTenantConfig(acme, gateway).quota).toEqual({
      limits: [{ window: 'minute', requests: 60 }],
      subjects: [
        { match: 'model:*', limits: [{ window: 'minute', tokens: 50_000 }] },
        { match: 'key:*', limits: [{ window: 'day', requests: 1000 }] },
      ],
    })
    const plain = tenant({ id: 'plain', plan: 'gateway' })
    expect(effectiveTenantConfig(plain, gateway).quota).toBe(gateway.quota)
  })

  it("takes the tenant's rate limit when it has one", () => {
    const acme = tenant({ id: 'acme', plan: 'pro', rateLimit: { requestsPerSecond: 1, burst: 1 } })
    expect(effectiveTenantConfig(acme, pro).rateLimit).toEqual({ requestsPerSecond: 1, burst: 1 })
    expect(
      effectiveTenantConfig(tenant({ id: 'b', plan: 'empty' }), plan({ id: 'empty' })).rateLimit,
    ).toBeNull()
  })

  it("takes the tenant's concurrency cap when it has one, else the plan's", () => {
    const capped = plan({ id: 'capped', concurrency: { maxInFlight: 50 } })
    expect(effectiveTenantConfig(tenant({ id: 'a', plan: 'capped' }), capped).concurrency).toEqual({
      maxInFlight: 50,
    })
    const own = tenant({ id: 'b', plan: 'capped', concurrency: { maxInFlight: 2 } })
    expect(effectiveTenantConfig(own, capped).concurrency).toEqual({ maxInFlight: 2 })
    expect(effectiveTenantConfig(tenant({ id: 'c', plan: 'pro' }), pro).concurrency).toBeNull()
    expect(() => tenantConfigInputSchema.parse({ id: 'd', concurrency: { maxInFlight: 0 } })).toThrow()
    expect(() => tenantConfigInputSchema.parse({ id: 'd', concurrency: { maxInFlight: 100_001 } })).toThrow()
  })

  it('takes each non-empty allow-list of the tenant and the plan for the others', () => {
    const acme = tenant({
      id: 'acme',
      plan: 'pro',
      policy: { allowedModels: ['tiny'], allowedMethods: ['GET'] },
    })
    expect(effectiveTenantConfig(acme, pro).policy).toEqual({
      allowedModels: ['tiny'],
      allowedTools: ['search'],
      allowedMethods: ['GET'],
      allowedPaths: ['/v1/*'],
    })
    const all = tenant({
      id: 'all',
      plan: 'pro',
      policy: { allowedModels: ['a'], allowedTools: ['b'], allowedMethods: ['c'], allowedPaths: ['/d'] },
    })
    expect(effectiveTenantConfig(all, pro).policy).toBe(all.policy)
  })

  it('is deeply frozen and memoized by the identity of the pair', () => {
    const acme = tenant({ id: 'acme', plan: 'pro', quota: { limits: [{ window: 'day', tokens: 5 }] } })
    const first = effectiveTenantConfig(acme, pro)
    expect(isDeeplyFrozen(first)).toBe(true)
    expect(effectiveTenantConfig(acme, pro)).toBe(first)
    // A new plan object (the plan was written again) is a new result.
    const pro2 = plan({ ...toPlanConfigInput(pro), quota: { limits: [{ window: 'day', requests: 1 }] } })
    const second = effectiveTenantConfig(acme, pro2)
    expect(second).not.toBe(first)
    expect(second.quota).toEqual({ limits: [{ window: 'day', requests: 1, tokens: 5 }] })
    expect(effectiveTenantConfig(acme, pro2)).toBe(second)
  })

  it('recomputes for objects that are not frozen, which their owner may still change', () => {
    const mutable = { ...tenantConfigInputSchema.parse({ id: 'm', plan: 'pro' }), createdAt: 0, updatedAt: 0 }
    const first = effectiveTenantConfig(mutable, pro)
    mutable.metadata = { changed: true }
    expect(effectiveTenantConfig(mutable, pro)).not.toBe(first)
    expect(effectiveTenantConfig(mutable, pro).metadata).toEqual({ changed: true })
  })

  it('never freezes objects of a caller that are not frozen, and follows their later changes', () => {
    const mutablePlan = {
      ...planConfigInputSchema.parse({
        id: 'pro',
        quota: { limits: [{ window: 'day', requests: 10 }] },
        policy: { allowedModels: ['small'] },
      }),
      createdAt: 0,
      updatedAt: 0,
    }
    const mutableTenant = {
      ...tenantConfigInputSchema.parse({ id: 'm', plan: 'pro', metadata: { team: 'a' } }),
      createdAt: 0,
      updatedAt: 0,
    }
    const first = effectiveTenantConfig(mutableTenant, mutablePlan)
    expect(isDeeplyFrozen(first)).toBe(true)
    expect(Object.isFrozen(mutablePlan.quota)).toBe(false)
    expect(Object.isFrozen(mutablePlan.quota.limits[0])).toBe(false)
    expect(Object.isFrozen(mutablePlan.policy.allowedModels)).toBe(false)
    expect(Object.isFrozen(mutableTenant.metadata)).toBe(false)
    // A hand-written plan store that updates its plan in place.
    mutablePlan.quota.limits[0]!.requests = 5
    mutablePlan.policy.allowedModels.push('large')
    const second = effectiveTenantConfig(mutableTenant, mutablePlan)
    expect(second.quota.limits).toEqual([{ window: 'day', requests: 5 }])
    expect(second.policy.allowedModels).toEqual(['small', 'large'])
    expect(first.quota.limits).toEqual([{ window: 'day', requests: 10 }])
  })

  it('refuses a plan the tenant is not on', () => {
    expect(() => effectiveTenantConfig(tenant({ id: 'acme', plan: 'free' }), pro)).toThrow(/on plan "free"/)
    expect(() => effectiveTenantConfig(tenant({ id: 'acme' }), pro)).toThrow(InvalidTenantConfigError)
  })
})
