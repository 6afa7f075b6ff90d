// Attacks on what a scoped database hands out and keeps: subqueries from `.as()`, the SQL a builder
// shows through getSQL() and getSelectedFields(), $count, prepared statements, and the SQL objects a
// caller passed in and still holds. Each one tries to get another tenant's rows by reading or
// rewriting Drizzle's objects after the scoped API checked them; each read or changed other tenants'
// rows before the scoped API sealed what it checks. Every case runs on libSQL, PGlite and
// PostgreSQL and checks what the query returns and what the tables hold, not only an error.
import { count, eq, exists, inArray, is, Param, SQL, type SQLWrapper, StringChunk, sql } from 'drizzle-orm'
import type { LibSQLDatabase } from 'drizzle-orm/libsql'
import { beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { describeEachDatabase } from '../test/databases'
import { allRows, createIsolationTables, seedIsolationData, tablesFor } from '../test/isolation-db'
import { rejects } from '../test/tenant-errors'
import { scoped, unscoped } from './scoped'
import type { TenantDB } from './tenant-db'

const KINDS = { kinds: ['libsql-memory', 'pglite', 'postgres'], migrate: false } as const

const ACME_IDS = ['acme-n1', 'acme-n2', 'acme-n3']

/** Runs an attack step; answers what it threw (a refusal), or undefined when it went through. */
function attempt(fn: () => unknown): unknown {
  try {
    fn()
    return undefined
  } catch (error) {
    return error
  }
}

/** Every Param in an SQL tree, found the way an attacker would: by walking Drizzle's objects. */
function paramsIn(root: unknown): Param[] {
  const found: Param[] = []
  const stack = [root]
  const seen = new Set<unknown>()
  while (stack.length > 0) {
    const item = stack.pop() as any
    if (item === null || typeof item !== 'object' || seen.has(item)) continue
    seen.add(item)
    if (is(item, Param)) {
      found.push(item)
      stack.push(item.value)
    } else if (is(item, SQL)) stack.push(...item.queryChunks)
    else if (is(item, SQL.Aliased)) stack.push(item.sql)
    else if (Array.isArray(item)) stack.push(...item)
    else if ('sql' in item) stack.push(item.sql) // a subquery's `_`
  }
  return found
}

/** Sets every parameter of `root` holding `from` to `to`; answers what that threw. */
function retarget(root: unknown, from: unknown = 'acme', to: unknown = 'globex'): unknown {
  const params = paramsIn(root).filter((p) => p.value === from)
  expect(params.length).toBeGreaterThan(0)
  return attempt(() => {
    for (const p of params) (p as { value: unknown }).value = to
  })
}

/** Every SQL object in a tree (the tenant condition among them). */
function sqlNodesIn(root: unknown): SQL[] {
  const found: SQL[] = []
  const stack = [root]
  const seen = new Set<unknown>()
  while (stack.length > 0) {
    const item = stack.pop() as any
    if (item === null || typeof item !== 'object' || seen.has(item)) continue
    seen.add(item)
    if (is(item, SQL)) {
      found.push(item)
      stack.push(...item.queryChunks)
    } else if (is(item, SQL.Aliased)) stack.push(item.sql)
    else if (is(item, Param)) stack.push(item.value)
    else if (Array.isArray(item)) stack.push(...item)
    else if ('sql' in item) stack.push(item.sql) // a subquery's `_`
  }
  return found
}

/** Empties every SQL node holding a tenant parameter into `1=1`; answers what that threw. */
function dropTenantCondition(root: unknown): unknown {
  const nodes = sqlNodesIn(root).filter((n) =>
    n.queryChunks.some((c) => is(c, Param) && (c as Param).value === 'acme'),
  )
  expect(nodes.length).toBeGreaterThan(0)
  return attempt(() => {
    for (const n of nodes) n.queryChunks.splice(0, n.queryChunks.length, new StringChunk('1=1'))
  })
}

describeEachDatabase(
  'scoped subqueries and sealed SQL: attacks',
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
    /** Every tenant's notes, unscoped: what an attack splices in. */
    const everyNote = () => unscoped(db).select({ id: t.notes.id }).from(t.notes)
    const ids = (rows: { id: unknown }[]) => rows.map((r) => String(r.id)).sort()
    /** A subquery of acme's note ids, and the outer query that reads it. */
    const subquery = () => acme.select({ id: t.notes.id }).from(t.notes).as('sq')
    const readAll = async (sq: ReturnType<typeof subquery>) => ids(await acme.select({ id: sq.id }).from(sq))
    /** Runs `query`, or answers [] when the database refuses what an attack left of it. */
    const rowsOrNothing = async (query: PromiseLike<{ id: unknown }[]>) => {
      try {
        return ids(await query)
      } catch {
        return []
      }
    }

    describe('a subquery from .as()', () => {
      it('cannot have the chunks of its SQL rewritten in place', async () => {
        const sq = subquery()
        const error = attempt(() => {
          const chunks = (sq._ as any).sql.queryChunks as unknown[]
          chunks.splice(0, chunks.length, ...everyNote().getSQL().queryChunks)
        })
        expect(await rowsOrNothing(acme.select({ id: sq.id }).from(sq))).toEqual(ACME_IDS)
        expect(error).toBeInstanceOf(TypeError)
      })

      it('cannot have its tenant parameter pointed at another tenant', async () => {
        const sq = subquery()
        const error = retarget(sq._)
        expect(await readAll(sq)).toEqual(ACME_IDS)
        expect(error).toBeInstanceOf(TypeError)
      })

      it('cannot have the tenant condition inside its SQL emptied', async () => {
        const sq = subquery()
        const error = dropTenantCondition(sq._)
        expect(await readAll(sq)).toEqual(ACME_IDS)
        expect(error).toBeInstanceOf(TypeError)
      })

      it('cannot have its internals replaced by assignment, Reflect.set or defineProperty', async () => {
        const forged = () => ({ ...(subquery()._ as object), sql: everyNote().getSQL() })
        for (const write of [
          (sq: any) => {
            sq._ = forged()
          },
          (sq: any) => Reflect.set(sq, '_', forged()),
          (sq: any) => Object.defineProperty(sq, '_', { value: forged(), configurable: true }),
          (sq: any) => {
            sq._.sql = everyNote().getSQL()
          },
          (sq: any) => delete sq._,
        ]) {
          const sq = subquery()
          attempt(() => write(sq))
          expect(await rowsOrNothing(acme.select({ id: sq.id }).from(sq))).toEqual(ACME_IDS)
        }
        const sq = subquery() as any
        await rejects(() => {
          sq._ = forged()
        }, 'tenant_unsafe_query')
        await rejects(() => Object.defineProperty(sq, '_', { value: forged() }), 'tenant_unsafe_query')
        await rejects(() => Reflect.set(sq, '_', forged()), 'tenant_unsafe_query')
      })

      it('does not hand out its raw internals through a property descriptor', async () => {
        const sq = subquery()
        const error = attempt(() => {
          const raw = Object.getOwnPropertyDescriptor(sq, '_')?.value
          raw.sql = everyNote().getSQL()
        })
        expect(await readAll(sq)).toEqual(ACME_IDS)
        expect(error).toBeDefined()
      })

      it('cannot be given another prototype (a forged getSQL would render unscoped SQL)', async () => {
        const sq = subquery() as any
        const error = attempt(() =>
          Object.setPrototypeOf(sq, {
            getSQL: () => sql`(${everyNote()}) ${sql.identifier('sq')}`,
            shouldOmitSQLParens: () => true,
          }),
        )
        expect(
          await rowsOrNothing(
            acme.select({ id: sql<string>`${sql.identifier('sq')}.${sql.identifier('id')}` }).from(sq),
          ),
        ).toEqual(ACME_IDS)
        expect(error).toBeDefined()
      })

      it('cannot have selected fields added through _.selectedFields (they reach the builder)', async () => {
        const query = acme.select({ id: t.notes.id }).from(t.notes).where(eq(t.notes.id, 'acme-n1'))
        const sq = query.as('sq')
        const error = attempt(() => {
          ;(sq._.selectedFields as any).leak = sql`(${unscoped(db).select({ c: count() }).from(t.notes)})`.as(
            'leak',
          )
        })
        const rows = (await query) as Record<string, unknown>[]
        expect(rows).toEqual([{ id: 'acme-n1' }])
        expect(error).toBeDefined()
      })

      it('cannot be retargeted when joined: the joined subquery stays as built', async () => {
        const sq = subquery()
        const error = retarget(sq._)
        const rows = await acme.select({ id: sq.id }).from(t.users).innerJoin(sq, sql`1 = 1`)
        expect([...new Set(ids(rows))]).toEqual(ACME_IDS)
        expect(error).toBeInstanceOf(TypeError)
      })
    })

    describe('what a builder shows', () => {
      it('getSQL(): its tenant parameter cannot be pointed at another tenant', async () => {
        const query = acme.select({ id: t.notes.id }).from(t.notes)
        const error = retarget(query.getSQL())
        expect(await rowsOrNothing(query)).toEqual(ACME_IDS)
        expect(error).toBeInstanceOf(TypeError)
        const update = acme.update(t.notes).set({ title: 'pwned' })
        retarget((update as unknown as SQLWrapper).getSQL())
        await update
        const del = acme.delete(t.notes)
        retarget((del as unknown as SQLWrapper).getSQL())
        await rowsOrNothing(del.returning({ id: t.notes.id }) as never).catch(() => {})
        expect((await allRows(database.current, 'notes')).filter((r) => r.tenant_id === 'globex')).toEqual(
          before.notes.filter((r) => r.tenant_id === 'globex'),
        )
      })

      it('getSQL() of an insert or update: the parameters Drizzle made of the values cannot be rewritten', async () => {
        const globexTitle = () =>
          sql`(${unscoped(db).select({ title: t.notes.title }).from(t.notes).where(eq(t.notes.id, 'globex-n1'))})`
        const insert = acme.insert(t.notes).values({ id: 'acme-n9', title: 'fresh' })
        const shown = () => (insert as unknown as SQLWrapper).getSQL()
        const errors = [retarget(shown()), retarget(shown(), 'fresh', globexTitle())]
        await insert
        const update = acme.update(t.notes).set({ title: 'renamed' }).where(eq(t.notes.id, 'acme-n1'))
        errors.push(retarget((update as unknown as SQLWrapper).getSQL(), 'renamed', globexTitle()))
        await update
        const rows = await allRows(database.current, 'notes')
        expect(rows.find((r) => r.id === 'acme-n9')).toMatchObject({ tenant_id: 'acme', title: 'fresh' })
        expect(rows.find((r) => r.id === 'acme-n1')?.title).toBe('renamed')
        const others = (r: Record<string, unknown>) => r.id !== 'acme-n1' && r.id !== 'acme-n9'
        expect(rows.filter(others)).toEqual(before.notes.filter(others))
        for (const error of errors) expect(error).toBeInstanceOf(TypeError)
      })

      it('callbacks get read-only fields: where(), orderBy() and join callbacks cannot add a selected field', async () => {
        const errors: unknown[] = []
        const addLeak = (fields: unknown) => {
          errors.push(
            attempt(() => {
              ;(fields as Record<string, unknown>).leak = sql`(${unscoped(db)
                .select({ c: count() })
                .from(t.notes)})`.as('leak')
            }),
          )
        }
        const sq = subquery()
        const queries = [
          acme
            .select({ id: t.notes.id })
            .from(t.notes)
            .where((fields) => {
              addLeak(fields)
              return eq(t.notes.id, 'acme-n1')
            }),
          acme
            .select({ id: t.notes.id })
            .from(t.notes)
            .where(eq(t.notes.id, 'acme-n1'))
            .orderBy((fields) => {
              addLeak(fields)
              return fields.id
            }),
          acme
            .select({ id: t.notes.id })
            .from(t.notes)
            .innerJoin(sq, (fields) => {
              addLeak(fields)
              return eq(sq.id, fields.id)
            })
            .where(eq(t.notes.id, 'acme-n1')),
        ]
        for (const query of queries) expect(await query).toEqual([{ id: 'acme-n1' }])
        expect(errors).toHaveLength(3)
        for (const error of errors) expect(error).toBeDefined()
      })

      it('getSQL(): its tenant condition cannot be emptied', async () => {
        const query = acme.select({ id: t.notes.id }).from(t.notes).where(eq(t.notes.score, 1))
        const error = dropTenantCondition(query.getSQL())
        expect(await rowsOrNothing(query)).toEqual(['acme-n1'])
        expect(error).toBeInstanceOf(TypeError)
      })

      it('getSelectedFields(): no field can be added or replaced', async () => {
        const query = acme.select({ id: t.notes.id }).from(t.notes).where(eq(t.notes.id, 'acme-n1'))
        const fields = (
          query as unknown as { getSelectedFields(): Record<string, unknown> }
        ).getSelectedFields()
        const leak = sql`(${unscoped(db).select({ c: count() }).from(t.notes)})`.as('leak')
        const errors = [
          attempt(() => {
            fields.leak = leak
          }),
          attempt(() => Object.defineProperty(fields, 'leak', { value: leak, enumerable: true })),
          attempt(() => {
            fields.id = leak
          }),
        ]
        expect(await query).toEqual([{ id: 'acme-n1' }])
        for (const error of errors) expect(error).toBeDefined()
      })

      it('getSelectedFields() of a joined select: nested field objects cannot be changed either', async () => {
        const query = acme.select().from(t.notes).innerJoin(t.users, eq(t.users.id, t.notes.ownerId))
        const fields = (
          query as unknown as { getSelectedFields(): Record<string, Record<string, unknown>> }
        ).getSelectedFields()
        const error = attempt(() => {
          fields.notes!.leak = sql`(${unscoped(db).select({ c: count() }).from(t.notes)})`.as('leak')
        })
        const rows = (await query) as { notes: Record<string, unknown> }[]
        expect(rows.every((r) => !('leak' in r.notes))).toBe(true)
        expect(error).toBeDefined()
      })

      it('a forged prototype cannot run code with the raw builder as `this`', async () => {
        const query = acme.select({ id: t.notes.id }).from(t.notes) as any
        const proto = Object.getPrototypeOf(query)
        let config: { where?: unknown } | undefined
        const error = attempt(() =>
          Object.setPrototypeOf(
            query,
            Object.assign(Object.create(proto), {
              toSQL(this: { config: typeof config }) {
                config = this.config
                return { sql: '', params: [] }
              },
            }),
          ),
        )
        attempt(() => query.toSQL())
        if (config !== undefined) config.where = undefined
        attempt(() => Object.setPrototypeOf(query, proto))
        expect(await rowsOrNothing(query)).toEqual(ACME_IDS)
        expect(config).toBeUndefined()
        expect(error).toBeDefined()
      })

      it('toSQL() and $dynamic() give nothing to rewrite', async () => {
        const query = acme.select({ id: t.notes.id }).from(t.notes).$dynamic()
        const shown = query.toSQL()
        shown.sql = 'select id from notes'
        shown.params.length = 0
        expect(ids(await query)).toEqual(ACME_IDS)
      })
    })

    describe('SQL the caller passed in and still holds', () => {
      it('a where condition rewritten after where() does not reach the query', async () => {
        const condition = sql`${t.notes.id} = ${'acme-n1'}`
        const query = acme.select({ id: t.notes.id }).from(t.notes).where(condition)
        condition.queryChunks.push(sql.raw(') or (1=1'))
        expect(await rowsOrNothing(query)).toEqual(['acme-n1'])
      })

      it('a selected field rewritten after select() does not read another tenant', async () => {
        const field = sql<string>`'x'`
        const query = acme.select({ id: t.notes.id, leak: field.as('leak') }).from(t.notes)
        field.queryChunks.splice(
          0,
          field.queryChunks.length,
          sql`(${unscoped(db).select({ title: t.notes.title }).from(t.notes).where(eq(t.notes.id, 'globex-n1'))})`,
        )
        const rows = (await query) as { leak: unknown }[]
        expect(rows.map((r) => r.leak)).toEqual(['x', 'x', 'x'])
      })

      it('an array inside a condition, filled after where(), does not reach the query', async () => {
        const list: unknown[] = ['acme-n1']
        const query = acme.select({ id: t.notes.id }).from(t.notes).where(sql`${t.notes.id} in ${list}`)
        list.push(sql.raw(`'x')) or ((1=1`))
        expect(await rowsOrNothing(query)).toEqual(['acme-n1'])
      })

      it('an object with getSQL() is read once: what was checked is what runs', async () => {
        let calls = 0
        const wrapper = {
          getSQL: () => (calls++ < 2 ? sql`1=1` : sql.raw('1=1) or (1=1')),
          shouldOmitSQLParens: () => true,
        }
        const query = acme
          .select({ id: t.notes.id })
          .from(t.notes)
          .where(wrapper as unknown as SQL)
        expect(await rowsOrNothing(query)).toEqual(ACME_IDS)
        expect(await rowsOrNothing(query)).toEqual(ACME_IDS)
      })

      it('a set() value whose parameter or chunks change afterwards does not copy another tenant into the row', async () => {
        const globexTitle = () =>
          sql`(${unscoped(db).select({ title: t.notes.title }).from(t.notes).where(eq(t.notes.id, 'globex-n1'))})`
        // A parameter whose value becomes SQL is rendered as that SQL.
        const param = sql.param('renamed')
        const first = acme
          .update(t.notes)
          .set({ title: sql`${param}` })
          .where(eq(t.notes.id, 'acme-n1'))
        ;(param as { value: unknown }).value = globexTitle()
        await first
        const title = sql`${'renamed again'}`
        const second = acme.update(t.notes).set({ title }).where(eq(t.notes.id, 'acme-n2'))
        title.queryChunks.splice(0, title.queryChunks.length, globexTitle())
        await second
        const rows = await allRows(database.current, 'notes')
        expect(rows.find((r) => r.id === 'acme-n1')?.title).toBe('renamed')
        expect(rows.find((r) => r.id === 'acme-n2')?.title).toBe('renamed again')
        const others = (r: Record<string, unknown>) => r.id !== 'acme-n1' && r.id !== 'acme-n2'
        expect(rows.filter(others)).toEqual(before.notes.filter(others))
      })

      it('an inserted value rewritten after values() does not copy another tenant into the row', async () => {
        const title = sql`${'fresh'}`
        const insert = acme.insert(t.notes).values({ id: 'acme-n9', title })
        title.queryChunks.splice(
          0,
          title.queryChunks.length,
          sql`(${unscoped(db).select({ title: t.notes.title }).from(t.notes).where(eq(t.notes.id, 'globex-n1'))})`,
        )
        await insert
        const rows = await allRows(database.current, 'notes')
        expect(rows.find((r) => r.id === 'acme-n9')?.title).toBe('fresh')
      })

      it('a scoped subquery changed after it was embedded does not escape the condition', async () => {
        const sub = acme.select({ id: t.notes.id }).from(t.notes).$dynamic()
        const query = acme.select({ id: t.notes.id }).from(t.notes).where(sql`${t.notes.id} in ${sub}`)
        const viaHelper = acme.select({ id: t.notes.id }).from(t.notes).where(inArray(t.notes.id, sub))
        // Text that would close the condition's brackets is refused where it is written...
        await rejects(() => sub.orderBy(sql.raw('1)) or ((1=1')), 'tenant_unsafe_query')
        // ...and a change that passes changes the subquery, not the statements it was put in.
        sub.where(sql`1 = 0`)
        expect(await rowsOrNothing(query)).toEqual(ACME_IDS)
        expect(await rowsOrNothing(viaHelper)).toEqual(ACME_IDS)
        expect(
          await rowsOrNothing(acme.select({ id: t.notes.id }).from(t.notes).where(inArray(t.notes.id, sub))),
        ).toEqual([])
      })
    })

    describe('$count', () => {
      it('cannot have its embedded SQL rewritten or its tenant parameter retargeted', async () => {
        const embedded = acme.$count(t.notes) as unknown as SQL
        const spliced = attempt(() =>
          embedded.queryChunks.splice(
            0,
            embedded.queryChunks.length,
            sql`(${unscoped(db).select({ c: count() }).from(t.notes)})`,
          ),
        )
        const rows = await acme
          .select({ id: t.notes.id, n: embedded })
          .from(t.notes)
          .where(eq(t.notes.id, 'acme-n1'))
        expect(rows.map((r) => Number(r.n))).toEqual([3])
        // Counts globex's note once its tenant parameter says globex.
        const counted = acme.$count(t.notes, eq(t.notes.id, 'globex-n1'))
        const retargeted = retarget(counted)
        expect(await counted).toBe(0)
        expect(spliced).toBeInstanceOf(TypeError)
        expect(retargeted).toBeInstanceOf(TypeError)
      })

      it('cannot be given a prototype whose then() reads its session', async () => {
        const counted = acme.$count(t.notes) as any
        let session: unknown
        const error = attempt(() =>
          Object.setPrototypeOf(counted, {
            // biome-ignore lint/suspicious/noThenProperty: the attack is a forged then()
            then(this: { session: unknown }, resolve: (v: unknown) => void) {
              session = this.session
              resolve(0)
            },
          }),
        )
        await Promise.race([counted, new Promise((r) => setTimeout(r, 50))]).catch(() => {})
        expect(session).toBeUndefined()
        expect(error).toBeDefined()
      })
    })

    describe('prepared statements', () => {
      it('cannot have the statement they run rewritten', async () => {
        const prepared = acme.select({ id: t.notes.id }).from(t.notes).prepare() as any
        const text = everyNote().toSQL().sql
        const errors = [
          attempt(() => {
            prepared.getQuery().sql = text
            prepared.getQuery().params.length = 0
          }),
          attempt(() => {
            prepared.queryString = text
            prepared.params = []
          }),
          attempt(() => {
            prepared.query = { sql: text, params: [] }
          }),
        ]
        const rows = await (prepared.all ?? prepared.execute).call(prepared)
        expect(ids(rows)).toEqual(ACME_IDS)
        for (const error of errors) expect(error).toBeDefined()
      })

      it('do not hand out their client or session', async () => {
        const prepared = acme.select({ id: t.notes.id }).from(t.notes).prepare() as any
        for (const name of ['client', 'session', 'query', 'queryString', 'params']) {
          await rejects(() => prepared[name], 'tenant_unsafe_query')
        }
        expect(ids(await (prepared.all ?? prepared.execute).call(prepared))).toEqual(ACME_IDS)
      })
    })

    // Each dialect registers only its own case (nothing is reported skipped).
    const pgOnly = database.kind === 'libsql-memory' ? () => {} : it
    pgOnly(
      'Postgres for(): only a lock strength reaches the statement (Drizzle writes it as raw text)',
      async () => {
        const query = () => acme.select({ id: t.notes.id }).from(t.notes) as any
        await rejects(() => query().for('update nowait; select 1'), 'tenant_unsafe_query')
        await rejects(() => query().for('update', { of: sql.raw('notes') }), 'tenant_unsafe_query')
        expect(ids(await query().for('update', { of: t.notes, skipLocked: true }))).toEqual(ACME_IDS)
      },
    )

    describe('CTEs', () => {
      it('an unscoped $with() over a scoped query is not a scoped source', async () => {
        const cte = unscoped(db)
          .$with('c')
          .as(acme.select({ id: t.notes.id }).from(t.notes))
        await rejects(() => acme.select().from(cte as never), 'tenant_unsafe_query')
        await unchanged()
      })
    })
  },
  KINDS,
)

