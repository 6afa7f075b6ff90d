import { isTenantError } from '@tenant/core'
import { sql } from 'drizzle-orm'
import type { LibSQLDatabase } from 'drizzle-orm/libsql'
import { beforeAll, beforeEach, expect, expectTypeOf, it } from 'vitest'
import { describeEachDatabase } from '../test/databases'
import { allRows, createIsolationTables, seedIsolationData, tablesFor } from '../test/isolation-db'
import { scoped, unscoped } from './scoped'
import { TenantDB } from './tenant-db'

describeEachDatabase(
  'TenantDB raw SQL',
  (database) => {
    let db: LibSQLDatabase
    let acme: TenantDB<LibSQLDatabase>
    const pg = database.kind === 'postgres' || database.kind === 'pglite'
    const p = (n: number) => (pg ? `$${n}` : '?')

    beforeAll(async () => {
      await createIsolationTables(database.current)
      db = database.current.db as unknown as LibSQLDatabase
      acme = new TenantDB(db, { tenantId: 'acme', shared: ['plans'] })
    })
    beforeEach(() => seedIsolationData(database.current))

    it('transaction(): the handle and what was built on it refuse to run once the transaction has ended', async () => {
      let kept: TenantDB<LibSQLDatabase> | undefined
      let built: PromiseLike<unknown> | undefined
      const inside = await acme.transaction(async (tx) => {
        kept = tx as unknown as TenantDB<LibSQLDatabase>
        built = tx.select().from(tablesFor(database.current).notes)
        return tx.query<{ id: string }>('SELECT id FROM notes ORDER BY id')
      })
      expect(inside.map((row) => row.id)).toEqual(['acme-n1', 'acme-n2', 'acme-n3'])
      const { notes } = tablesFor(database.current)
      for (const run of [
        () => kept!.select().from(notes),
        () => kept!.query('SELECT id FROM notes'),
        () => built!,
      ]) {
        const outcome = await Promise.resolve()
          .then(run)
          .then(
            () => 'ran',
            (error: unknown) => (isTenantError(error) ? error.code : String(error)),
          )
        expect(outcome).toBe('tenant_unsafe_query')
      }
      // A transaction that throws ends the same way, and the next one works.
      await expect(
        acme.transaction(async (tx) => {
          kept = tx as unknown as TenantDB<LibSQLDatabase>
          throw new Error('rolled back')
        }),
      ).rejects.toThrow('rolled back')
      expect(() => kept!.select()).toThrowError(/has ended/)
      expect(await acme.transaction((tx) => tx.query('SELECT id FROM notes'))).toHaveLength(3)
    })

    it('query() returns the tenant rows with the caller parameters bound in order', async () => {
      const rows = await acme.query<{ id: string; score: number }>(
        `SELECT id, score FROM notes WHERE score >= ${p(1)} AND title <> ${p(2)} ORDER BY id`,
        [2, 'x'],
      )
      expectTypeOf(rows).toEqualTypeOf<{ id: string; score: number }[]>()
      expect(rows.map((r) => [r.id, Number(r.score)])).toEqual([
        ['acme-n2', 2],
        ['acme-n3', 3],
      ])
    })

    it('exec() reports the rows it changed, and query() returns RETURNING rows', async () => {
      expect(await acme.exec(`UPDATE notes SET score = score + 10 WHERE score > ${p(1)}`, [1])).toEqual({
        rowsAffected: 2,
      })
      expect(
        await acme.exec(`INSERT INTO notes (id, title) VALUES (${p(1)}, ${p(2)}), (${p(3)}, ${p(4)})`, [
          'a',
          'A',
          'b',
          'B',
        ]),
      ).toEqual({ rowsAffected: 2 })
      const deleted = await acme.query<{ id: string }>(`DELETE FROM notes WHERE id = ${p(1)} RETURNING id`, [
        'a',
      ])
      expect(deleted).toEqual([{ id: 'a' }])
      const rows = await allRows(database.current, 'notes')
      expect(rows.find((r) => r.id === 'b')).toMatchObject({ tenant_id: 'acme', title: 'B' })
      expect(rows.filter((r) => Number(r.score) > 10).map((r) => r.tenant_id)).toEqual(['acme', 'acme'])
    })

    it('reads shared tables unfiltered and joins them', async () => {
      const rows = await acme.query<{ id: string; plan: string }>(
        'SELECT u.id AS id, p.name AS plan FROM users u JOIN plans p ON p.id = u.plan_id ORDER BY u.id',
      )
      expect(rows).toEqual([
        { id: 'acme-u1', plan: 'Free' },
        { id: 'acme-u2', plan: 'Pro' },
      ])
      await expect(acme.exec("UPDATE plans SET name = 'x'")).rejects.toThrowError(
        expect.objectContaining({ code: 'tenant_unsafe_query' }),
      )
    })

    it('refuses before touching the database, and reports database failures as backend errors', async () => {
      await expect(acme.query(`SELECT * FROM notes WHERE id = ${p(1)}`)).rejects.toThrowError(
        expect.objectContaining({
          code: 'tenant_unsafe_query',
          message: expect.stringContaining('were given'),
        }),
      )
      await expect(acme.query('SELECT * FROM notes', 'x' as never)).rejects.toThrowError(
        expect.objectContaining({ code: 'tenant_invalid_config' }),
      )
      // A Drizzle SQL object as a parameter would be spliced into the text, past the proof.
      await expect(
        acme.query(`SELECT * FROM notes WHERE id = ${p(1)}`, [sql.raw("'x' OR 1 = 1")]),
      ).rejects.toThrowError(expect.objectContaining({ code: 'tenant_unsafe_query' }))
      const failure = await acme.query('SELECT nope FROM notes').catch((e: unknown) => e)
      expect(isTenantError(failure)).toBe(true)
      expect(failure).toMatchObject({ code: 'tenant_backend_unavailable', status: 503, tenantId: 'acme' })
      expect((failure as Error).message).not.toContain('nope')
    })

    it('an insert outside the scoped API that forgets the tenant fails closed (tenantIdColumn)', async () => {
      const t = tablesFor(database.current)
      // Drizzle calls the column's default when the statement is built, before anything is sent.
      await expect(async () =>
        unscoped(db).insert(t.notes).values({ id: 'z', title: 'no tenant' }),
      ).rejects.toThrowError(expect.objectContaining({ code: 'tenant_required' }))
      expect(await unscoped(db).$count(t.notes)).toBe(9)
    })

    it('reads the tenant per statement from a source', async () => {
      let current: string | undefined = 'globex'
      const tdb = scoped(db, () => current)
      expect((await tdb.query<{ id: string }>('SELECT id FROM users ORDER BY id')).map((r) => r.id)).toEqual([
        'globex-u1',
        'globex-u2',
      ])
      current = undefined
      await expect(tdb.exec('DELETE FROM notes')).rejects.toThrowError(
        expect.objectContaining({ code: 'tenant_required' }),
      )
      expect(await allRows(database.current, 'notes')).toHaveLength(9)
    })

    if (pg) {
      it('Postgres: LIMIT parameters and selectDistinctOn', async () => {
        const rows = await acme.query<{ id: string }>(
          'SELECT id FROM notes WHERE score > $1 ORDER BY id LIMIT $2',
          [0, 2],
        )
        expect(rows.map((r) => r.id)).toEqual(['acme-n1', 'acme-n2'])
        const t = tablesFor(database.current) as any
        const owners = await (acme as any)
          .selectDistinctOn([t.notes.ownerId], { owner: t.notes.ownerId })
          .from(t.notes)
        expect(owners).toEqual([{ owner: 'acme-u1' }])
      })
    }
  },
  { kinds: ['libsql-memory', 'libsql-file', 'pglite', 'postgres'], migrate: false },
)
