import { beforeEach, describe, expect, it } from 'vitest'
import { expectInvalidOption } from '../testing/options'
import { rejectionOf as rejects } from '../testing/quota-manager'
import { AdminService, toTenantConfigInput } from './admin-service'
import type { AuditRecord } from './audit'
import { auditTimestamp } from './audit'
import { auditedPlanStore, auditedStore } from './audited-store'
import { ManualClock } from './clock'
import {
  InvalidTenantConfigError,
  InvalidTenantIdError,
  isTenantError,
  PlanAlreadyExistsError,
  PlanInUseError,
  PlanNotFoundError,
  TenantAlreadyExistsError,
  TenantBackendError,
  TenantNotFoundError,
} from './errors'
import { InMemoryAuditLog } from './in-memory-audit-log'
import { InMemoryConcurrencyLimiter } from './in-memory-concurrency-limiter'
import { InMemoryConfigManager } from './in-memory-config-manager'
import { InMemoryPlanStore } from './in-memory-plan-store'
import { InMemoryQuotaManager } from './in-memory-quota-manager'
import type { QuotaUsage } from './quota'
import { TokenBucketRateLimiter } from './token-bucket-rate-limiter'

const T0 = Date.UTC(2026, 0, 1)
const alice = { actor: 'alice', requestId: 'req-1' }

let clock: ManualClock
let configs: InMemoryConfigManager
let auditLog: InMemoryAuditLog
let admin: AdminService

async function history(id: string): Promise<AuditRecord[]> {
  return (await auditLog.list(id, { limit: 1000 })).items
}

beforeEach(() => {
  clock = new ManualClock(T0)
  configs = new InMemoryConfigManager({ clock })
  auditLog = new InMemoryAuditLog()
  admin = new AdminService({ store: auditedStore(configs, auditLog, { clock }), auditLog })
})

describe('AdminService.create', () => {
  it('stores the validated config with defaults and records who created it', async () => {
    const created = await admin.create({ id: 'acme', metadata: { plan: 'pro' } }, alice)
    expect(created).toEqual({
      id: 'acme',
      status: 'active',
      plan: null,
      quota: { limits: [] },
      rateLimit: null,
      concurrency: null,
      policy: { allowedModels: [], allowedTools: [], allowedMethods: [], allowedPaths: [] },
      metadata: { plan: 'pro' },
      createdAt: T0,
      updatedAt: T0,
    })
    expect(await admin.get('acme')).toEqual(created)
    expect(await history('acme')).toEqual([
      {
        id: expect.any(String),
        tenantId: 'acme',
        actor: 'alice',
        action: 'tenant.create',
        before: null,
        after: created,
        at: T0,
        requestId: 'req-1',
      },
    ])
  })

  it('lists every validation issue and writes nothing', async () => {
    const error = await rejects(
      admin.create(
        {
          id: 'acme',
          quota: { limits: [{ window: 'week' as 'day', requests: -1 }] },
          rateLimit: { requestsPerSecond: 0, burst: 1 },
          extra: true,
        } as never,
        alice,
      ),
    )
    expect(error).toBeInstanceOf(InvalidTenantConfigError)
    const paths = (error as InvalidTenantConfigError).issues.map((i) => i.path.join('.'))
    expect(paths).toEqual(
      expect.arrayContaining([
        'quota.limits.0.window',
        'quota.limits.0.requests',
        'rateLimit.requestsPerSecond',
      ]),
    )
    expect((error as InvalidTenantConfigError).issues.length).toBeGreaterThanOrEqual(4)
    expect((error as Error).message).toMatch(/quota\.limits\.0\.requests: must be >= 0/)
    expect((await admin.list()).items).toEqual([])
    expect(await history('acme')).toEqual([])
  })

  it('refuses a taken id with TenantAlreadyExistsError (409), leaving the tenant as it was', async () => {
    const first = await admin.create({ id: 'acme', metadata: { v: 1 } }, alice)
    const error = await rejects(admin.create({ id: 'acme', metadata: { v: 2 } }, alice))
    expect(error).toBeInstanceOf(TenantAlreadyExistsError)
    expect((error as TenantAlreadyExistsError).status).toBe(409)
    expect(await admin.get('acme')).toEqual(first)
    expect(await history('acme')).toHaveLength(1)
  })

  it('refuses an invalid id', async () => {
    const error = await rejects(admin.create({ id: 'a b' }, alice))
    expect(isTenantError(error) && error.code).toBe('tenant_invalid_config')
    expect((error as InvalidTenantConfigError).issues[0]!.path).toEqual(['id'])
  })
})

describe('AdminService.update', () => {
  beforeEach(async () => {
    await admin.create(
      {
        id: 'acme',
        quota: { limits: [{ window: 'day', requests: 100 }] },
        policy: { allowedModels: ['gpt-4o'] },
        metadata: { plan: 'pro' },
      },
      alice,
    )
    await admin.suspend('acme', alice)
    clock.advance(5000)
  })

  it('replaces the config, keeping the status when none is given', async () => {
    const before = await admin.get('acme')
    const updated = await admin.update('acme', { metadata: { plan: 'team' } }, { actor: 'bob' })
    expect(updated).toEqual({
      ...before,
      quota: { limits: [] },
      policy: { allowedModels: [], allowedTools: [], allowedMethods: [], allowedPaths: [] },
      metadata: { plan: 'team' },
      status: 'suspended',
      updatedAt: T0 + 5000,
    })
    const [latest] = await history('acme')
    expect(latest).toMatchObject({
      action: 'tenant.update',
      actor: 'bob',
      before,
      after: updated,
      at: T0 + 5000,
    })
    expect(latest!.requestId).toBeUndefined()
  })

  it('changes the status when given, and accepts a matching id in the body', async () => {
    const updated = await admin.update('acme', { id: 'acme', status: 'active' }, alice)
    expect(updated.status).toBe('active')
  })

  it('refuses a body id that differs from the path, writing nothing', async () => {
    const before = await admin.get('acme')
    const error = await rejects(admin.update('acme', { id: 'other' }, alice))
    expect(error).toBeInstanceOf(InvalidTenantConfigError)
    expect((error as InvalidTenantConfigError).issues[0]!.path).toEqual(['id'])
    expect(await admin.get('acme')).toEqual(before)
    expect(await history('acme')).toHaveLength(2)
  })

  it('refuses an unknown tenant with TenantNotFoundError and records nothing', async () => {
    expect(await rejects(admin.update('ghost', {}, alice))).toBeInstanceOf(TenantNotFoundError)
    expect(await history('ghost')).toEqual([])
  })
})

