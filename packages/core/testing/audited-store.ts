import {
  type AuditedPlanStore,
  type AuditedTenantStore,
  type AuditLog,
  type ConfigManager,
  isTenantError,
  type ManualClock,
  type PlanChange,
  type PlanConfig,
  type PlanConfigInput,
  type PlanStore,
  type TenantChange,
  type TenantConfig,
  type TenantConfigInput,
  toPlanConfigInput,
} from '@tenant/core'
import { beforeEach, describe, expect, it } from 'vitest'
import { rejectionOf as rejects } from './quota-manager'

/** What {@link testAuditedTenantStore} needs per test: an empty store, its audit log and its clock. */
export interface AuditedTenantStoreFixture {
  store: ConfigManager & AuditedTenantStore
  /** The log `store` writes its records to. */
  auditLog: AuditLog
  /** The clock both the store and its audit stamping use. */
  clock: ManualClock
}

async function exists(store: ConfigManager, id: string): Promise<boolean> {
  try {
    await store.getTenantConfig(id)
    return true
  } catch (error) {
    if (isTenantError(error) && error.code === 'tenant_not_found') return false
    throw error
  }
}

function change(
  tenantId: string,
  apply: TenantChange['apply'],
  extra: Partial<TenantChange> = {},
): TenantChange {
  return { tenantId, action: 'tenant.update', actor: 'alice', apply, ...extra }
}

function withoutTimestamps(config: TenantConfig): TenantConfigInput {
  const { createdAt: _c, updatedAt: _u, ...input } = config
  return input
}

/**
 * The conformance suite of {@link AuditedTenantStore}: each change is written together with an
 * audit record that holds the exact before and after, a change that aborts (the `apply` throws or
 * returns an invalid config) writes neither, and concurrent changes to one tenant never lose an
 * update. The factory must return a fresh, empty store for every test.
 *
 * @example
 * ```ts
 * testAuditedTenantStore('auditedStore(InMemoryConfigManager)', () => {
 *   const clock = new ManualClock(Date.UTC(2026, 0, 1))
 *   const auditLog = new InMemoryAuditLog()
 *   return { store: auditedStore(new InMemoryConfigManager({ clock }), auditLog, { clock }), auditLog, clock }
 * })
 * ```
 */
