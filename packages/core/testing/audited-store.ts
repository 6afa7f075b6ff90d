import {
  type AuditedTenantStore,
  type AuditLog,
  type ConfigManager,
  isTenantError,
  type ManualClock,
  type TenantChange,
  type TenantConfig,
  type TenantConfigInput,
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