describe('AdminService partial updates and lifecycle', () => {
  beforeEach(async () => {
    await admin.create(
      { id: 'acme', metadata: { plan: 'pro' }, rateLimit: { requestsPerSecond: 2, burst: 4 } },
      alice,
    )
  })

  it('updateQuota replaces only the quota', async () => {
    const before = await admin.get('acme')
    const quota = { limits: [{ window: 'minute' as const, requests: 10, tokens: 5000 }] }
    const updated = await admin.updateQuota('acme', quota, alice)
    expect(updated).toEqual({ ...before, quota })
    expect((await history('acme'))[0]).toMatchObject({
      action: 'tenant.quota.update',
      before,
      after: updated,
    })
  })

  it('updatePolicy replaces only the policy, applying list defaults', async () => {
    const before = await admin.get('acme')
    const updated = await admin.updatePolicy(
      'acme',
      { allowedModels: ['claude'], allowedPaths: ['/v1/*'] },
      alice,
    )
    expect(updated).toEqual({
      ...before,
      policy: { allowedModels: ['claude'], allowedTools: [], allowedMethods: [], allowedPaths: ['/v1/*'] },
    })
    expect((await history('acme'))[0]!.action).toBe('tenant.policy.update')
  })

  it('refuses a bad quota or policy with the issues, recording nothing', async () => {
    const quotaError = await rejects(
      admin.updateQuota(
        'acme',
        {
          limits: [
            { window: 'day', requests: 1 },
            { window: 'day', tokens: 2 },
          ],
        },
        alice,
      ),
    )
    expect((quotaError as InvalidTenantConfigError).issues[0]).toMatchObject({
      path: ['limits', 1, 'window'],
      message: expect.stringMatching(/duplicate "day" limit/),
    })
    const policyError = await rejects(admin.updatePolicy('acme', { allowedModels: [''] }, alice))
    expect((policyError as InvalidTenantConfigError).issues[0]!.path).toEqual(['allowedModels', 0])
    expect(await history('acme')).toHaveLength(1)
  })

  it('suspend and activate flip the status, each recorded', async () => {
    expect((await admin.suspend('acme', alice)).status).toBe('suspended')
    expect((await admin.get('acme')).status).toBe('suspended')
    expect((await admin.activate('acme', alice)).status).toBe('active')
    // A repeated activate changes nothing but is still an admin act worth recording.
    expect((await admin.activate('acme', alice)).status).toBe('active')
    expect((await history('acme')).map((r) => r.action)).toEqual([
      'tenant.activate',
      'tenant.activate',
      'tenant.suspend',
      'tenant.create',
    ])
  })

  it('delete removes the tenant, its history stays readable', async () => {
    const before = await admin.get('acme')
    await admin.delete('acme', alice)
    expect(await rejects(admin.get('acme'))).toBeInstanceOf(TenantNotFoundError)
    const { items } = await admin.audit('acme')
    expect(items[0]).toMatchObject({ action: 'tenant.delete', before, after: null })
    expect(await rejects(admin.delete('acme', alice))).toBeInstanceOf(TenantNotFoundError)
    expect((await admin.audit('acme')).items).toHaveLength(2)
  })

  it('every lifecycle method refuses an unknown tenant without recording', async () => {
    for (const call of [
      () => admin.suspend('ghost', alice),
      () => admin.activate('ghost', alice),
      () => admin.updateQuota('ghost', { limits: [] }, alice),
      () => admin.updatePolicy('ghost', {}, alice),
      () => admin.delete('ghost', alice),
    ]) {
      expect(await rejects(call())).toBeInstanceOf(TenantNotFoundError)
    }
    expect(await history('ghost')).toEqual([])
  })

  it('every method refuses an invalid tenant id', async () => {
    for (const call of [
      () => admin.get('a/b'),
      () => admin.update('a/b', {}, alice),
      () => admin.suspend('', alice),
      () => admin.activate('x'.repeat(256), alice),
      () => admin.updateQuota('a b', { limits: [] }, alice),
      () => admin.updatePolicy('a b', {}, alice),
      () => admin.delete('a b', alice),
      () => admin.audit('a b'),
      () => admin.usage('a b'),
    ]) {
      expect(await rejects(call())).toBeInstanceOf(InvalidTenantIdError)
    }
  })
})

