import { and, asc, eq, exists, inArray, or, sql } from 'drizzle-orm'
import type { LibSQLDatabase } from 'drizzle-orm/libsql'
import * as pgCore from 'drizzle-orm/pg-core'
import { alias as pgAlias } from 'drizzle-orm/pg-core'
import * as sqliteCore from 'drizzle-orm/sqlite-core'
import { alias as sqliteAlias, unionAll } from 'drizzle-orm/sqlite-core'
import { beforeAll, beforeEach, describe, expect, expectTypeOf, it } from 'vitest'
import { describeEachDatabase, openDatabase } from '../test/databases'
import { allRows, createIsolationTables, seedIsolationData, tablesFor } from '../test/isolation-db'
import { rejects } from '../test/tenant-errors'
import { UnsafeQueryError } from './raw-sql'
import { createScoped, scoped, unscoped } from './scoped'
import type { TenantDB } from './tenant-db'

describeEachDatabase(
  'scoped queries',
  (database) => {
    let db: LibSQLDatabase
    let t: ReturnType<typeof tablesFor>
    let acme: TenantDB<LibSQLDatabase>

    beforeAll(async () => {
      await createIsolationTables(database.current)
      db = database.current.db as unknown as LibSQLDatabase
      t = tablesFor(database.current)
      acme = scoped(db, 'acme', { shared: [t.plans] })
    })
    beforeEach(() => seedIsolationData(database.current))

    describe('select', () => {
      it('returns only the tenant rows, typed as the table rows', async () => {
        const rows = await acme.select().from(t.notes).orderBy(asc(t.notes.id))
        expectTypeOf(rows).toEqualTypeOf<(typeof t.notes.$inferSelect)[]>()
        expect(rows.map((r) => r.id)).toEqual(['acme-n1', 'acme-n2', 'acme-n3'])
        expect(new Set(rows.map((r) => r.tenantId))).toEqual(new Set(['acme']))
      })

      it("adds the tenant to the caller's where, so another tenant's id finds nothing", async () => {
        expect(await acme.select().from(t.notes).where(eq(t.notes.id, 'globex-n1'))).toEqual([])
        const own = await acme.select({ title: t.notes.title }).from(t.notes).where(eq(t.notes.id, 'acme-n2'))
        expectTypeOf(own).toEqualTypeOf<{ title: string }[]>()
        expect(own).toEqual([{ title: 'acme note 2' }])
      })

      it('keeps the tenant condition when the caller ORs in a bypass or names another tenant', async () => {
        const rows = await acme
          .select()
          .from(t.notes)
          .where(or(eq(t.notes.tenantId, 'globex'), sql`1 = 1`))
        expect(rows.map((r) => r.tenantId)).toEqual(['acme', 'acme', 'acme'])
        // where() called twice replaces the caller's condition, never ours.
        const twice = await acme
          .select()
          .from(t.notes)
          .$dynamic()
          .where(eq(t.notes.score, 1))
          .where(sql`1 = 1`)
        expect(twice).toHaveLength(3)
        expect(twice.every((r) => r.tenantId === 'acme')).toBe(true)
      })

      it('accepts a where callback and checks what it returns', async () => {
        const rows = await acme
          .select({ id: t.notes.id, score: t.notes.score })
          .from(t.notes)
          .where((f) => eq(f.score, 3))
        expect(rows).toEqual([{ id: 'acme-n3', score: 3 }])
      })

      it('selectDistinct and $count are scoped too', async () => {
        const owners = await acme.selectDistinct({ owner: t.notes.ownerId }).from(t.notes)
        expect(owners).toEqual([{ owner: 'acme-u1' }])
        expect(await acme.$count(t.notes)).toBe(3)
        expect(await acme.$count(t.notes, eq(t.notes.score, 2))).toBe(1)
        expect(await unscoped(db).$count(t.notes)).toBe(9)
      })

      it('reads a shared table, and refuses a table without a tenant column that is not shared', async () => {
        expect((await acme.select().from(t.plans)).map((p) => p.id).sort()).toEqual(['free', 'pro'])
        const strict = scoped(db, 'acme')
        await rejects(() => strict.select().from(t.plans), 'tenant_unsafe_query')
      })

      it('refuses raw SQL and views as the FROM source', async () => {
        const error = await rejects(() => acme.select().from(sql`notes` as never), 'tenant_unsafe_query')
        expect(error).toBeInstanceOf(UnsafeQueryError)
      })
    })

    describe('joins', () => {
      it('innerJoin puts the tenant into ON: a join that matches everything still sees only tenant rows', async () => {
        const rows = await acme
          .select({ note: t.notes.id, user: t.users.id, userTenant: t.users.tenantId })
          .from(t.notes)
          .innerJoin(t.users, sql`1 = 1`)
        expect(rows).toHaveLength(6) // 3 notes x 2 users of acme, not 9 x 6
        expect(rows.every((r) => r.note.startsWith('acme-') && r.userTenant === 'acme')).toBe(true)
      })

      it("leftJoin leaves other tenants' rows out (null), even when the ON condition points at them", async () => {
        const rows = await acme
          .select({ note: t.notes.id, user: t.users.id })
          .from(t.notes)
          .leftJoin(t.users, eq(t.users.id, 'globex-u1'))
          .orderBy(asc(t.notes.id))
        expect(rows).toEqual([
          { note: 'acme-n1', user: null },
          { note: 'acme-n2', user: null },
          { note: 'acme-n3', user: null },
        ])
      })

      it('joins an aliased copy of a tenant table with the condition on the alias', async () => {
        const other =
          database.current.dialect === 'pg'
            ? pgAlias(t.notes as never, 'other')
            : sqliteAlias(t.notes, 'other')
        const rows = await acme
          .select({ a: t.notes.id, b: (other as unknown as typeof t.notes).id })
          .from(t.notes)
          .innerJoin(other as unknown as typeof t.notes, sql`1 = 1`)
        expect(rows).toHaveLength(9)
        expect(rows.every((r) => r.a.startsWith('acme-') && r.b.startsWith('acme-'))).toBe(true)
      })

      it('joins a shared table, refuses an unshared one without the tenant column', async () => {
        const rows = await acme
          .select({ user: t.users.id, plan: t.plans.name })
          .from(t.users)
          .innerJoin(t.plans, eq(t.plans.id, t.users.planId))
          .orderBy(asc(t.users.id))
        expect(rows).toEqual([
          { user: 'acme-u1', plan: 'Free' },
          { user: 'acme-u2', plan: 'Pro' },
        ])
        await rejects(
          () => scoped(db, 'acme').select().from(t.users).innerJoin(t.plans, eq(t.plans.id, t.users.planId)),
          'tenant_unsafe_query',
        )
      })

      it('refuses the joins whose rows would not all pass through ON', async () => {
        const q = () => acme.select().from(t.notes) as any
        for (const join of ['rightJoin', 'fullJoin', 'crossJoin']) {
          const error = await rejects(() => q()[join](t.users, sql`1 = 1`), 'tenant_unsafe_query')
          expect(error.message).toContain(join)
        }
      })
    })

    describe('subqueries and set operations', () => {
      it('accepts a subquery from the same scoped database', async () => {
        const shared = acme.select({ id: t.shares.noteId }).from(t.shares)
        const rows = await acme.select({ id: t.notes.id }).from(t.notes).where(inArray(t.notes.id, shared))
        expect(rows).toEqual([{ id: 'acme-n1' }])
        const sq = acme.select({ id: t.notes.id, score: t.notes.score }).from(t.notes).as('sq')
        const fromSq = await acme.select({ id: sq.id }).from(sq).where(eq(sq.score, 2))
        expect(fromSq).toEqual([{ id: 'acme-n2' }])
      })

      it('refuses an unscoped subquery, one of another tenant and raw table references', async () => {
        const foreign = db.select({ id: t.shares.noteId }).from(t.shares)
        await rejects(
          () => acme.select().from(t.notes).where(inArray(t.notes.id, foreign)),
          'tenant_unsafe_query',
        )
        const globex = scoped(db, 'globex').select({ id: t.shares.noteId }).from(t.shares)
        await rejects(() => acme.select().from(t.notes).where(exists(globex)), 'tenant_unsafe_query')
        await rejects(
          () => acme.select().from(t.notes).where(sql`${t.notes.id} in (select note_id from ${t.shares})`),
          'tenant_unsafe_query',
        )
        // ...also in the selected fields, where a scalar subquery would return other tenants' data.
        await rejects(
          () =>
            acme
              .select({ leak: sql`(${db.select({ n: t.notes.title }).from(t.notes).limit(1)})` })
              .from(t.notes),
          'tenant_unsafe_query',
        )
        await rejects(() => acme.select().from(foreign.as('f') as never), 'tenant_unsafe_query')
      })

      it('unions only with queries of the same tenant', async () => {
        const a = acme.select({ id: t.notes.id }).from(t.notes).where(eq(t.notes.score, 1))
        const b = acme.select({ id: t.notes.id }).from(t.notes).where(eq(t.notes.score, 3))
        const rows = await a.unionAll(b)
        expect(rows.map((r) => r.id).sort()).toEqual(['acme-n1', 'acme-n3'])
        const foreign = db.select({ id: t.notes.id }).from(t.notes)
        await rejects(
          () => acme.select({ id: t.notes.id }).from(t.notes).union(foreign),
          'tenant_unsafe_query',
        )
        if (database.current.dialect === 'sqlite') {
          await rejects(
            () => unionAll(acme.select({ id: t.notes.id }).from(t.notes), foreign as never),
            'tenant_unsafe_query',
          )
        }
      })
    })

    describe('insert', () => {
      it('tags every row with the tenant', async () => {
        await acme.insert(t.notes).values({ id: 'x1', title: 'one' })
        await acme.insert(t.notes).values([
          { id: 'x2', title: 'two' },
          { id: 'x3', title: 'three', tenantId: 'acme' },
        ])
        const rows = await unscoped(db)
          .select()
          .from(t.notes)
          .where(inArray(t.notes.id, ['x1', 'x2', 'x3']))
        expect(rows.map((r) => r.tenantId)).toEqual(['acme', 'acme', 'acme'])
      })

      it('refuses a row of another tenant or a computed tenant, and writes nothing', async () => {
        await rejects(
          () =>
            acme.insert(t.notes).values([
              { id: 'y1', title: 'ok' },
              { id: 'y2', title: 'bad', tenantId: 'globex' },
            ]),
          'tenant_unsafe_query',
        )
        await rejects(
          () => acme.insert(t.notes).values({ id: 'y3', title: 'bad', tenantId: sql`'globex'` as never }),
          'tenant_unsafe_query',
        )
        await rejects(() => acme.insert(t.plans).values({ id: 'x', name: 'x' }), 'tenant_unsafe_query')
        expect(await unscoped(db).$count(t.notes)).toBe(9)
      })

      it("an upsert never updates another tenant's conflicting row, nor moves a row to another tenant", async () => {
        await acme
          .insert(t.notes)
          .values({ id: 'globex-n1', title: 'hijack' })
          .onConflictDoUpdate({ target: t.notes.id, set: { title: 'hijacked' } })
        const [globexRow] = await unscoped(db).select().from(t.notes).where(eq(t.notes.id, 'globex-n1'))
        expect(globexRow).toMatchObject({ tenantId: 'globex', title: 'globex note 1' })
        await acme
          .insert(t.notes)
          .values({ id: 'acme-n1', title: 'x' })
          .onConflictDoUpdate({ target: t.notes.id, set: { title: 'updated' } })
        const [acmeRow] = await unscoped(db).select().from(t.notes).where(eq(t.notes.id, 'acme-n1'))
        expect(acmeRow).toMatchObject({ tenantId: 'acme', title: 'updated' })
        await rejects(
          () =>
            acme
              .insert(t.notes)
              .values({ id: 'acme-n1', title: 'x' })
              .onConflictDoUpdate({ target: t.notes.id, set: { tenantId: 'globex' } }),
          'tenant_unsafe_query',
        )
      })

      it('refuses INSERT ... SELECT', async () => {
        await rejects(
          () => (acme.insert(t.notes) as any).select(acme.select().from(t.notes)),
          'tenant_unsafe_query',
        )
      })
    })

    describe('update and delete', () => {
      it('updates only tenant rows, even without a where', async () => {
        await acme.update(t.notes).set({ title: 'renamed' })
        const rows = await allRows(database.current, 'notes')
        expect(rows.filter((r) => r.title === 'renamed').map((r) => r.id)).toEqual([
          'acme-n1',
          'acme-n2',
          'acme-n3',
        ])
      })

      it("cannot reach another tenant's row by id, nor through OR", async () => {
        const before = await allRows(database.current, 'notes')
        await acme.update(t.notes).set({ title: 'x' }).where(eq(t.notes.id, 'globex-n2'))
        await acme
          .update(t.notes)
          .set({ title: 'x' })
          .where(or(eq(t.notes.id, 'globex-n2'), eq(t.notes.id, 'no-such')))
        await acme.delete(t.notes).where(eq(t.notes.id, 'globex-n3'))
        expect(await allRows(database.current, 'notes')).toEqual(before)
      })

      it('never changes the tenant column', async () => {
        await rejects(() => acme.update(t.notes).set({ tenantId: 'globex' }), 'tenant_unsafe_query')
        await rejects(
          () => acme.update(t.notes).set({ tenantId: sql`'globex'` as never }),
          'tenant_unsafe_query',
        )
        // Setting it to the same tenant is a no-op and allowed.
        await acme.update(t.notes).set({ tenantId: 'acme', score: 7 }).where(eq(t.notes.id, 'acme-n1'))
        expect(await acme.$count(t.notes, eq(t.notes.score, 7))).toBe(1)
        await rejects(() => acme.update(t.plans).set({ name: 'x' }), 'tenant_unsafe_query')
      })

      it('deletes only tenant rows', async () => {
        await acme.delete(t.notes)
        const rows = await allRows(database.current, 'notes')
        expect(rows.map((r) => r.tenant_id).sort()).toEqual([
          'globex',
          'globex',
          'globex',
          'initech',
          'initech',
          'initech',
        ])
        await rejects(() => acme.delete(t.plans), 'tenant_unsafe_query')
      })

      it('returning() gives back only the tenant rows it changed', async () => {
        const rows = await acme
          .update(t.notes)
          .set({ score: 10 })
          .where(and(sql`1 = 1`))
          .returning({ id: t.notes.id })
        expect(rows.map((r) => r.id).sort()).toEqual(['acme-n1', 'acme-n2', 'acme-n3'])
      })
    })

    describe('tenant source', () => {
      it('fails closed without a tenant', async () => {
        expect(() => scoped(db, undefined)).toThrowError(expect.objectContaining({ code: 'tenant_required' }))
        let current: string | undefined
        const tenantDb = createScoped({ tenantId: () => current })
        await rejects(() => tenantDb(db).select().from(t.notes), 'tenant_required')
        await rejects(() => tenantDb(db).insert(t.notes), 'tenant_required')
        await rejects(() => tenantDb(db).query('select * from notes'), 'tenant_required')
        current = 'globex'
        expect(await tenantDb(db).$count(t.notes)).toBe(3)
        current = 'bad id!'
        await rejects(() => tenantDb(db).select().from(t.notes), 'tenant_invalid_id')
      })

      it('reads the source when each query starts', async () => {
        let current = 'acme'
        const tdb = scoped(db, () => current)
        const forAcme = tdb.select({ id: t.notes.id }).from(t.notes)
        current = 'initech'
        const forInitech = tdb.select({ id: t.notes.id }).from(t.notes)
        expect((await forAcme).every((r) => r.id.startsWith('acme-'))).toBe(true)
        expect((await forInitech).every((r) => r.id.startsWith('initech-'))).toBe(true)
        expect(tdb.tenantId).toBe('initech')
      })

      it('validates the tenant id and the column name up front', () => {
        expect(() => scoped(db, 'a b')).toThrowError(expect.objectContaining({ code: 'tenant_invalid_id' }))
        expect(() => scoped(db, 'acme', { column: 'tenant id' })).toThrowError(
          expect.objectContaining({ code: 'tenant_invalid_config' }),
        )
        expect(() => createScoped({ tenantId: 'acme' as never })).toThrowError(
          expect.objectContaining({ code: 'tenant_invalid_config' }),
        )
        expect(unscoped(db)).toBe(db)
      })
    })

    // Drizzle's and() does not parenthesise a raw chunk: `tenant = ? and score = 5 OR 1=1` would
    // match every tenant. The caller's condition is always wrapped so the tenant predicate binds.
    describe("a raw OR in the caller's condition cannot outrank the tenant predicate", () => {
      const bypass = () => sql`${t.notes.score} = 5 OR 1=1`
      const ids = (rows: { id: string }[]) => rows.map((r) => r.id).sort()
      const acmeIds = ['acme-n1', 'acme-n2', 'acme-n3']

      it('select().where(), the callback where, selectDistinct and $dynamic().where', async () => {
        expect(ids(await acme.select().from(t.notes).where(bypass()))).toEqual(acmeIds)
        expect(
          ids(
            await acme
              .select()
              .from(t.notes)
              .where(() => bypass()),
          ),
        ).toEqual(acmeIds)
        expect(ids(await acme.selectDistinct({ id: t.notes.id }).from(t.notes).where(bypass()))).toEqual(
          acmeIds,
        )
        expect(ids(await acme.select().from(t.notes).$dynamic().where(bypass()))).toEqual(acmeIds)
      })

      it('$count(table, sql)', async () => {
        expect(await acme.$count(t.notes, bypass())).toBe(3)
      })

      it('join ON conditions', async () => {
        const inner = await acme
          .select({ note: t.notes.id, share: t.shares.noteId, tenant: t.shares.tenantId })
          .from(t.notes)
          .innerJoin(t.shares, sql`${t.shares.noteId} = ${t.notes.id} OR 1=1`)
        expect(inner.length).toBeGreaterThan(0)
        expect(inner.every((r) => r.tenant === 'acme' && r.share.startsWith('acme-'))).toBe(true)
        const left = await acme
          .select({ note: t.notes.id, tenant: t.shares.tenantId })
          .from(t.notes)
          .leftJoin(t.shares, sql`${t.shares.noteId} = ${t.notes.id} OR 1=1`)
        expect(left.every((r) => r.tenant === null || r.tenant === 'acme')).toBe(true)
      })

      it('update().where() and delete().where() touch only the tenant rows', async () => {
        const before = (await allRows(database.current, 'notes')).filter((r) => r.tenant_id !== 'acme')
        await acme.update(t.notes).set({ title: 'pwned' }).where(bypass())
        await acme.delete(t.notes).where(bypass())
        const after = await allRows(database.current, 'notes')
        expect(after.filter((r) => r.tenant_id !== 'acme')).toEqual(before)
        expect(after.filter((r) => r.tenant_id === 'acme')).toEqual([])
      })

      it("onConflictDoUpdate({ setWhere }) never updates another tenant's conflicting row", async () => {
        await acme
          .insert(t.notes)
          .values({ id: 'globex-n1', title: 'hijack' })
          .onConflictDoUpdate({ target: t.notes.id, set: { title: 'hijacked' }, setWhere: sql`1=0 OR 1=1` })
        const [globexRow] = await unscoped(db).select().from(t.notes).where(eq(t.notes.id, 'globex-n1'))
        expect(globexRow).toMatchObject({ tenantId: 'globex', title: 'globex note 1' })
      })

      it('inside transaction()', async () => {
        await acme.transaction(async (tx) => {
          expect(ids(await tx.select().from(t.notes).where(bypass()))).toEqual(acmeIds)
          await tx.update(t.notes).set({ title: 'pwned' }).where(bypass())
        })
        const rows = await allRows(database.current, 'notes')
        expect(rows.filter((r) => r.title === 'pwned').map((r) => r.tenant_id)).toEqual([
          'acme',
          'acme',
          'acme',
        ])
      })

      it('refuses raw text that could close the parentheses itself', async () => {
        for (const breakout of [
          sql`1=1) OR (1=1`,
          sql`${t.notes.score} = 1 --`,
          sql`${t.notes.score} = 1 /* x */`,
          sql`1=1; DELETE FROM notes`,
          sql.raw(`title = 'x\\' OR 1=1) OR (1=1`),
        ]) {
          await rejects(() => acme.select().from(t.notes).where(breakout), 'tenant_unsafe_query')
        }
        // Quotes and balanced parentheses are fine.
        const rows = await acme
          .select()
          .from(t.notes)
          .where(sql`(${t.notes.title} <> ')(' and ${t.notes.score} in (1, 2))`)
        expect(ids(rows)).toEqual(['acme-n1', 'acme-n2'])
      })
    })

    it('stores a deeply nested JSON value as data: values are bound, never inspected as SQL', async () => {
      const docs =
        database.current.dialect === 'pg'
          ? pgCore.pgTable('docs', {
              id: pgCore.text('id').primaryKey(),
              tenantId: pgCore.text('tenant_id').notNull(),
              body: pgCore.jsonb('body'),
            })
          : sqliteCore.sqliteTable('docs', {
              id: sqliteCore.text('id').primaryKey(),
              tenantId: sqliteCore.text('tenant_id').notNull(),
              body: sqliteCore.text('body', { mode: 'json' }),
            })
      const table = docs as unknown as ReturnType<
        typeof sqliteCore.sqliteTable<'docs', { id: any; tenantId: any; body: any }>
      >
      await database.current.query(
        sql.raw(
          `create table if not exists docs (id text primary key, tenant_id text not null, body ${database.current.dialect === 'pg' ? 'jsonb' : 'text'})`,
        ),
      )
      let deep: unknown = { leaf: "') OR 1=1 --" }
      for (let i = 0; i < 150; i++) deep = { a: [deep] }
      await acme.insert(table).values({ id: 'd1', body: deep })
      await acme
        .insert(table)
        .values({ id: 'd1', body: deep })
        .onConflictDoUpdate({ target: table.id, set: { body: { again: deep } } })
      await acme.update(table).set({ body: deep }).where(eq(table.id, 'd1'))
      const [row] = await acme.select().from(table)
      expect(row).toEqual({ id: 'd1', tenantId: 'acme', body: deep })
    })

    it('transaction() scopes the transaction and rolls back together', async () => {
      await expect(
        acme.transaction(async (tx) => {
          await tx.insert(t.notes).values({ id: 'tx1', title: 'in tx' })
          expect(await tx.$count(t.notes)).toBe(4)
          throw new Error('roll back')
        }),
      ).rejects.toThrow('roll back')
      expect(await acme.$count(t.notes)).toBe(3)
      await acme.transaction(async (tx) => {
        await tx.insert(t.notes).values({ id: 'tx2', title: 'kept' })
        await tx.update(t.notes).set({ title: 'in tx' }).where(eq(t.notes.id, 'globex-n1'))
      })
      const rows = await allRows(database.current, 'notes')
      expect(rows.find((r) => r.id === 'tx2')).toMatchObject({ tenant_id: 'acme' })
      expect(rows.find((r) => r.id === 'globex-n1')).toMatchObject({ title: 'globex note 1' })
    })
  },
  { kinds: ['libsql-memory', 'pglite', 'postgres'], migrate: false },
)

describe('scoped(db) with a column that is not the default', () => {
  it('finds the Drizzle column by its SQL name', async () => {
    const database = await openDatabase('libsql-memory', { migrate: false })
    try {
      const { sqliteTable, text } = await import('drizzle-orm/sqlite-core')
      const docs = sqliteTable('docs', { id: text('id').primaryKey(), org: text('org_id').notNull() })
      await database.query(sql.raw('create table docs (id text primary key, org_id text not null)'))
      const db = database.db as LibSQLDatabase
      await scoped(db, 'o1', { column: 'org_id' }).insert(docs).values({ id: 'd1', org: 'o1' })
      await scoped(db, 'o2', { column: 'org_id' })
        .insert(docs)
        .values({ id: 'd2' } as typeof docs.$inferInsert)
      expect(await scoped(db, 'o1', { column: 'org_id' }).select().from(docs)).toEqual([
        { id: 'd1', org: 'o1' },
      ])
      await rejects(() => scoped(db, 'o1').select().from(docs), 'tenant_unsafe_query')
    } finally {
      await database.close()
    }
  })
})
