import { beforeEach, describe, expect, it } from 'vitest'
import { expectInvalidOption } from '../testing/options'
import { rejectionOf as rejects } from '../testing/quota-manager'
import { AdminService, toTenantConfigInput } from './admin-service'
import type { AuditRecord } from './audit'
import { auditedStore } from './audited-store'
import { ManualClock } from './clock'
import {
  InvalidTenantConfigError,
  InvalidTenantIdError,
  isTenantError,
  TenantAlreadyExistsError,
  TenantNotFoundError,
} from './errors'
import { InMemoryAuditLog } from './in-memory-audit-log'
import { InMemoryConfigManager } from './in-memory-config-manager'
import type { QuotaUsage } from './quota'

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
      quota: { limits: [] },
      rateLimit: null,
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