describe('AdminService reads', () => {
  it('lists tenants in id order with offset and keyset pages', async () => {
    for (const id of ['c', 'a', 'd', 'b']) await admin.create({ id }, alice)
    const first = await admin.list({ limit: 3 })
    expect(first.items.map((t) => t.id)).toEqual(['a', 'b', 'c'])
    expect((await admin.list({ limit: 3, after: first.next! })).items.map((t) => t.id)).toEqual(['d'])
    expect((await admin.list({ limit: 2, offset: 1 })).items.map((t) => t.id)).toEqual(['b', 'c'])
    expect(await rejects(admin.list({ limit: 0 }))).toBeInstanceOf(InvalidTenantConfigError)
  })

  it('pages audit history newest first', async () => {
    await admin.create({ id: 'acme' }, alice)
    for (let i = 0; i < 4; i++) {
      clock.advance(1000)
      await admin.suspend('acme', { actor: `admin-${i}` })
    }
    const page1 = await admin.audit('acme', { limit: 3 })
    expect(page1.items.map((r) => r.actor)).toEqual(['admin-3', 'admin-2', 'admin-1'])
    const page2 = await admin.audit('acme', { limit: 3, before: page1.next! })
    expect(page2.items.map((r) => r.actor)).toEqual(['admin-0', 'alice'])
    expect(page2.next).toBeUndefined()
  })

  it('reports usage from the quota manager without consuming', async () => {
    const usage: QuotaUsage = {
      tenantId: 'acme',
      windows: [
        {
          window: 'day',
          limit: { requests: 10 },
          used: { requests: 3, tokens: 0 },
          remaining: { requests: 7 },
          resetAt: T0 + 86_400_000,
        },
      ],
    }
    const peeked: string[] = []
    const withUsage = new AdminService({
      store: auditedStore(configs, auditLog),
      auditLog,
      quotas: {
        peek: async (id) => {
          peeked.push(id)
          return usage
        },
      },
    })
    expect(withUsage.hasUsage).toBe(true)
    await withUsage.create({ id: 'acme' }, alice)
    expect(await withUsage.usage('acme')).toEqual(usage)
    expect(await rejects(withUsage.usage('ghost'))).toBeInstanceOf(TenantNotFoundError)
    expect(peeked).toEqual(['acme'])
  })

  it('says plainly when usage was not wired', async () => {
    expect(admin.hasUsage).toBe(false)
    await admin.create({ id: 'acme' }, alice)
    expectInvalidOption(await rejects(admin.usage('acme')), 'AdminService.quotas', /needs a quota manager/)
    expect(admin.canResetUsage).toBe(false)
    expectInvalidOption(await rejects(admin.resetUsage('acme', alice)), 'AdminService.quotas', /reset\(\)/)
  })

  it('resets usage in the quota store first, then records it; a failed record fails the call', async () => {
    const quotas = new InMemoryQuotaManager(configs, { clock })
    const withQuotas = new AdminService({
      store: auditedStore(configs, auditLog, { clock }),
      auditLog,
      quotas,
      clock,
    })
    expect(withQuotas.canResetUsage).toBe(true)
    await withQuotas.create({ id: 'acme', quota: { limits: [{ window: 'hour', requests: 5 }] } }, alice)
    await quotas.consume('acme', { requests: 4 })
    clock.advance(10)
    const after = await withQuotas.resetUsage('acme', alice)
    expect(after.windows[0]!.used).toEqual({ requests: 0, tokens: 0 })
    const [record] = await history('acme')
    expect(record).toMatchObject({
      action: 'tenant.usage.reset',
      actor: 'alice',
      requestId: 'req-1',
      at: T0 + 10,
    })
    expect(await rejects(withQuotas.resetUsage('ghost', alice))).toBeInstanceOf(TenantNotFoundError)
    expectInvalidOption(
      await rejects(withQuotas.resetUsage('acme', { actor: '' })),
      'AdminService.context.actor',
      /1 to 255/,
    )
    await quotas.consume('acme', { requests: 2 })
    const failing = new AdminService({
      store: auditedStore(configs, auditLog),
      auditLog: Object.assign(Object.create(auditLog), {
        append: async () => {
          throw new TenantBackendError('audit log down')
        },
      }),
      quotas,
    })
    expect(await rejects(failing.resetUsage('acme', alice))).toBeInstanceOf(TenantBackendError)
    // The reset happened; retrying with a working log records it.
    expect((await quotas.peek('acme')).windows[0]!.used.requests).toBe(0)
    expect(
      () => new AdminService({ store: auditedStore(configs, auditLog), auditLog, clock: {} as never }),
    ).toThrow(InvalidTenantConfigError)
  })
})

describe('AdminService wiring', () => {
  it('requires an actor on every change', async () => {
    for (const [context, path] of [
      [undefined, 'AdminService.context.actor'],
      [{}, 'AdminService.context.actor'],
      [{ actor: '' }, 'AdminService.context.actor'],
      [{ actor: 'x'.repeat(256) }, 'AdminService.context.actor'],
      [{ actor: 'a', requestId: 'r'.repeat(256) }, 'AdminService.context.requestId'],
    ] as const) {
      expectInvalidOption(
        await rejects(admin.create({ id: 'acme' }, context as never)),
        path,
        /must be a string/,
      )
    }
    expect(await history('acme')).toEqual([])
  })

  it('checks its options when constructed', () => {
    const store = auditedStore(configs, auditLog)
    expectInvalidOption(() => new AdminService(undefined as never), 'AdminService.store', /applyChange/)
    expectInvalidOption(
      () => new AdminService({ store: configs as never, auditLog }),
      'AdminService.store',
      /must be a ConfigManager with applyChange/,
    )
    expectInvalidOption(
      () => new AdminService({ store, auditLog: {} as never }),
      'AdminService.auditLog',
      /must be an AuditLog/,
    )
    expectInvalidOption(
      () => new AdminService({ store, auditLog, quotas: {} as never }),
      'AdminService.quotas',
      /must have a peek\(\) method/,
    )
  })

  it('toTenantConfigInput drops only the timestamps', async () => {
    const created = await admin.create({ id: 'acme', metadata: { a: 1 } }, alice)
    const { createdAt: _c, updatedAt: _u, ...rest } = created
    expect(toTenantConfigInput(created)).toEqual(rest)
  })
})

