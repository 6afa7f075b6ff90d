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
import { eq, sql } from 'drizzle-orm'
import { drizzle } from 'drizzle-orm/bun-sqlite'
import { sqliteTable, text } from 'drizzle-orm/sqlite-core'
import { describe, expect, it } from 'vitest'
import {
  DrizzleAuditLog,
  DrizzleConfigManager,
  DrizzlePlanStore,
  migrate,
  rollback,
  scoped,
} from '../src/index'
import { tenantIdColumn } from '../src/sqlite/index'

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

// bun:sqlite reads an object given as the first parameter as named parameters, index keys
// included, in place of every positional one after it: { 0: 'g1', 1: 'globex' } bound the
// tenant's place to 'globex'. The scoped API refuses an object value on SQLite before it runs.
describe('bun:sqlite: an object value cannot bind the tenant', () => {
  const notes = sqliteTable('notes', {
    id: text('id').primaryKey(),
    tenantId: tenantIdColumn(),
    title: text('title'),
  })
  function seeded() {
    const db = drizzle(new Database(':memory:'))
    db.run(sql`create table notes (id text primary key, tenant_id text not null, title text)`)
    db.run(sql`insert into notes values ('g1', 'globex', 'globex secret'), ('a1', 'acme', 'acme note')`)
    const rows = () => db.all(sql`select id, tenant_id, title from notes order by id`)
    return { acme: scoped(db, 'acme'), rows }
  }
  const before = [
    { id: 'a1', tenant_id: 'acme', title: 'acme note' },
    { id: 'g1', tenant_id: 'globex', title: 'globex secret' },
  ]
  const refusal = (run: () => unknown) =>
    Promise.resolve()
      .then(run)
      .then(
        (value) => ({ ran: value }),
        (error: { code?: string }) => error.code,
      )

  it('refuses it in raw SQL, in inserted and set values and in prepared statements, changing nothing', async () => {
    const { acme, rows } = seeded()
    const forged = { 0: 'g1', 1: 'globex', 2: 'planted' }
    const attempts = [
      () => acme.query('SELECT id, title FROM notes WHERE id = ?', [forged]),
      () => acme.exec('DELETE FROM notes WHERE id = ?', [forged]),
      () => acme.exec('UPDATE notes SET title = ? WHERE id = ?', [forged, 'zz']),
      () => acme.insert(notes).values({ id: forged as never, title: 'y' }),
      () =>
        acme
          .update(notes)
          .set({ title: forged as never })
          .where(eq(notes.id, 'a1')),
      () => acme.select({ x: sql`${forged}` }).from(notes),
      () =>
        acme
          .update(notes)
          .set({ title: sql.placeholder('title') as never })
          .where(eq(notes.id, 'a1'))
          .prepare()
          .execute({ title: forged }),
      // The same values given to the builder itself: Drizzle filled them in past the checks, and
      // bun:sqlite changed and read globex's rows.
      ...(['run', 'all', 'get', 'values'] as const).map(
        (method) => () =>
          acme
            .update(notes)
            .set({ title: sql.placeholder('title') as never })
            .where(eq(notes.id, 'g1'))
            [method]({ title: forged }),
      ),
      ...(['all', 'get', 'values'] as const).map(
        (method) => () =>
          acme
            .select({ x: sql`${sql.placeholder('p')}`, id: notes.id })
            .from(notes)
            [method]({ p: { 0: 'x', 1: 'globex' } }),
      ),
    ]
    for (const attempt of attempts) expect(await refusal(attempt)).toBe('tenant_unsafe_query')
    expect(rows()).toEqual(before)
    // Values bun:sqlite binds as they are still work.
    await acme.insert(notes).values({ id: 'a2', title: 'second' })
    expect(await acme.query('SELECT id FROM notes ORDER BY id')).toEqual([{ id: 'a1' }, { id: 'a2' }])
  })
})
