// On SQLite an object bound as a value is refused before the driver sees it (bun:sqlite reads an
// object given as the first parameter as named parameters; test/bun-sqlite.spec.ts shows it
// there). What SQLite binds as it is keeps working, prepared statements with placeholders
// included, whose values are checked as Drizzle fills them in.
import { eq, sql } from 'drizzle-orm'
import type { LibSQLDatabase } from 'drizzle-orm/libsql'
import { sqliteTable, text } from 'drizzle-orm/sqlite-core'
import { beforeEach, expect, it } from 'vitest'
import { describeEachDatabase } from '../test/databases'
import { scoped } from './scoped'
import { tenantIdColumn } from './sqlite'

const docs = sqliteTable('value_docs', {
  id: text('id').primaryKey(),
  tenantId: tenantIdColumn(),
  title: text('title'),
  body: text('body', { mode: 'json' }).$type<Record<string, unknown>>(),
})

describeEachDatabase(
  'SQLite: values bound by the scoped API',
  (database) => {
    let acme: ReturnType<typeof scoped<LibSQLDatabase>>
    beforeEach(async () => {
      await database.current.query(sql.raw('drop table if exists value_docs'))
      await database.current.query(
        sql.raw(
          'create table value_docs (id text primary key, tenant_id text not null, title text, body text)',
        ),
      )
      acme = scoped(database.current.db as unknown as LibSQLDatabase, 'acme')
    })

    it('runs prepared inserts, updates and selects with placeholders, a JSON column given an object', async () => {
      const insert = acme
        .insert(docs)
        .values({ id: sql.placeholder('id'), title: sql.placeholder('title'), body: sql.placeholder('body') })
        .prepare()
      await insert.execute({ id: 'd1', title: 'first', body: { n: 1 } })
      await insert.execute({ id: 'd2', title: 'second', body: { n: 2 } })
      const rename = acme
        .update(docs)
        .set({ title: sql.placeholder('title') as unknown as string })
        .where(eq(docs.id, sql.placeholder('id')))
        .prepare()
      await rename.execute({ title: 'renamed', id: 'd1' })
      const byId = acme
        .select()
        .from(docs)
        .where(eq(docs.id, sql.placeholder('id')))
        .prepare()
      expect(await byId.execute({ id: 'd1' })).toEqual([
        { id: 'd1', tenantId: 'acme', title: 'renamed', body: { n: 1 } },
      ])
      expect(
        await acme
          .select({ id: docs.id, body: docs.body })
          .from(docs)
          .where(eq(docs.body, { n: 2 })),
      ).toEqual([{ id: 'd2', body: { n: 2 } }])
    })

    it('refuses an object bound as it is, when the statement is made or run, writing nothing', async () => {
      const object = { 0: 'x', 1: 'globex' }
      const refused = async (run: () => unknown) =>
        Promise.resolve()
          .then(run)
          .then(
            () => 'ran',
            (error: { code?: string }) => error.code,
          )
      expect(await refused(() => acme.insert(docs).values({ id: 'd3', title: object as never }))).toBe(
        'tenant_unsafe_query',
      )
      const titled = acme
        .insert(docs)
        .values({ id: sql.placeholder('id'), title: sql.placeholder('title') })
        .prepare()
      expect(await refused(() => titled.execute({ id: 'd4', title: object }))).toBe('tenant_unsafe_query')
      const selected = acme
        .select({ x: sql`${sql.placeholder('x')}` })
        .from(docs)
        .prepare()
      expect(await refused(() => selected.execute({ x: object }))).toBe('tenant_unsafe_query')
      expect(await acme.select().from(docs)).toEqual([])
    })
  },
  { kinds: ['libsql-memory', 'libsql-file', 'd1'], migrate: false },
)
