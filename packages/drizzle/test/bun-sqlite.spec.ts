// Runs under Bun's test runner (`bun test`), which maps `vitest` imports to `bun:test`: the core
// conformance suites, unchanged, on bun:sqlite, Drizzle's synchronous SQLite driver. Started by
// src/bun-sqlite.test.ts; not picked up by Vitest (it only collects *.test.ts).
import { Database } from 'bun:sqlite'
import { ManualClock } from '@tenant/core'
import {
  testAuditedPlanStore,
  testAuditedTenantStore,
  testAuditLog,
  testConfigManager,
  testPlanStore,
} from '@tenant/core/testing'
import { sql } from 'drizzle-orm'
import { drizzle } from 'drizzle-orm/bun-sqlite'
import { describe, expect, it } from 'vitest'
import { DrizzleAuditLog, DrizzleConfigManager, DrizzlePlanStore, migrate, rollback } from '../src/index'

async function fresh() {
  const db = drizzle(new Database(':memory:'))
  await migrate(db)
  return db
}

testConfigManager(
  'DrizzleConfigManager [bun:sqlite]',
  async ({ clock }) => new DrizzleConfigManager(await fresh(), { clock }),
)
testAuditLog('DrizzleAuditLog [bun:sqlite]', async () => new DrizzleAuditLog(await fresh()))
testAuditedTenantStore('DrizzleConfigManager [bun:sqlite]', async () => {
  const db = await fresh()
  const clock = new ManualClock(Date.UTC(2026, 0, 1))
  return { store: new DrizzleConfigManager(db, { clock }), auditLog: new DrizzleAuditLog(db), clock }
})

// bun:sqlite leaves foreign keys off (SQLite's default): the plan store's own in-use check is what
// refuses deleting a plan that tenants are on.
testPlanStore('DrizzlePlanStore [bun:sqlite]', async ({ clock }) => {
  const db = await fresh()
  return { plans: new DrizzlePlanStore(db, { clock }), tenants: new DrizzleConfigManager(db, { clock }) }
})
testAuditedPlanStore('DrizzlePlanStore [bun:sqlite]', async () => {
  const db = await fresh()
  const clock = new ManualClock(Date.UTC(2026, 0, 1))
  return {
    store: new DrizzlePlanStore(db, { clock }),
    tenants: new DrizzleConfigManager(db, { clock }),
    auditLog: new DrizzleAuditLog(db),
    clock,
  }
})

describe('bun:sqlite specifics', () => {
  it('rolls the synchronous transaction back when the audit insert fails in the database', async () => {
    const db = await fresh()
    const manager = new DrizzleConfigManager(db, { cache: false })
    const auditLog = new DrizzleAuditLog(db)
    await manager.applyChange({
      tenantId: 'acme',
      action: 'tenant.create',
      actor: 'a',
      apply: () => ({ id: 'acme' }),
    })
    db.run(
      sql`create trigger refuse before insert on tenant_audit_log begin select raise(abort, 'refused'); end`,
    )
    const error = await manager
      .applyChange({
        tenantId: 'acme',
        action: 'tenant.suspend',
        actor: 'a',
        apply: () => ({ id: 'acme', status: 'suspended' }),
      })
      .catch((e: unknown) => e)
    expect((error as { code?: string }).code).toBe('tenant_backend_unavailable')
    expect((await manager.getTenantConfig('acme')).status).toBe('active')
    expect((await auditLog.list('acme')).items.map((r) => r.action)).toEqual(['tenant.create'])
  })

  it('migrates up, down and up again', async () => {
    const db = await fresh()
    expect(await rollback(db, { steps: 'all' })).toEqual([
      '0002_subjects_concurrency',
      '0001_plans',
      '0000_init',
    ])
    expect(db.all(sql`select name from sqlite_master where name = 'tenants'`)).toEqual([])
    expect(await migrate(db)).toEqual(['0000_init', '0001_plans', '0002_subjects_concurrency'])
    expect((await new DrizzleConfigManager(db).setTenantConfig({ id: 'back' })).id).toBe('back')
  })
})
