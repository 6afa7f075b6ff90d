// Raw SQL (TenantDB.query/exec, addTenantFilter, validateQuery): which tenant and which table a
// statement really reaches. Each closed a way to another tenant's rows:
// - a tenant id the database reads as another tenant's id (`01` for 1 on an integer column, an
//   upper-case or unhyphenated uuid on a Postgres uuid column) is refused, by the builders' rule;
// - a table name means the table in that schema only: `archive.plans` is not the shared `plans`,
//   and `archive.notes` is not the tenant table `notes` (SQLite's `main.` and attached databases
//   alike).
// Every case runs on libSQL, PGlite and PostgreSQL and checks the tables afterwards.
import { isTenantError } from '@tenant/core'
import { sql } from 'drizzle-orm'
import { drizzle as drizzleLibsql, type LibSQLDatabase } from 'drizzle-orm/libsql'
import * as pgCore from 'drizzle-orm/pg-core'
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite'
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js'
import * as sqliteCore from 'drizzle-orm/sqlite-core'
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest'
import { describeEachDatabase, type TestDatabase } from '../test/databases'
import {
  allRows,
  createIsolationTables,
  pgTables,
  seedIsolationData,
  sqliteTables,
} from '../test/isolation-db'
import { rejects } from '../test/tenant-errors'
import { addTenantFilter, validateQuery } from './raw-sql'
import { scoped } from './scoped'

const KINDS = { kinds: ['libsql-memory', 'pglite', 'postgres'], migrate: false } as const
const UUID = '0b6c4a4e-9d0f-4f4e-8a59-0c5f1d2e3a4b'

const sqliteInt = sqliteCore.sqliteTable('int_docs', {
  id: sqliteCore.text('id').primaryKey(),
  tenantId: sqliteCore.integer('tenant_id').notNull(),
  body: sqliteCore.text('body'),
})
const pgInt = pgCore.pgTable('int_docs', {
  id: pgCore.text('id').primaryKey(),
  tenantId: pgCore.integer('tenant_id').notNull(),
  body: pgCore.text('body'),
})
const pgUuid = pgCore.pgTable('uuid_docs', {
  id: pgCore.text('id').primaryKey(),
  tenantId: pgCore.uuid('tenant_id').notNull(),
  body: pgCore.text('body'),
})

/** A second Drizzle database over the same connection, one that knows `schema` (`drizzle({ schema })`). */
function withSchema(database: TestDatabase, schema: Record<string, unknown>): LibSQLDatabase {
  const client = (database.db as unknown as { $client: never }).$client
  switch (database.kind) {
    case 'libsql-memory':
      return drizzleLibsql({ client, schema }) as unknown as LibSQLDatabase
    case 'pglite':
      return drizzlePglite({ client, schema }) as unknown as LibSQLDatabase
    case 'postgres':
      return drizzlePostgres({ client, schema }) as unknown as LibSQLDatabase
    default:
      throw new Error(`no schema-aware database for ${database.kind}`)
  }
}

/** The placeholder of the database's dialect. */
const p = (database: TestDatabase, n: number) => (database.dialect === 'pg' ? `$${n}` : '?')