describe('AdminService plans', () => {
  let plans: InMemoryPlanStore
  let withPlans: AdminService

  beforeEach(() => {
    plans = new InMemoryPlanStore({ tenants: configs, clock })
    withPlans = new AdminService({
      store: auditedStore(configs, auditLog, { clock }),
      plans: auditedPlanStore(plans, auditLog, { clock }),
      auditLog,
    })
  })

  const planHistory = async (id: string) => (await withPlans.planAudit(id, { limit: 100 })).items

  // The target plan was checked before the tenant was looked up: 400 for a missing plan.
  it('answers an update of an unknown tenant naming a missing plan with tenant_not_found', async () => {
    const { holdPlan: _, ...noHold } = auditedPlanStore(plans, auditLog, { clock })
    const services = [
      withPlans,
      new AdminService({ store: auditedStore(configs, auditLog), plans: noHold, auditLog }),
    ]
    for (const service of services) {
      expect(await rejects(service.update('nope', { plan: 'missing' }, alice))).toMatchObject({
        code: 'tenant_not_found',
      })
    }
  })

  it('creates, reads, lists, replaces and deletes plans, each change with its record', async () => {
    expect(withPlans.hasPlans).toBe(true)
    const created = await withPlans.createPlan(
      { id: 'pro', quota: { limits: [{ window: 'day', requests: 10 }] } },
      alice,
    )
    expect(created).toMatchObject({ id: 'pro', createdAt: T0, updatedAt: T0 })
    expect(await withPlans.getPlan('pro')).toEqual(created)
    await withPlans.createPlan({ id: 'free' }, alice)
    expect((await withPlans.listPlans({ limit: 1 })).items.map((p) => p.id)).toEqual(['free'])
    clock.advance(1000)
    const updated = await withPlans.updatePlan('pro', { id: 'pro', metadata: { v: 2 } }, { actor: 'bob' })
    // A replace: the omitted quota is back to its default.
    expect(updated).toMatchObject({
      quota: { limits: [] },
      metadata: { v: 2 },
      createdAt: T0,
      updatedAt: T0 + 1000,
    })
    await withPlans.deletePlan('pro', { actor: 'bob' })
    await expect(withPlans.getPlan('pro')).rejects.toBeInstanceOf(PlanNotFoundError)
    const records = await planHistory('pro')
    expect(records.map((r) => [r.action, r.actor])).toEqual([
      ['plan.delete', 'bob'],
      ['plan.update', 'bob'],
      ['plan.create', 'alice'],
    ])
    expect(records[2]).toMatchObject({ planId: 'pro', before: null, after: created, requestId: 'req-1' })
    expect(records[1]).toMatchObject({ before: created, after: updated })
    // Plan records are not in any tenant's history.
    expect(await history('pro')).toEqual([])
  })

  it('refuses taken ids, unknown plans, mismatched ids and plans in use', async () => {
    await withPlans.createPlan({ id: 'pro' }, alice)
    expect(await rejects(withPlans.createPlan({ id: 'pro' }, alice))).toBeInstanceOf(PlanAlreadyExistsError)
    expect(await rejects(withPlans.updatePlan('ghost', {}, alice))).toBeInstanceOf(PlanNotFoundError)
    expect(await rejects(withPlans.deletePlan('ghost', alice))).toBeInstanceOf(PlanNotFoundError)
    const mismatch = await rejects(withPlans.updatePlan('pro', { id: 'other' }, alice))
    expect((mismatch as InvalidTenantConfigError).issues[0]).toMatchObject({ path: ['id'] })
    await withPlans.create({ id: 'acme', plan: 'pro' }, alice)
    expect(await rejects(withPlans.deletePlan('pro', alice))).toBeInstanceOf(PlanInUseError)
    expect((await planHistory('pro')).map((r) => r.action)).toEqual(['plan.create'])
    expect(await rejects(withPlans.getPlan('a/b'))).toBeInstanceOf(InvalidTenantConfigError)
  })

  it('puts tenants on existing plans only (400 on path plan)', async () => {
    await withPlans.createPlan({ id: 'pro' }, alice)
    const onPro = await withPlans.create({ id: 'acme', plan: 'pro' }, alice)
    expect(onPro.plan).toBe('pro')
    for (const call of [
      () => withPlans.create({ id: 'globex', plan: 'ghost' }, alice),
      () => withPlans.update('acme', { plan: 'ghost' }, alice),
    ]) {
      const error = await rejects(call())
      expect(error).toBeInstanceOf(InvalidTenantConfigError)
      expect((error as InvalidTenantConfigError).issues).toEqual([
        { path: ['plan'], message: 'plan "ghost" does not exist', code: 'invalid_value' },
      ])
    }
    expect(await rejects(withPlans.get('globex'))).toBeInstanceOf(TenantNotFoundError)
    expect((await withPlans.get('acme')).plan).toBe('pro')
  })

  it('keeps the plan on an update that does not name one; null takes the tenant off it', async () => {
    await withPlans.createPlan({ id: 'pro' }, alice)
    await withPlans.create({ id: 'acme', plan: 'pro' }, alice)
    expect((await withPlans.update('acme', { metadata: { a: 1 } }, alice)).plan).toBe('pro')
    expect((await withPlans.updateQuota('acme', { limits: [] }, alice)).plan).toBe('pro')
    expect((await withPlans.suspend('acme', alice)).plan).toBe('pro')
    expect((await withPlans.update('acme', { plan: null }, alice)).plan).toBeNull()
    await withPlans.deletePlan('pro', alice)
  })

  it('without a plan store: tenants may not name a plan and the plan methods say why', async () => {
    expect(admin.hasPlans).toBe(false)
    const error = await rejects(admin.create({ id: 'acme', plan: 'pro' }, alice))
    expect((error as InvalidTenantConfigError).issues[0]).toMatchObject({
      path: ['plan'],
      message: 'this admin service manages no plans',
    })
    for (const call of [
      () => admin.getPlan('pro'),
      () => admin.listPlans(),
      () => admin.createPlan({ id: 'pro' }, alice),
      () => admin.planAudit('pro'),
    ]) {
      expectInvalidOption(await rejects(call()), 'AdminService.plans', /need a plan store/)
    }
  })

  it('checks the plan store and the log it needs when constructed', () => {
    const store = auditedStore(configs, auditLog)
    expectInvalidOption(
      () => new AdminService({ store, auditLog, plans: plans as never }),
      'AdminService.plans',
      /applyPlanChange/,
    )
    const { listPlan: _listPlan, ...oldLog } = {
      list: auditLog.list.bind(auditLog),
      append: auditLog.append.bind(auditLog),
      listPlan: 1,
    }
    expectInvalidOption(
      () => new AdminService({ store, auditLog: oldLog, plans: auditedPlanStore(plans, auditLog) }),
      'AdminService.auditLog',
      /listPlan/,
    )
  })
})