describeEachDatabase(
  'scoped subqueries and sealed SQL: what keeps working',
  (database) => {
    let db: LibSQLDatabase
    let t: ReturnType<typeof tablesFor>
    let acme: TenantDB<LibSQLDatabase>

    beforeAll(async () => {
      await createIsolationTables(database.current)
      db = database.current.db as unknown as LibSQLDatabase
      t = tablesFor(database.current)
      acme = scoped(db, 'acme', { shared: [t.plans] })
      await seedIsolationData(database.current)
    })
    const ids = (rows: { id: unknown }[]) => rows.map((r) => String(r.id)).sort()

    it('from(subquery) with its plain, aliased and computed fields', async () => {
      const sq = acme
        .select({
          id: t.notes.id,
          title: t.notes.title,
          tens: sql<number>`${t.notes.score} * 10`.mapWith(Number).as('tens'),
        })
        .from(t.notes)
        .where(eq(t.notes.score, 2))
        .as('sq')
      expect(await acme.select().from(sq)).toEqual([{ id: 'acme-n2', title: 'acme note 2', tens: 20 }])
      expect(await acme.select({ title: sq.title, tens: sq.tens }).from(sq)).toEqual([
        { title: 'acme note 2', tens: 20 },
      ])
      expect(sq._.alias).toBe('sq')
      expect(Object.keys(sq._.selectedFields).sort()).toEqual(['id', 'tens', 'title'])
    })

    it('innerJoin / leftJoin of a subquery, with select() of every field', async () => {
      const owners = acme
        .select({ owner: t.notes.ownerId, n: count().as('n') })
        .from(t.notes)
        .groupBy(t.notes.ownerId)
        .as('owners')
      const rows = await acme
        .select({ id: t.users.id, n: owners.n })
        .from(t.users)
        .leftJoin(owners, eq(owners.owner, t.users.id))
      expect(rows.map((r) => [r.id, r.n === null ? null : Number(r.n)]).sort()).toEqual([
        ['acme-u1', 3],
        ['acme-u2', null],
      ])
      const all = await acme.select().from(t.users).innerJoin(owners, eq(owners.owner, t.users.id))
      expect(all.map((r) => [r.users.id, Number(r.owners.n)])).toEqual([['acme-u1', 3]])
    })

    it('a subquery in a subquery, and a subquery as a selected field', async () => {
      const inner = acme.select({ id: t.notes.id, score: t.notes.score }).from(t.notes).as('inner')
      const outer = acme.select({ id: inner.id }).from(inner).where(eq(inner.score, 3)).as('outer')
      expect(await acme.select({ id: outer.id }).from(outer)).toEqual([{ id: 'acme-n3' }])
      const total = acme
        .select({ c: count().as('c') })
        .from(t.notes)
        .as('total')
      const rows = await acme.select({ id: t.users.id, total }).from(t.users)
      expect(rows.map((r) => [r.id, Number(r.total)]).sort()).toEqual([
        ['acme-u1', 3],
        ['acme-u2', 3],
      ])
    })

    it('builders, arrays and wrappers in conditions; inArray and exists', async () => {
      const high = acme.select({ id: t.notes.id }).from(t.notes).where(sql`${t.notes.score} >= ${2}`)
      expect(
        ids(await acme.select({ id: t.notes.id }).from(t.notes).where(inArray(t.notes.id, high))),
      ).toEqual(['acme-n2', 'acme-n3'])
      expect(
        ids(
          await acme
            .select({ id: t.users.id })
            .from(t.users)
            .where(
              exists(acme.select({ id: t.notes.id }).from(t.notes).where(eq(t.notes.ownerId, t.users.id))),
            ),
        ),
      ).toEqual(['acme-u1'])
      const wrapper = { getSQL: () => sql`${t.notes.score} = ${1}` }
      expect(
        ids(
          await acme
            .select({ id: t.notes.id })
            .from(t.notes)
            .where(wrapper as unknown as SQL),
        ),
      ).toEqual(['acme-n1'])
      expect(
        ids(
          await acme
            .select({ id: t.notes.id })
            .from(t.notes)
            .where(inArray(t.notes.id, ['acme-n1', 'globex-n1'])),
        ),
      ).toEqual(['acme-n1'])
    })

    it('a condition object can be reused and changed by the caller after use', async () => {
      const condition = sql`${t.notes.score} = ${1}`
      const first = await acme.select({ id: t.notes.id }).from(t.notes).where(condition)
      condition.append(sql` or ${t.notes.score} = ${2}`)
      const second = await acme.select({ id: t.notes.id }).from(t.notes).where(condition)
      expect([ids(first), ids(second)]).toEqual([['acme-n1'], ['acme-n1', 'acme-n2']])
    })

    it('$count awaited and embedded; prepared statements with placeholders', async () => {
      expect(await acme.$count(t.notes, eq(t.notes.score, 1))).toBe(1)
      const rows = await acme.select({ id: t.users.id, n: acme.$count(t.notes) }).from(t.users)
      expect(rows.map((r) => Number(r.n))).toEqual([3, 3])
      const prepared = acme
        .select({ id: t.notes.id })
        .from(t.notes)
        .where(eq(t.notes.id, sql.placeholder('id')))
        .prepare() as any
      const run = (prepared.all ?? prepared.execute).bind(prepared)
      expect(await run({ id: 'acme-n2' })).toEqual([{ id: 'acme-n2' }])
      expect(await run({ id: 'globex-n2' })).toEqual([])
      expect(prepared.getQuery().sql).toMatch(/tenant_id/)
    })

    it('admin code can still use a scoped subquery in with() and from()', async () => {
      const sq = acme.select({ id: t.notes.id }).from(t.notes).as('sq')
      const cte = unscoped(db)
        .$with('mine')
        .as(acme.select({ id: t.notes.id }).from(t.notes))
      expect(ids(await unscoped(db).with(cte).select({ id: cte.id }).from(cte))).toEqual(ACME_IDS)
      expect(ids(await unscoped(db).select({ id: sq.id }).from(sq))).toEqual(ACME_IDS)
    })

    it('unions of scoped queries', async () => {
      const a = acme.select({ id: t.notes.id }).from(t.notes).where(eq(t.notes.score, 1))
      const b = acme.select({ id: t.notes.id }).from(t.notes).where(eq(t.notes.score, 3))
      expect(ids(await a.unionAll(b))).toEqual(['acme-n1', 'acme-n3'])
    })
  },
  KINDS,
)