describeEachDatabase(
  'raw SQL: a tenant id that the database reads as another tenant id',
  (database) => {
    let plain: LibSQLDatabase
    let typed: LibSQLDatabase
    let pg: boolean
    let before: Record<string, unknown>[]

    beforeAll(async () => {
      pg = database.current.dialect === 'pg'
      await createIsolationTables(database.current)
      await database.current.query(
        sql.raw(
          'create table if not exists int_docs (id text primary key, tenant_id integer not null, body text)',
        ),
      )
      plain = database.current.db as unknown as LibSQLDatabase
      typed = withSchema(
        database.current,
        pg ? { ...pgTables, intDocs: pgInt, uuidDocs: pgUuid } : { ...sqliteTables, intDocs: sqliteInt },
      )
    })
    beforeEach(async () => {
      await seedIsolationData(database.current)
      await database.current.query(sql.raw('delete from int_docs'))
      await database.current.query(
        sql.raw(
          `insert into int_docs (id, tenant_id, body) values ('one', 1, 'tenant 1'), ('two', 2, 'tenant 2')`,
        ),
      )
      before = await allRows(database.current, 'int_docs')
    })

    it('refuses "01", "1.0", "1e0" ... on an integer column, through query and exec, whether TenantDB knows the column type or not', async () => {
      for (const db of [plain, typed]) {
        expect(await scoped(db, '1').query('SELECT id, body FROM int_docs')).toEqual([
          { id: 'one', body: 'tenant 1' },
        ])
        for (const alias of ['01', '001', '1.0', '1e0', '1.', '-0', '00']) {
          const tdb = scoped(db, alias)
          const error = await rejects(tdb.query('SELECT id, body FROM int_docs'), 'tenant_unsafe_query')
          expect(error.message).toMatch(/canonical/)
          await rejects(
            tdb.exec(`UPDATE int_docs SET body = 'overwritten' WHERE id = ${p(database.current, 1)}`, [
              'one',
            ]),
            'tenant_unsafe_query',
          )
          await rejects(tdb.exec('DELETE FROM int_docs'), 'tenant_unsafe_query')
          await rejects(
            tdb.query(
              'SELECT n.id FROM notes n WHERE n.id IN (SELECT i.id FROM int_docs i WHERE i.tenant_id = ' +
                p(database.current, 1) +
                ')',
              [alias],
            ),
            'tenant_unsafe_query',
          )
        }
      }
      expect(await allRows(database.current, 'int_docs')).toEqual(before)
    })

    it('keeps any valid id over a tenant column TenantDB knows is text; where the type is unknown, only ids no other id can equal', async () => {
      // `notes` is text in the Drizzle schema: every id compares by bytes there.
      for (const id of ['007', '1.0', 'ACME', UUID.toUpperCase()]) {
        expect(await scoped(typed, id).query('SELECT id FROM notes')).toEqual([])
      }
      // Without a schema the column could be an integer (or, on Postgres, a uuid) column.
      await rejects(scoped(plain, '007').query('SELECT id FROM notes'), 'tenant_unsafe_query')
      for (const id of ['ACME', '1password', 'a.b-c_d', '7', 'e1', '-']) {
        expect(await scoped(plain, id).query('SELECT id FROM notes')).toEqual([])
      }
      expect(await scoped(plain, 'acme').query('SELECT id FROM notes ORDER BY id')).toHaveLength(3)
      // A statement over a text table and an integer one takes only ids that are right for both.
      await rejects(
        scoped(typed, '007').query('SELECT n.id FROM notes n JOIN int_docs i ON i.id = n.id'),
        'tenant_unsafe_query',
      )
      // A statement that reads no tenant table binds no tenant, so any id will do.
      expect(await scoped(plain, '007').query('SELECT 1 AS one')).toEqual([{ one: 1 }])
    })

    it('addTenantFilter and validateQuery (column type unknown) refuse ids that are not canonical as numbers', async () => {
      const dialect = pg ? 'postgresql' : 'sqlite'
      const { sql: scopedSql, params } = addTenantFilter('SELECT id, body FROM int_docs', '1', 'tenant_id', {
        dialect,
      })
      expect(await database.current.query(sql.raw(inline(scopedSql, params, pg)))).toEqual([
        { id: 'one', body: 'tenant 1' },
      ])
      for (const alias of ['01', '1.0', '1e0']) {
        await rejects(
          () => addTenantFilter('SELECT id, body FROM int_docs', alias, 'tenant_id', { dialect }),
          'tenant_unsafe_query',
        )
        const statement = `SELECT id, body FROM int_docs WHERE tenant_id = ${p(database.current, 1)}`
        await rejects(
          () => validateQuery(statement, 'tenant_id', { dialect, tenantId: alias, params: [alias] }),
          'tenant_unsafe_query',
        )
        await rejects(
          () => validateQuery(statement, 'tenant_id', { dialect, params: [alias] }),
          'tenant_unsafe_query',
        )
        await rejects(
          () =>
            validateQuery(`SELECT id, body FROM int_docs WHERE tenant_id = '${alias}'`, 'tenant_id', {
              dialect,
            }),
          'tenant_unsafe_query',
        )
      }
    })
  },
  KINDS,
)

