// Raw text (sql.raw, an alias, a name) that the scoped API hands to Drizzle must stay where it was
// written: text that comments out or closes what follows it could drop the tenant condition that
// comes after it in the statement (a selected field before FROM and WHERE, a set value before
// WHERE, an inserted value before the upsert's WHERE). Every case runs on libSQL, PGlite and
// PostgreSQL and checks the tables afterwards, not only the error.
import { eq, SQL, sql } from 'drizzle-orm'
import type { LibSQLDatabase } from 'drizzle-orm/libsql'
import { beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { describeEachDatabase } from '../test/databases'
import { allRows, createIsolationTables, seedIsolationData, tablesFor } from '../test/isolation-db'
import { rejects } from '../test/tenant-errors'
import { validateQuery } from './raw-sql'
import { scoped, unscoped } from './scoped'
import type { TenantDB } from './tenant-db'

const KINDS = { kinds: ['libsql-memory', 'pglite', 'postgres'], migrate: false } as const

describeEachDatabase(
  'scoped builders: raw text stays where it was written',
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
    const unchanged = async () => expect(await allRows(database.current, 'notes')).toEqual(seeded)
    /**
     * SQLite parameter tricks: refused on SQLite; on Postgres, which numbers every parameter
     * itself, the text is the database's to refuse (a syntax error) or to run over acme's rows.
     * Either way no table changed.
     */
    const refusedOnSqlite = async (attempts: (() => PromiseLike<unknown>)[]) => {
      for (const attempt of attempts) {
        if (!pg()) {
          await rejects(attempt, 'tenant_unsafe_query')
          continue
        }
        try {
          const rows = (await attempt()) as { id?: string }[] | undefined
          for (const row of Array.isArray(rows) ? rows : []) expect(row.id ?? 'acme').toMatch(/^acme/)
        } catch {
          // A syntax error on Postgres.
        }
      }
      await unchanged()
    }
    const pg = () => database.current.dialect === 'pg'
    // Comments out the rest of the statement (on Postgres the placeholders after it must still be
    // referred to, or the server refuses the statement for the parameters it was given).
    const commentOut = (value: string, params: number) =>
      sql.raw(
        `${value}${pg() ? ` where ${Array.from({ length: params }, (_, i) => `$${i + 1}::text is not null`).join(' and ')}` : ''} --`,
      )

    describe('a set value', () => {
      it('that comments out the WHERE is refused, and changes nothing', async () => {
        await rejects(
          () =>
            acme
              .update(t.notes)
              .set({ title: commentOut(`'pwned'`, 2) as unknown as string })
              .where(eq(t.notes.id, 'acme-n1')),
          'tenant_unsafe_query',
        )
        await unchanged()
      })

      it('in an upsert, is refused', async () => {
        await rejects(
          () =>
            acme
              .insert(t.notes)
              .values({ id: 'acme-n1', title: 'x' })
              .onConflictDoUpdate({
                target: t.notes.id,
                set: { title: commentOut(`'pwned'`, 4) as unknown as string },
              }),
          'tenant_unsafe_query',
        )
        await unchanged()
      })

      it("an inserted value that closes the row and adds another tenant's is refused", async () => {
        await rejects(
          () =>
            acme.insert(t.notes).values({
              id: 'acme-n9',
              title: sql.raw(`'x', 0), ('globex-n9', 'globex', null, 'planted'`) as unknown as string,
            }),
          'tenant_unsafe_query',
        )
        await unchanged()
      })

      it('balanced raw text still works', async () => {
        await acme
          .update(t.notes)
          .set({ title: sql`upper(${t.notes.title})`, score: sql.raw('(1 + 1)') as unknown as number })
          .where(eq(t.notes.id, 'acme-n1'))
        const rows = await acme
          .select({ title: t.notes.title, score: t.notes.score })
          .from(t.notes)
          .where(eq(t.notes.id, 'acme-n1'))
        expect(rows).toEqual([{ title: 'ACME NOTE 1', score: 2 }])
      })
    })

    describe('a selected field (before FROM and WHERE)', () => {
      it('that comments out the rest is refused', async () => {
        await rejects(
          () => acme.select({ n: sql<number>`count(*) from notes --` }).from(t.notes),
          'tenant_unsafe_query',
        )
        await rejects(
          () => acme.select({ id: t.notes.id, n: sql.raw('1 from notes; --') }).from(t.notes),
          'tenant_unsafe_query',
        )
      })

      it('balanced computed fields still work', async () => {
        const rows = await acme
          .select({ id: t.notes.id, twice: sql<number>`(${t.notes.score} * 2)` })
          .from(t.notes)
          .where(eq(t.notes.id, 'acme-n2'))
        expect(rows.map((r) => [r.id, Number(r.twice)])).toEqual([['acme-n2', 4]])
      })
    })

    describe("an upsert's conflict clause (before the update and its tenant condition)", () => {
      it('refuses text in targetWhere, where or target that ends the clause', async () => {
        const upsert = () => acme.insert(t.notes).values({ id: 'globex-n1', title: 'x' })
        await rejects(
          () =>
            upsert().onConflictDoUpdate({
              target: t.notes.id,
              targetWhere: commentOut(`true do update set title = 'pwned'`, 4),
              set: { title: 'y' },
            }),
          'tenant_unsafe_query',
        )
        await rejects(
          () =>
            upsert().onConflictDoNothing({
              target: t.notes.id,
              where: commentOut(`true do update set title = 'pwned'`, 4),
            }),
          'tenant_unsafe_query',
        )
        await rejects(
          () =>
            upsert().onConflictDoNothing({
              target: sql.raw(`"id") do update set "title" = 'pwned' --`) as never,
            }),
          'tenant_unsafe_query',
        )
        await unchanged()
      })
    })

    describe('text after the tenant condition that would reach back before it', () => {
      it('a subquery whose orderBy comments out the outer WHERE is refused when it is built', async () => {
        await rejects(
          () =>
            acme
              .select({ id: t.notes.id })
              .from(t.notes)
              .orderBy(sql.raw(`1 limit 1) as "x", "id" from notes --`)),
          'tenant_unsafe_query',
        )
        await rejects(
          () => acme.select({ id: t.notes.id }).from(t.notes).groupBy(sql.raw(`"id" --`)),
          'tenant_unsafe_query',
        )
        await rejects(
          () => acme.select({ id: t.notes.id }).from(t.notes).having(sql.raw(`1 = 1 --`)),
          'tenant_unsafe_query',
        )
      })

      it("numbered or named parameters in raw text are refused on SQLite (they renumber the tenant's)", async () => {
        const attempts: (() => PromiseLike<unknown>)[] = [
          () =>
            acme
              .select({ x: sql.raw('?1'), id: t.notes.id })
              .from(t.notes)
              .where(sql`${'globex'} is null`),
          () =>
            acme
              .update(t.notes)
              .set({ title: sql.raw('?1') as unknown as string })
              .where(sql`${'globex'} is null`),
          () =>
            acme
              .select({ id: t.notes.id })
              .from(t.notes)
              .where(sql`${'globex'} is null or :x is null or @y is null or $z is null`),
        ]
        await refusedOnSqlite(attempts)
      })
    })

    describe('sealed parts reused elsewhere are checked again where they are put', () => {
      it('a text chunk taken from getSQL() cannot comment out the WHERE of another statement', async () => {
        const tail = pg() ? ' where $2::text is not null and $3::text is not null --' : ' --'
        // Inside a string literal there, the text is harmless and passes.
        const built = acme
          .select()
          .from(t.notes)
          .where(sql`${t.notes.title} = '${sql.raw(tail)}'`)
        // The sealed StringChunk of the tail, somewhere in the frozen copy getSQL() hands out.
        const find = (node: unknown): unknown => {
          if (node === null || typeof node !== 'object') return undefined
          const { value, queryChunks } = node as { value?: unknown; queryChunks?: unknown[] }
          if (Array.isArray(value) && value[0] === tail) return node
          for (const child of queryChunks ?? []) {
            const found = find(child)
            if (found !== undefined) return found
          }
          return undefined
        }
        const chunk = find(built.getSQL())
        expect(chunk).toBeDefined()
        await rejects(
          () =>
            acme
              .update(t.notes)
              .set({ title: sql`${'pwned'}${chunk}` as unknown as string })
              .where(eq(t.notes.id, 'acme-n1')),
          'tenant_unsafe_query',
        )
        await rejects(() => acme.select({ x: sql`${1}${chunk}` }).from(t.notes), 'tenant_unsafe_query')
        await unchanged()
      })
    })

    describe('words that end a clause, in text written before the tenant condition', () => {
      it('a set value or conflict target cannot open a second ON CONFLICT clause (SQLite)', async () => {
        const upsert = () => acme.insert(t.notes).values({ id: 'globex-n1', title: 'pwned' })
        await rejects(
          () =>
            upsert().onConflictDoUpdate({
              target: t.notes.id,
              set: {
                title: sql.raw(
                  'excluded.title where 1 on conflict do update set title = excluded.title',
                ) as unknown as string,
              },
            }),
          'tenant_unsafe_query',
        )
        await rejects(
          () =>
            upsert().onConflictDoUpdate({
              target: t.notes.id,
              targetWhere: sql.raw('1 do update set title = excluded.title where 1 on conflict'),
              set: { title: 'x' },
            }),
          'tenant_unsafe_query',
        )
        await rejects(
          () => acme.select({ x: sql.raw('1 from notes n2 cross join') }).from(t.notes),
          'tenant_unsafe_query',
        )
        await unchanged()
      })

      it('expressions with words inside brackets still pass', async () => {
        const rows = await acme
          .select({ id: t.notes.id, big: sql<number>`(case when ${t.notes.score} > 1 then 1 else 0 end)` })
          .from(t.notes)
          .where(eq(t.notes.id, 'acme-n2'))
        expect(rows.map((r) => [r.id, Number(r.big)])).toEqual([['acme-n2', 1]])
        await acme
          .update(t.notes)
          .set({ score: sql`case when ${t.notes.score} > 1 then 10 else 0 end` as unknown as number })
          .where(eq(t.notes.id, 'acme-n2'))
      })
    })

    describe('transaction options', () => {
      it('are taken from a fixed list (Drizzle writes them into the statement as text)', async () => {
        const level = pg()
          ? { isolationLevel: "read committed; update notes set title = 'pwned'" }
          : { behavior: "deferred; update notes set title = 'pwned'" }
        await rejects(() => acme.transaction(async () => undefined, level as never), 'tenant_invalid_config')
        await rejects(
          () => acme.transaction(async () => undefined, { other: 1 } as never),
          'tenant_invalid_config',
        )
        await unchanged()
        const ok = pg()
          ? { isolationLevel: 'serializable', accessMode: 'read write', deferrable: false }
          : { behavior: 'immediate' }
        expect(
          await acme.transaction(
            async (tx) => (await tx.select({ id: t.notes.id }).from(t.notes)).length,
            ok as never,
          ),
        ).toBe(3)
      })
    })

    describe('a bare "?" and a top-level comma', () => {
      it('a "?" written as raw text cannot take the tenant\'s parameter on SQLite', async () => {
        const cond = sql`${t.notes.id} is not null or ${'globex'} is null`
        const attempts: (() => PromiseLike<unknown>)[] = [
          () =>
            acme
              .select({ x: sql.raw('?'), id: t.notes.id })
              .from(t.notes)
              .where(cond),
          () =>
            acme
              .update(t.notes)
              .set({ title: sql.raw('?') as unknown as string })
              .where(cond),
          () =>
            acme
              .select({ id: t.notes.id })
              .from(t.notes)
              .innerJoin(t.shares, sql`? is null or 1=1`)
              .where(cond),
          () => acme.select({ id: t.notes.id }).from(t.notes).orderBy(sql.raw('?')).where(cond),
        ]
        await refusedOnSqlite(attempts)
      })

      it('a "$1" written as raw text cannot recast the tenant\'s parameter on Postgres', async () => {
        // Tenant "a" exists: '$1::"char"' would read acme's 'acme' as 'a' in the tenant condition.
        await database.current.query(
          sql.raw(`insert into notes (id, tenant_id, title, score) values ('a-n1', 'a', 'a secret', 1)`),
        )
        const seededWithA = await allRows(database.current, 'notes')
        const raw = pg() ? '$1::"char"' : '?'
        await rejects(
          () => acme.select({ id: t.notes.id, x: sql.raw(raw) }).from(t.notes),
          'tenant_unsafe_query',
        )
        await rejects(
          () => acme.insert(t.notes).values({ id: sql.raw(raw) as unknown as string, title: 'planted' }),
          'tenant_unsafe_query',
        )
        await rejects(
          () =>
            acme
              .select({ id: t.notes.id })
              .from(t.notes)
              .innerJoin(t.shares, sql`${sql.raw(raw)} is not null`),
          'tenant_unsafe_query',
        )
        expect(await allRows(database.current, 'notes')).toEqual(seededWithA)
      })

      it('a set value cannot add an assignment to the tenant column after a comma', async () => {
        await rejects(
          () =>
            acme
              .update(t.notes)
              .set({ title: sql`'x', tenant_id = 'globex'` as unknown as string })
              .where(eq(t.notes.id, 'acme-n1')),
          'tenant_unsafe_query',
        )
        await rejects(
          () =>
            acme
              .update(t.notes)
              .set({ title: sql`'x', ${sql.identifier('tenant_id')} = 'globex'` as unknown as string })
              .where(eq(t.notes.id, 'acme-n1')),
          'tenant_unsafe_query',
        )
        await rejects(
          () =>
            acme
              .insert(t.notes)
              .values({ id: 'acme-n1', title: 'x' })
              .onConflictDoUpdate({
                target: t.notes.id,
                set: { title: sql`'y', tenant_id = 'globex'` as unknown as string },
              }),
          'tenant_unsafe_query',
        )
        await unchanged()
      })

      it('commas inside brackets and in selected fields still work', async () => {
        await acme
          .update(t.notes)
          .set({ title: sql`coalesce(${t.notes.ownerId}, 'none')` as unknown as string })
          .where(eq(t.notes.id, 'acme-n3'))
        const rows = await acme
          .select({ id: t.notes.id, pair: sql<string>`coalesce(${t.notes.title}, 'x')` })
          .from(t.notes)
          .where(eq(t.notes.id, 'acme-n3'))
        expect(rows).toEqual([{ id: 'acme-n3', pair: 'acme-u1' }])
      })
    })

    describe('raw SQL (TenantDB.query): a table named dual', () => {
      it('is refused unquoted (the parser reads FROM dual as no table) and filtered quoted', async () => {
        await database.current.query(sql.raw('drop table if exists dual'))
        await database.current.query(
          sql.raw('create table dual (id text primary key, tenant_id text not null, secret text)'),
        )
        await database.current.query(
          sql.raw(`insert into dual values ('d1', 'globex', 'globex secret'), ('d2', 'acme', 'acme secret')`),
        )
        const withDual = scoped(db, 'acme', { tenantTables: ['dual'] })
        await rejects(() => withDual.query('SELECT * FROM dual'), 'tenant_unsafe_query')
        await rejects(
          () => withDual.query('SELECT id FROM notes WHERE id IN (SELECT id FROM dual)'),
          'tenant_unsafe_query',
        )
        const rows = (await withDual.query('SELECT id, secret FROM "dual"')) as { id: string }[]
        expect(rows.map((r) => r.id)).toEqual(['d2'])
        await database.current.query(sql.raw('drop table dual'))
      })
    })

    describe('siblings of the fixes above', () => {
      it("an upsert's set given as a function (Drizzle reads its properties) is refused", async () => {
        await rejects(
          () =>
            acme
              .insert(t.notes)
              .values({ id: 'acme-n1', title: 'x' })
              .onConflictDoUpdate({
                target: t.notes.id,
                set: Object.assign(() => {}, { tenantId: 'globex', title: 'moved' }) as never,
              }),
          'tenant_unsafe_query',
        )
        await rejects(
          () =>
            acme
              .insert(t.notes)
              .values({ id: 'globex-n1', title: 'x' })
              .onConflictDoUpdate({
                target: t.notes.id,
                set: Object.assign(() => {}, { title: commentOut(`'pwned'`, 4) }) as never,
              }),
          'tenant_unsafe_query',
        )
        await unchanged()
      })

      it('set operations handed to addSetOperators are copied and checked, field by field', async () => {
        const ids = () => acme.select({ id: t.notes.id }).from(t.notes)
        // Internal in Drizzle's types; Drizzle's standalone union(a, b) helpers call it.
        const addSetOperators = (query: unknown, operations: unknown[]) =>
          (query as { addSetOperators(o: unknown[]): PromiseLike<unknown> }).addSetOperators(operations)
        const all = () => unscoped(db).select({ id: t.notes.id }).from(t.notes)
        await rejects(
          () =>
            addSetOperators(ids(), [
              {
                type: 'union all select id from notes union' as never,
                isAll: false,
                rightSelect: ids() as never,
              },
            ]),
          'tenant_unsafe_query',
        )
        let reads = 0
        const flipping = {
          type: 'union' as const,
          isAll: false,
          get rightSelect() {
            return (reads++ === 0 ? ids() : all()) as never
          },
        }
        const viaGetter = addSetOperators(ids(), [flipping])
        expect(((await viaGetter) as { id: string }[]).every((r) => r.id.startsWith('acme'))).toBe(true)
        const operation = { type: 'union' as const, isAll: false, rightSelect: ids() as never }
        const changedAfter = addSetOperators(ids(), [operation])
        operation.rightSelect = all() as never
        expect(((await changedAfter) as { id: string }[]).every((r) => r.id.startsWith('acme'))).toBe(true)
        await rejects(
          () =>
            addSetOperators(ids(), [
              { type: 'union', isAll: false, rightSelect: ids() as never, orderBy: [sql.raw('1')] } as never,
            ]),
          'tenant_unsafe_query',
        )
        // Drizzle's own standalone helper still works.
        expect(
          (
            (await addSetOperators(ids(), [
              { type: 'union', isAll: true, rightSelect: ids() as never },
            ])) as unknown[]
          ).length,
        ).toBe(6)
      })

      it('a union can be ordered by an sql expression (Drizzle rewrites its columns into names)', async () => {
        const part = (score: number) =>
          acme.select({ id: t.notes.id, title: t.notes.title }).from(t.notes).where(eq(t.notes.score, score))
        const rows = await part(1).union(part(2)).orderBy(sql`${t.notes.title} desc`)
        expect(rows.map((r) => r.id)).toEqual(['acme-n2', 'acme-n1'])
        const byCallback = await part(1)
          .union(part(3))
          .orderBy(() => sql`${t.notes.title} desc`)
        expect(byCallback.map((r) => r.id)).toEqual(['acme-n3', 'acme-n1'])
      })

      it('validateQuery reads the tenant id once', () => {
        let reads = 0
        const options = {
          params: ['globex'],
          get tenantId() {
            return reads++ < 2 ? 'acme' : undefined
          },
        }
        expect(() =>
          validateQuery('select * from notes where notes.tenant_id = ?', 'tenant_id', options as never),
        ).toThrow(/tenant|bound|condition/i)
      })

      it('raw SQL parameters are read once: a getter cannot pass the tenant check and bind another tenant', async () => {
        const params = ['acme-new', 'acme', 'planted']
        let reads = 0
        Object.defineProperty(params, 1, { get: () => (reads++ === 0 ? 'acme' : 'globex') })
        const marks = pg() ? ['$1', '$2', '$3'] : ['?', '?', '?']
        try {
          await acme.exec(`insert into notes (id, tenant_id, title) values (${marks.join(', ')})`, params)
        } catch (error) {
          expect((error as { code?: string }).code).toBe('tenant_unsafe_query')
        }
        const rows = await allRows(database.current, 'notes')
        expect(rows.filter((r) => r.tenant_id === 'globex')).toEqual(
          seeded.filter((r) => r.tenant_id === 'globex'),
        )
      })
    })

    describe('values read once', () => {
      it('a getter over the tenant column cannot answer the check one thing and the copy another', async () => {
        let reads = 0
        const values = {
          get tenantId() {
            reads++
            return reads === 1 ? undefined : 'globex'
          },
          title: 'moved',
        }
        try {
          await acme
            .update(t.notes)
            .set(values as never)
            .where(eq(t.notes.id, 'acme-n1'))
        } catch (error) {
          expect((error as { code?: string }).code).toBe('tenant_unsafe_query')
        }
        const rows = await allRows(database.current, 'notes')
        expect(rows.find((r) => r.id === 'acme-n1')).toMatchObject({ tenant_id: 'acme' })
        let upsertReads = 0
        const set = {
          get tenantId() {
            upsertReads++
            return upsertReads === 1 ? undefined : 'globex'
          },
          title: 'moved',
        }
        try {
          await acme
            .insert(t.notes)
            .values({ id: 'acme-n1', title: 'x' })
            .onConflictDoUpdate({ target: t.notes.id, set: set as never })
        } catch (error) {
          expect((error as { code?: string }).code).toBe('tenant_unsafe_query')
        }
        const after = await allRows(database.current, 'notes')
        expect(after.find((r) => r.id === 'acme-n1')).toMatchObject({ tenant_id: 'acme' })
      })
    })

    describe('an alias is text: read once, when the query is checked', () => {
      it('an object alias of a field cannot change into raw text', async () => {
        let armed = false
        const alias = { replace: () => (armed ? `id" = "id" ) or (1=1 or "id` : 'id') }
        const query = () =>
          acme
            .delete(t.notes)
            .where(sql`${new SQL.Aliased(sql`${t.notes.id}`, alias as unknown as string)} is not null`)
        let built: unknown
        try {
          built = query()
        } catch (error) {
          expect((error as { code?: string }).code).toBe('tenant_unsafe_query')
        }
        armed = true
        if (built !== undefined) {
          try {
            await (built as PromiseLike<unknown>)
          } catch {
            // Refused or a syntax error: either way nothing else may have changed.
          }
        }
        expect((await allRows(database.current, 'notes')).filter((r) => r.tenant_id !== 'acme')).toEqual(
          seeded.filter((r) => r.tenant_id !== 'acme'),
        )
      })

      it("a subquery's object alias cannot change into raw text", async () => {
        let armed = false
        const alias = { replace: () => (armed ? `s", "notes" as "n2` : 's'), toString: () => 's' }
        const sq = acme
          .select({ id: t.notes.id })
          .from(t.notes)
          .as(alias as unknown as string)
        armed = true
        let rows: unknown[] = []
        try {
          rows = await acme.select({ id: sql<string>`"n2"."id"` }).from(sq)
        } catch {
          rows = []
        }
        for (const row of rows as { id: string }[]) expect(row.id).toMatch(/^acme/)
      })
    })
  },
  KINDS,
)
