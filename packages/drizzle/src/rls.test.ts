import { isTenantError } from '@tenant/core'
import { eq, sql } from 'drizzle-orm'
import { pgTable, text } from 'drizzle-orm/pg-core'
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite'
import type { PostgresJsDatabase } from 'drizzle-orm/postgres-js'
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js'
import postgres from 'postgres'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { openDatabase, type TestDatabase, unavailableReason } from '../test/databases'
import { createIsolationTables, pgTables, seedIsolationData } from '../test/isolation-db'
import {
  checkTenantRls,
  enableTenantRls,
  forceRlsSql,
  tenantRlsCondition,
  tenantRlsPolicy,
  tenantRlsSql,
  withTenantRls,
} from './rls'
import { scoped } from './scoped'
import type { TenantDB } from './tenant-db'

const { notes, users } = pgTables
type AppDb = PostgresJsDatabase

/** Where a driver keeps the SQLSTATE of a failed statement (Drizzle wraps it in `cause`). */
function sqlState(error: unknown): string | undefined {
  for (let e: any = error; e; e = e.cause)
    if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) return e.code
  return undefined
}

async function expectRlsViolation(promise: Promise<unknown>): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(error, 'expected the write to be refused').toBeDefined()
  expect(sqlState(error)).toBe('42501') // insufficient_privilege: new row violates row-level security policy
}

interface RlsSetup {
  /** The application's database: a non-owner role without BYPASSRLS. */
  app: AppDb
  /** The current tenant setting of the application's (only) pooled connection. */
  currentSetting(): Promise<unknown>
  /** Seeds as the owner (RLS does not hide rows from the seeding). */
  seed(): Promise<void>
  close(): Promise<void>
}

/** 'ran', or the code of the error `run` threw or rejected with. */
function outcomeOf(run: () => unknown): Promise<string | undefined> {
  return Promise.resolve()
    .then(run)
    .then(
      () => 'ran',
      (error: unknown) => (error as { code?: string }).code,
    )
}

