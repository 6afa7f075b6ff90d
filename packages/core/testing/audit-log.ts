import {
  type AuditLog,
  type AuditRecord,
  isTenantError,
  type PlanAuditRecordInput,
  type TenantAuditRecordInput,
  type TenantConfig,
} from '@tenant/core'
import { beforeEach, describe, expect, it } from 'vitest'
import { rejectionOf as rejects } from './quota-manager'

/** What {@link testAuditLog} needs: a fresh, empty log per test. */
export type AuditLogFactory = () => AuditLog | Promise<AuditLog>

const T0 = Date.UTC(2026, 0, 1)

function config(id: string, overrides: Partial<TenantConfig> = {}): TenantConfig {
  return {
    id,
    status: 'active',
    plan: null,
    quota: { limits: [{ window: 'day', requests: 100 }] },
    rateLimit: null,
    concurrency: null,
    policy: { allowedModels: ['gpt-4o'], allowedTools: [], allowedMethods: [], allowedPaths: [] },
    metadata: { plan: 'pro' },
    createdAt: T0,
    updatedAt: T0,
    ...overrides,
  }
}

function record(
  tenantId: string,
  n: number,
  overrides: Partial<TenantAuditRecordInput> = {},
): TenantAuditRecordInput {
  return {
    tenantId,
    actor: `admin-${n}`,
    action: 'tenant.update',
    before: config(tenantId, { updatedAt: T0 + n }),
    after: config(tenantId, { updatedAt: T0 + n + 1, metadata: { n } }),
    at: T0 + n,
    requestId: `req-${n}`,
    ...overrides,
  }
}

function planRecord(planId: string, n: number): PlanAuditRecordInput {
  const plan = {
    id: planId,
    quota: { limits: [{ window: 'day' as const, requests: n }] },
    rateLimit: null,
    concurrency: null,
  }
  const policy = { allowedModels: [], allowedTools: [], allowedMethods: [], allowedPaths: [] }
  return {
    planId,
    actor: `admin-${n}`,
    action: 'plan.update',
    before: { ...plan, policy, metadata: {}, createdAt: T0, updatedAt: T0 + n },
    after: { ...plan, policy, metadata: { n }, createdAt: T0, updatedAt: T0 + n + 1 },
    at: T0 + n,
    requestId: `req-${n}`,
  }
}

async function all(log: AuditLog, tenantId: string, limit: number): Promise<AuditRecord[]> {
  const out: AuditRecord[] = []
  let before: string | undefined
  for (let page = 0; page < 1000; page++) {
    const result = await log.list(tenantId, before === undefined ? { limit } : { limit, before })
    expect(result.items.length).toBeLessThanOrEqual(limit)
    out.push(...result.items)
    if (result.next === undefined) return out
    expect(result.items.length).toBe(limit)
    before = result.next
  }
  throw new Error('pagination did not end')
}

/**
 * The conformance suite every {@link AuditLog} store runs: records round-trip unchanged, history is
 * per tenant and newest first, keyset pagination visits every record once and is stable while new
 * records arrive, and bad input is a typed error: a record with a bad actor, requestId, action,
 * `at`, or a snapshot of another subject is refused (`validateAuditRecord`), and nothing is stored.
 *
 * @example
 * ```ts
 * testAuditLog('InMemoryAuditLog', () => new InMemoryAuditLog())
 * ```
 */
