// A function of the application's own database named like an allowed built-in, with other argument
// types (`length(notes)`), was called in the built-in's stead: PostgreSQL looks an unqualified name
// up along the search path by name and argument types. Such a function can read every tenant's
// rows. The scoped handle now writes allowed built-ins as pg_catalog.name(...).
import { sql } from 'drizzle-orm'
import type { LibSQLDatabase } from 'drizzle-orm/libsql'
import { beforeAll, beforeEach, expect, it } from 'vitest'
import { describeEachDatabase } from '../test/databases'
import { createIsolationTables, seedIsolationData } from '../test/isolation-db'
import { addTenantFilter } from './raw-sql'
import { scoped } from './scoped'

it('writes the allowed built-ins a PostgreSQL statement calls as pg_catalog.name(...)', () => {
  const { sql: text } = addTenantFilter(
    `select length(title), count(*), sum(id), coalesce(title, ''), row_number() over (order by id) from notes`,
    'acme',
    'tenant_id',
    { dialect: 'postgresql' },
  )
  expect(text).toContain('pg_catalog.length(')
  expect(text).toContain('pg_catalog.COUNT(*)')
  expect(text).toContain('pg_catalog.SUM(')
  // Grammar, not functions looked up by name, and window functions (the parser reads no schema on
  // them): kept as written.
  expect(text).toContain(' coalesce(')
  expect(text).toContain(' row_number() OVER')
  // SQLite has no such lookup.
  expect(addTenantFilter('select length(title) from notes', 'acme', 'tenant_id').sql).not.toContain(
    'pg_catalog',
  )
})

describeEachDatabase(
  "a function of the database's own named like an allowed built-in",
  (database) => {
    beforeAll(async () => {
      await createIsolationTables(database.current)
      await database.current.query(
        sql.raw(
          `create or replace function length(n notes) returns text language sql as 'select string_agg(title, '','' order by title) from notes'`,
        ),
      )
    })
    beforeEach(() => seedIsolationData(database.current))

    it("is not called in the built-in's stead: no other tenant's rows", async () => {
      const acme = scoped(database.current.db as unknown as LibSQLDatabase, 'acme')
      for (const call of ['length(n)', '"length"(n)']) {
        const outcome = await acme.query(`SELECT ${call} AS length FROM notes n LIMIT 1`).then(
          (rows) => JSON.stringify(rows),
          (error: unknown) => String(error),
        )
        expect(outcome, call).not.toContain('globex')
      }
      // The built-ins themselves run as before.
      const [row] = await acme.query<{ n: number | string; total: number | string; first: string }>(
        "SELECT count(*) AS n, sum(length(title)) AS total, min(coalesce(title, '')) AS first FROM notes",
      )
      expect(Number(row!.n)).toBeGreaterThan(0)
      expect(Number(row!.total)).toBeGreaterThan(0)
      expect(row!.first).toMatch(/^acme/)
    })
  },
  { kinds: ['pglite', 'postgres'], migrate: false },
)