describe('AdminService in-flight counts', () => {
  it('reads and resets a tenant in-flight count, the reset audited as tenant.concurrency.reset', async () => {
    const limiter = new InMemoryConcurrencyLimiter()
    const withLimiter = new AdminService({
      store: auditedStore(configs, auditLog, { clock }),
      auditLog,
      concurrency: limiter,
      clock,
    })
    expect(withLimiter.hasConcurrency).toBe(true)
    await withLimiter.create({ id: 'acme', concurrency: { maxInFlight: 3 } }, alice)
    const held = await limiter.acquire('acme', 3)
    await limiter.acquire('acme', 3)
    expect(await withLimiter.inFlight('acme')).toEqual({ tenantId: 'acme', inFlight: 2, maxInFlight: 3 })
    clock.advance(10)
    expect(await withLimiter.resetInFlight('acme', alice)).toEqual({
      tenantId: 'acme',
      inFlight: 0,
      maxInFlight: 3,
    })
    const [record] = await history('acme')
    expect(record).toMatchObject({ action: 'tenant.concurrency.reset', actor: 'alice', at: T0 + 10 })
    // A request from before the reset that ends afterwards frees nothing.
    await limiter.acquire('acme', 3)
    await held.lease!.release()
    expect((await withLimiter.inFlight('acme')).inFlight).toBe(1)
    expect(await rejects(withLimiter.inFlight('ghost'))).toBeInstanceOf(TenantNotFoundError)
    expect(await rejects(withLimiter.resetInFlight('ghost', alice))).toBeInstanceOf(TenantNotFoundError)
    expectInvalidOption(
      await rejects(withLimiter.resetInFlight('acme', { actor: '' })),
      'AdminService.context.actor',
      /1 to 255/,
    )
  })

  it('says plainly when no limiter was wired, and checks the option', async () => {
    expect(admin.hasConcurrency).toBe(false)
    await admin.create({ id: 'acme' }, alice)
    expectInvalidOption(await rejects(admin.inFlight('acme')), 'AdminService.concurrency', /limiter/)
    expectInvalidOption(
      await rejects(admin.resetInFlight('acme', alice)),
      'AdminService.concurrency',
      /limiter/,
    )
    expectInvalidOption(
      () => new AdminService({ store: auditedStore(configs, auditLog), auditLog, concurrency: {} as never }),
      'AdminService.concurrency',
      /inFlight/,
    )
    expectInvalidOption(
      () => new AdminService({ store: auditedStore(configs, auditLog), auditLog, rateLimiter: {} as never }),
      'AdminService.rateLimiter',
      /reset/,
    )
    expectInvalidOption(
      () => new AdminService({ store: auditedStore(configs, auditLog), auditLog, freshStart: 'x' as never }),
      'AdminService.freshStart',
      /function/,
    )
  })
})

describe('AdminService audit timestamps', () => {
  it('stamps every record with the floor of a fractional clock, resets and changes alike', async () => {
    clock.set(T0 + 0.75)
    const quotas = new InMemoryQuotaManager(configs, { clock })
    const limiter = new InMemoryConcurrencyLimiter()
    const service = new AdminService({
      store: auditedStore(configs, auditLog, { clock }),
      auditLog,
      quotas,
      concurrency: limiter,
      clock,
    })
    await service.create({ id: 'acme', quota: { limits: [{ window: 'hour', requests: 5 }] } }, alice)
    await service.resetUsage('acme', alice)
    await service.resetInFlight('acme', alice)
    expect((await history('acme')).map((r) => [r.action, r.at])).toEqual([
      ['tenant.concurrency.reset', T0],
      ['tenant.usage.reset', T0],
      ['tenant.create', T0],
    ])
    expect(auditTimestamp(new ManualClock(T0 + 0.999))).toBe(T0)
    // The last ms every store can write: 9999-12-31T23:59:59.999Z.
    expect(auditTimestamp(new ManualClock(253_402_300_799_999.5))).toBe(253_402_300_799_999)
    expect(() => auditTimestamp(new ManualClock(253_402_300_800_000))).toThrow(InvalidTenantConfigError)
  })

  it('refuses a reset whose record the clock cannot stamp, before resetting anything', async () => {
    const quotas = new InMemoryQuotaManager(configs, { clock })
    const limiter = new InMemoryConcurrencyLimiter()
    const badClock = new ManualClock(T0)
    const service = new AdminService({
      store: auditedStore(configs, auditLog, { clock }),
      auditLog,
      quotas,
      concurrency: limiter,
      clock: badClock,
    })
    await service.create({ id: 'acme', quota: { limits: [{ window: 'hour', requests: 5 }] } }, alice)
    await quotas.consume('acme', { requests: 3 })
    await limiter.acquire('acme', 3)
    // 253402300800000 is 10000-01-01: the Postgres stores cannot encode it (nor 8.7e15, past Date).
    for (const bad of [Number.NaN, -1, 2 ** 53, 8.7e15, 253_402_300_800_000]) {
      badClock.set(bad)
      for (const reset of [
        () => service.resetUsage('acme', alice),
        () => service.resetInFlight('acme', alice),
      ]) {
        const error = await rejects(reset())
        expect(error).toBeInstanceOf(InvalidTenantConfigError)
        expect((error as InvalidTenantConfigError).issues[0]!.path).toEqual(['at'])
      }
    }
    expect((await quotas.peek('acme')).windows[0]!.used.requests).toBe(3)
    expect(await limiter.inFlight('acme')).toBe(1)
    expect((await history('acme')).map((r) => r.action)).toEqual(['tenant.create'])
  })

  it('auditedStore refuses a change it cannot stamp, writing nothing', async () => {
    const badClock = new ManualClock(Number.NaN)
    const store = auditedStore(configs, auditLog, { clock: badClock })
    const error = await rejects(
      store.applyChange({
        tenantId: 'acme',
        action: 'tenant.create',
        actor: 'a',
        apply: () => ({ id: 'acme' }),
      }),
    )
    expect((error as InvalidTenantConfigError).issues[0]!.path).toEqual(['at'])
    expect(await rejects(configs.getTenantConfig('acme'))).toBeInstanceOf(TenantNotFoundError)
    expect(await history('acme')).toEqual([])
  })
})

