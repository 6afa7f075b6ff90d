// Values that change what they are after the scoped API checked them. Drizzle decides at render
// time whether a bound value is SQL (`is(value, SQL)` after the column's encoder, `getSQL` on a
// raw chunk), so an object passed as data and turned into SQL later (its prototype swapped, a
// `getSQL` added) would render as SQL text. Each case runs on libSQL, PGlite and PostgreSQL and
// checks what the query returned or wrote, not only the error.
import { eq, SQL, StringChunk, sql } from 'drizzle-orm'
import type { LibSQLDatabase } from 'drizzle-orm/libsql'
import * as pg from 'drizzle-orm/pg-core'
import * as sqlite from 'drizzle-orm/sqlite-core'
import { beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { describeEachDatabase } from '../test/databases'
import { allRows, createIsolationTables, seedIsolationData, tablesFor } from '../test/isolation-db'
import { rejects } from '../test/tenant-errors'
import { scoped } from './scoped'
import type { TenantDB } from './tenant-db'

// Columns whose encoders turn objects into driver values (JSON text, Postgres arrays).
const sqliteDocs = sqlite.sqliteTable('docs', {
  id: sqlite.text('id').primaryKey(),
  tenantId: sqlite.text('tenant_id'),
  body: sqlite.text('body', { mode: 'json' }).$type<{ n: number; tags: string[] }>(),
  at: sqlite.integer('at', { mode: 'timestamp_ms' }),
})
const pgDocs = pg.pgTable('docs', {
  id: pg.text('id').primaryKey(),
  tenantId: pg.text('tenant_id'),
  body: pg.jsonb('body').$type<{ n: number; tags: string[] }>(),
  tags: pg.text('tags').array(),
  at: pg.timestamp('at', { mode: 'date', withTimezone: true }),
})

const KINDS = { kinds: ['libsql-memory', 'pglite', 'postgres'], migrate: false } as const

/** Turns `value` into SQL that renders as `text` (what an attacker holding the object would do). */
function becomeSql(value: object, text: string): void {
  Object.setPrototypeOf(value, SQL.prototype)
  Object.assign(value, {
    queryChunks: [new StringChunk(text)],
    decoder: { mapFromDriverValue: (v: unknown) => v },
    shouldInlineParams: false,
    usedTables: [],
  })
}

/** Gives `value` a `getSQL()` that renders `text`. */
function becomeWrapper(value: object, text: string): void {
  Object.assign(value, { getSQL: () => new SQL([new StringChunk(text)]) })
}

// Closes the parentheses around the caller's condition and matches every tenant's rows.
const ESCAPE = `'x') or (1 = 1`

describeEachDatabase(
  'scoped builders: a value that turns into SQL after it was passed',
  (database) => {
    let db: LibSQLDatabase
    let t: ReturnType<typeof tablesFor>
    let acme: TenantDB<LibSQLDatabase>
    let seeded: Record<string, unknown>[]

    beforeAll(async () => {
      await createIsolationTables(database.current)
      db = database.current.db as unknown as LibSQLDatabase
      t = tablesFor(database.current)
      acme = scoped(db, 'acme')
    })
    beforeEach(async () => {
      await seedIsolationData(database.current)
      seeded = await allRows(database.current, 'notes')
    })

    /**
     * Runs `query`, where `value` is bound as data: on SQLite an object parameter is refused before
     * the driver sees it (bun:sqlite would read it as named parameters), as data and not for having
     * become SQL; elsewhere the query runs and sees no row (no title is that object's text).
     */
    async function boundAsData(query: PromiseLike<unknown>): Promise<void> {
      let rows: unknown
      try {
        rows = await query
      } catch (error) {
        expect(database.current.dialect).toBe('sqlite')
        expect(String(error)).toMatch(/on SQLite a bound value must be/)
        return
      }
      expect(rows).toEqual([])
    }

    describe('a parameter of a condition (eq(column, value))', () => {
      it('is refused when the value became SQL through the prototype', async () => {
        const value = { note: 'a document' }
        const query = acme
          .select()
          .from(t.notes)
          .where(eq(t.notes.title, value as unknown as string))
        becomeSql(value, ESCAPE)
        await rejects(query, 'tenant_unsafe_query')
      })

      it('is refused for a class instance (a Date) that became SQL', async () => {
        const value = new Date(0)
        const query = acme
          .select()
          .from(t.notes)
          .where(eq(t.notes.title, value as unknown as string))
        becomeSql(value, ESCAPE)
        await rejects(query, 'tenant_unsafe_query')
      })

      it('still binds an object value that stayed data', async () => {
        // The identity encoder of a text column hands the object to the driver; it is bound, not
        // rendered (the driver turns it into text or refuses it, but never reads other rows).
        const value = { note: 'a document' }
        await boundAsData(
          acme
            .select()
            .from(t.notes)
            .where(eq(t.notes.title, value as unknown as string)),
        )
      })
    })

    describe('a value inside sql``', () => {
      it('is bound as data when a plain object became SQL (its copy was bound)', async () => {
        const value = { note: 'a document' }
        const query = acme.select().from(t.notes).where(sql`${t.notes.title} = ${value}`)
        becomeSql(value, ESCAPE)
        await boundAsData(query)
      })

      it('is refused when a class instance became SQL', async () => {
        const value = new (class Doc {
          note = 'a document'
        })()
        const query = acme.select().from(t.notes).where(sql`${t.notes.title} = ${value}`)
        becomeSql(value, ESCAPE)
        await rejects(query, 'tenant_unsafe_query')
      })

      it('is bound as data when it gained a getSQL() afterwards', async () => {
        const value = { note: 'a document' }
        const query = acme.select().from(t.notes).where(sql`${t.notes.title} = ${value}`)
        becomeWrapper(value, ESCAPE)
        await boundAsData(query)
      })

      it('is refused when a Date inside it became SQL', async () => {
        const value = new Date(0)
        const query = acme.select().from(t.notes).where(sql`${t.notes.title} = ${value}`)
        becomeSql(value, ESCAPE)
        await rejects(query, 'tenant_unsafe_query')
      })
    })

    describe('a function passed where a value goes (Drizzle renders one with getSQL() as SQL)', () => {
      it('is refused in a condition, with or without a getSQL() (one could be added later)', async () => {
        const later = () => {}
        await rejects(
          () => acme.select().from(t.notes).where(sql`${t.notes.id} = ${later}`),
          'tenant_unsafe_query',
        )
        const before = Object.assign(() => {}, { getSQL: () => sql.raw(ESCAPE) })
        await rejects(
          () => acme.update(t.notes).set({ title: 'pwned' }).where(sql`${t.notes.id} = ${before}`),
          'tenant_unsafe_query',
        )
        await rejects(() => acme.$count(t.notes, sql`${t.notes.id} = ${later}`), 'tenant_unsafe_query')
        expect(await allRows(database.current, 'notes')).toEqual(seeded)
      })

      it('is refused as a selected field, or inside one', async () => {
        const field = () => {}
        await rejects(
          () => acme.select({ id: t.notes.id, n: field as unknown as SQL }).from(t.notes),
          'tenant_unsafe_query',
        )
        await rejects(
          () => acme.select({ id: t.notes.id, n: sql`${field}` }).from(t.notes),
          'tenant_unsafe_query',
        )
      })
    })

    describe('inlined parameters (.inlineParams(): Drizzle writes a value as text with its toString())', () => {
      it('refuses an object value, whose text could change before the statement runs', async () => {
        let armed = false
        const value = {
          toString: () => (armed ? { replace: () => `x') or (1=1) or ('t` } : 'x'),
        }
        await rejects(
          () =>
            acme.update(t.notes).set({ title: 'pwned' }).where(sql`${t.notes.id} = ${value}`.inlineParams()),
          'tenant_unsafe_query',
        )
        armed = true
        const date = new Date(0)
        await rejects(
          () => acme.select().from(t.notes).where(sql`${t.notes.title} = ${date}`.inlineParams()),
          'tenant_unsafe_query',
        )
        // Inside an inner sql`` of an inlined one, too.
        await rejects(
          () =>
            acme
              .select()
              .from(t.notes)
              .where(sql`${sql`${t.notes.title} = ${value}`}`.inlineParams()),
          'tenant_unsafe_query',
        )
        expect(await allRows(database.current, 'notes')).toEqual(seeded)
      })

      it('refuses an object bound inside a scoped subquery or $count that an inlined sql embeds', async () => {
        const value = { toString: () => 'x' }
        const sq = acme
          .select({ id: t.notes.id })
          .from(t.notes)
          .where(eq(t.notes.title, value as unknown as string))
          .as('sq')
        await rejects(
          () => acme.select({ all: sql`${sql`(select count(*) from ${sq})`.inlineParams()}` }).from(t.notes),
          'tenant_unsafe_query',
        )
        const counted = acme.$count(t.notes, eq(t.notes.title, value as unknown as string))
        await rejects(
          () => acme.select({ n: sql`${sql`(${counted})`.inlineParams()}` }).from(t.notes),
          'tenant_unsafe_query',
        )
      })

      it('still inlines strings, numbers, booleans and null', async () => {
        const rows = await acme
          .select({ id: t.notes.id })
          .from(t.notes)
          .where(sql`${t.notes.id} = ${'acme-n1'} and ${t.notes.score} = ${1}`.inlineParams())
        expect(rows).toEqual([{ id: 'acme-n1' }])
      })
    })

    describe('written values', () => {
      it('an inserted value that became SQL is refused and writes nothing', async () => {
        const value = { note: 'a document' }
        const query = acme.insert(t.notes).values({ id: 'acme-n9', title: value as unknown as string })
        // A subquery reading another tenant's title, written into acme's row.
        becomeSql(value, `(select title from notes where id = 'globex-n1')`)
        await rejects(query, 'tenant_unsafe_query')
        expect(await allRows(database.current, 'notes')).toEqual(seeded)
      })

      it('a set value that became SQL is refused and changes nothing', async () => {
        const value = { note: 'a document' }
        const query = acme
          .update(t.notes)
          .set({ title: value as unknown as string })
          .where(eq(t.notes.id, 'acme-n1'))
        becomeSql(value, `(select title from notes where id = 'globex-n1')`)
        await rejects(query, 'tenant_unsafe_query')
        expect(await allRows(database.current, 'notes')).toEqual(seeded)
      })

      it('an upsert set value that became SQL is refused', async () => {
        const value = { note: 'a document' }
        const query = acme
          .insert(t.notes)
          .values({ id: 'acme-n1', title: 'x' })
          .onConflictDoUpdate({ target: t.notes.id, set: { title: value as unknown as string } })
        becomeSql(value, `(select title from notes where id = 'globex-n1')`)
        await rejects(query, 'tenant_unsafe_query')
        expect(await allRows(database.current, 'notes')).toEqual(seeded)
      })

      it("objects, arrays and dates go through their columns' encoders as before", async () => {
        const pgKind = database.current.dialect === 'pg'
        await database.current.query(
          sql.raw(
            pgKind
              ? 'create table if not exists docs (id text primary key, tenant_id text not null, body jsonb, tags text[], "at" timestamptz)'
              : 'create table if not exists docs (id text primary key, tenant_id text not null, body text, "at" integer)',
          ),
        )
        await database.current.query(sql.raw('delete from docs'))
        const at = new Date(1_700_000_000_000)
        const body = { n: 1, tags: ['a', 'b'] }
        if (pgKind) {
          const docs = pgDocs as unknown as typeof sqliteDocs & { tags: typeof pgDocs.tags }
          const db2 = acme as unknown as TenantDB<LibSQLDatabase>
          await db2.insert(docs).values({ id: 'd1', body, at, tags: ['x', 'y'] } as never)
          await db2
            .update(docs)
            .set({ body: { n: 2, tags: [] }, tags: ['z'] } as never)
            .where(eq(docs.id, 'd1'))
          const rows = await db2
            .select()
            .from(docs)
            .where(eq(docs.body, { n: 2, tags: [] }))
          expect(rows).toEqual([{ id: 'd1', tenantId: 'acme', body: { n: 2, tags: [] }, tags: ['z'], at }])
        } else {
          await acme.insert(sqliteDocs).values({ id: 'd1', body, at })
          await acme
            .update(sqliteDocs)
            .set({ body: { n: 2, tags: [] } })
            .where(eq(sqliteDocs.at, at))
          const rows = await acme.select().from(sqliteDocs)
          expect(rows).toEqual([{ id: 'd1', tenantId: 'acme', body: { n: 2, tags: [] }, at }])
        }
      })

      it('a placeholder given as a value cannot be made SQL before the statement runs', async () => {
        const pg = database.current.dialect === 'pg'
        const commentingOut = (text: string) =>
          pg ? `${text} where $1::text is not null and $2::text is not null --` : `${text} --`
        const placeholder = sql.placeholder('title')
        const query = acme
          .update(t.notes)
          .set({ title: placeholder as unknown as string })
          .where(eq(t.notes.id, 'acme-n1'))
        becomeSql(placeholder, commentingOut(`'pwned'`))
        let refused = false
        try {
          await query.prepare().execute({ title: 'renamed' })
        } catch (error) {
          expect((error as { code?: string }).code).toBe('tenant_unsafe_query')
          refused = true
        }
        const rows = await allRows(database.current, 'notes')
        expect(rows.filter((r) => r.tenant_id !== 'acme')).toEqual(
          seeded.filter((r) => r.tenant_id !== 'acme'),
        )
        // Run with the value it was given, or (on SQLite, where the changed placeholder is an
        // object among the values) refused whole.
        expect(rows.find((r) => r.id === 'acme-n1')).toMatchObject({
          title: refused ? seeded.find((r) => r.id === 'acme-n1')!.title : 'renamed',
        })
      })

      it('raw SQL parameters (TenantDB.query, exec) are bound, never rendered, whatever their prototype says', async () => {
        const forged = Object.assign(Object.create({ constructor: SQL }), {
          queryChunks: [new StringChunk(`'pwned' --`)],
          decoder: { mapFromDriverValue: (v: unknown) => v },
          shouldInlineParams: false,
          usedTables: [],
        })
        const mark = database.current.dialect === 'pg' ? ['$1', '$2'] : ['?', '?']
        await rejects(
          () => acme.exec(`update notes set title = ${mark[0]} where id = ${mark[1]}`, [forged, 'acme-n1']),
          'tenant_unsafe_query',
        )
        await rejects(
          () => acme.query(`select id from notes where title = ${mark[0]}`, [forged]),
          'tenant_unsafe_query',
        )
        expect(await allRows(database.current, 'notes')).toEqual(seeded)
      })

      it('values that stay data are written as before', async () => {
        await acme.insert(t.notes).values({ id: 'acme-n9', title: 'plain', score: 7 })
        await acme.update(t.notes).set({ title: 'renamed' }).where(eq(t.notes.id, 'acme-n9'))
        const rows = await acme.select().from(t.notes).where(eq(t.notes.id, 'acme-n9'))
        expect(rows).toMatchObject([{ id: 'acme-n9', title: 'renamed', score: 7, tenantId: 'acme' }])
      })
    })
  },
  KINDS,
)