function rlsSuite(title: string, open: () => Promise<RlsSetup>): void {
  describe(title, () => {
    let setup: RlsSetup
    beforeAll(async () => {
      setup = await open()
    })
    afterAll(async () => {
      await setup?.close()
    })
    beforeEach(() => setup.seed())

    it('an unfiltered query inside withTenantRls sees only that tenant', async () => {
      const rows = await withTenantRls(setup.app, 'acme', (tx) => tx.select().from(notes))
      expect(rows.map((r) => r.id).sort()).toEqual(['acme-n1', 'acme-n2', 'acme-n3'])
      const people = await withTenantRls(setup.app, 'globex', (tx) => tx.select({ id: users.id }).from(users))
      expect(people.map((r) => r.id).sort()).toEqual(['globex-u1', 'globex-u2'])
      const count = await withTenantRls(setup.app, 'initech', (tx) =>
        tx.execute(sql`select count(*)::int as n from notes`),
      )
      expect(JSON.stringify(count)).toContain('3')
    })

    it('with no tenant set, it sees nothing', async () => {
      expect(await setup.app.select().from(notes)).toEqual([])
      expect(await setup.app.select().from(users)).toEqual([])
    })

    it("refuses to write another tenant's row, or to move a row to another tenant", async () => {
      await expectRlsViolation(
        withTenantRls(setup.app, 'acme', (tx) =>
          tx.insert(notes).values({ id: 'x1', tenantId: 'globex', title: 'x' }),
        ),
      )
      await expectRlsViolation(
        withTenantRls(setup.app, 'acme', (tx) =>
          tx.update(notes).set({ tenantId: 'globex' }).where(eq(notes.id, 'acme-n1')),
        ),
      )
      await withTenantRls(setup.app, 'acme', (tx) =>
        tx.insert(notes).values({ id: 'x2', tenantId: 'acme', title: 'mine' }),
      )
      // Another tenant's rows are invisible to UPDATE and DELETE: nothing happens.
      const changed = await withTenantRls(setup.app, 'acme', async (tx) => [
        ...(await tx.update(notes).set({ title: 'pwned' }).where(eq(notes.id, 'globex-n1')).returning()),
        ...(await tx.delete(notes).where(eq(notes.id, 'globex-n2')).returning()),
      ])
      expect(changed).toEqual([])
      const globex = await withTenantRls(setup.app, 'globex', (tx) => tx.select().from(notes))
      expect(globex.map((r) => [r.id, r.title]).sort()).toEqual([
        ['globex-n1', 'globex note 1'],
        ['globex-n2', 'globex note 2'],
        ['globex-n3', 'globex note 3'],
      ])
      // Without a tenant, nothing can be written at all.
      await expectRlsViolation(setup.app.insert(notes).values({ id: 'x3', tenantId: 'acme', title: 'x' }))
    })

    it('a pooled connection used afterwards carries no tenant, after a commit or an error', async () => {
      await withTenantRls(setup.app, 'acme', (tx) => tx.select().from(notes))
      expect(['', null]).toContain(await setup.currentSetting())
      expect(await setup.app.select().from(notes)).toEqual([])
      await expect(
        withTenantRls(setup.app, 'globex', async (tx) => {
          expect(await tx.select().from(notes)).toHaveLength(3)
          throw new Error('boom')
        }),
      ).rejects.toThrow('boom')
      expect(['', null]).toContain(await setup.currentSetting())
      expect(await setup.app.select().from(notes)).toEqual([])
    })

    it('refuses transaction options that are not plain option values, before anything runs', async () => {
      // Drizzle writes them into the statement that opens the transaction, and postgres.js runs a
      // text of several statements: this one would set the tenant for the whole pooled session.
      const injected = { isolationLevel: "read committed; select set_config('app.tenant_id', 'acme', false)" }
      const error = await withTenantRls(setup.app, 'acme', async () => 'ran', {
        config: injected as never,
      }).then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(error).toMatchObject({ code: 'tenant_invalid_config' })
      expect(['', null]).toContain(await setup.currentSetting())
      expect(await setup.app.select().from(notes)).toEqual([])
      // Real options still work.
      const rows = await withTenantRls(setup.app, 'acme', (tx) => tx.select().from(notes), {
        config: { isolationLevel: 'serializable', accessMode: 'read only' },
      })
      expect(rows.length).toBeGreaterThan(0)
    })

    it('refuses a nested call for another tenant; the outer transaction keeps its own tenant', async () => {
      const seen = await withTenantRls(setup.app, 'acme', async (tx) => {
        const error = await withTenantRls(tx, 'globex', (inner) => inner.select().from(notes)).then(
          () => undefined,
          (e: unknown) => e,
        )
        expect(error).toMatchObject({ code: 'tenant_unsafe_query' })
        // The rest of acme's transaction still sees acme, and only acme.
        const [row] = await tx
          .execute(sql`select current_setting('app.tenant_id', true) as v`)
          .then((r) => (Array.isArray(r) ? r : (r as { rows: unknown[] }).rows))
        expect(row).toEqual({ v: 'acme' })
        return (await tx.select().from(notes)).map((r) => r.tenantId)
      })
      expect(seen).toEqual(['acme', 'acme', 'acme'])
      expect(['', null]).toContain(await setup.currentSetting())
    })

    it('the transaction handle stops working once withTenantRls has ended', async () => {
      let kept: AppDb | undefined
      const rows = await withTenantRls(setup.app, 'acme', async (tx) => {
        kept = tx as unknown as AppDb
        return tx.select().from(notes)
      })
      expect(rows).toHaveLength(3)
      // Used later, inside another tenant's transaction, it would run on that connection.
      const later = await withTenantRls(setup.app, 'globex', async () => {
        try {
          await kept!.select().from(notes)
          return 'ran'
        } catch (error) {
          return (error as { code?: string }).code
        }
      })
      expect(later).toBe('tenant_unsafe_query')
      expect(() => kept!.select()).toThrowError(/has ended/)
    })

    it('queries built inside withTenantRls do not run once it has ended', async () => {
      // Builders (and relational queries) hold the transaction's session, not the handle: run
      // later, they would execute inside whatever transaction their connection serves next.
      const runs = await withTenantRls(setup.app, 'acme', async (tx) => {
        const select = tx.select().from(notes)
        const update = tx.update(notes).set({ title: 'stolen' })
        const raw = tx.execute(sql`select id from notes`)
        const prepared = tx.select().from(notes).prepare('kept_past_rls')
        const later: Array<() => PromiseLike<unknown>> = [
          () => select,
          () => update,
          () => raw,
          () => prepared.execute(),
        ]
        return later
      })
      const outcomes = await withTenantRls(setup.app, 'globex', async () =>
        Promise.all(runs.map((run) => outcomeOf(run))),
      )
      expect(outcomes).toEqual(Array(4).fill('tenant_unsafe_query'))
      const titles = await withTenantRls(setup.app, 'globex', (tx) =>
        tx.select({ title: notes.title }).from(notes),
      )
      expect(titles.map((r) => r.title)).not.toContain('stolen')
    })

    it('a scoped(db).transaction() handle, and what was built on it, do not run once it has ended', async () => {
      // The same hazard as withTenantRls's: kept past the call, the transaction would run on its
      // pooled connection inside the next tenant's transaction (and a write there would abort it).
      let kept: TenantDB<AppDb> | undefined
      const built: Array<() => PromiseLike<unknown>> = []
      await scoped(setup.app, 'acme').transaction(async (tx) => {
        kept = tx as unknown as TenantDB<AppDb>
        const update = tx.update(notes).set({ title: 'stolen' })
        const prepared = tx.select().from(notes).prepare('kept_past_tenant_tx')
        built.push(
          () => update,
          () => prepared.execute(),
        )
      })
      const later = await withTenantRls(setup.app, 'globex', async (tx) => {
        const outcomes: unknown[] = []
        for (const run of [
          () => kept!.select().from(notes),
          () => kept!.insert(notes).values({ id: 'acme-late', title: 'late' }),
          () => kept!.query('SELECT id FROM notes'),
          ...built,
        ]) {
          outcomes.push(await outcomeOf(run))
        }
        // The other tenant's transaction goes on and commits.
        await tx.insert(notes).values({ id: 'globex-new', tenantId: 'globex', title: 'globex work' })
        return outcomes
      })
      expect(later).toEqual(Array(5).fill('tenant_unsafe_query'))
      expect(() => kept!.select()).toThrowError(/scoped\(db, "acme"\)\.transaction\(\) has ended/)
      const titles = await withTenantRls(setup.app, 'globex', (tx) =>
        tx.select({ title: notes.title }).from(notes),
      )
      expect(titles.map((r) => r.title)).toContain('globex work')
      expect(titles.map((r) => r.title)).not.toContain('stolen')
    })

    it('a savepoint opened inside works, and neither it nor what it built runs once the call has ended', async () => {
      // On postgres.js a savepoint gets a transaction object and a session of its own, over the
      // same connection: kept past the call, either would run inside the next tenant's transaction.
      let kept: AppDb | undefined
      let built: PromiseLike<unknown> | undefined
      const inside = await withTenantRls(setup.app, 'acme', (tx) =>
        tx.transaction(async (savepoint) => {
          kept = savepoint as unknown as AppDb
          built = savepoint.update(notes).set({ title: 'stolen' })
          await savepoint.update(notes).set({ title: 'renamed' }).where(eq(notes.id, 'acme-n1'))
          return savepoint.select().from(notes)
        }),
      )
      expect(inside.map((r) => r.tenantId)).toEqual(['acme', 'acme', 'acme'])
      const later = await withTenantRls(setup.app, 'globex', async () => {
        const outcomes: unknown[] = []
        for (const run of [
          () => kept!.select().from(notes),
          () => kept!.update(notes).set({ title: 'stolen' }),
          () => built!,
        ]) {
          outcomes.push(await outcomeOf(run))
        }
        return outcomes
      })
      expect(later).toEqual(Array(3).fill('tenant_unsafe_query'))
      const titles = await withTenantRls(setup.app, 'globex', (tx) =>
        tx.select({ title: notes.title }).from(notes),
      )
      expect(titles.map((r) => r.title)).not.toContain('stolen')
      const renamed = await withTenantRls(setup.app, 'acme', (tx) =>
        tx.select({ title: notes.title }).from(notes).where(eq(notes.id, 'acme-n1')),
      )
      expect(renamed).toEqual([{ title: 'renamed' }])
    })

    it('inside a plain transaction, leaves no tenant set behind it, whether fn returned or threw', async () => {
      // Releasing the savepoint it ran in keeps what set_config(..., true) set there.
      const after = await setup.app.transaction(async (outer) => {
        const own = await withTenantRls(outer, 'acme', (tx) => tx.select().from(notes))
        await withTenantRls(outer, 'globex', () => {
          throw new Error('fn failed')
        }).catch(() => undefined)
        return { own: own.length, outside: await outer.select().from(notes) }
      })
      expect(after).toEqual({ own: 3, outside: [] })
      // Another tenant may follow in the same transaction, as in two transactions of their own.
      const both = await setup.app.transaction(async (outer) => [
        ...(await withTenantRls(outer, 'acme', (tx) => tx.select({ t: notes.tenantId }).from(notes))),
        ...(await withTenantRls(outer, 'globex', (tx) => tx.select({ t: notes.tenantId }).from(notes))),
      ])
      expect(both.map((r) => r.t)).toEqual(['acme', 'acme', 'acme', 'globex', 'globex', 'globex'])
    })

    it('inside a plain transaction, runs nested calls one at a time, and nothing on the transaction alongside', async () => {
      // Work on the enclosing transaction while a call's tenant is set runs on the same connection:
      // a query there sees that tenant's rows, and a savepoint opened then and rolled back later
      // sets that tenant again, for the transaction or under the next call for another tenant.
      const outcome = await setup.app.transaction(async (outer) => {
        let entered!: () => void
        const inside = new Promise<void>((resolve) => (entered = resolve))
        let finish!: () => void
        const finished = new Promise<void>((resolve) => (finish = resolve))
        const acme = withTenantRls(outer, 'acme', async (tx) => {
          entered()
          await finished
          return (await tx.select().from(notes)).map((r) => r.tenantId)
        })
        await inside
        let globexRan = false
        const refused = await Promise.all(
          [
            () =>
              withTenantRls(outer, 'globex', () => {
                globexRan = true
                return 1
              }),
            () => outer.select().from(notes),
            () => outer.transaction(async () => 'savepoint'),
            () => outer.execute(sql`select 1`),
          ].map((run: () => unknown) => outcomeOf(run)),
        )
        finish()
        const own = await acme
        // Once the call is over, the transaction is the caller's again, with no tenant set.
        return { refused, globexRan, own, after: await outer.select().from(notes) }
      })
      expect(outcome).toEqual({
        refused: Array(4).fill('tenant_unsafe_query'),
        globexRan: false,
        own: ['acme', 'acme', 'acme'],
        after: [],
      })
    })

    it("withholds fn's answer when the tenant setting changed while fn ran inside a plain transaction", async () => {
      const outcome = await setup.app.transaction(async (outer) => {
        const error = await withTenantRls(outer, 'acme', async (tx) => {
          await tx.execute(sql`select set_config('app.tenant_id', 'globex', true)`)
          return tx.select().from(notes)
        }).then(
          () => undefined,
          (e: unknown) => e,
        )
        return { error, after: await outer.select().from(notes) }
      })
      expect(outcome.error).toMatchObject({ code: 'tenant_unsafe_query' })
      expect(String(outcome.error)).toMatch(/changed while fn ran/)
      expect(outcome.after).toEqual([])
    })

    it('refuses what is not a Drizzle PostgreSQL database, with a typed error', async () => {
      const tenantDb = scoped(setup.app, 'acme')
      for (const db of [tenantDb, {}, null]) {
        await expect(withTenantRls(db as unknown as AppDb, 'acme', () => 1)).rejects.toThrowError(
          expect.objectContaining({ code: 'tenant_invalid_config' }),
        )
        await expect(checkTenantRls(db as unknown as AppDb, ['notes'])).rejects.toThrowError(
          expect.objectContaining({ code: 'tenant_invalid_config' }),
        )
      }
      await expect(
        tenantDb.transaction((tx) => withTenantRls(tx as unknown as AppDb, 'acme', () => 1)),
      ).rejects.toThrowError(expect.objectContaining({ code: 'tenant_invalid_config' }))
    })

    it('a nested call for the same tenant runs, and leaves the tenant set', async () => {
      const seen = await withTenantRls(setup.app, 'acme', async (tx) => {
        const inner = await withTenantRls(tx, 'acme', (t2) => t2.select().from(notes))
        return [...inner, ...(await tx.select().from(notes))].map((r) => r.tenantId)
      })
      expect(seen).toEqual(Array(6).fill('acme'))
    })

    it('sets the tenant as a bound parameter and validates it first', async () => {
      await expect(
        withTenantRls(setup.app, "acme', true); select set_config('x", () => 1),
      ).rejects.toThrowError(expect.objectContaining({ code: 'tenant_invalid_id' }))
      await expect(withTenantRls(setup.app, 'acme', () => 1, { setting: 'no_dot' })).rejects.toThrowError(
        expect.objectContaining({ code: 'tenant_invalid_config' }),
      )
    })

    it('combines with the scoped API: two barriers', async () => {
      const both = await withTenantRls(setup.app, 'acme', (tx) => scoped(tx, 'acme').select().from(notes))
      expect(both).toHaveLength(3)
      // A scoped query for another tenant inside acme's RLS transaction finds nothing.
      const crossed = await withTenantRls(setup.app, 'acme', (tx) =>
        scoped(tx, 'globex').select().from(notes),
      )
      expect(crossed).toEqual([])
    })

    it('checkTenantRls finds nothing wrong with the application role', async () => {
      expect(await checkTenantRls(setup.app, ['notes', 'users', 'shares'])).toEqual({
        ok: true,
        problems: [],
      })
      const report = await checkTenantRls(setup.app, ['plans', 'no_such_table'])
      expect(report.ok).toBe(false)
      expect(report.problems).toEqual([
        expect.stringContaining('"plans" does not have row-level security enabled'),
        expect.stringContaining('"plans" has no policy'),
        expect.stringContaining('"no_such_table" does not exist'),
      ])
    })
  })
}