describe('AdminService context text', () => {
  it('refuses an actor or request id a store cannot keep (U+0000, unpaired surrogate)', async () => {
    for (const [context, path] of [
      [{ actor: 'a\u0000b' }, 'AdminService.context.actor'],
      [{ actor: 'a\ud800' }, 'AdminService.context.actor'],
      [{ actor: 'a', requestId: 'r\u0000' }, 'AdminService.context.requestId'],
      [{ actor: 'a', requestId: '\udc00r' }, 'AdminService.context.requestId'],
    ] as const) {
      expectInvalidOption(await rejects(admin.create({ id: 'acme' }, context)), path, /U\+0000|surrogate/)
    }
    expect(await history('acme')).toEqual([])
  })
})

describe('AdminService plan membership (in memory)', () => {
  // Each order starts both calls in the same tick, as two admin requests arriving together would.
  for (const order of ['create-first', 'delete-first', 'update-first', 'delete-before-update'] as const) {
    it(`a tenant put on a plan while the plan is deleted: exactly one wins (${order})`, async () => {
      const plans = new InMemoryPlanStore({ tenants: configs, clock })
      const service = new AdminService({
        store: auditedStore(configs, auditLog, { clock }),
        plans: auditedPlanStore(plans, auditLog, { clock }),
        auditLog,
      })
      await service.createPlan({ id: 'pro' }, alice)
      await service.create({ id: 'other' }, alice)
      const tenantId = order.includes('update') ? 'other' : 'acme'
      const put = () =>
        tenantId === 'other'
          ? service.update('other', { plan: 'pro' }, alice)
          : service.create({ id: 'acme', plan: 'pro' }, alice)
      const remove = () => service.deletePlan('pro', { actor: 'bob' })
      const results = await Promise.allSettled(
        order.startsWith('delete') ? [remove(), put()] : [put(), remove()],
      )
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
      const planExists = await plans.getPlan('pro').then(
        () => true,
        () => false,
      )
      const tenant = await configs.getTenantConfig(tenantId).catch(() => null)
      // The contract: a tenant names only a plan that exists.
      if (tenant?.plan === 'pro') expect(planExists).toBe(true)
      const refusal = results.find((r) => r.status === 'rejected')!.reason
      if (planExists) expect(refusal).toBeInstanceOf(PlanInUseError)
      else if (refusal instanceof TenantBackendError) {
        // The put reached holdPlan while the delete was under way: refused at once, retryable.
        expect(refusal.message).toMatch(/"pro" is being deleted/)
      } else {
        expect(refusal).toBeInstanceOf(InvalidTenantConfigError)
        expect((refusal as InvalidTenantConfigError).issues[0]!.path).toEqual(['plan'])
      }
    })
  }
})

