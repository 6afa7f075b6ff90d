import {
  InvalidTenantConfigError,
  isTenantError,
  ManualClock,
  PlanInUseError,
  TenantBackendError,
  withPlans,
} from '@tenant/core'
import { expectInvalidOption } from '@tenant/core/testing'
import { sql } from 'drizzle-orm'
import { beforeEach, describe, expect, it } from 'vitest'
import { describeEachDatabase, withD1 } from '../test/databases'
import { DrizzleAuditLog } from './audit-log'
import { DrizzleConfigManager } from './config-manager'
import { DrizzlePlanStore } from './plan-store'
import { TenantRowDecodeError } from './tenant-row'

const T0 = Date.UTC(2026, 0, 1)

describe('DrizzlePlanStore construction', () => {
  it('refuses what is not a Drizzle database, and bad options, when constructed', async () => {
    expect(() => new DrizzlePlanStore({} as never)).toThrow(/db: expected a Drizzle database/)
    const { drizzle } = await import('drizzle-orm/libsql')
    const db = drizzle({ connection: { url: ':memory:' } })
    expectInvalidOption(() => new DrizzlePlanStore(db, { cache: 'yes' as never }), 'cache', /options object/)
    expect(() => new DrizzlePlanStore(db, { cache: { ttl: 0 } })).toThrow(InvalidTenantConfigError)
    expectInvalidOption(() => new DrizzlePlanStore(db, { clock: {} as never }), 'clock', /now/)
  })
})

