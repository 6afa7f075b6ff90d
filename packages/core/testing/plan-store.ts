import {
  type ConfigManager,
  compareTenantIds,
  InvalidTenantConfigError,
  isTenantError,
  type ListPlansOptions,
  ManualClock,
  type PlanConfig,
  type PlanConfigInput,
  PlanInUseError,
  PlanNotFoundError,
  type PlanStore,
  planConfigSchema,
  type TenantConfigInput,
  withPlans,
} from '@tenant/core'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { rejectionOf as rejection } from './quota-manager'
import { uniquePrefix } from './unique-prefix'

/** What a {@link testPlanStore} factory receives. */
export interface PlanStoreFactoryContext {
  /** The clock both stores must stamp `createdAt` / `updatedAt` with. */
  clock: ManualClock
}

/** The stores under test: the plan store, and the tenant store whose tenants it checks on delete. */
export interface PlanStoreFixture {
  plans: PlanStore
  /** The tenants `plans` refuses to delete a plan from under (its `tenants`, or the same database). */
  tenants: ConfigManager
}

/** Builds the stores under test; called once per test. */
export type PlanStoreFactory = (
  context: PlanStoreFactoryContext,
) => PlanStoreFixture | Promise<PlanStoreFixture>

const T0 = Date.UTC(2026, 0, 1)

async function listPrefix(fixture: PlanStoreFixture, prefix: string, limit: number): Promise<PlanConfig[]> {
  const out: PlanConfig[] = []
  let after = prefix
  for (;;) {
    const page = await fixture.plans.listPlans({ after, limit })
    for (const item of page.items) {
      if (!item.id.startsWith(prefix)) return out
      out.push(item)
    }
    if (page.next === undefined) return out
    expect(compareTenantIds(page.next, after)).toBe(1)
    after = page.next
  }
}

/**
 * The conformance suite every `PlanStore` passes: CRUD with clock-stamped timestamps, replace
 * semantics, validation that stores nothing, id checks, deeply frozen reads, binary id order with
 * keyset and offset pages, refusing to delete a plan that tenants are on, and plans applying to
 * their tenants through `withPlans` at the next read without the tenants being rewritten.
 *
 * Safe on a shared database: each test writes ids under its own random prefix, looks only at those,
 * and deletes them afterwards (tenants first). `factory` is called once per test.
 *
 * @example
 * ```ts
 * import { testPlanStore } from '@tenant/core/testing'
 * testPlanStore('InMemoryPlanStore', ({ clock }) => {
 *   const tenants = new InMemoryConfigManager({ clock })
 *   return { plans: new InMemoryPlanStore({ tenants, clock }), tenants }
 * })
 * ```
 */