export function testAuditedTenantStore(
  name: string,
  factory: () => AuditedTenantStoreFixture | Promise<AuditedTenantStoreFixture>,
): void {
  describe(`AuditedTenantStore conformance: ${name}`, () => {
    let store: AuditedTenantStoreFixture['store']
    let auditLog: AuditLog
    let clock: ManualClock
    beforeEach(async () => {
      ;({ store, auditLog, clock } = await factory())
    })

    it('creates with a record whose before is null and after is the stored config', async () => {
      const result = await store.applyChange(
        change('acme', () => ({ id: 'acme', metadata: { plan: 'pro' } }), {
          action: 'tenant.create',
          requestId: 'req-1',
        }),
      )
      const stored = await store.getTenantConfig('acme')
      expect(result.before).toBeNull()
      expect(result.after).toEqual(stored)
      expect(result.audit).toMatchObject({
        tenantId: 'acme',
        actor: 'alice',
        action: 'tenant.create',
        before: null,
        after: stored,
        at: clock.now(),
        requestId: 'req-1',
      })
      expect((await auditLog.list('acme')).items).toEqual([result.audit])
    })

    it('updates with the exact before and after, passing the current config to apply', async () => {
      await store.applyChange(
        change('acme', () => ({ id: 'acme', metadata: { v: 1 } }), { action: 'tenant.create' }),
      )
      const before = await store.getTenantConfig('acme')
      clock.advance(1000)
      let seen: TenantConfig | null = null
      const result = await store.applyChange(
        change('acme', (current) => {
          seen = current
          return { ...withoutTimestamps(current!), status: 'suspended' }
        }),
      )
      expect(seen).toEqual(before)
      expect(result.before).toEqual(before)
      expect(result.after).toEqual({ ...before, status: 'suspended', updatedAt: before.updatedAt + 1000 })
      expect(result.audit.before).toEqual(before)
      expect(result.audit.after).toEqual(result.after)
      expect(result.audit.at).toBe(clock.now())
      expect(result.audit.requestId ?? undefined).toBeUndefined()
      expect(await store.getTenantConfig('acme')).toEqual(result.after)
    })

    it('deletes when apply returns null, recording after as null', async () => {
      await store.applyChange(change('acme', () => ({ id: 'acme' }), { action: 'tenant.create' }))
      const before = await store.getTenantConfig('acme')
      const result = await store.applyChange(change('acme', () => null, { action: 'tenant.delete' }))
      expect(result).toMatchObject({ before, after: null })
      expect(result.audit).toMatchObject({ action: 'tenant.delete', before, after: null })
      expect(await exists(store, 'acme')).toBe(false)
      expect((await auditLog.list('acme')).items.map((r) => r.action)).toEqual([
        'tenant.delete',
        'tenant.create',
      ])
    })

    it('writes nothing when apply throws', async () => {
      await store.applyChange(
        change('acme', () => ({ id: 'acme', metadata: { v: 1 } }), { action: 'tenant.create' }),
      )
      const before = await store.getTenantConfig('acme')
      const abort = new Error('abort')
      expect(
        await rejects(
          store.applyChange(
            change('acme', () => {
              throw abort
            }),
          ),
        ),
      ).toBe(abort)
      expect(
        await rejects(
          store.applyChange(
            change('ghost', () => {
              throw abort
            }),
          ),
        ),
      ).toBe(abort)
      expect(await store.getTenantConfig('acme')).toEqual(before)
      expect(await exists(store, 'ghost')).toBe(false)
      expect((await auditLog.list('acme')).items).toHaveLength(1)
      expect((await auditLog.list('ghost')).items).toHaveLength(0)
    })

    it('writes nothing when apply returns an invalid config', async () => {
      const error = await rejects(
        store.applyChange(
          change('acme', () => ({ id: 'acme', quota: { limits: [{ window: 'day', requests: -1 }] } }), {
            action: 'tenant.create',
          }),
        ),
      )
      expect(isTenantError(error) && error.code).toBe('tenant_invalid_config')
      expect(await exists(store, 'acme')).toBe(false)
      expect((await auditLog.list('acme')).items).toHaveLength(0)
    })

    it('refuses a change whose record no log accepts before writing anything (no delete and re-create)', async () => {
      await store.applyChange(
        change('acme', () => ({ id: 'acme', metadata: { v: 1 } }), { action: 'tenant.create' }),
      )
      const before = await store.getTenantConfig('acme')
      clock.advance(60_000)
      const bad: Partial<TenantChange>[] = [
        { actor: '' },
        { actor: 'x'.repeat(256) },
        { actor: 'ci\u0000bot' },
        { requestId: 'r\ud800' },
        { action: 'tenant.explode' as never },
      ]
      for (const extra of bad) {
        for (const apply of [() => null, () => ({ id: 'acme', metadata: { v: 2 } })]) {
          const error = await rejects(store.applyChange(change('acme', apply, extra)))
          expect(isTenantError(error) && error.code, JSON.stringify(extra)).toBe('tenant_invalid_config')
          // Unchanged, createdAt included: the tenant was never deleted and created again.
          expect(await store.getTenantConfig('acme'), JSON.stringify(extra)).toEqual(before)
        }
      }
      expect((await auditLog.list('acme')).items).toHaveLength(1)
    })

    it('refuses a config for another tenant than the one being changed', async () => {
      const error = await rejects(store.applyChange(change('acme', () => ({ id: 'other' }))))
      expect(isTenantError(error) && error.code).toBe('tenant_invalid_config')
      expect(await exists(store, 'acme')).toBe(false)
      expect(await exists(store, 'other')).toBe(false)
      expect((await auditLog.list('other')).items).toHaveLength(0)
    })

    it('refuses to delete a tenant that does not exist, recording nothing', async () => {
      const error = await rejects(store.applyChange(change('ghost', () => null, { action: 'tenant.delete' })))
      expect(isTenantError(error) && error.code).toBe('tenant_not_found')
      expect((await auditLog.list('ghost')).items).toHaveLength(0)
    })

    it('refuses an invalid tenant id before calling apply', async () => {
      let called = false
      const error = await rejects(
        store.applyChange(
          change('no/slash', () => {
            called = true
            return null
          }),
        ),
      )
      expect(isTenantError(error) && error.code).toBe('tenant_invalid_id')
      expect(called).toBe(false)
    })

    it('never loses an update when changes to one tenant race', async () => {
      await store.applyChange(
        change('acme', () => ({ id: 'acme', metadata: { n: 0 } }), { action: 'tenant.create' }),
      )
      const increment = (current: TenantConfig | null): TenantConfigInput => ({
        ...withoutTimestamps(current!),
        metadata: { n: (current!.metadata.n as number) + 1 },
      })
      await Promise.all(Array.from({ length: 10 }, () => store.applyChange(change('acme', increment))))
      expect((await store.getTenantConfig('acme')).metadata).toEqual({ n: 10 })
      const { items } = await auditLog.list('acme', { limit: 20 })
      const steps = items
        .filter((r) => r.action === 'tenant.update')
        .map((r) => [r.before!.metadata.n, r.after!.metadata.n])
        .sort((a, b) => (a[0] as number) - (b[0] as number))
      expect(steps).toEqual(Array.from({ length: 10 }, (_, i) => [i, i + 1]))
    })
  })
}

