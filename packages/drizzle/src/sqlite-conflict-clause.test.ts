// SQLite lets a table carry its own conflict clause (`id text primary key on conflict replace`,
// Drizzle's `integer().primaryKey({ onConflict: 'replace' })`): a plain INSERT or UPDATE that collides with
// another row's key then runs as a REPLACE and deletes that row, another tenant's included.
// Scoped writes say `or abort`, which overrides the table's clause: the statement fails instead.
import { eq, sql } from 'drizzle-orm'
import type { LibSQLDatabase } from 'drizzle-orm/libsql'
import { pgTable, text as pgText } from 'drizzle-orm/pg-core'
import { drizzle } from 'drizzle-orm/pglite'
import { sqliteTable, text, unique } from 'drizzle-orm/sqlite-core'
import { beforeEach, describe, expect, it } from 'vitest'
import { describeEachDatabase } from '../test/databases'
import { addTenantFilter } from './raw-sql'
import { scoped } from './scoped'
import { tenantIdColumn } from './sqlite'
import type { TenantDB } from './tenant-db'

const docs = sqliteTable(
  'replace_docs',
  {
    // The DDL below gives the key its own clause (Drizzle can declare it for an integer key only).
    id: text('id').primaryKey(),
    tenantId: tenantIdColumn(),
    slug: text('slug').notNull(),
    body: text('body'),
  },
  (t) => [unique().on(t.tenantId, t.slug)],
)

describeEachDatabase(
  'SQLite tables with ON CONFLICT REPLACE',
  (database) => {
    let acme: TenantDB<LibSQLDatabase>
    const rows = async () =>
      (
        await database.current.query(
          sql.raw('select id, tenant_id, slug, body from replace_docs order by id'),
        )
      ).map((row) => ({ ...row }))
    const seeded = [
      { id: 'a1', tenant_id: 'acme', slug: 'mine', body: 'acme doc' },
      { id: 'g1', tenant_id: 'globex', slug: 'theirs', body: 'globex secret' },
    ]
    beforeEach(async () => {
      const run = (statement: string) => database.current.query(sql.raw(statement))
      await run('drop table if exists replace_docs')
      await run(
        'create table replace_docs (id text primary key on conflict replace, tenant_id text not null, ' +
          'slug text not null, body text, unique (tenant_id, slug))',
      )
      await run(
        "insert into replace_docs values ('a1', 'acme', 'mine', 'acme doc'), ('g1', 'globex', 'theirs', 'globex secret')",
      )
      acme = scoped(database.current.db as unknown as LibSQLDatabase, 'acme')
    })

    describe('scoped builders', () => {
      it("an INSERT onto another tenant's key fails, and deletes nothing", async () => {
        await expect(acme.insert(docs).values({ id: 'g1', slug: 'new', body: 'x' })).rejects.toThrow()
        expect(await rows()).toEqual(seeded)
      })

      it("an UPDATE onto another tenant's key fails, and deletes nothing", async () => {
        await expect(acme.update(docs).set({ id: 'g1' }).where(eq(docs.id, 'a1'))).rejects.toThrow()
        expect(await rows()).toEqual(seeded)
      })

      it("an upsert on one key cannot replace another tenant's row through the other key", async () => {
        // Targets (tenant_id, slug), which does not collide; the collision on id would be the
        // table's REPLACE.
        const upsert = acme
          .insert(docs)
          .values({ id: 'g1', slug: 'new', body: 'x' })
          .onConflictDoUpdate({ target: [docs.tenantId, docs.slug], set: { body: 'y' } })
        await expect(upsert).rejects.toThrow()
        expect(await rows()).toEqual(seeded)
      })

      it('writes without a collision as before, and says so in the statement', async () => {
        const insert = acme.insert(docs).values({ id: 'a2', slug: 'two', body: 'b' })
        expect(insert.toSQL().sql).toMatch(/^insert or abort into "replace_docs"/)
        await insert
        await acme.update(docs).set({ body: 'c' }).where(eq(docs.id, 'a2'))
        await acme
          .insert(docs)
          .values({ id: 'a3', slug: 'two', body: 'd' })
          .onConflictDoUpdate({ target: [docs.tenantId, docs.slug], set: { body: 'e' } })
        expect(await acme.select().from(docs).where(eq(docs.id, 'a2'))).toEqual([
          { id: 'a2', tenantId: 'acme', slug: 'two', body: 'e' },
        ])
        expect((await rows()).filter((row) => row.tenant_id === 'globex')).toEqual([seeded[1]])
      })
    })

    describe('raw SQL (TenantDB.exec and query)', () => {
      it("an INSERT onto another tenant's key fails, and deletes nothing", async () => {
        await expect(
          acme.exec('INSERT INTO replace_docs (id, slug, body) VALUES (?, ?, ?)', ['g1', 'new', 'x']),
        ).rejects.toThrow()
        expect(await rows()).toEqual(seeded)
      })

      it("an UPDATE onto another tenant's key fails, and deletes nothing", async () => {
        await expect(acme.exec('UPDATE replace_docs SET id = ? WHERE id = ?', ['g1', 'a1'])).rejects.toThrow()
        expect(await rows()).toEqual(seeded)
      })

      it('keeps a conflict clause the statement names (OR IGNORE skips the row)', async () => {
        const result = await acme.exec('INSERT OR IGNORE INTO replace_docs (id, slug) VALUES (?, ?)', [
          'g1',
          'new',
        ])
        expect(result.rowsAffected).toBe(0)
        expect(await rows()).toEqual(seeded)
      })

      it('writes without a collision as before', async () => {
        await acme.exec('INSERT INTO replace_docs (id, slug, body) VALUES (?, ?, ?)', ['a2', 'two', 'b'])
        await acme.exec('UPDATE replace_docs SET body = ? WHERE id = ?', ['c', 'a2'])
        expect(await acme.query('SELECT body FROM replace_docs WHERE id = ?', ['a2'])).toEqual([
          { body: 'c' },
        ])
      })
    })
  },
  { kinds: ['libsql-memory', 'libsql-file'], migrate: false },
)

describe('the conflict clause is SQLite only', () => {
  it('Postgres statements keep their text: there, no table has a conflict clause of its own', () => {
    expect(
      addTenantFilter('UPDATE notes SET id = $1', 'acme', 'tenant_id', {
        dialect: 'postgresql',
        params: ['x'],
      }).sql,
    ).toBe('UPDATE "notes" SET id = $1 WHERE "notes"."tenant_id" = $2')
    const notes = pgTable('notes', { id: pgText('id').primaryKey(), tenantId: pgText('tenant_id') })
    const db = drizzle.mock()
    expect(scoped(db, 'acme').insert(notes).values({ id: 'n1' }).toSQL().sql).toMatch(/^insert into "notes"/)
    expect(scoped(db, 'acme').update(notes).set({ id: 'n2' }).toSQL().sql).toMatch(/^update "notes"/)
  })
})
