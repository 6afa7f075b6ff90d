import { describe, expect, it } from 'vitest'
import { testAuditedPlanStore } from '../testing/audited-store'
import { expectInvalidOption } from '../testing/options'
import { testPlanStore } from '../testing/plan-store'
import { auditedPlanStore } from './audited-store'
import { ManualClock } from './clock'
import { PlanInUseError, PlanNotFoundError, TenantBackendError } from './errors'
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

// Whether a promise has settled once every pending callback has run; the tests never wait on a
// timer for something that must happen at once.
async function settled(promise: Promise<unknown>): Promise<'pending' | 'fulfilled' | 'rejected'> {
  let state: 'pending' | 'fulfilled' | 'rejected' = 'pending'
  promise.then(
    () => {
      state = 'fulfilled'
    },
    () => {
      state = 'rejected'
    },
  )
  for (let i = 0; i < 50; i++) await Promise.resolve()
  return state
}

function gate() {
  let release!: () => void
  const opened = new Promise<void>((resolve) => {
    release = resolve
  })
  return { opened, release }
}

describe('InMemoryPlanStore.holdPlan', () => {
  it('refuses a bad plan id or a task that is not a function with a typed error, holding nothing', async () => {
    const plans = new InMemoryPlanStore({ tenants: new InMemoryConfigManager() })
    await plans.setPlan({ id: 'pro' })
    await expect(plans.holdPlan('pro', undefined as never)).rejects.toMatchObject({
      code: 'tenant_invalid_config',
    })
    await expect(plans.holdPlan('no/slash', async () => 1)).rejects.toMatchObject({
      code: 'tenant_invalid_config',
    })
    // Nothing was left held: the plan can be deleted.
    await plans.deletePlan('pro')
  })

  it('runs holds of one plan side by side: a hold that never settles blocks no other hold', async () => {
    const tenants = new InMemoryConfigManager()
    const plans = new InMemoryPlanStore({ tenants })
    await plans.setPlan({ id: 'pro' })
    void plans.holdPlan('pro', () => new Promise<never>(() => {}))
    const other = plans.holdPlan('pro', async () => {
      await tenants.setTenantConfig({ id: 'acme', plan: 'pro' })
      return 'written'
    })
    expect(await settled(other)).toBe('fulfilled')
    expect(await other).toBe('written')
  })

  it('refuses a delete at once with PlanInUseError (409) while a hold is in flight, never waiting', async () => {
    const tenants = new InMemoryConfigManager()
    const plans = new InMemoryPlanStore({ tenants })
    await plans.setPlan({ id: 'pro' })
    const { opened, release } = gate()
    const held = plans.holdPlan('pro', () => opened)
    const deleting = plans.deletePlan('pro')
    expect(await settled(deleting)).toBe('rejected')
    const refusal = await deleting.catch((error: unknown) => error)
    expect(refusal).toBeInstanceOf(PlanInUseError)
    expect(refusal).toMatchObject({ status: 409, planId: 'pro' })
    expect(await plans.getPlan('pro')).toMatchObject({ id: 'pro' })
    // Once the hold settles (here without putting a tenant on the plan) the delete goes through.
    release()
    await held
    await plans.deletePlan('pro')
    await expect(plans.getPlan('pro')).rejects.toBeInstanceOf(PlanNotFoundError)
  })

  it('refuses a hold at once with TenantBackendError (503) while the plan is being deleted', async () => {
    const configs = new InMemoryConfigManager()
    const { opened, release } = gate()
    let scanning!: () => void
    const scanned = new Promise<void>((resolve) => {
      scanning = resolve
    })
    // The in-use scan waits on the gate, so the delete stays under way.
    const tenants = {
      listTenants: async (options?: Parameters<InMemoryConfigManager['listTenants']>[0]) => {
        scanning()
        await opened
        return configs.listTenants(options)
      },
    }
    const plans = new InMemoryPlanStore({ tenants })
    await plans.setPlan({ id: 'pro' })
    const deleting = plans.deletePlan('pro')
    await scanned
    let ran = false
    const held = plans.holdPlan('pro', async () => {
      ran = true
    })
    expect(await settled(held)).toBe('rejected')
    const refusal = await held.catch((error: unknown) => error)
    expect(refusal).toBeInstanceOf(TenantBackendError)
    expect(refusal).toMatchObject({ status: 503, code: 'tenant_backend_unavailable' })
    expect((refusal as Error).message).toMatch(/"pro" is being deleted/)
    expect(ran).toBe(false)
    // A second delete of the same plan does not queue behind the first either.
    await expect(plans.deletePlan('pro')).rejects.toBeInstanceOf(TenantBackendError)
    // Holds of other plans are not affected.
    expect(await plans.holdPlan('basic', async () => 'ran')).toBe('ran')
    release()
    await deleting
    // The delete is over: a hold runs again (and finds the plan gone).
    expect(
      await plans.holdPlan('pro', () =>
        plans.getPlan('pro').then(
          () => 'exists',
          () => 'gone',
        ),
      ),
    ).toBe('gone')
  })

  it('a hold whose task throws synchronously or rejects releases the plan', async () => {
    const plans = new InMemoryPlanStore({ tenants: new InMemoryConfigManager() })
    await plans.setPlan({ id: 'a' })
    await expect(plans.holdPlan('a', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom')
    await expect(
      plans.holdPlan('a', () => {
        throw new Error('sync boom')
      }),
    ).rejects.toThrow('sync boom')
    await plans.deletePlan('a')
  })
})