export function testAuditLog(name: string, factory: AuditLogFactory): void {
  describe(`AuditLog conformance: ${name}`, () => {
    let log: AuditLog
    beforeEach(async () => {
      log = await factory()
    })

    it('returns the appended record with an id, and lists it unchanged', async () => {
      const input = record('acme', 1)
      const stored = await log.append(input)
      expect(typeof stored.id).toBe('string')
      expect(stored.id.length).toBeGreaterThan(0)
      expect(stored).toEqual({ ...input, id: stored.id })
      const { items, next } = await log.list('acme')
      expect(items).toEqual([stored])
      expect(next).toBeUndefined()
    })

    it('keeps null before (create) and null after (delete), and an absent requestId', async () => {
      const { requestId: _requestId, ...noRequest } = record('acme', 1, {
        action: 'tenant.create',
        before: null,
      })
      const created = await log.append(noRequest)
      const deleted = await log.append(record('acme', 2, { action: 'tenant.delete', after: null }))
      const { items } = await log.list('acme')
      expect(items).toEqual([deleted, created])
      expect(items[1]!.before).toBeNull()
      expect(items[1]!.requestId ?? undefined).toBeUndefined()
      expect(items[0]!.after).toBeNull()
    })

    it('lists newest first and only the asked tenant', async () => {
      const a1 = await log.append(record('a', 1))
      const b1 = await log.append(record('b', 2))
      const a2 = await log.append(record('a', 3, { action: 'tenant.suspend' }))
      expect((await log.list('a')).items).toEqual([a2, a1])
      expect((await log.list('b')).items).toEqual([b1])
      expect((await log.list('nobody')).items).toEqual([])
    })

    it('orders records appended in the same millisecond by append order', async () => {
      const first = await log.append(record('acme', 1, { at: T0 }))
      const second = await log.append(record('acme', 2, { at: T0 }))
      expect((await log.list('acme')).items.map((r) => r.id)).toEqual([second.id, first.id])
    })

    it('paginates with before/next, visiting every record exactly once', async () => {
      const appended: AuditRecord[] = []
      for (let n = 0; n < 7; n++) appended.push(await log.append(record('acme', n)))
      await log.append(record('other', 99))
      const newestFirst = [...appended].reverse()
      for (const limit of [1, 2, 3, 7, 50]) {
        expect(await all(log, 'acme', limit)).toEqual(newestFirst)
      }
    })

    it('keeps later pages stable while new records are appended', async () => {
      for (let n = 0; n < 5; n++) await log.append(record('acme', n))
      const first = await log.list('acme', { limit: 2 })
      await log.append(record('acme', 100))
      const second = await log.list('acme', { limit: 2, before: first.next! })
      expect(second.items.map((r) => r.actor)).toEqual(['admin-2', 'admin-1'])
    })

    it('defaults to 50 records a page', async () => {
      for (let n = 0; n < 51; n++) await log.append(record('acme', n))
      const page = await log.list('acme')
      expect(page.items).toHaveLength(50)
      expect(page.next).toBeDefined()
      expect((await log.list('acme', { before: page.next! })).items).toHaveLength(1)
    })

    it('refuses a bad tenant id with tenant_invalid_id', async () => {
      for (const bad of ['', 'a/b', 'x'.repeat(256)]) {
        const listError = await rejects(log.list(bad))
        expect(isTenantError(listError) && listError.code).toBe('tenant_invalid_id')
      }
      const appendError = await rejects(log.append(record('a b', 1)))
      expect(isTenantError(appendError) && appendError.code).toBe('tenant_invalid_id')
    })

    it('refuses a bad limit with tenant_invalid_config naming it', async () => {
      for (const limit of [0, -1, 1.5, 1001, Number.NaN]) {
        const error = await rejects(log.list('acme', { limit }))
        expect(isTenantError(error) && error.code).toBe('tenant_invalid_config')
        expect((error as { issues: { path: unknown[] }[] }).issues[0]!.path).toEqual(['limit'])
      }
    })

    it('keeps plan records apart from tenant records with the same id, each paged newest first', async () => {
      expect(typeof log.listPlan).toBe('function')
      const tenant = await log.append(record('acme', 1))
      const plans = []
      for (let n = 2; n < 7; n++) plans.push(await log.append(planRecord('acme', n)))
      const created = await log.append({ ...planRecord('pro', 9), action: 'plan.create', before: null })
      expect(plans[0]).toEqual({ ...planRecord('acme', 2), id: plans[0]!.id })
      expect((await log.list('acme')).items).toEqual([tenant])
      const newestFirst = [...plans].reverse()
      expect((await log.listPlan!('acme')).items).toEqual(newestFirst)
      const first = await log.listPlan!('acme', { limit: 2 })
      expect(first.items).toEqual(newestFirst.slice(0, 2))
      const rest = await log.listPlan!('acme', { limit: 10, before: first.next! })
      expect(rest.items).toEqual(newestFirst.slice(2))
      expect(rest.next).toBeUndefined()
      expect((await log.listPlan!('pro')).items).toEqual([created])
      expect((await log.listPlan!('nothing')).items).toEqual([])
      for (const bad of ['', 'a/b']) {
        const error = await rejects(log.listPlan!(bad))
        expect(isTenantError(error) && error.code).toBe('tenant_invalid_config')
      }
    })

    it('refuses a record no toolkit writer would write, with tenant_invalid_config naming the field', async () => {
      const acme = record('acme', 1)
      const globex = config('globex')
      const cases: [string, unknown, (string | number)[]][] = [
        ['empty actor', { ...acme, actor: '' }, ['actor']],
        ['actor over 255 characters', { ...acme, actor: 'a'.repeat(256) }, ['actor']],
        ['actor with U+0000', { ...acme, actor: 'a\u0000b' }, ['actor']],
        ['actor with a lone surrogate', { ...acme, actor: 'a\uD800b' }, ['actor']],
        ['actor not a string', { ...acme, actor: 42 }, ['actor']],
        ['requestId over 255 characters', { ...acme, requestId: 'r'.repeat(256) }, ['requestId']],
        ['requestId with U+0000', { ...acme, requestId: 'r\u0000' }, ['requestId']],
        ['requestId with a lone surrogate', { ...acme, requestId: '\uDC00' }, ['requestId']],
        ['unknown action', { ...acme, action: 'tenant.pwn' }, ['action']],
        ['plan action on a tenant record', { ...acme, action: 'plan.update' }, ['action']],
        ['before of another tenant', { ...acme, before: globex }, ['before', 'id']],
        ['after of another tenant', { ...acme, after: globex }, ['after', 'id']],
        ['before not a config', { ...acme, before: { id: 'acme' } }, ['before', 'createdAt']],
        ['fractional at', { ...acme, at: T0 + 0.5 }, ['at']],
        ['negative at', { ...acme, at: -1 }, ['at']],
        ['at past the year 9999', { ...acme, at: 253_402_300_800_000 }, ['at']],
        [
          'plan record with a tenant action',
          { ...planRecord('pro', 1), action: 'tenant.update' },
          ['action'],
        ],
        ['plan record with an empty actor', { ...planRecord('pro', 1), actor: '' }, ['actor']],
        [
          'plan snapshot of another plan',
          { ...planRecord('pro', 1), after: planRecord('free', 1).after },
          ['after', 'id'],
        ],
      ]
      for (const [what, bad, path] of cases) {
        const error = await rejects(log.append(bad as TenantAuditRecordInput))
        expect(isTenantError(error) && error.code, what).toBe('tenant_invalid_config')
        expect(
          (error as { issues: { path: unknown[] }[] }).issues.map((i) => i.path),
          what,
        ).toContainEqual(path)
      }
      // Nothing refused was stored.
      expect((await log.list('acme')).items).toEqual([])
      expect((await log.listPlan!('pro')).items).toEqual([])
    })

    it('accepts the edges of what toolkit writers write', async () => {
      const edges: TenantAuditRecordInput[] = [
        record('acme', 1, { actor: 'a'.repeat(255), requestId: 'r'.repeat(255) }),
        record('acme', 2, { actor: 'ünïcødé 👩‍💻', requestId: '' }),
        record('acme', 3, { action: 'tenant.usage.reset', at: 0 }),
        record('acme', 4, { action: 'tenant.concurrency.reset', at: 253_402_300_799_999 }),
      ]
      const stored: AuditRecord[] = []
      for (const input of edges) stored.push(await log.append(input))
      expect(stored).toEqual(edges.map((input, i) => ({ ...input, id: stored[i]!.id })))
      expect((await log.list('acme')).items).toEqual([...stored].reverse())
    })

    it('refuses a cursor it did not issue', async () => {
      await log.append(record('acme', 1))
      const error = await rejects(log.list('acme', { before: 'not-a-cursor' }))
      expect(isTenantError(error) && error.code).toBe('tenant_invalid_config')
    })
  })
}