export function testPlanStore(name: string, factory: PlanStoreFactory): void {
  describe(name, () => {
    let clock: ManualClock
    let fixture: PlanStoreFixture
    let p: string
    const createdPlans = new Set<string>()
    const createdTenants = new Set<string>()

    const setPlan = (input: PlanConfigInput): Promise<PlanConfig> => {
      createdPlans.add(String(input.id))
      return fixture.plans.setPlan(input)
    }
    const setTenant = (input: TenantConfigInput) => {
      createdTenants.add(String(input.id))
      return fixture.tenants.setTenantConfig(input)
    }

    beforeEach(async () => {
      clock = new ManualClock(T0)
      fixture = await factory({ clock })
      p = uniquePrefix('pt')
      createdPlans.clear()
      createdTenants.clear()
    })

    afterEach(async () => {
      for (const id of createdTenants) await fixture.tenants.deleteTenantConfig(id).catch(() => undefined)
      for (const id of createdPlans) await fixture.plans.deletePlan(id).catch(() => undefined)
    })

    it('stores a plan with defaults and stamps both timestamps with the clock', async () => {
      const stored = await setPlan({ id: `${p}free` })
      const expected: PlanConfig = {
        id: `${p}free`,
        quota: { limits: [] },
        rateLimit: null,
        concurrency: null,
        policy: { allowedModels: [], allowedTools: [], allowedMethods: [], allowedPaths: [] },
        metadata: {},
        createdAt: T0,
        updatedAt: T0,
      }
      expect(stored).toEqual(expected)
      expect(await fixture.plans.getPlan(`${p}free`)).toEqual(expected)
      expect(planConfigSchema.safeParse(stored).success).toBe(true)
    })

    it('round-trips every field; replacing keeps createdAt and moves updatedAt', async () => {
      const input = {
        id: `${p}pro`,
        quota: {
          limits: [
            { window: 'minute', requests: 60 },
            { window: 'day', requests: 10_000, tokens: 2_000_000 },
            { window: 'month', tokens: 0 },
          ],
        },
        rateLimit: { requestsPerSecond: 2.5, burst: 10 },
        concurrency: { maxInFlight: 50 },
        policy: {
          allowedModels: ['gpt-4o', 'claude-sonnet'],
          allowedTools: ['search'],
          allowedMethods: ['GET'],
          allowedPaths: ['/v1/*'],
        },
        metadata: { name: 'Pro 🚀', seats: 5, nested: { list: [1, { x: null }] } },
      } satisfies PlanConfigInput
      const stored = await setPlan(input)
      expect(stored).toEqual({ ...input, createdAt: T0, updatedAt: T0 })
      expect(await fixture.plans.getPlan(input.id)).toEqual(stored)
      clock.advance(5_000)
      const replaced = await setPlan({ id: input.id, metadata: { v: 2 } })
      // A replace, not a merge: omitted fields fall back to their defaults.
      expect(replaced).toEqual({
        id: input.id,
        quota: { limits: [] },
        rateLimit: null,
        concurrency: null,
        policy: { allowedModels: [], allowedTools: [], allowedMethods: [], allowedPaths: [] },
        metadata: { v: 2 },
        createdAt: T0,
        updatedAt: T0 + 5_000,
      })
      expect(await fixture.plans.getPlan(input.id)).toEqual(replaced)
    })

    it('throws PlanNotFoundError for an unknown plan, on reads and deletes', async () => {
      for (const call of [
        () => fixture.plans.getPlan(`${p}missing`),
        () => fixture.plans.deletePlan(`${p}missing`),
      ]) {
        const error = await rejection(call())
        expect(error).toBeInstanceOf(PlanNotFoundError)
        expect(isTenantError(error) && error.code).toBe('plan_not_found')
        expect(isTenantError(error) && error.status).toBe(404)
        expect((error as PlanNotFoundError).planId).toBe(`${p}missing`)
      }
      await setPlan({ id: `${p}gone` })
      await fixture.plans.deletePlan(`${p}gone`)
      await expect(fixture.plans.getPlan(`${p}gone`)).rejects.toBeInstanceOf(PlanNotFoundError)
      await expect(fixture.plans.deletePlan(`${p}gone`)).rejects.toBeInstanceOf(PlanNotFoundError)
    })

    it('rejects invalid input listing every issue, and stores nothing', async () => {
      const before = await setPlan({ id: `${p}keep`, metadata: { v: 1 } })
      const bad = {
        id: `${p}keep`,
        quota: { limits: [{ window: 'day', requests: -1 }] },
        rateLimit: { requestsPerSecond: 0, burst: 1 },
        status: 'active',
      } as unknown as PlanConfigInput
      const error = await rejection(setPlan(bad))
      expect(error).toBeInstanceOf(InvalidTenantConfigError)
      const paths = (error as InvalidTenantConfigError).issues.map((i) => i.path.join('.'))
      expect(paths).toEqual(
        expect.arrayContaining(['quota.limits.0.requests', 'rateLimit.requestsPerSecond']),
      )
      expect((error as InvalidTenantConfigError).issues.some((i) => i.code === 'unrecognized_keys')).toBe(
        true,
      )
      expect(await fixture.plans.getPlan(`${p}keep`)).toEqual(before)
      await expect(setPlan({ id: `${p}meta`, metadata: { d: new Date(0) } })).rejects.toBeInstanceOf(
        InvalidTenantConfigError,
      )
      await expect(fixture.plans.getPlan(`${p}meta`)).rejects.toBeInstanceOf(PlanNotFoundError)
    })

    it('rejects invalid plan ids with tenant_invalid_config naming the id', async () => {
      for (const id of ['', 'a/b', 'a b', 'é', 'x'.repeat(256)]) {
        for (const call of [() => fixture.plans.getPlan(id), () => fixture.plans.deletePlan(id)]) {
          const error = await rejection(call())
          expect(error, JSON.stringify(id)).toBeInstanceOf(InvalidTenantConfigError)
          expect((error as InvalidTenantConfigError).issues[0]!.path).toEqual(['planId'])
        }
        const error = await rejection(setPlan({ id }))
        expect(error).toBeInstanceOf(InvalidTenantConfigError)
        expect((error as InvalidTenantConfigError).issues.map((i) => i.path.join('.'))).toContain('id')
      }
    })

    it('returns deeply frozen plans and copies its input', async () => {
      const input = { id: `${p}frozen`, policy: { allowedModels: ['m1'] }, metadata: { list: [1] } }
      const stored = await setPlan(input)
      input.policy.allowedModels.push('m2')
      input.metadata.list.push(2)
      const read = await fixture.plans.getPlan(`${p}frozen`)
      const listed = (await listPrefix(fixture, p, 10))[0]!
      for (const plan of [stored, read, listed]) {
        expect(Object.isFrozen(plan)).toBe(true)
        expect(Object.isFrozen(plan.policy.allowedModels)).toBe(true)
        expect(Object.isFrozen(plan.metadata.list)).toBe(true)
      }
      expect(() => read.policy.allowedModels.push('m3')).toThrow(TypeError)
      expect((await fixture.plans.getPlan(`${p}frozen`)).policy.allowedModels).toEqual(['m1'])
      expect(read.metadata).toEqual({ list: [1] })
    })

    it('lists in binary id order with keyset and offset pages', async () => {
      const suffixes = ['b', 'A', '_x', 'a', '-x', '0', 'Z']
      for (const s of suffixes) await setPlan({ id: p + s })
      const expected = suffixes.map((s) => p + s).sort(compareTenantIds)
      for (const limit of [1, 2, 50]) {
        expect((await listPrefix(fixture, p, limit)).map((plan) => plan.id)).toEqual(expected)
      }
      const first = await fixture.plans.listPlans({ after: p, limit: 3 })
      expect(first.items.map((plan) => plan.id)).toEqual(expected.slice(0, 3))
      expect(first.next).toBe(expected[2])
      // Offsets count from the start of the whole store, which on a shared database also holds
      // other tests' plans: find this test's first plan, then page from there.
      let start = -1
      for (let offset = 0; start < 0; offset += 1000) {
        const page = await fixture.plans.listPlans({ offset, limit: 1000 })
        const index = page.items.findIndex((plan) => plan.id === expected[0])
        if (index >= 0) start = offset + index
        else if (page.next === undefined) throw new Error('not found by offset')
      }
      const byOffset = await fixture.plans.listPlans({ offset: start, limit: 2 })
      expect(byOffset.items.map((plan) => plan.id)).toEqual(expected.slice(0, 2))
      for (const bad of [{ limit: 0 }, { limit: 1001 }, { offset: -1 }, { offset: 1, after: p }]) {
        const error = await rejection(fixture.plans.listPlans(bad as ListPlansOptions))
        expect(isTenantError(error) && error.code, JSON.stringify(bad)).toBe('tenant_invalid_config')
      }
    })

    it('refuses to delete a plan that tenants are on, until they move off it', async () => {
      await setPlan({ id: `${p}busy` })
      await setPlan({ id: `${p}other` })
      await setTenant({ id: `${p}t1`, plan: `${p}busy` })
      await setTenant({ id: `${p}t2`, plan: `${p}busy` })
      const error = await rejection(fixture.plans.deletePlan(`${p}busy`))
      expect(error).toBeInstanceOf(PlanInUseError)
      expect(isTenantError(error) && error.status).toBe(409)
      expect((error as PlanInUseError).planId).toBe(`${p}busy`)
      expect((await fixture.plans.getPlan(`${p}busy`)).id).toBe(`${p}busy`)
      await setTenant({ id: `${p}t1`, plan: `${p}other` })
      await expect(fixture.plans.deletePlan(`${p}busy`)).rejects.toBeInstanceOf(PlanInUseError)
      await fixture.tenants.deleteTenantConfig(`${p}t2`)
      await fixture.plans.deletePlan(`${p}busy`)
      await expect(fixture.plans.getPlan(`${p}busy`)).rejects.toBeInstanceOf(PlanNotFoundError)
      expect((await fixture.tenants.getTenantConfig(`${p}t1`)).plan).toBe(`${p}other`)
    })

    it('applies a plan change to its tenants at the next read, without rewriting them', async () => {
      await setPlan({
        id: `${p}plan`,
        quota: { limits: [{ window: 'day', requests: 100, tokens: 1000 }] },
        rateLimit: { requestsPerSecond: 1, burst: 2 },
        concurrency: { maxInFlight: 4 },
        policy: { allowedModels: ['small'] },
      })
      const tenant = await setTenant({
        id: `${p}t`,
        plan: `${p}plan`,
        quota: {
          limits: [
            { window: 'day', tokens: 5000 },
            { window: 'minute', requests: 10 },
          ],
        },
      })
      expect(tenant.plan).toBe(`${p}plan`)
      await setTenant({ id: `${p}solo` })
      const view = withPlans(fixture.tenants, fixture.plans)
      expect(await view.quotaConfig(`${p}t`)).toEqual({
        limits: [
          { window: 'minute', requests: 10 },
          { window: 'day', requests: 100, tokens: 5000 },
        ],
      })
      expect(await view.rateLimitConfig(`${p}t`)).toEqual({ requestsPerSecond: 1, burst: 2 })
      expect(await view.concurrencyConfig(`${p}t`)).toEqual({ maxInFlight: 4 })
      expect((await view.policyConfig(`${p}t`)).allowedModels).toEqual(['small'])
      expect(await view.getTenantConfig(`${p}solo`)).toEqual(
        await fixture.tenants.getTenantConfig(`${p}solo`),
      )

      clock.advance(1_000)
      await fixture.plans.setPlan({
        id: `${p}plan`,
        quota: { limits: [{ window: 'day', requests: 200 }] },
        policy: { allowedModels: ['small', 'large'] },
      })
      expect(await view.quotaConfig(`${p}t`)).toEqual({
        limits: [
          { window: 'minute', requests: 10 },
          { window: 'day', requests: 200, tokens: 5000 },
        ],
      })
      expect(await view.rateLimitConfig(`${p}t`)).toBeNull()
      expect(await view.concurrencyConfig(`${p}t`)).toBeNull()
      expect((await view.policyConfig(`${p}t`)).allowedModels).toEqual(['small', 'large'])
      const effective = await view.getTenantConfig(`${p}t`)
      expect(effective.plan).toBe(`${p}plan`)
      // The tenant itself was not written: its own config and timestamps are as stored.
      expect(await fixture.tenants.getTenantConfig(`${p}t`)).toEqual(tenant)
      expect(effective.updatedAt).toBe(T0)
    })

    it('survives concurrent writers of one plan and of distinct plans', async () => {
      await setPlan({ id: `${p}s`, metadata: { v: -1 } })
      const ops: Promise<unknown>[] = []
      for (let i = 0; i < 20; i++) {
        ops.push(setPlan({ id: `${p}s`, metadata: { v: i } }))
        ops.push(fixture.plans.getPlan(`${p}s`))
        ops.push(setPlan({ id: `${p}d${i}`, quota: { limits: [{ window: 'hour', requests: i }] } }))
      }
      const results = await Promise.allSettled(ops)
      expect(results.filter((r) => r.status === 'rejected')).toEqual([])
      expect([-1, ...Array.from({ length: 20 }, (_, i) => i)]).toContain(
        (await fixture.plans.getPlan(`${p}s`)).metadata.v,
      )
      for (let i = 0; i < 20; i++) {
        expect((await fixture.plans.getPlan(`${p}d${i}`)).quota.limits).toEqual([
          { window: 'hour', requests: i },
        ])
      }
    })
  })
}