describe('AdminService undo of a failed audit append (in memory)', () => {
  // An audit log whose next tenant append waits for the test, then fails: the tenant write is
  // done and its record in flight, so the test can race a plan delete against the undo.
  function flakyLog() {
    let armed: { reached: () => void; fail: Promise<void> } | undefined
    const log = Object.assign(Object.create(auditLog) as InMemoryAuditLog, {
      append: async (record: Parameters<InMemoryAuditLog['append']>[0]) => {
        if ('tenantId' in record && armed !== undefined) {
          const gate = armed
          armed = undefined
          gate.reached()
          await gate.fail
          throw new Error('audit sink timed out')
        }
        return auditLog.append(record)
      },
    })
    const arm = () => {
      let reached!: () => void
      let fail!: () => void
      const reachedP = new Promise<void>((resolve) => {
        reached = resolve
      })
      armed = { reached, fail: new Promise<void>((resolve) => (fail = resolve)) }
      return { reached: reachedP, fail }
    }
    return { log, arm }
  }

  for (const kind of ['delete', 'move', 'off-plan'] as const) {
    it(`holds the plan a tenant leaves until its undo is done, so it cannot be deleted meanwhile (${kind})`, async () => {
      const { log, arm } = flakyLog()
      const plans = auditedPlanStore(new InMemoryPlanStore({ tenants: configs, clock }), auditLog, { clock })
      const service = new AdminService({ store: auditedStore(configs, log, { clock }), plans, auditLog })
      await service.createPlan({ id: 'pro' }, alice)
      await service.createPlan({ id: 'basic' }, alice)
      await service.create({ id: 'acme', plan: 'pro' }, alice)
      const { reached, fail } = arm()
      const change =
        kind === 'delete'
          ? service.delete('acme', { actor: 'bob' })
          : service.update('acme', { plan: kind === 'move' ? 'basic' : null }, { actor: 'bob' })
      await reached
      // The tenant is off plan pro for now, but the undo may put it back: pro stays.
      expect(await rejects(service.deletePlan('pro', { actor: 'carol' }))).toBeInstanceOf(PlanInUseError)
      fail()
      const error = await rejects(change)
      expect(error).toBeInstanceOf(TenantBackendError)
      expect((error as Error).message).toMatch(/the change was undone/)
      expect((await configs.getTenantConfig('acme')).plan).toBe('pro')
      expect(await plans.getPlan('pro')).toMatchObject({ id: 'pro' })
      // Once the change has settled, the plan is free of holds again.
      await service.update('acme', { plan: null }, alice)
      await service.deletePlan('pro', { actor: 'carol' })
    })
  }

  it('re-reads the tenant when its plan changed between the read and the write, then gives up (503)', async () => {
    const plans = auditedPlanStore(new InMemoryPlanStore({ tenants: configs, clock }), auditLog, { clock })
    const store = auditedStore(configs, auditLog, { clock })
    await plans.setPlan({ id: 'pro' })
    await configs.setTenantConfig({ id: 'acme', plan: 'pro' })
    let staleReads = 1
    // The service's own read of the tenant sees an old plan `staleReads` times.
    const lagging = {
      ...store,
      getTenantConfig: async (id: string) => {
        const config = await configs.getTenantConfig(id)
        if (staleReads === 0) return config
        staleReads -= 1
        return { ...config, plan: null }
      },
    }
    const service = new AdminService({ store: lagging, plans, auditLog })
    await service.delete('acme', alice)
    expect(await rejects(configs.getTenantConfig('acme'))).toBeInstanceOf(TenantNotFoundError)

    await configs.setTenantConfig({ id: 'acme', plan: 'pro' })
    staleReads = 100
    const error = await rejects(service.delete('acme', alice))
    expect(error).toBeInstanceOf(TenantBackendError)
    expect((error as Error).message).toMatch(/kept changing plan/)
    expect((await configs.getTenantConfig('acme')).plan).toBe('pro')
  })
})