/** The statement with its parameters written in as literals (test values only: digits and letters). */
function inline(statement: string, params: unknown[], pg: boolean): string {
  return statement.replace(pg ? /\$(\d+)/g : /\?(\d+)/g, (_, n) => `'${String(params[Number(n) - 1])}'`)
}

describeEachDatabase(
  'raw SQL: a uuid tenant column (Postgres)',
  (database) => {
    let plain: LibSQLDatabase
    let typed: LibSQLDatabase

    beforeAll(async () => {
      await createIsolationTables(database.current)
      await database.current.query(
        sql.raw(
          'create table if not exists uuid_docs (id text primary key, tenant_id uuid not null, body text)',
        ),
      )
      plain = database.current.db as unknown as LibSQLDatabase
      typed = withSchema(database.current, { ...pgTables, uuidDocs: pgUuid })
    })
    beforeEach(async () => {
      await database.current.query(sql.raw('delete from uuid_docs'))
      await database.current.query(
        sql.raw(`insert into uuid_docs (id, tenant_id, body) values ('u1', '${UUID}', 'uuid tenant')`),
      )
    })

    it('refuses the upper-case and unhyphenated spellings, known column type or not', async () => {
      for (const db of [plain, typed]) {
        expect(await scoped(db, UUID).query('SELECT id FROM uuid_docs')).toEqual([{ id: 'u1' }])
        for (const alias of [
          UUID.toUpperCase(),
          UUID.replaceAll('-', ''),
          UUID.replaceAll('-', '').toUpperCase(),
        ]) {
          const tdb = scoped(db, alias)
          await rejects(tdb.query('SELECT id, body FROM uuid_docs'), 'tenant_unsafe_query')
          await rejects(tdb.exec('DELETE FROM uuid_docs'), 'tenant_unsafe_query')
          await rejects(
            () => addTenantFilter('DELETE FROM uuid_docs', alias, 'tenant_id', { dialect: 'postgresql' }),
            'tenant_unsafe_query',
          )
          await rejects(
            () =>
              validateQuery('SELECT id FROM uuid_docs WHERE tenant_id = $1', 'tenant_id', {
                dialect: 'postgresql',
                tenantId: alias,
                params: [alias],
              }),
            'tenant_unsafe_query',
          )
        }
      }
      expect(await allRows(database.current, 'uuid_docs')).toEqual([
        { id: 'u1', tenant_id: UUID, body: 'uuid tenant' },
      ])
    })
  },
  { kinds: ['pglite', 'postgres'], migrate: false },
)