const RLS_TABLES = ['notes', 'users', 'shares']

rlsSuite('withTenantRls on PGlite (SET ROLE to a non-owner role)', async () => {
  const database = await openDatabase('pglite', { migrate: false })
  await createIsolationTables(database)
  await enableTenantRls(database.db as AppDb, RLS_TABLES)
  const client = (database.db as unknown as { $client: { exec(s: string): Promise<unknown> } }).$client
  await client.exec(`
    create role app_rls nologin nosuperuser nobypassrls;
    grant usage on schema public to app_rls;
    grant select, insert, update, delete on all tables in schema public to app_rls;
    set role app_rls;`)
  const app = database.db as AppDb
  return {
    app,
    currentSetting: async () =>
      ((await database.query(sql`select current_setting('app.tenant_id', true) as v`))[0] as { v: unknown })
        .v,
    seed: async () => {
      await client.exec('reset role')
      await seedIsolationData(database)
      await client.exec('set role app_rls')
    },
    close: () => database.close(),
  }
})

describe('FORCE ROW LEVEL SECURITY on PGlite', () => {
  it('filters the table owner too, which plain ENABLE does not', async () => {
    const database = await openDatabase('pglite', { migrate: false })
    try {
      await createIsolationTables(database)
      await seedIsolationData(database)
      const client = (database.db as unknown as { $client: { exec(s: string): Promise<unknown> } }).$client
      await client.exec(`
        create role owner_rls nologin nosuperuser nobypassrls;
        grant usage, create on schema public to owner_rls;
        alter table notes owner to owner_rls;
        revoke truncate on notes from owner_rls;`)
      const db = database.db as AppDb
      await enableTenantRls(db, ['notes'])
      await client.exec('set role owner_rls')
      expect(await db.select().from(notes)).toEqual([])
      expect(await withTenantRls(db, 'acme', (tx) => tx.select().from(notes))).toHaveLength(3)
      expect((await checkTenantRls(db, ['notes'])).ok).toBe(true)
      // FORCE does not reach TRUNCATE: an owner that holds it empties the table for every tenant.
      await client.exec('grant truncate on notes to owner_rls')
      expect((await checkTenantRls(db, ['notes'])).problems).toEqual([
        expect.stringContaining('may TRUNCATE "notes", which row-level security does not restrict'),
      ])
      await withTenantRls(db, 'acme', (tx) => tx.execute(sql`truncate notes`))
      await client.exec('reset role')
      expect(await db.select().from(notes)).toEqual([])
      await seedIsolationData(database)
      await client.exec('revoke truncate on notes from owner_rls; set role owner_rls')
      await client.exec('alter table notes no force row level security')
      expect(await db.select().from(notes)).toHaveLength(9) // the owner bypasses an unforced policy
      expect((await checkTenantRls(db, ['notes'])).problems).toEqual([
        expect.stringContaining('owned by this role and RLS is not forced'),
      ])
      await client.exec('reset role')
      expect((await checkTenantRls(db, ['notes'])).problems).toEqual([
        expect.stringContaining('is a superuser'),
        expect.stringContaining('has BYPASSRLS'),
      ])
    } finally {
      await database.close()
    }
  })
})