describe('AdminService create resets what an earlier tenant of the same id left', () => {
  it('starts a re-used id with no quota usage and no slots in flight', async () => {
    const quotas = new InMemoryQuotaManager(configs, { clock })
    const limiter = new InMemoryConcurrencyLimiter()
    const rateLimiter = new TokenBucketRateLimiter(configs, { clock })
    const service = new AdminService({
      store: auditedStore(configs, auditLog, { clock }),
      auditLog,
      quotas,
      concurrency: limiter,
      rateLimiter,
      clock,
    })
    const limits = {
      quota: { limits: [{ window: 'month' as const, requests: 100 }] },
      concurrency: { maxInFlight: 5 },
      rateLimit: { requestsPerSecond: 0.001, burst: 2 },
    }
    await service.create({ id: 'acme', ...limits }, alice)
    await rateLimiter.consume('acme', { cost: 2 })
    expect((await rateLimiter.consume('acme')).allowed).toBe(false)
    await quotas.consume('acme', { requests: 100 })
    await quotas.consume('acme', { requests: 7, subject: 'key-1' } as never).catch(() => undefined)
    const old = await limiter.acquire('acme', 5)
    for (let i = 0; i < 4; i++) await limiter.acquire('acme', 5)
    await service.delete('acme', alice)

    await service.create({ id: 'acme', ...limits }, { actor: 'bob' })
    expect((await service.usage('acme')).windows[0]!.used).toEqual({ requests: 0, tokens: 0 })
    expect(await service.inFlight('acme')).toEqual({ tenantId: 'acme', inFlight: 0, maxInFlight: 5 })
    expect((await quotas.consume('acme', { requests: 1 })).allowed).toBe(true)
    // A full bucket: the old customer's spent burst is not the new one's.
    expect(await rateLimiter.consume('acme')).toMatchObject({ allowed: true, remaining: 1 })
    // The old customer's request ending later frees none of the new tenant's slots.
    await limiter.acquire('acme', 5)
    await old.lease!.release()
    expect(await limiter.inFlight('acme')).toBe(1)
    // The create record stands for the reset: no separate record is written.
    expect((await history('acme')).map((r) => r.action)).toEqual([
      'tenant.create',
      'tenant.delete',
      'tenant.create',
    ])
  })

  it('resets before the tenant exists, and not at all when the create is refused', async () => {
    const resets: string[] = []
    const seenBy = async (id: string) =>
      configs.getTenantConfig(id).then(
        () => 'visible',
        () => 'absent',
      )
    const service = new AdminService({
      store: auditedStore(configs, auditLog, { clock }),
      auditLog,
      quotas: {
        peek: async (id) => ({ tenantId: id, windows: [] }),
        reset: async (id) => {
          resets.push(`quota ${id} ${await seenBy(id)}`)
        },
      },
      concurrency: {
        inFlight: async () => 0,
        reset: async (id) => {
          resets.push(`slots ${id} ${await seenBy(id)}`)
        },
      },
      rateLimiter: {
        reset: async (id) => {
          resets.push(`bucket ${id} ${await seenBy(id)}`)
        },
      },
      freshStart: async (id) => {
        resets.push(`app ${id} ${await seenBy(id)}`)
      },
      clock,
    })
    await service.create({ id: 'acme' }, alice)
    expect(resets).toEqual([
      'quota acme absent',
      'slots acme absent',
      'bucket acme absent',
      'app acme absent',
    ])
    resets.length = 0
    expect(await rejects(service.create({ id: 'acme' }, alice))).toBeInstanceOf(TenantAlreadyExistsError)
    expect(await rejects(service.create({ id: 'beta', plan: 'ghost' }, alice))).toBeInstanceOf(
      InvalidTenantConfigError,
    )
    expect(await rejects(service.create({ id: 'beta' }, { actor: '' }))).toBeInstanceOf(
      InvalidTenantConfigError,
    )
    expect(resets).toEqual([])
  })

  it("a create racing another create of the same id is refused without resetting the winner's usage", async () => {
    const quotas = new InMemoryQuotaManager(configs, { clock })
    // The second reset waits until the test lets it go: a slow quota store.
    let resets = 0
    let letGo: () => void = () => {}
    const held = new Promise<void>((resolve) => (letGo = resolve))
    const service = new AdminService({
      store: auditedStore(configs, auditLog, { clock }),
      auditLog,
      quotas: {
        peek: (id) => quotas.peek(id),
        reset: async (id) => {
          if (++resets === 2) await held
          await quotas.reset(id)
        },
      },
      clock,
    })
    const input = { id: 'acme', quota: { limits: [{ window: 'month' as const, requests: 100 }] } }
    const first = service.create(input, alice)
    const second = service.create(input, { actor: 'bob' })
    await first
    await quotas.consume('acme', { requests: 3 })
    letGo()
    expect(await rejects(second)).toBeInstanceOf(TenantAlreadyExistsError)
    // The refused create reset nothing: the live tenant keeps its usage.
    expect((await service.usage('acme')).windows[0]!.used.requests).toBe(3)
    expect(resets).toBe(1)
  })

  it('a create while a delete of the id waits on its audit append resets nothing when the delete is undone', async () => {
    // The delete's append hangs, then fails: auditedStore puts the tenant back. A create made
    // meanwhile must look the id up after that (through the store's change path), find the live
    // tenant and be refused, without resetting its usage or clearing the application's data.
    let appendReached: () => void = () => {}
    let failAppend: () => void = () => {}
    const reached = new Promise<void>((resolve) => (appendReached = resolve))
    const failing = new Promise<void>((resolve) => (failAppend = resolve))
    let armed = false
    const log: typeof auditLog = Object.assign(Object.create(auditLog) as InMemoryAuditLog, {
      append: async (record: AuditRecord) => {
        if (!armed) return auditLog.append(record)
        armed = false
        appendReached()
        await failing
        throw new Error('audit sink timed out')
      },
    })
    const quotas = new InMemoryQuotaManager(configs, { clock })
    const appData = new Map<string, string>()
    const service = new AdminService({
      store: auditedStore(configs, log, { clock }),
      auditLog,
      quotas,
      freshStart: async (id) => {
        appData.delete(id)
      },
      clock,
    })
    await service.create({ id: 'acme', quota: { limits: [{ window: 'month', requests: 100 }] } }, alice)
    appData.set('acme', 'rows')
    await quotas.consume('acme', { requests: 40 })

    armed = true
    const deleting = service.delete('acme', alice)
    await reached
    const creating = service.create({ id: 'acme' }, { actor: 'bob' })
    // The create gets every chance to run ahead while the append hangs.
    for (let i = 0; i < 50; i++) await Promise.resolve()
    failAppend()
    expect(await rejects(deleting)).toBeInstanceOf(TenantBackendError)
    expect(await rejects(creating)).toBeInstanceOf(TenantAlreadyExistsError)
    expect((await configs.getTenantConfig('acme')).quota.limits[0]!.requests).toBe(100)
    expect((await service.usage('acme')).windows[0]!.used.requests).toBe(40)
    expect(appData.get('acme')).toBe('rows')
  })

  it("a usage reset that reached a tenant created under the id while it ran is recorded as that tenant's", async () => {
    const inner = new InMemoryQuotaManager(configs, { clock })
    let reached: () => void = () => {}
    let letGo: () => void = () => {}
    const inReset = new Promise<void>((resolve) => (reached = resolve))
    const held = new Promise<void>((resolve) => (letGo = resolve))
    const service = new AdminService({ store: auditedStore(configs, auditLog, { clock }), auditLog, clock })
    const resetter = new AdminService({
      store: auditedStore(configs, auditLog, { clock }),
      auditLog,
      quotas: {
        peek: (id) => inner.peek(id),
        reset: async (id) => {
          reached()
          await held
          await inner.reset(id)
        },
      },
      clock,
    })
    await service.create({ id: 'acme', metadata: { owner: 'old' } }, alice)
    const resetting = resetter.resetUsage('acme', { actor: 'ops' })
    await inReset
    await service.delete('acme', alice)
    clock.advance(1)
    await service.create({ id: 'acme', metadata: { owner: 'new' } }, alice)
    letGo()
    await resetting
    const [latest] = await history('acme')
    expect(latest).toMatchObject({ action: 'tenant.usage.reset', actor: 'ops' })
    expect(latest!.after?.metadata).toEqual({ owner: 'new' })
  })

  it('fails the create (nothing written) when a reset fails', async () => {
    const service = new AdminService({
      store: auditedStore(configs, auditLog, { clock }),
      auditLog,
      quotas: {
        peek: async (id) => ({ tenantId: id, windows: [] }),
        reset: async () => {
          throw new TenantBackendError('quota store down')
        },
      },
    })
    expect(await rejects(service.create({ id: 'acme' }, alice))).toBeInstanceOf(TenantBackendError)
    expect(await rejects(configs.getTenantConfig('acme'))).toBeInstanceOf(TenantNotFoundError)
    expect(await history('acme')).toEqual([])
  })
})
