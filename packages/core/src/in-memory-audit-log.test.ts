import { describe, expect, it } from 'vitest'
import { testAuditLog } from '../testing/audit-log'
import { type AuditRecordInput, type TenantAuditRecordInput, validateAuditRecord } from './audit'
import { InvalidTenantConfigError, InvalidTenantIdError } from './errors'
import { InMemoryAuditLog, resolveAuditListOptions } from './in-memory-audit-log'

testAuditLog('InMemoryAuditLog', () => new InMemoryAuditLog())

function input(tenantId: string, n: number): AuditRecordInput {
  return { tenantId, actor: 'admin', action: 'tenant.update', before: null, after: null, at: n }
}

describe('InMemoryAuditLog', () => {
  it('holds at most `max` records, dropping the oldest across tenants', async () => {
    const log = new InMemoryAuditLog({ max: 3 })
    await log.append(input('a', 1))
    await log.append(input('b', 2))
    await log.append(input('a', 3))
    await log.append(input('c', 4))
    expect(log.size).toBe(3)
    expect((await log.list('a')).items.map((r) => r.at)).toEqual([3])
    expect((await log.list('c')).items.map((r) => r.at)).toEqual([4])
  })

  it('stays bounded over many appends from many tenants', async () => {
    const log = new InMemoryAuditLog({ max: 100 })
    for (let i = 0; i < 10_000; i++) await log.append(input(`t${i % 777}`, i))
    expect(log.size).toBe(100)
    // Only the newest 100 survive: tenants whose records were all dropped have no history left.
    expect((await log.list('t0')).items).toEqual([])
    const survivor = 9_999 % 777
    expect((await log.list(`t${survivor}`)).items.map((r) => r.at)).toEqual([9_999])
  })

  it('stores a frozen copy: neither the caller nor a reader can rewrite history', async () => {
    const log = new InMemoryAuditLog()
    const metadata: Record<string, unknown> = { plan: 'pro' }
    const after = {
      id: 'acme',
      status: 'active' as const,
      plan: null,
      quota: { limits: [] },
      rateLimit: null,
      concurrency: null,
      policy: { allowedModels: [], allowedTools: [], allowedMethods: [], allowedPaths: [] },
      metadata,
      createdAt: 1,
      updatedAt: 1,
    }
    await log.append({ ...input('acme', 1), after })
    metadata.plan = 'free'
    const [stored] = (await log.list('acme')).items
    expect(stored!.after!.metadata).toEqual({ plan: 'pro' })
    expect(Object.isFrozen(stored!.after!.metadata)).toBe(true)
    expect(() => {
      ;(stored!.after!.metadata as Record<string, unknown>).plan = 'hacked'
    }).toThrow(TypeError)
  })

  it('rejects a max that is not a whole number >= 1', () => {
    for (const max of [0, -5, 1.5, Number.NaN]) {
      expect(() => new InMemoryAuditLog({ max })).toThrow(InvalidTenantConfigError)
      expect(() => new InMemoryAuditLog({ max })).toThrow(
        /InMemoryAuditLog\.max: must be a whole number >= 1/,
      )
    }
  })
})

describe('resolveAuditListOptions', () => {
  it('applies the defaults', () => {
    expect(resolveAuditListOptions()).toEqual({ limit: 50, before: undefined })
    expect(resolveAuditListOptions({ limit: 1000, before: 'x' })).toEqual({ limit: 1000, before: 'x' })
  })

  it('checks the cursor against the store format when given', () => {
    expect(resolveAuditListOptions({ before: '0000000000000042' }, /^\d{16}$/).before).toBe(
      '0000000000000042',
    )
    expect(() => resolveAuditListOptions({ before: 'abc' }, /^\d{16}$/)).toThrow(/before: must be the `next`/)
  })

  it('lists every bad option at once', () => {
    expect(() => resolveAuditListOptions({ limit: 0, before: '' })).toThrow(/limit: .*; before: /)
  })
})

describe('validateAuditRecord', () => {
  const valid = input('acme', 1) as TenantAuditRecordInput

  it('returns the record as a log stores it, unknown fields dropped', () => {
    expect(validateAuditRecord(valid)).toEqual(valid)
    expect(validateAuditRecord({ ...valid, id: '0000000000000007', extra: true })).toEqual(valid)
  })

  it('refuses what is not a record, and a bad subject id with its own error', () => {
    for (const bad of [null, undefined, 'acme', [valid]]) {
      expect(() => validateAuditRecord(bad)).toThrow(InvalidTenantConfigError)
    }
    expect(() => validateAuditRecord({ ...valid, tenantId: 'a b' })).toThrow(InvalidTenantIdError)
    expect(() => validateAuditRecord({ ...valid, tenantId: undefined })).toThrow(InvalidTenantIdError)
    const { tenantId: _tenantId, ...noTenant } = valid
    expect(() => validateAuditRecord({ ...noTenant, planId: 'a/b', action: 'plan.update' })).toThrow(
      /planId: must be 1 to 255 characters/,
    )
  })

  it('lists every bad field at once', () => {
    expect(() => validateAuditRecord({ ...valid, actor: '', action: 'tenant.pwn', at: -1 })).toThrow(
      /actor: .*; action: .*; at: /,
    )
  })

  it('is what InMemoryAuditLog.append checks: nothing refused is stored', async () => {
    const log = new InMemoryAuditLog()
    await expect(log.append({ ...valid, actor: 'a\u0000b' })).rejects.toThrow(/actor: contains U\+0000/)
    expect(log.size).toBe(0)
  })
})