describeEachDatabase(
  'DrizzlePlanStore',
  (database) => {
    let clock: ManualClock
    let configs: DrizzleConfigManager
    let plans: DrizzlePlanStore

    beforeEach(async () => {
      await database.current.reset()
      clock = new ManualClock(T0)
      configs = new DrizzleConfigManager(database.current.db, { clock })
      plans = new DrizzlePlanStore(database.current.db, { clock, cache: { ttl: 10_000 } })
    })

    it('refuses a tenant on a plan that does not exist (the foreign key), writing nothing', async () => {
      for (const write of [
        () => configs.setTenantConfig({ id: 'acme', plan: 'ghost' }),
        () =>
          configs.applyChange({
            tenantId: 'acme',
            action: 'tenant.create',
            actor: 'ci',
            apply: () => ({ id: 'acme', plan: 'ghost' }),
          }),
      ]) {
        const error = await write().catch((e: unknown) => e)
        expect(error).toBeInstanceOf(InvalidTenantConfigError)
        expect((error as InvalidTenantConfigError).issues).toEqual([
          { path: ['plan'], message: 'the plan does not exist', code: 'invalid_value' },
        ])
      }
      await expect(configs.getTenantConfig('acme')).rejects.toMatchObject({ code: 'tenant_not_found' })
      expect((await new DrizzleAuditLog(database.current.db).list('acme')).items).toEqual([])
    })

    it('keeps a plan that tenants are on even against a raw delete (the foreign key)', async () => {
      await plans.setPlan({ id: 'pro' })
      await configs.setTenantConfig({ id: 'acme', plan: 'pro' })
      await expect(database.current.query(sql`delete from plans where id = 'pro'`)).rejects.toThrow()
      expect((await plans.getPlan('pro')).id).toBe('pro')
      await expect(plans.deletePlan('pro')).rejects.toBeInstanceOf(PlanInUseError)
    })

    it('reads a cached plan without a query; a change through the store applies at once', async () => {
      await plans.setPlan({ id: 'pro', quota: { limits: [{ window: 'day', requests: 10 }] } })
      await configs.setTenantConfig({ id: 'acme', plan: 'pro' })
      const view = withPlans(configs, plans)
      const first = await view.getTenantConfig('acme')
      const queries = database.current.queries
      for (let i = 0; i < 5; i++) expect(await view.getTenantConfig('acme')).toBe(first)
      expect(await view.quotaConfig('acme')).toBe(first.quota)
      expect(database.current.queries).toBe(queries)
      await plans.setPlan({ id: 'pro', quota: { limits: [{ window: 'day', requests: 20 }] } })
      expect(await view.quotaConfig('acme')).toEqual({ limits: [{ window: 'day', requests: 20 }] })
    })

    it('sees a change made by another process after the ttl, or at once after invalidate()', async () => {
      await plans.setPlan({ id: 'pro', quota: { limits: [{ window: 'day', requests: 10 }] } })
      await configs.setTenantConfig({ id: 'acme', plan: 'pro' })
      const view = withPlans(configs, plans)
      expect((await view.quotaConfig('acme')).limits[0]!.requests).toBe(10)
      const elsewhere = new DrizzlePlanStore(database.current.db, { clock, cache: false })
      await elsewhere.setPlan({ id: 'pro', quota: { limits: [{ window: 'day', requests: 30 }] } })
      expect((await view.quotaConfig('acme')).limits[0]!.requests).toBe(10)
      clock.advance(10_000)
      expect((await view.quotaConfig('acme')).limits[0]!.requests).toBe(30)
      await elsewhere.setPlan({ id: 'pro', quota: { limits: [{ window: 'day', requests: 40 }] } })
      plans.invalidate('pro')
      expect((await view.quotaConfig('acme')).limits[0]!.requests).toBe(40)
      // The tenant row was never written by any of this.
      expect((await configs.getTenantConfig('acme')).updatedAt).toBe(T0)
    })

    it('a tenant another process moved to a new plan, deleting the old one, is read again, not refused', async () => {
      // This process caches the tenant for 30 s and the plan for 10 s: between the two, the old
      // plan is gone from the database while the cached tenant still names it.
      await plans.setPlan({ id: 'old', quota: { limits: [{ window: 'day', requests: 10 }] } })
      await configs.setTenantConfig({ id: 'acme', plan: 'old' })
      const view = withPlans(configs, plans)
      expect((await view.quotaConfig('acme')).limits[0]!.requests).toBe(10)
      const elsewhere = {
        configs: new DrizzleConfigManager(database.current.db, { clock, cache: false }),
        plans: new DrizzlePlanStore(database.current.db, { clock, cache: false }),
      }
      await elsewhere.plans.setPlan({ id: 'new', quota: { limits: [{ window: 'day', requests: 20 }] } })
      await elsewhere.configs.setTenantConfig({ id: 'acme', plan: 'new' })
      await elsewhere.plans.deletePlan('old')
      clock.advance(10_000)
      expect((await view.quotaConfig('acme')).limits[0]!.requests).toBe(20)
      expect((await configs.getTenantConfig('acme')).plan).toBe('new')
    })

    it('a plan cached as missing that another process then created for the tenant is read again, not refused', async () => {
      await expect(plans.getPlan('new')).rejects.toMatchObject({ code: 'plan_not_found' })
      const elsewhere = {
        configs: new DrizzleConfigManager(database.current.db, { clock, cache: false }),
        plans: new DrizzlePlanStore(database.current.db, { clock, cache: false }),
      }
      await elsewhere.plans.setPlan({ id: 'new', quota: { limits: [{ window: 'day', requests: 20 }] } })
      await elsewhere.configs.setTenantConfig({ id: 'acme', plan: 'new' })
      expect((await withPlans(configs, plans).quotaConfig('acme')).limits[0]!.requests).toBe(20)
    })

    it('reports a plan row that does not decode, and its tenants fail closed', async () => {
      await plans.setPlan({ id: 'pro' })
      await configs.setTenantConfig({ id: 'acme', plan: 'pro' })
      const bad = database.current.dialect === 'pg' ? sql`'"not a list"'::jsonb` : sql`'not json'`
      await database.current.query(sql`update plans set allowed_models = ${bad} where id = 'pro'`)
      plans.invalidate()
      const error = await plans.getPlan('pro').catch((e: unknown) => e)
      expect(error).toBeInstanceOf(TenantRowDecodeError)
      expect(error).toMatchObject({ table: 'plans', rowId: 'pro', code: 'tenant_backend_unavailable' })
      const read = await withPlans(configs, plans)
        .quotaConfig('acme')
        .catch((e: unknown) => e)
      expect(read).toBeInstanceOf(TenantBackendError)
      expect(isTenantError(read) && read.status).toBe(503)
    })

    it('keeps the history of a deleted plan in plan_audit_log', async () => {
      const auditLog = new DrizzleAuditLog(database.current.db)
      await plans.applyPlanChange({
        planId: 'pro',
        action: 'plan.create',
        actor: 'ci',
        apply: () => ({ id: 'pro' }),
      })
      await plans.applyPlanChange({ planId: 'pro', action: 'plan.delete', actor: 'ci', apply: () => null })
      expect((await auditLog.listPlan('pro')).items.map((r) => r.action)).toEqual([
        'plan.delete',
        'plan.create',
      ])
      const rows = await database.current.query(sql`select plan_id, action from plan_audit_log order by id`)
      expect(rows).toEqual([
        { plan_id: 'pro', action: 'plan.create' },
        { plan_id: 'pro', action: 'plan.delete' },
      ])
      const [count] = await database.current.query(sql`select count(*) as n from tenant_audit_log`)
      expect(Number(count!.n)).toBe(0)
    })
  },
  { kinds: withD1 },
)
