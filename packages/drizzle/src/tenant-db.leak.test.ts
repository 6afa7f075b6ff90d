// The leak property: random interleavings of create/read/update/delete/list by three tenants,
// through the scoped API and the raw-SQL helpers (plus attempts that try to cross over), never
// return or change a row of another tenant. After every step the whole table is compared with a
// model that only ever applies a tenant's operations to that tenant's rows.
import { asc, eq, or, sql } from 'drizzle-orm'
import type { LibSQLDatabase } from 'drizzle-orm/libsql'
import fc from 'fast-check'
import { beforeAll, expect, it } from 'vitest'
import { describeEachDatabase, type TestDatabase } from '../test/databases'
import { createIsolationTables, TENANTS, tablesFor } from '../test/isolation-db'
import { scoped, unscoped } from './scoped'

type Tenant = (typeof TENANTS)[number]
interface Row {
  tenant: Tenant
  title: string
  score: number
}

type Command =
  | { op: 'create'; tenant: Tenant; raw: boolean; title: string; score: number }
  | { op: 'createForeign'; tenant: Tenant; raw: boolean; other: Tenant; title: string }
  | { op: 'read' | 'delete'; tenant: Tenant; raw: boolean; pick: number }
  | { op: 'update'; tenant: Tenant; raw: boolean; pick: number; title: string; score: number }
  | { op: 'list' | 'listOr' | 'updateOr'; tenant: Tenant; raw: boolean; other: Tenant; title: string }

const tenantArb = fc.constantFrom(...TENANTS)
// Titles that look like SQL must stay data: they are always bound parameters.
const titleArb = fc.oneof(
  fc.string({ maxLength: 20 }).map((s) => s.replaceAll('\u0000', '')),
  fc.constantFrom(
    "' OR '1'='1",
    'x WHERE tenant_id = tenant_id',
    '--',
    "'; DELETE FROM notes; --",
    'acme',
    '?',
    '$1',
  ),
)
const commandArb: fc.Arbitrary<Command> = fc.oneof(
  fc.record({
    op: fc.constant('create' as const),
    tenant: tenantArb,
    raw: fc.boolean(),
    title: titleArb,
    score: fc.integer({ min: -5, max: 5 }),
  }),
  fc.record({
    op: fc.constant('createForeign' as const),
    tenant: tenantArb,
    raw: fc.boolean(),
    other: tenantArb,
    title: titleArb,
  }),
  fc.record({
    op: fc.constantFrom('read' as const, 'delete' as const),
    tenant: tenantArb,
    raw: fc.boolean(),
    pick: fc.nat(),
  }),
  fc.record({
    op: fc.constant('update' as const),
    tenant: tenantArb,
    raw: fc.boolean(),
    pick: fc.nat(),
    title: titleArb,
    score: fc.integer({ min: -5, max: 5 }),
  }),
  fc.record({
    op: fc.constantFrom('list' as const, 'listOr' as const, 'updateOr' as const),
    tenant: tenantArb,
    raw: fc.boolean(),
    other: tenantArb,
    title: titleArb,
  }),
)

function ph(dialect: 'sqlite' | 'pg', statement: string): string {
  let n = 0
  return statement.replaceAll('{?}', () => (dialect === 'sqlite' ? '?' : `$${++n}`))
}

async function expectRefused(fn: () => unknown): Promise<void> {
  // The scoped builders refuse while the query is built (a throw), the raw helpers when it runs.
  await expect((async () => fn())()).rejects.toThrowError(
    expect.objectContaining({ code: 'tenant_unsafe_query' }),
  )
}

