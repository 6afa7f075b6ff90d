// DrizzleAuditLog.append checks records with core's validateAuditRecord, like InMemoryAuditLog
// (the shared cases are in core's testAuditLog, run on every database by conformance.test.ts).
// Here: what the Drizzle stores write themselves always passes that check, and a record the check
// refuses is a 400 on every database, never a backend error (Postgres refuses U+0000 in text).
import {
  AdminService,
  type AuditRecord,
  InMemoryConcurrencyLimiter,
  InMemoryQuotaManager,
  isTenantError,
  ManualClock,
  validateAuditRecord,
} from '@tenant/core'
import { beforeEach, expect, it } from 'vitest'
import { describeEachDatabase, withD1 } from '../test/databases'
import { DrizzleAuditLog } from './audit-log'
import { DrizzleConfigManager } from './config-manager'
import { DrizzlePlanStore } from './plan-store'

const T0 = Date.UTC(2026, 0, 1)

// The record without the id the log gave it: what an `append` of it takes.
function input({ id: _id, ...record }: AuditRecord) {
  return record
}

describeEachDatabase(
  'DrizzleAuditLog.append checks records',
  (database) => {
    beforeEach(() => database.current.reset())

    it('accepts every record the Drizzle stores and AdminService write, unchanged', async () => {
      const clock = new ManualClock(T0 + 0.75)
      const configs = new DrizzleConfigManager(database.current.db, { clock })
      const plans = new DrizzlePlanStore(database.current.db, { clock })
      const auditLog = new DrizzleAuditLog(database.current.db)
      const admin = new AdminService({
        store: configs,
        plans,
        auditLog,
        clock,
        quotas: new InMemoryQuotaManager(configs, { clock }),
        concurrency: new InMemoryConcurrencyLimiter({ clock }),
      })
      const alice = { actor: 'a'.repeat(255), requestId: 'r'.repeat(255) }
      const bob = { actor: 'bob 👩‍💻' }
      await admin.createPlan({ id: 'pro', quota: { limits: [{ window: 'day', requests: 10 }] } }, alice)
      await admin.updatePlan('pro', { metadata: { tier: 2 } }, bob)
      await admin.create({ id: 'acme', plan: 'pro', metadata: { owner: 'ünïcødé' } }, alice)
      await admin.updateQuota('acme', { limits: [{ window: 'hour', requests: 5 }] }, bob)
      await admin.updatePolicy('acme', { allowedModels: ['gpt-4o'] }, { ...bob, requestId: '' })
      await admin.suspend('acme', bob)
      await admin.activate('acme', bob)
      await admin.resetUsage('acme', bob)
      await admin.resetInFlight('acme', bob)
      await admin.update('acme', { plan: null }, alice)
      await admin.delete('acme', alice)
      await admin.deletePlan('pro', alice)

      const written = [...(await auditLog.list('acme')).items, ...(await auditLog.listPlan('pro')).items]
      expect(written.map((r) => r.action).sort()).toEqual([
        'plan.create',
        'plan.delete',
        'plan.update',
        'tenant.activate',
        'tenant.concurrency.reset',
        'tenant.create',
        'tenant.delete',
        'tenant.policy.update',
        'tenant.quota.update',
        'tenant.suspend',
        'tenant.update',
        'tenant.usage.reset',
      ])
      for (const record of written) {
        expect(validateAuditRecord(input(record))).toEqual(input(record))
        const again = await auditLog.append(input(record))
        expect(input(again)).toEqual(input(record))
      }
    })

    it('refuses a bad actor, action, snapshot or time with tenant_invalid_config, writing nothing', async () => {
      const auditLog = new DrizzleAuditLog(database.current.db)
      const globex = await new DrizzleConfigManager(database.current.db).setTenantConfig({ id: 'globex' })
      const base = {
        tenantId: 'acme',
        actor: 'x',
        action: 'tenant.update',
        before: null,
        after: null,
        at: T0,
      }
      const cases: [unknown, string][] = [
        [{ ...base, actor: 'a\u0000b' }, 'actor'],
        [{ ...base, actor: '' }, 'actor'],
        [{ ...base, requestId: 'r\u0000' }, 'requestId'],
        [{ ...base, action: 'tenant.pwn' }, 'action'],
        [{ ...base, before: globex, after: globex }, 'before'],
        [{ ...base, at: 253_402_300_800_000 }, 'at'],
      ]
      for (const [bad, field] of cases) {
        const error = await auditLog.append(bad as never).then(
          () => undefined,
          (e: unknown) => e,
        )
        expect(isTenantError(error) && error.code, field).toBe('tenant_invalid_config')
        expect((error as { issues: { path: unknown[] }[] }).issues[0]!.path[0], field).toBe(field)
      }
      expect((await auditLog.list('acme')).items).toEqual([])
    })
  },
  { kinds: withD1 },
)