describeEachDatabase(
  'raw SQL: a table name means the table in that schema only',
  (database) => {
    let plain: LibSQLDatabase
    let typed: LibSQLDatabase
    let pg: boolean
    /** The other schema (Postgres) or attached database (SQLite). */
    let archive: string
    /** What the database calls the schema unqualified names resolve to. */
    let home: string

    beforeAll(async () => {
      pg = database.current.dialect === 'pg'
      await createIsolationTables(database.current)
      plain = database.current.db as unknown as LibSQLDatabase
      typed = withSchema(database.current, pg ? pgTables : sqliteTables)
      if (database.current.kind === 'postgres') {
        archive = `${database.current.postgres!.schema}_archive`
        home = database.current.postgres!.schema
      } else {
        archive = 'archive'
        home = pg ? 'public' : 'main'
      }
      await database.current.query(
        sql.raw(pg ? `create schema ${archive}` : `attach database ':memory:' as ${archive}`),
      )
      // An archive copy of plans that, unlike the shared plans, has per-tenant rows, and an archived
      // copy of notes without the tenant column.
      await database.current.query(
        sql.raw(`create table ${archive}.plans (id text, tenant_id text, price text)`),
      )
      await database.current.query(sql.raw(`create table ${archive}.notes (id text, title text)`))
      await database.current.query(
        sql.raw(
          `insert into ${archive}.plans values ('custom', 'globex', 'globex SECRET'), ('custom', 'acme', 'acme price')`,
        ),
      )
      await database.current.query(
        sql.raw(
          `insert into ${archive}.notes values ('globex-n1', 'globex archived SECRET'), ('acme-n1', 'acme archived')`,
        ),
      )
    })
    afterAll(async () => {
      if (database.current.kind === 'postgres')
        await database.current.query(sql.raw(`drop schema ${archive} cascade`))
    })
    beforeEach(() => seedIsolationData(database.current))

    it('a shared name does not exempt a table of that name in another schema', async () => {
      const dialect = pg ? 'postgresql' : 'sqlite'
      for (const shared of [['plans'], [(pg ? pgTables : sqliteTables).plans]]) {
        const acme = scoped(plain, 'acme', { shared })
        expect(await acme.query(`SELECT id, price FROM ${archive}.plans`)).toEqual([
          { id: 'custom', price: 'acme price' },
        ])
        // The shared table itself is still read unfiltered.
        expect(await acme.query('SELECT id FROM plans ORDER BY id')).toEqual([{ id: 'free' }, { id: 'pro' }])
      }
      await rejects(
        () =>
          validateQuery(`SELECT id, price FROM ${archive}.plans`, 'tenant_id', {
            dialect,
            sharedTables: ['plans'],
          }),
        'tenant_unsafe_query',
      )
      const { sql: filtered, params } = addTenantFilter(
        `SELECT id, price FROM ${archive}.plans`,
        'acme',
        'tenant_id',
        {
          dialect,
          sharedTables: ['plans'],
        },
      )
      expect(await database.current.query(sql.raw(inline(filtered, params, pg)))).toEqual([
        { id: 'custom', price: 'acme price' },
      ])
      // Listed with its schema, the name means that table only.
      await rejects(
        () =>
          validateQuery('SELECT id FROM plans', 'tenant_id', { dialect, sharedTables: [`${archive}.plans`] }),
        'tenant_unsafe_query',
      )
    })

    it('a tenant table name is trusted in a subquery in its own schema only (tenantTables given or from the Drizzle schema)', async () => {
      const statement = (from: string) =>
        `SELECT n.id, (SELECT a.title FROM ${from} a WHERE tenant_id = ${p(database.current, 1)} AND a.id = 'globex-n1') AS other FROM notes n WHERE n.id = 'acme-n1'`
      for (const acme of [scoped(typed, 'acme'), scoped(plain, 'acme', { tenantTables: ['notes'] })]) {
        await rejects(acme.query(statement(`${archive}.notes`), ['acme']), 'tenant_unsafe_query')
        // The same subquery over the tenant table itself is fine: its tenant_id is its own.
        expect(await acme.query(statement('notes'), ['acme'])).toEqual([{ id: 'acme-n1', other: null }])
      }
      await rejects(
        () =>
          validateQuery(
            `SELECT n.id FROM notes n WHERE n.tenant_id = 'acme' AND n.id IN (SELECT a.id FROM ${archive}.notes a WHERE tenant_id = 'acme')`,
            'tenant_id',
            { dialect: pg ? 'postgresql' : 'sqlite', tenantTables: ['notes'] },
          ),
        'tenant_unsafe_query',
      )
    })

    it('the default schema named explicitly (main., public.) is not the unqualified name either: list it as written', async () => {
      const dialect = pg ? 'postgresql' : 'sqlite'
      await rejects(
        () =>
          validateQuery(`SELECT id FROM ${home}.plans`, 'tenant_id', { dialect, sharedTables: ['plans'] }),
        'tenant_unsafe_query',
      )
      // Filtered as a tenant table, it fails for want of the column: nothing is read.
      const error = await rejects(
        scoped(plain, 'acme', { shared: ['plans'] }).query(`SELECT id FROM ${home}.plans`),
        'tenant_backend_unavailable',
      )
      expect(isTenantError(error)).toBe(true)
      expect(
        await scoped(plain, 'acme', { shared: [`${home}.plans`] }).query(
          `SELECT id FROM ${home}.plans ORDER BY id`,
        ),
      ).toEqual([{ id: 'free' }, { id: 'pro' }])
    })
  },
  KINDS,
)