describeEachDatabase(
  'tenant isolation property',
  (database) => {
    let db: LibSQLDatabase
    let t: ReturnType<typeof tablesFor>
    let dialect: 'sqlite' | 'pg'
    beforeAll(async () => {
      await createIsolationTables(database.current)
      db = database.current.db as unknown as LibSQLDatabase
      t = tablesFor(database.current)
      dialect = database.current.dialect
    })

    async function snapshot(d: TestDatabase): Promise<Map<string, Row>> {
      const rows = await unscoped(d.db as unknown as LibSQLDatabase)
        .select()
        .from(t.notes)
      return new Map(
        rows.map((r) => [r.id, { tenant: r.tenantId as Tenant, title: r.title, score: r.score }]),
      )
    }

    async function step(c: Command, model: Map<string, Row>, nextId: () => string): Promise<void> {
      const tdb = scoped(db, c.tenant)
      const q = (statement: string) => ph(dialect, statement)
      const ids = [...model.keys()].sort()
      // Picks any row, of any tenant, or one that does not exist.
      const pickId = (pick: number) =>
        ids.length === 0 || pick % (ids.length + 1) === ids.length ? 'missing' : ids[pick % (ids.length + 1)]!
      const own = (id: string) => model.get(id)?.tenant === c.tenant
      const ownRows = () =>
        [...model.entries()]
          .filter(([, r]) => r.tenant === c.tenant)
          .map(([id, r]) => ({ id, title: r.title, score: r.score }))
          .sort((a, b) => (a.id < b.id ? -1 : 1))

      switch (c.op) {
        case 'create': {
          const id = nextId()
          if (c.raw) {
            const { rowsAffected } = await tdb.exec(
              q('INSERT INTO notes (id, title, score) VALUES ({?}, {?}, {?})'),
              [id, c.title, c.score],
            )
            expect(rowsAffected).toBe(1)
          } else {
            await tdb.insert(t.notes).values({ id, title: c.title, score: c.score })
          }
          model.set(id, { tenant: c.tenant, title: c.title, score: c.score })
          return
        }
        case 'createForeign': {
          if (c.other === c.tenant) return
          const id = nextId()
          await expectRefused(() =>
            c.raw
              ? tdb.exec(q('INSERT INTO notes (id, tenant_id, title) VALUES ({?}, {?}, {?})'), [
                  id,
                  c.other,
                  c.title,
                ])
              : tdb.insert(t.notes).values({ id, tenantId: c.other, title: c.title }),
          )
          return
        }
        case 'read': {
          const id = pickId(c.pick)
          const rows = c.raw
            ? await tdb.query<{ id: string; title: string; score: number }>(
                q('SELECT id, title, score FROM notes WHERE id = {?}'),
                [id],
              )
            : await tdb
                .select({ id: t.notes.id, title: t.notes.title, score: t.notes.score })
                .from(t.notes)
                .where(eq(t.notes.id, id))
          const expected = own(id) ? [{ id, title: model.get(id)!.title, score: model.get(id)!.score }] : []
          expect(rows.map((r) => ({ ...r, score: Number(r.score) }))).toEqual(expected)
          return
        }
        case 'update': {
          const id = pickId(c.pick)
          const changed = c.raw
            ? (
                await tdb.exec(q('UPDATE notes SET title = {?}, score = {?} WHERE id = {?}'), [
                  c.title,
                  c.score,
                  id,
                ])
              ).rowsAffected
            : (
                await tdb
                  .update(t.notes)
                  .set({ title: c.title, score: c.score })
                  .where(eq(t.notes.id, id))
                  .returning({ id: t.notes.id })
              ).length
          expect(changed).toBe(own(id) ? 1 : 0)
          if (own(id)) model.set(id, { tenant: c.tenant, title: c.title, score: c.score })
          return
        }
        case 'delete': {
          const id = pickId(c.pick)
          const changed = c.raw
            ? (await tdb.exec(q('DELETE FROM notes WHERE id = {?}'), [id])).rowsAffected
            : (await tdb.delete(t.notes).where(eq(t.notes.id, id)).returning({ id: t.notes.id })).length
          expect(changed).toBe(own(id) ? 1 : 0)
          if (own(id)) model.delete(id)
          return
        }
        case 'list':
        case 'listOr': {
          // listOr asks for another tenant's rows, or everything, and must still get only its own.
          const rows = c.raw
            ? await tdb.query<{ id: string; title: string; score: number }>(
                c.op === 'list'
                  ? 'SELECT id, title, score FROM notes ORDER BY id'
                  : q('SELECT id, title, score FROM notes WHERE tenant_id = {?} OR 1 = 1 ORDER BY id'),
                c.op === 'list' ? [] : [c.other],
              )
            : await tdb
                .select({ id: t.notes.id, title: t.notes.title, score: t.notes.score })
                .from(t.notes)
                // A raw OR, which Drizzle's and() would not parenthesise on its own.
                .where(c.op === 'list' ? undefined : sql`${t.notes.tenantId} = ${c.other} OR 1 = 1`)
                .orderBy(asc(t.notes.id))
          const sorted = rows
            .map((r) => ({ ...r, score: Number(r.score) }))
            .sort((a, b) => (a.id < b.id ? -1 : 1))
          expect(sorted).toEqual(ownRows())
          return
        }
        case 'updateOr': {
          // An update aimed at another tenant's rows (or all rows) changes exactly the tenant's own.
          const changed = c.raw
            ? (
                await tdb.exec(q('UPDATE notes SET title = {?} WHERE tenant_id = {?} OR 1 = 1'), [
                  c.title,
                  c.other,
                ])
              ).rowsAffected
            : (
                await tdb
                  .update(t.notes)
                  .set({ title: c.title })
                  .where(
                    c.title.length % 2 === 0
                      ? or(eq(t.notes.tenantId, c.other), sql`1 = 1`)
                      : sql`${t.notes.tenantId} = ${c.other} OR 1 = 1`,
                  )
                  .returning({ id: t.notes.id })
              ).length
          const mine = ownRows()
          expect(changed).toBe(mine.length)
          for (const r of mine) model.set(r.id, { tenant: c.tenant, title: c.title, score: r.score })
          return
        }
      }
    }

    it('no operation ever returns or changes a row of another tenant', async () => {
      let runs = 0
      await fc.assert(
        fc.asyncProperty(fc.array(commandArb, { minLength: 1, maxLength: 30 }), async (commands) => {
          runs++
          await database.current.query(sql.raw('delete from notes'))
          const model = new Map<string, Row>()
          let counter = 0
          const nextId = () => `r${runs}-${counter++}`
          for (const command of commands) {
            await step(command, model, nextId)
            expect(await snapshot(database.current)).toEqual(model)
          }
        }),
        { numRuns: database.kind === 'postgres' ? 40 : 60 },
      )
      expect(runs).toBeGreaterThanOrEqual(40)
    })
  },
  { kinds: ['libsql-memory', 'pglite', 'postgres'], migrate: false },
)