/**
 * The ways a role escapes RLS that checkTenantRls must name, run on a database where `asAdmin`
 * runs SQL as a superuser and `db` is the application's connection as `app` (a role without
 * BYPASSRLS). `notes` holds 9 rows of three tenants, owned by `owner`.
 */
async function bypassesNamed(
  asAdmin: (statements: string) => Promise<unknown>,
  db: AppDb,
  roles: { app: string; owner: string; bypass: string },
  table: string,
): Promise<void> {
  const { app, owner, bypass } = roles
  const acmeSees = async () => (await withTenantRls(db, 'acme', (tx) => tx.select().from(notes))).length
  // The application role is in the owner role (e.g. the migration role), and FORCE was forgotten,
  // as drizzle-kit's migration of tenantRlsPolicy() leaves it: Postgres treats a member as the owner.
  const [enable, , drop, create] = tenantRlsSql(table, { to: app })
  await asAdmin(`grant "${owner}" to "${app}"; alter table ${table} owner to "${owner}";
    revoke truncate on ${table} from "${owner}"; ${enable}; ${drop}; ${create};`)
  expect(await acmeSees()).toBe(9)
  expect((await checkTenantRls(db, [table])).problems).toEqual([
    expect.stringContaining(`is owned by "${owner}", a role this role is a member of, and RLS is not forced`),
  ])
  await asAdmin(`alter table ${table} force row level security`)
  expect(await acmeSees()).toBe(3)
  expect(await checkTenantRls(db, [table])).toEqual({ ok: true, problems: [] })
  // A permissive policy next to the tenant one is OR-ed with it.
  await asAdmin(`create policy see_all on ${table} for select to "${app}" using (true)`)
  expect(await acmeSees()).toBe(9)
  expect((await checkTenantRls(db, [table])).problems).toEqual([
    expect.stringContaining('has the permissive policy "see_all", which reads no tenant setting'),
  ])
  // A restrictive one only narrows what the tenant policy shows.
  await asAdmin(`drop policy see_all on ${table};
    create policy narrow on ${table} as restrictive for select to "${app}" using (true)`)
  expect(await checkTenantRls(db, [table])).toEqual({ ok: true, problems: [] })
  // GRANT ALL gives TRUNCATE, which row-level security does not restrict.
  await asAdmin(`grant all on ${table} to "${app}"`)
  expect((await checkTenantRls(db, [table])).problems).toEqual([
    expect.stringMatching(new RegExp(`^role "${app}" may TRUNCATE .*notes`)),
  ])
  await asAdmin(`revoke truncate on ${table} from "${app}"`)
  expect(await checkTenantRls(db, [table])).toEqual({ ok: true, problems: [] })
  // A role with BYPASSRLS that this role may SET ROLE to.
  await asAdmin(`create role "${bypass}" nologin bypassrls; grant "${bypass}" to "${app}"`)
  expect((await checkTenantRls(db, [table])).problems).toEqual([
    expect.stringContaining(`is a member of "${bypass}", which bypasses row-level security`),
  ])
}

