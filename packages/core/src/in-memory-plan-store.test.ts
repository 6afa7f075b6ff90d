import { describe, expect, it } from 'vitest'
import { testAuditedPlanStore } from '../testing/audited-store'
import { expectInvalidOption } from '../testing/options'
import { testPlanStore } from '../testing/plan-store'
import { auditedPlanStore } from './audited-store'
import { ManualClock } from './clock'
import { PlanInUseError } from './errors'
import { InMemoryAuditLog } from './in-memory-audit-log'
import { InMemoryConfigManager } from './in-memory-config-manager'
import { InMemoryPlanStore } from './in-memory-plan-store'

testPlanStore('InMemoryPlanStore', ({ clock }) => {
  const tenants = new InMemoryConfigManager({ clock })
  return { plans: new InMemoryPlanStore({ tenants, clock }), tenants }
})

testAuditedPlanStore('auditedPlanStore(InMemoryPlanStore, InMemoryAuditLog)', () => {
  const clock = new ManualClock(Date.UTC(2026, 0, 1))
  const auditLog = new InMemoryAuditLog()
  const tenants = new InMemoryConfigManager({ clock })
  const store = auditedPlanStore(new InMemoryPlanStore({ tenants, clock }), auditLog, { clock })
  return { store, tenants, auditLog, clock }
})

describe('InMemoryPlanStore options', () => {
  it('needs the tenants it protects, and a clock with now()', () => {
    expectInvalidOption(() => new InMemoryPlanStore(undefined as never), 'InMemoryPlanStore', /tenants/)
    expectInvalidOption(() => new InMemoryPlanStore({} as never), 'InMemoryPlanStore.tenants', /listTenants/)
    expectInvalidOption(
      () => new InMemoryPlanStore({ tenants: new InMemoryConfigManager(), clock: {} as never }),
      'clock',
      /now/,
    )
  })

  it('scans every page of tenants before deleting', async () => {
    const tenants = new InMemoryConfigManager()
    const plans = new InMemoryPlanStore({ tenants })
    await plans.setPlan({ id: 'pro' })
    for (let i = 0; i < 1500; i++) await tenants.setTenantConfig({ id: `t${String(i).padStart(4, '0')}` })
    await tenants.setTenantConfig({ id: 'zz-last', plan: 'pro' })
    await expect(plans.deletePlan('pro')).rejects.toMatchObject({ code: 'plan_in_use' })
  })
})

describe('InMemoryPlanStore.holdPlan', () => {
  it('makes a delete wait for a hold, and a hold wait for a delete under way', async () => {
    const tenants = new InMemoryConfigManager()
    const plans = new InMemoryPlanStore({ tenants })
    await plans.setPlan({ id: 'pro' })
    let release!: () => void
    const gate = new Promise<void>((resolve) => {
      release = resolve
    })
    const held = plans.holdPlan('pro', async () => {
      await gate
      await tenants.setTenantConfig({ id: 'acme', plan: 'pro' })
      return 'written'
    })
    // The delete queues behind the hold, so its scan runs after the tenant is written.
    const deleted = plans.deletePlan('pro').then(
      () => 'deleted',
      (error: unknown) => error,
    )
    release()
    expect(await held).toBe('written')
    expect(await deleted).toBeInstanceOf(PlanInUseError)

    await tenants.deleteTenantConfig('acme')
    const deleting = plans.deletePlan('pro')
    // A hold asked for while the delete runs sees the plan gone.
    const seen = await plans.holdPlan('pro', () =>
      plans.getPlan('pro').then(
        () => 'exists',
        () => 'gone',
      ),
    )
    await deleting
    expect(seen).toBe('gone')
  })

  it('runs holds on different plans independently, and a failed task releases the hold', async () => {
    const plans = new InMemoryPlanStore({ tenants: new InMemoryConfigManager() })
    await plans.setPlan({ id: 'a' })
    let release!: () => void
    const gate = new Promise<void>((resolve) => {
      release = resolve
    })
    const blocked = plans.holdPlan('a', () => gate)
    expect(await plans.holdPlan('b', async () => 'b ran')).toBe('b ran')
    release()
    await blocked
    await expect(plans.holdPlan('a', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom')
    await plans.deletePlan('a')
  })
})
