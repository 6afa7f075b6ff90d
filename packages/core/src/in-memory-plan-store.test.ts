import { describe, expect, it } from 'vitest'
import { testAuditedPlanStore } from '../testing/audited-store'
import { expectInvalidOption } from '../testing/options'
import { testPlanStore } from '../testing/plan-store'
import { auditedPlanStore } from './audited-store'
import { ManualClock } from './clock'
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