/**
 * A partition (or inheritance child) queried by its own name is filtered by its own policies, not
 * its parent's: checkTenantRls names those the role may use without them, and the way is real.
 */
async function partitionsNamed(
  asAdmin: (statements: string) => Promise<unknown>,
  db: AppDb,
  app: string,
  parent: string,
): Promise<void> {
  // A partition in a schema the role may not use cannot be named by it, so it is no way around;
  // one with a grant on some of its columns is.
  const far = `${app.slice(0, 50)}_far`
  await asAdmin(`create table pnotes (id text not null, tenant_id text not null) partition by list (tenant_id);
    create table pnotes_acme partition of pnotes for values in ('acme');
    create table pnotes_cols partition of pnotes for values in ('initech');
    create table pnotes_rest partition of pnotes default;
    create table pnotes_hidden (id text not null, tenant_id text not null);
    create schema "${far}";
    create table "${far}".pnotes_far partition of pnotes for values in ('umbrella');
    grant select, insert, update, delete on pnotes, pnotes_acme, pnotes_rest, "${far}".pnotes_far to "${app}";
    grant select (id, tenant_id) on pnotes_cols to "${app}";
    insert into pnotes values ('a1', 'acme'), ('g1', 'globex'), ('i1', 'initech');
    ${tenantRlsSql('pnotes', { to: app }).join('; ')}`)
  try {
    const report = await checkTenantRls(db, [parent])
    expect(report.problems).toEqual([
      expect.stringMatching(/pnotes_acme does not have row-level security enabled/),
      expect.stringMatching(/pnotes_acme has no policy/),
      expect.stringMatching(/pnotes_cols does not have row-level security enabled/),
      expect.stringMatching(/pnotes_cols has no policy/),
      expect.stringMatching(/pnotes_rest does not have row-level security enabled/),
      expect.stringMatching(/pnotes_rest has no policy/),
    ])
    const columns = await withTenantRls(db, 'acme', async (tx) => {
      const result = (await tx.execute(sql`select tenant_id from pnotes_cols`)) as unknown
      return (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as {
        tenant_id: string
      }[]
    })
    expect(columns).toEqual([{ tenant_id: 'initech' }])
  } finally {
    await asAdmin(`drop schema "${far}" cascade`)
  }
  const rows = await withTenantRls(db, 'acme', async (tx) => {
    const result = (await tx.execute(sql`select tenant_id from pnotes_rest`)) as unknown
    return (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as { tenant_id: string }[]
  })
  expect(rows).toEqual([{ tenant_id: 'globex' }])
  // A table that is no child of the named one is not looked at.
  await asAdmin(
    ['pnotes_acme', 'pnotes_cols', 'pnotes_rest']
      .map((t) => tenantRlsSql(t, { to: app }).join('; '))
      .join('; '),
  )
  expect(await checkTenantRls(db, [parent])).toEqual({ ok: true, problems: [] })
}

describe('checkTenantRls names the ways around RLS (PGlite)', () => {
  it('partitions the role may query directly without their own policies', async () => {
    const database = await openDatabase('pglite', { migrate: false })
    try {
      const client = (database.db as unknown as { $client: { exec(s: string): Promise<unknown> } }).$client
      await client.exec(`create role app_p nologin nosuperuser nobypassrls; grant usage on schema public to app_p;
        set role app_p`)
      const asAdmin = async (statements: string) => {
        await client.exec(`reset role; ${statements}; set role app_p`)
      }
      await partitionsNamed(asAdmin, database.db as AppDb, 'app_p', 'pnotes')
    } finally {
      await database.close()
    }
  })

  it("CREATEROLE only before PostgreSQL 16, where it may grant itself a table owner's role", async () => {
    const database = await openDatabase('pglite', { migrate: false })
    try {
      await createIsolationTables(database)
      const client = (database.db as unknown as { $client: { exec(s: string): Promise<unknown> } }).$client
      await client.exec(`create role app_c nologin nosuperuser nobypassrls createrole;
        grant usage on schema public to app_c; grant select on notes to app_c;`)
      await enableTenantRls(database.db as AppDb, ['notes'], { to: 'app_c' })
      await client.exec('set role app_c')
      // PGlite is PostgreSQL 16 or later: CREATEROLE grants only roles it administers.
      expect(await checkTenantRls(database.db as AppDb, ['notes'])).toEqual({ ok: true, problems: [] })
    } finally {
      await database.close()
    }
  })

  it('a member of the owner role without FORCE, an open permissive policy, a BYPASSRLS role to SET ROLE to', async () => {
    const database = await openDatabase('pglite', { migrate: false })
    try {
      await createIsolationTables(database)
      await seedIsolationData(database)
      const client = (database.db as unknown as { $client: { exec(s: string): Promise<unknown> } }).$client
      await client.exec(`create role owner_m nologin; create role app_m nologin nosuperuser nobypassrls inherit;
        grant usage on schema public to app_m;`)
      const asAdmin = async (statements: string) => {
        await client.exec(`reset role; ${statements}; set role app_m`)
      }
      await client.exec('set role app_m')
      await bypassesNamed(
        asAdmin,
        database.db as AppDb,
        { app: 'app_m', owner: 'owner_m', bypass: 'bypass_m' },
        'notes',
      )
    } finally {
      await database.close()
    }
  })
})

describe('tenantRlsPolicy with drizzle-kit', () => {
  it('generates a policy that isolates tenants once applied with FORCE', async () => {
    const { generateDrizzleJson, generateMigration } = await import('drizzle-kit/api')
    const docs = pgTable(
      'docs',
      { id: text('id').primaryKey(), tenantId: text('tenant_id').notNull() },
      () => [tenantRlsPolicy({ to: 'app_docs' })],
    )
    const statements = await generateMigration(generateDrizzleJson({}), generateDrizzleJson({ docs }))
    const joined = statements.join('\n')
    expect(joined).toContain('ENABLE ROW LEVEL SECURITY')
    expect(joined).toContain(`USING ("tenant_id" = NULLIF(current_setting('app.tenant_id', true), ''))`)
    expect(joined).toContain(`WITH CHECK ("tenant_id" = NULLIF(current_setting('app.tenant_id', true), ''))`)
    const database = await openDatabase('pglite', { migrate: false })
    try {
      const client = (database.db as unknown as { $client: { exec(s: string): Promise<unknown> } }).$client
      await client.exec('create role app_docs nologin nobypassrls')
      for (const statement of statements) await client.exec(statement)
      await client.exec(`${forceRlsSql(docs)};
        insert into docs values ('d1', 'acme'), ('d2', 'globex');
        grant select, insert on docs to app_docs;
        set role app_docs;`)
      const db = drizzlePglite({ client: (database.db as any).$client })
      expect(await db.select().from(docs)).toEqual([])
      expect(await withTenantRls(db, 'globex', (tx) => tx.select().from(docs))).toEqual([
        { id: 'd2', tenantId: 'globex' },
      ])
      await expectRlsViolation(
        withTenantRls(db, 'globex', (tx) => tx.insert(docs).values({ id: 'd3', tenantId: 'acme' })),
      )
    } finally {
      await database.close()
    }
  })
})

describe('RLS SQL helpers', () => {
  it('writes ENABLE, FORCE and one policy with USING and WITH CHECK', () => {
    expect(
      tenantRlsSql('app.notes', { to: ['app', 'reporting'], column: 'org_id', setting: 'my.org' }),
    ).toEqual([
      'ALTER TABLE "app"."notes" ENABLE ROW LEVEL SECURITY',
      'ALTER TABLE "app"."notes" FORCE ROW LEVEL SECURITY',
      'DROP POLICY IF EXISTS "notes_tenant_isolation" ON "app"."notes"',
      `CREATE POLICY "notes_tenant_isolation" ON "app"."notes" AS PERMISSIVE FOR ALL TO "app", "reporting" USING ("org_id" = NULLIF(current_setting('my.org', true), '')) WITH CHECK ("org_id" = NULLIF(current_setting('my.org', true), ''))`,
    ])
    expect(tenantRlsCondition()).toBe(`"tenant_id" = NULLIF(current_setting('app.tenant_id', true), '')`)
    expect(forceRlsSql(notes)).toBe('ALTER TABLE "notes" FORCE ROW LEVEL SECURITY')
  })

  it('refuses names that are not plain identifiers', () => {
    const bad: (() => unknown)[] = [
      () => tenantRlsSql('notes; drop table x'),
      () => tenantRlsSql('a.b.c'),
      () => tenantRlsSql('notes', { column: 'tenant"id' }),
      () => tenantRlsSql('notes', { setting: "app.x', true) or true or ('" }),
      () => tenantRlsSql('notes', { to: 'app; drop role x' }),
      () => tenantRlsSql('notes', { to: [] }),
      () => tenantRlsPolicy({ to: 'bad role' }),
    ]
    for (const fn of bad) {
      expect(fn).toThrowError(expect.objectContaining({ code: 'tenant_invalid_config' }))
      try {
        fn()
      } catch (e) {
        expect(isTenantError(e)).toBe(true)
      }
    }
  })
})

// The real server: the superuser `postgres` bypasses RLS, so the application connects as a role
// created for this run (trust auth), which owns nothing and has no BYPASSRLS.
const pgReason = unavailableReason('postgres')

function roleUrl(url: string, role: string): string {
  const u = new URL(url)
  u.username = role
  u.password = ''
  return u.toString()
}

if (pgReason === undefined) {
  let database: TestDatabase
  let role: string
  let appClient: postgres.Sql
  const openPostgres = async (): Promise<RlsSetup> => {
    database = await openDatabase('postgres', { migrate: false })
    const admin = database.postgres!.sql
    const schema = database.postgres!.schema
    role = `rls_${schema}`.slice(0, 60)
    await createIsolationTables(database)
    await enableTenantRls(database.db as AppDb, RLS_TABLES)
    await admin.unsafe(`create role "${role}" login nosuperuser nobypassrls`)
    await admin.unsafe(`grant usage on schema "${schema}" to "${role}"`)
    await admin.unsafe(
      `grant select, insert, update, delete on all tables in schema "${schema}" to "${role}"`,
    )
    // One connection: the next query provably reuses the connection withTenantRls used.
    appClient = postgres(roleUrl(database.postgres!.url, role), {
      max: 1,
      onnotice: () => {},
      connection: { search_path: schema },
    })
    const app = drizzlePostgres({ client: appClient })
    return {
      app,
      currentSetting: async () => (await appClient`select current_setting('app.tenant_id', true) as v`)[0]!.v,
      seed: () => seedIsolationData(database),
      close: async () => {
        await appClient.end({ timeout: 1 })
        await admin.unsafe(`drop owned by "${role}"`)
        await admin.unsafe(`drop role if exists "${role}"`)
        await database.close()
      },
    }
  }
  rlsSuite(
    'withTenantRls on PostgreSQL (a login role without BYPASSRLS, one pooled connection)',
    openPostgres,
  )

  describe('checkTenantRls names the ways around RLS (PostgreSQL)', () => {
    /** A login role of this run, its client, and a way to run statements as the admin in the schema. */
    async function withRole(
      options: string,
      run: (context: {
        db: TestDatabase
        app: AppDb
        role: string
        asAdmin: (s: string) => Promise<unknown>
      }) => Promise<void>,
    ): Promise<void> {
      const db = await openDatabase('postgres', { migrate: false })
      const admin = db.postgres!.sql
      const schema = db.postgres!.schema
      const role = `rlr_${schema}`.slice(0, 60)
      let client: postgres.Sql | undefined
      try {
        await admin.unsafe(`create role "${role}" login nosuperuser nobypassrls ${options};
          grant usage on schema "${schema}" to "${role}"`)
        client = postgres(roleUrl(db.postgres!.url, role), {
          max: 1,
          onnotice: () => {},
          connection: { search_path: schema },
        })
        const asAdmin = (statements: string) => admin.unsafe(`set search_path to "${schema}"; ${statements}`)
        await run({ db, app: drizzlePostgres({ client }), role, asAdmin })
      } finally {
        await client?.end({ timeout: 1 })
        await admin.unsafe(`drop owned by "${role}"`).catch(() => {})
        await admin.unsafe(`drop role if exists "${role}"`)
        await db.close()
      }
    }

    it('partitions the role may query directly without their own policies', async () => {
      await withRole('', ({ app, role, asAdmin }) => partitionsNamed(asAdmin, app, role, 'pnotes'))
    })

    it("CREATEROLE before PostgreSQL 16, with which the role grants itself the owner's role and turns RLS off", async () => {
      await withRole('createrole', async ({ db, app, role, asAdmin }) => {
        await createIsolationTables(db)
        await seedIsolationData(db)
        const owner = `${role.slice(0, 50)}_own`
        await asAdmin(`create role "${owner}" nologin; grant usage on schema "${db.postgres!.schema}" to "${owner}";
          alter table notes owner to "${owner}";
          grant select on notes to "${role}"; ${tenantRlsSql('notes', { to: role }).join('; ')}`)
        try {
          const [server] = await db.postgres!.sql`select current_setting('server_version_num')::int as v`
          const before16 = (server!.v as number) < 160000
          const report = await checkTenantRls(app, ['notes'])
          expect(report.problems).toEqual(before16 ? [expect.stringContaining('has CREATEROLE')] : [])
          if (before16) {
            // The way is real: the role becomes the owner for a moment and lifts FORCE.
            const seen = await withTenantRls(app, 'acme', async (tx) => {
              await tx.execute(sql.raw(`grant "${owner}" to "${role}"; set local role "${owner}"`))
              await tx.execute(sql`alter table notes no force row level security`)
              return tx.select().from(notes)
            })
            expect(seen.length).toBeGreaterThan(3)
          }
        } finally {
          await asAdmin(`drop owned by "${owner}"`).catch(() => {})
          await asAdmin(`drop role if exists "${owner}"`)
        }
      })
    })

    it('a member of the owner role without FORCE, an open permissive policy, a BYPASSRLS role to SET ROLE to', async () => {
      const db = await openDatabase('postgres', { migrate: false })
      const admin = db.postgres!.sql
      const schema = db.postgres!.schema
      const roles = {
        app: `app_${schema}`.slice(0, 60),
        owner: `own_${schema}`.slice(0, 60),
        bypass: `byp_${schema}`.slice(0, 60),
      }
      let client: postgres.Sql | undefined
      try {
        await createIsolationTables(db)
        await seedIsolationData(db)
        await admin.unsafe(`create role "${roles.owner}" nologin;
          create role "${roles.app}" login nosuperuser nobypassrls inherit;
          grant usage on schema "${schema}" to "${roles.app}", "${roles.owner}"`)
        client = postgres(roleUrl(db.postgres!.url, roles.app), {
          max: 1,
          onnotice: () => {},
          connection: { search_path: schema },
        })
        const asAdmin = (statements: string) => admin.unsafe(`set search_path to "${schema}"; ${statements}`)
        await bypassesNamed(asAdmin, drizzlePostgres({ client }), roles, `${schema}.notes`)
      } finally {
        await client?.end({ timeout: 1 })
        for (const role of Object.values(roles)) {
          await admin.unsafe(`drop owned by "${role}"`).catch(() => {})
          await admin.unsafe(`drop role if exists "${role}"`)
        }
        await db.close()
      }
    })
  })

  describe('withTenantRls on PostgreSQL with two pooled connections', () => {
    let setup: RlsSetup
    let pool: postgres.Sql
    beforeAll(async () => {
      setup = await openPostgres()
      await setup.seed()
      pool = postgres(roleUrl(database.postgres!.url, role), {
        max: 2,
        onnotice: () => {},
        connection: { search_path: database.postgres!.schema },
      })
    })
    afterAll(async () => {
      await pool?.end({ timeout: 1 })
      await setup?.close()
    })

    it('concurrent transactions of different tenants each see their own rows, and the pool keeps no tenant', async () => {
      const app = drizzlePostgres({ client: pool })
      let arrived = 0
      let release!: () => void
      const bothOpen = new Promise<void>((resolve) => {
        release = resolve
      })
      const reads = ['acme', 'globex'].map((tenant) =>
        withTenantRls(app, tenant, async (tx) => {
          // Both transactions have set their tenant before either reads: two connections at once.
          if (++arrived === 2) release()
          await bothOpen
          return (await tx.select({ id: notes.id }).from(notes)).map((r) => r.id)
        }),
      )
      const [acme, globex] = await Promise.all(reads)
      expect(acme!.every((id) => id.startsWith('acme-'))).toBe(true)
      expect(globex!.every((id) => id.startsWith('globex-'))).toBe(true)
      const after = await Promise.all([
        pool`select count(*)::int as n from notes`,
        pool`select count(*)::int as n from notes`,
      ])
      expect(after.map((r) => r[0]!.n)).toEqual([0, 0])
    })
  })
} else if (process.env.CI) {
  describe('withTenantRls on PostgreSQL', () => {
    it('needs PostgreSQL under CI', () => {
      throw new Error(`PostgreSQL is required under CI: ${pgReason}`)
    })
  })
} else {
  describe.skip(`withTenantRls on PostgreSQL (skipped: ${pgReason})`, () => {
    it('needs PostgreSQL', () => {})
  })
}