/** What {@link testAuditedPlanStore} needs per test: empty stores, their audit log and their clock. */
export interface AuditedPlanStoreFixture {
  store: PlanStore & AuditedPlanStore
  /** The tenants `store` checks before deleting a plan. */
  tenants: ConfigManager
  /** The log `store` writes its records to; it must have `listPlan`. */
  auditLog: AuditLog
  /** The clock the store and its audit stamping use. */
  clock: ManualClock
}

function planChange(planId: string, apply: PlanChange['apply'], extra: Partial<PlanChange> = {}): PlanChange {
  return { planId, action: 'plan.update', actor: 'alice', apply, ...extra }
}

/**
 * The conformance suite of {@link AuditedPlanStore}: each plan change is written together with an
 * audit record holding the exact before and after plans, a change that aborts (its `apply` throws,
 * returns an invalid plan, or deletes a plan tenants are on) writes neither, and concurrent changes
 * to one plan never lose an update. The factory must return fresh, empty stores for every test.
 *
 * @example
 * ```ts
 * testAuditedPlanStore('auditedPlanStore(InMemoryPlanStore)', () => {
 *   const clock = new ManualClock(Date.UTC(2026, 0, 1))
 *   const auditLog = new InMemoryAuditLog()
 *   const tenants = new InMemoryConfigManager({ clock })
 *   const store = auditedPlanStore(new InMemoryPlanStore({ tenants, clock }), auditLog, { clock })
 *   return { store, tenants, auditLog, clock }
 * })
 * ```
 */
