// Ways out of the scoped builders found by trying to break them (each one read or changed another
// tenant's rows before it was closed): SQL hidden in a parameter, raw text in an array, a wrapper
// or an embedded scoped subquery, unchecked limit/offset, builder internals, tenant columns whose
// type lets two ids match the same rows, and two properties over the tenant column. Every case
// runs on libSQL, PGlite and PostgreSQL, and checks the tables afterwards, not only the error.
import { count, eq, type SQL, sql } from 'drizzle-orm'
import type { LibSQLDatabase } from 'drizzle-orm/libsql'
import * as pgCore from 'drizzle-orm/pg-core'
import * as sqliteCore from 'drizzle-orm/sqlite-core'
import { beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { describeEachDatabase, openDatabase } from '../test/databases'
import { allRows, createIsolationTables, seedIsolationData, tablesFor } from '../test/isolation-db'
import { rejects } from '../test/tenant-errors'
import { scoped, unscoped } from './scoped'
import type { TenantDB } from './tenant-db'

const KINDS = { kinds: ['libsql-memory', 'pglite', 'postgres'], migrate: false } as const

/** The builders refuse while the query is built, so `fn` is called inside the assertion. */
const refused = (fn: () => unknown, code = 'tenant_unsafe_query') => rejects(fn, code)

describeEachDatabase(
  'scoped builders: escapes that are closed',
  (database) => {
    let db: LibSQLDatabase
    let t: ReturnType<typeof tablesFor>
    let acme: TenantDB<LibSQLDatabase>
    let before: { notes: Record<string, unknown>[]; users: Record<string, unknown>[] }

    beforeAll(async () => {
      await createIsolationTables(database.current)
      db = database.current.db as unknown as LibSQLDatabase
      t = tablesFor(database.current)
      acme = scoped(db, 'acme', { shared: [t.plans] })
    })
    beforeEach(async () => {
      await seedIsolationData(database.current)
      before = {
        notes: await allRows(database.current, 'notes'),
        users: await allRows(database.current, 'users'),
      }
    })
    const unchanged = async () => {
      expect(await allRows(database.current, 'notes')).toEqual(before.notes)
      expect(await allRows(database.current, 'users')).toEqual(before.users)
    }
    // Another tenant's note, read through an unscoped subquery.
    const foreignTitle = () =>
      unscoped(db).select({ title: t.notes.title }).from(t.notes).where(eq(t.notes.id, 'globex-n1'))

    describe('SQL hidden in a parameter (sql.param of an sql object renders as SQL)', () => {
      it('refuses an unscoped subquery in a selected field', async () => {
        const hidden = sql.param(sql`(${foreignTitle()})`)
        await refused(() => acme.select({ id: t.notes.id, leak: sql<string>`${hidden}` }).from(t.notes))
      })

      it('refuses it in set values, inserted values and an upsert', async () => {
        const hidden = () => sql`${sql.param(sql`(${foreignTitle()})`)}`
        await refused(() => acme.update(t.notes).set({ title: hidden() }).where(eq(t.notes.id, 'acme-n1')))
        await refused(() => acme.insert(t.notes).values({ id: 'leak', title: hidden() }))
        await refused(() =>
          acme
            .insert(t.notes)
            .values({ id: 'acme-n2', title: 'x' })
            .onConflictDoUpdate({ target: t.notes.id, set: { title: hidden() } }),
        )
        // A parameter given straight as a value, not inside sql``.
        await refused(() =>
          acme
            .update(t.notes)
            .set({ title: sql.param(sql`(${foreignTitle()})`) as unknown as string })
            .where(eq(t.notes.id, 'acme-n1')),
        )
        await unchanged()
      })

      it('refuses raw text in a parameter that closes the brackets around a condition', async () => {
        await refused(() =>
          acme
            .select()
            .from(t.notes)
            .where(sql`${sql.param(sql.raw('1=1)) OR ((1=1'))}`),
        )
        await refused(() =>
          acme.delete(t.notes).where(sql`${t.notes.id} = ${sql.param(sql.raw(`'x')) OR ((1=1`))}`),
        )
        await refused(() =>
          acme.$count(t.notes, sql`${sql.param(sql`(select count(*) from ${t.users}) = 6`)}`),
        )
        await unchanged()
      })

      it('still binds a parameter holding a plain value', async () => {
        const rows = await acme
          .select()
          .from(t.notes)
          .where(sql`${t.notes.id} = ${sql.param('acme-n1')}`)
        expect(rows.map((r) => r.id)).toEqual(['acme-n1'])
      })
    })

    describe('raw text the bracket check did not see', () => {
      it('refuses it inside an array', async () => {
        const inList = sql`${t.notes.id} in ${[sql.raw(`'x')) OR ((1=1`)]}`
        await refused(() => acme.select().from(t.notes).where(inList))
        await refused(() => acme.update(t.notes).set({ title: 'pwned' }).where(inList))
        await refused(() => acme.delete(t.notes).where(inList))
        await unchanged()
      })

      it('refuses it behind an object with getSQL()', async () => {
        const wrapper = { getSQL: () => sql.raw('1=1) OR (1=1'), shouldOmitSQLParens: () => true }
        await refused(() =>
          acme
            .select()
            .from(t.notes)
            .where(wrapper as unknown as SQL),
        )
        await refused(() => acme.delete(t.notes).where(wrapper as unknown as SQL))
        await unchanged()
      })

      it("refuses a scoped subquery whose own raw text would close the condition's brackets", async () => {
        // Refused where the text is written (its orderBy), before it can be embedded anywhere.
        await refused(() => acme.select({ id: t.notes.id }).from(t.notes).orderBy(sql.raw('1)) OR ((1=1')))
        await refused(() => acme.select({ id: t.notes.id }).from(t.notes).groupBy(sql.raw('1)) OR ((1=1')))
        await unchanged()
      })

      it('checks a condition on a shared table the same way', async () => {
        await refused(() =>
          acme
            .select()
            .from(t.plans)
            .where(sql`${t.plans.id} in ${[sql.raw(`'x') OR ('1`)]}`),
        )
      })

      it('still accepts arrays of values, balanced raw text and scoped subqueries', async () => {
        const ids = await acme
          .select({ id: t.notes.id })
          .from(t.notes)
          .where(sql`${t.notes.id} in ${['acme-n1', 'globex-n1']}`)
        expect(ids).toEqual([{ id: 'acme-n1' }])
        const sub = acme.select({ id: t.notes.id }).from(t.notes).where(sql`(${t.notes.score}) >= 2`)
        const rows = await acme.select({ id: t.notes.id }).from(t.notes).where(sql`${t.notes.id} in ${sub}`)
        expect(rows.map((r) => r.id).sort()).toEqual(['acme-n2', 'acme-n3'])
      })
    })

    it('inspects limit() and offset(): an unscoped subquery there is refused', async () => {
      const globexCount = sql`(${unscoped(db).select({ c: count() }).from(t.notes).where(eq(t.notes.tenantId, 'globex'))}) - 1`
      await refused(() =>
        acme
          .select({ id: t.notes.id })
          .from(t.notes)
          .limit(globexCount as unknown as number),
      )
      await refused(() =>
        acme
          .select({ id: t.notes.id })
          .from(t.notes)
          .offset(globexCount as unknown as number),
      )
      expect(await acme.select({ id: t.notes.id }).from(t.notes).limit(1).offset(1)).toHaveLength(1)
    })

    describe("Drizzle's internals are not reachable through a scoped builder", () => {
      it('refuses the private join and set-operator factories', async () => {
        const query = acme.select().from(t.notes) as unknown as Record<string, (...a: unknown[]) => unknown>
        await refused(() => query.createJoin!('left', false))
        await refused(() => query.createSetOperator!('union', true))
        const update = acme.update(t.notes).set({ title: 'pwned' }) as unknown as Record<string, unknown>
        await refused(() => (update.createJoin as (...a: unknown[]) => unknown)('inner'))
        await unchanged()
      })

      it('refuses the session, the dialect and the query config', async () => {
        const query = acme.select().from(t.notes) as unknown as Record<string, unknown>
        for (const name of ['session', 'dialect', 'config', '_', '_prepare']) {
          await refused(() => query[name])
        }
        for (const builder of [
          acme.insert(t.notes).values({ id: 'n9', title: 'x' }),
          acme.update(t.notes).set({ title: 'x' }),
          acme.delete(t.notes),
        ]) {
          await refused(() => (builder as unknown as Record<string, unknown>).session)
          await refused(() => (builder as unknown as Record<string, unknown>).config)
        }
        await unchanged()
      })

      it('refuses their property descriptors, and writing, defining or deleting any property', async () => {
        for (const builder of [
          acme.select().from(t.notes),
          acme.insert(t.notes).values({ id: 'n9', title: 'x' }),
          acme.update(t.notes).set({ title: 'pwned' }),
          acme.delete(t.notes),
        ] as unknown as Record<string, { where?: unknown }>[]) {
          for (const name of ['config', 'session', 'dialect']) {
            await refused(() => Object.getOwnPropertyDescriptor(builder, name))
          }
          await refused(() => {
            builder.config = { where: undefined }
          })
          await refused(() => Object.defineProperty(builder, 'config', { value: {} }))
          await refused(() => delete builder.config)
        }
        await unchanged()
      })

      it("hides a $count's session and statement, and keeps it awaitable and embeddable", async () => {
        const counted = acme.$count(t.notes) as unknown as Record<string, unknown>
        for (const name of ['session', 'sql', 'params']) {
          await refused(() => counted[name])
          await refused(() => Object.getOwnPropertyDescriptor(counted, name))
        }
        await refused(() => {
          counted.sql = sql`select 0`
        })
        expect(await acme.$count(t.notes)).toBe(3)
        const rows = await acme
          .select({ id: t.notes.id, n: acme.$count(t.notes) })
          .from(t.notes)
          .where(eq(t.notes.id, 'acme-n1'))
        expect(rows.map((r) => [r.id, Number(r.n)])).toEqual([['acme-n1', 3]])
        await unchanged()
      })

      it("keeps Drizzle's public builder API working", async () => {
        const query = acme.select({ id: t.notes.id }).from(t.notes).$dynamic()
        expect(query.toSQL().sql).toMatch(/tenant_id/)
        const prepared = acme
          .select({ id: t.notes.id })
          .from(t.notes)
          .where(eq(t.notes.id, 'acme-n1'))
          .prepare()
        expect(await prepared.execute()).toEqual([{ id: 'acme-n1' }])
        const sub = acme.select({ id: t.notes.id }).from(t.notes).as('sub')
        expect(await acme.select({ id: sub.id }).from(sub)).toHaveLength(3)
      })
    })

    it('refuses an upsert given both where and setWhere (Drizzle would throw; one was dropped)', async () => {
      await refused(() =>
        acme
          .insert(t.notes)
          .values({ id: 'acme-n1', title: 'x' })
          .onConflictDoUpdate({
            target: t.notes.id,
            set: { title: 'y' },
            where: eq(t.notes.score, 1),
            setWhere: eq(t.notes.score, 2),
          } as never),
      )
      await unchanged()
    })
  },
  KINDS,
)

describeEachDatabase(
  'scoped builders: tenant columns that could match another tenant',
  (database) => {
    let db: LibSQLDatabase
    let pg: boolean
    const sqliteInt = sqliteCore.sqliteTable('int_docs', {
      id: sqliteCore.text('id').primaryKey(),
      tenantId: sqliteCore.integer('tenant_id').notNull(),
    })
    const pgInt = pgCore.pgTable('int_docs', {
      id: pgCore.text('id').primaryKey(),
      tenantId: pgCore.integer('tenant_id').notNull(),
    })
    const pgTwice = pgCore.pgTable('twice_docs', {
      id: pgCore.text('id').primaryKey(),
      tenantId: pgCore.text('tenant_id').notNull(),
      owner: pgCore.text('tenant_id').notNull(),
    })
    const sqliteTwice = sqliteCore.sqliteTable('twice_docs', {
      id: sqliteCore.text('id').primaryKey(),
      tenantId: sqliteCore.text('tenant_id').notNull(),
      owner: sqliteCore.text('tenant_id').notNull(),
    })
    // A second property over the tenant column in another letter case: the same column to SQLite,
    // which compares column names case-insensitively; a column of its own to Postgres (quoted).
    const sqliteCase = sqliteCore.sqliteTable('case_docs', {
      id: sqliteCore.text('id').primaryKey(),
      tenantId: sqliteCore.text('tenant_id').notNull(),
      body: sqliteCore.text('body'),
      owner: sqliteCore.text('Tenant_Id'),
    })
    const sqliteCaseFirst = sqliteCore.sqliteTable('case_docs', {
      id: sqliteCore.text('id').primaryKey(),
      owner: sqliteCore.text('TENANT_ID'),
      tenantId: sqliteCore.text('tenant_id').notNull(),
      body: sqliteCore.text('body'),
    })
    const pgCase = pgCore.pgTable('case_docs', {
      id: pgCore.text('id').primaryKey(),
      tenantId: pgCore.text('tenant_id').notNull(),
      body: pgCore.text('body'),
      owner: pgCore.text('Tenant_Id'),
    })
    const ints = () => (pg ? pgInt : sqliteInt) as unknown as typeof sqliteInt
    const twice = () => (pg ? pgTwice : sqliteTwice) as unknown as typeof sqliteTwice

    beforeAll(async () => {
      db = database.current.db as unknown as LibSQLDatabase
      pg = database.current.dialect === 'pg'
      for (const statement of [
        'create table if not exists int_docs (id text primary key, tenant_id integer not null)',
        'create table if not exists twice_docs (id text primary key, tenant_id text not null)',
        pg
          ? 'create table if not exists case_docs (id text primary key, tenant_id text not null, body text, "Tenant_Id" text)'
          : 'create table if not exists case_docs (id text primary key, tenant_id text not null, body text)',
      ]) {
        await database.current.query(sql.raw(statement))
      }
    })
    beforeEach(async () => {
      await database.current.query(sql.raw('delete from int_docs'))
      await database.current.query(sql.raw('delete from twice_docs'))
      await database.current.query(
        sql.raw(`insert into int_docs (id, tenant_id) values ('one', 1), ('two', 2)`),
      )
      await database.current.query(sql.raw(`insert into twice_docs (id, tenant_id) values ('a1', 'acme')`))
      await database.current.query(sql.raw('delete from case_docs'))
      await database.current.query(
        sql.raw(
          `insert into case_docs (id, tenant_id, body) values ('a1', 'acme', 'acme doc'), ('g1', 'globex', 'globex doc')`,
        ),
      )
    })

    it('an integer tenant column takes only canonical integer ids ("01" and "1" would be one tenant)', async () => {
      expect(await scoped(db, '1').select().from(ints())).toEqual([{ id: 'one', tenantId: 1 }])
      for (const alias of ['01', '001', '1.0', '-0', '1e0']) {
        const tdb = scoped(db, alias)
        await refused(() => tdb.select().from(ints()))
        await refused(() => tdb.delete(ints()))
        await refused(() => tdb.insert(ints()).values({ id: 'x' } as never))
      }
      // Beyond 2^53 SQLite stores a REAL, and two ids could round to the same value.
      await refused(() => scoped(db, '9007199254740993').select().from(ints()))
      expect(await allRows(database.current, 'int_docs')).toHaveLength(2)
    })

    it('refuses a table with two properties over the tenant column (one could move a row to another tenant)', async () => {
      const tdb = scoped(db, 'acme')
      await refused(() => tdb.update(twice()).set({ owner: 'globex' }))
      await refused(() => tdb.select().from(twice()))
      expect(await allRows(database.current, 'twice_docs')).toEqual([{ id: 'a1', tenant_id: 'acme' }])
    })

    // Each dialect registers only its own case (nothing is reported skipped).
    const sqliteOnly = database.kind === 'libsql-memory' ? it : () => {}
    const pgOnly = database.kind === 'libsql-memory' ? () => {} : it

    sqliteOnly(
      'SQLite: refuses a second property over the tenant column in another letter case (SQLite reads it as the same column)',
      async () => {
        const before = await allRows(database.current, 'case_docs')
        const tdb = scoped(db, 'acme')
        for (const table of [sqliteCase, sqliteCaseFirst]) {
          const error = await refused(() => tdb.update(table).set({ owner: 'globex', body: 'moved' }))
          expect(error.message).toMatch(/two properties/)
          await refused(() =>
            tdb.insert(table).values({ id: 'p1', body: 'planted', owner: 'globex' } as never),
          )
          await refused(() => tdb.select().from(table))
          await refused(() => tdb.delete(table))
        }
        expect(await allRows(database.current, 'case_docs')).toEqual(before)
        expect(
          await scoped(db, 'globex')
            .query('SELECT id FROM case_docs')
            .then((rows) => rows.map((r) => r.id)),
        ).toEqual(['g1'])
      },
    )

    pgOnly(
      'Postgres: a quoted "Tenant_Id" is a column of its own, so it is not the tenant column',
      async () => {
        const docs = pgCase as unknown as typeof sqliteCase
        const tdb = scoped(db, 'acme')
        expect(await tdb.select({ id: docs.id }).from(docs)).toEqual([{ id: 'a1' }])
        await tdb.update(docs).set({ owner: 'globex' }).where(eq(docs.id, 'a1'))
        expect(await allRows(database.current, 'case_docs')).toEqual([
          { id: 'a1', tenant_id: 'acme', body: 'acme doc', Tenant_Id: 'globex' },
          { id: 'g1', tenant_id: 'globex', body: 'globex doc', Tenant_Id: null },
        ])
        expect(await scoped(db, 'globex').select({ id: docs.id }).from(docs)).toEqual([{ id: 'g1' }])
      },
    )
  },
  KINDS,
)

describeEachDatabase(
  'scoped builders: a uuid tenant column',
  (database) => {
    const docs = pgCore.pgTable('uuid_docs', {
      id: pgCore.text('id').primaryKey(),
      tenantId: pgCore.uuid('tenant_id').notNull(),
    })
    const id = '0b6c4a4e-9d0f-4f4e-8a59-0c5f1d2e3a4b'

    it('takes only the lower-case hyphenated form (Postgres reads the others as the same uuid)', async () => {
      await database.current.query(
        sql.raw('create table if not exists uuid_docs (id text primary key, tenant_id uuid not null)'),
      )
      await database.current.query(sql.raw(`insert into uuid_docs (id, tenant_id) values ('u1', '${id}')`))
      const db = database.current.db as unknown as LibSQLDatabase
      const uuids = docs as unknown as sqliteCore.SQLiteTableWithColumns<any>
      expect(await scoped(db, id).select({ id: uuids.id }).from(uuids)).toEqual([{ id: 'u1' }])
      for (const alias of [id.toUpperCase(), id.replaceAll('-', '')]) {
        await refused(() => scoped(db, alias).select().from(uuids))
        await refused(() => scoped(db, alias).delete(uuids))
      }
      expect(await allRows(database.current, 'uuid_docs')).toEqual([{ id: 'u1', tenant_id: id }])
    })
  },
  { kinds: ['pglite', 'postgres'], migrate: false },
)

describe('scoped builders: a tenant column of another type', () => {
  it('is refused (a JSON text column compares documents, not ids)', async () => {
    const database = await openDatabase('libsql-memory', { migrate: false })
    const docs = sqliteCore.sqliteTable('json_docs', {
      id: sqliteCore.text('id').primaryKey(),
      tenantId: sqliteCore.text('tenant_id', { mode: 'json' }).notNull(),
    })
    try {
      const error = await refused(() =>
        scoped(database.db as unknown as LibSQLDatabase, 'acme')
          .select()
          .from(docs),
      )
      expect(error.message).toMatch(/SQLiteTextJson/)
    } finally {
      await database.close()
    }
  })
})

describe('scoped(): bad options are typed errors', () => {
  it('gives tenant_invalid_id for a tenant id that is not a string, tenant_invalid_config for bad shared', async () => {
    const database = await openDatabase('libsql-memory', { migrate: false })
    const db = database.db as unknown as LibSQLDatabase
    try {
      await refused(() => scoped(db, 123 as never), 'tenant_invalid_id')
      await refused(() => scoped(db, {} as never), 'tenant_invalid_id')
      await refused(() => scoped(db, 'acme', { shared: 'plans' as never }), 'tenant_invalid_config')
      await refused(() => scoped(db, 'acme', { shared: null as never }), 'tenant_invalid_config')
    } finally {
      await database.close()
    }
  })
})