export function testAuditedPlanStore(
  name: string,
  factory: () => AuditedPlanStoreFixture | Promise<AuditedPlanStoreFixture>,
): void {
  describe(`AuditedPlanStore conformance: ${name}`, () => {
    let fixture: AuditedPlanStoreFixture
    const history = async (planId: string) => (await fixture.auditLog.listPlan!(planId, { limit: 100 })).items
    const planExists = async (planId: string) =>
      fixture.store.getPlan(planId).then(
        () => true,
        (error: unknown) => {
          if (isTenantError(error) && error.code === 'plan_not_found') return false
          throw error
        },
      )
    beforeEach(async () => {
      fixture = await factory()
    })

    it('writes create, update and delete with records holding the exact before and after', async () => {
      const { store, clock } = fixture
      const created = await store.applyPlanChange(
        planChange('pro', () => ({ id: 'pro', quota: { limits: [{ window: 'day', requests: 5 }] } }), {
          action: 'plan.create',
          requestId: 'req-1',
        }),
      )
      const stored = await store.getPlan('pro')
      expect(created.before).toBeNull()
      expect(created.after).toEqual(stored)
      expect(created.audit).toMatchObject({
        planId: 'pro',
        actor: 'alice',
        action: 'plan.create',
        before: null,
        after: stored,
        at: clock.now(),
        requestId: 'req-1',
      })
      expect('tenantId' in created.audit).toBe(false)
      clock.advance(1000)
      let seen: PlanConfig | null = null
      const updated = await store.applyPlanChange(
        planChange('pro', (current) => {
          seen = current
          return { ...toPlanConfigInput(current!), metadata: { v: 2 } }
        }),
      )
      expect(seen).toEqual(stored)
      expect(updated.after).toEqual({ ...stored, metadata: { v: 2 }, updatedAt: stored.updatedAt + 1000 })
      expect(updated.audit).toMatchObject({ action: 'plan.update', before: stored, after: updated.after })
      const deleted = await store.applyPlanChange(planChange('pro', () => null, { action: 'plan.delete' }))
      expect(deleted).toMatchObject({ before: updated.after, after: null })
      expect(await planExists('pro')).toBe(false)
      expect((await history('pro')).map((r) => [r.action, r.planId])).toEqual([
        ['plan.delete', 'pro'],
        ['plan.update', 'pro'],
        ['plan.create', 'pro'],
      ])
      // A plan's history is not a tenant's, even under the same id.
      expect((await fixture.auditLog.list('pro')).items).toEqual([])
    })

    it('writes nothing when apply throws, returns an invalid plan or another id', async () => {
      const { store } = fixture
      await store.applyPlanChange(planChange('pro', () => ({ id: 'pro' }), { action: 'plan.create' }))
      const before = await store.getPlan('pro')
      const abort = new Error('abort')
      const throwing = () => {
        throw abort
      }
      expect(await rejects(store.applyPlanChange(planChange('pro', throwing)))).toBe(abort)
      const invalid = await rejects(
        store.applyPlanChange(
          planChange('pro', () => ({ id: 'pro', quota: { limits: [{ window: 'day', requests: -1 }] } })),
        ),
      )
      expect(isTenantError(invalid) && invalid.code).toBe('tenant_invalid_config')
      const other = await rejects(store.applyPlanChange(planChange('pro', () => ({ id: 'other' }))))
      expect(isTenantError(other) && other.code).toBe('tenant_invalid_config')
      const ghost = await rejects(
        store.applyPlanChange(planChange('ghost', () => null, { action: 'plan.delete' })),
      )
      expect(isTenantError(ghost) && ghost.code).toBe('plan_not_found')
      expect(await store.getPlan('pro')).toEqual(before)
      expect(await planExists('other')).toBe(false)
      expect(await history('pro')).toHaveLength(1)
      expect(await history('ghost')).toHaveLength(0)
    })

    it('refuses a change whose record no log accepts before writing anything', async () => {
      const { store, clock } = fixture
      await store.applyPlanChange(planChange('pro', () => ({ id: 'pro' }), { action: 'plan.create' }))
      const before = await store.getPlan('pro')
      clock.advance(60_000)
      for (const extra of [{ actor: '' }, { requestId: 'r\u0000' }, { action: 'tenant.update' as never }]) {
        for (const apply of [() => null, () => ({ id: 'pro', metadata: { v: 2 } })]) {
          const error = await rejects(store.applyPlanChange(planChange('pro', apply, extra)))
          expect(isTenantError(error) && error.code, JSON.stringify(extra)).toBe('tenant_invalid_config')
          expect(await store.getPlan('pro'), JSON.stringify(extra)).toEqual(before)
        }
      }
      expect(await history('pro')).toHaveLength(1)
    })

    it('refuses to delete a plan tenants are on, recording nothing', async () => {
      const { store, tenants } = fixture
      await store.applyPlanChange(planChange('pro', () => ({ id: 'pro' }), { action: 'plan.create' }))
      await tenants.setTenantConfig({ id: 'acme', plan: 'pro' })
      const error = await rejects(
        store.applyPlanChange(planChange('pro', () => null, { action: 'plan.delete' })),
      )
      expect(isTenantError(error) && error.code).toBe('plan_in_use')
      expect(await planExists('pro')).toBe(true)
      expect((await history('pro')).map((r) => r.action)).toEqual(['plan.create'])
      await tenants.setTenantConfig({ id: 'acme', plan: null })
      await store.applyPlanChange(planChange('pro', () => null, { action: 'plan.delete' }))
      expect(await planExists('pro')).toBe(false)
    })

    it('refuses an invalid plan id before calling apply', async () => {
      let called = false
      const error = await rejects(
        fixture.store.applyPlanChange(
          planChange('no/slash', () => {
            called = true
            return null
          }),
        ),
      )
      expect(isTenantError(error) && error.code).toBe('tenant_invalid_config')
      expect(called).toBe(false)
    })

    it('never loses an update when changes to one plan race', async () => {
      const { store } = fixture
      await store.applyPlanChange(
        planChange('pro', () => ({ id: 'pro', metadata: { n: 0 } }), { action: 'plan.create' }),
      )
      const increment = (current: PlanConfig | null): PlanConfigInput => ({
        ...toPlanConfigInput(current!),
        metadata: { n: (current!.metadata.n as number) + 1 },
      })
      await Promise.all(Array.from({ length: 10 }, () => store.applyPlanChange(planChange('pro', increment))))
      expect((await store.getPlan('pro')).metadata).toEqual({ n: 10 })
      const steps = (await history('pro'))
        .filter((r) => r.action === 'plan.update')
        .map((r) => [r.before!.metadata.n, r.after!.metadata.n])
        .sort((a, b) => (a[0] as number) - (b[0] as number))
      expect(steps).toEqual(Array.from({ length: 10 }, (_, i) => [i, i + 1]))
    })
  })
}
