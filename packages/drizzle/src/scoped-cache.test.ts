// Drizzle's query cache under the scoped API: Drizzle keys a tagged select's entry by its tag
// alone, so a scoped select's tag is made the tenant's own (`{tenant}:tag`); otherwise the tenant
// that filled the entry would answer every other tenant's select of that tag.
import { asc, sql } from 'drizzle-orm'
import { Cache } from 'drizzle-orm/cache/core'
import { drizzle as drizzleLibsql, type LibSQLDatabase } from 'drizzle-orm/libsql'
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite'
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js'
import { beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { describeEachDatabase } from '../test/databases'
import { createIsolationTables, seedIsolationData, tablesFor } from '../test/isolation-db'
import { scoped } from './scoped'
import { scopedCacheTag } from './scoped-builders'

/** A Drizzle cache that keeps what it is given, by key, and drops tags it is told to. */
class MemoryCache extends Cache {
  readonly entries = new Map<string, unknown[]>()
  strategy(): 'explicit' {
    return 'explicit'
  }
  async get(key: string): Promise<unknown[] | undefined> {
    return this.entries.get(key)
  }
  async put(key: string, response: unknown[]): Promise<void> {
    this.entries.set(key, response)
  }
  async onMutate(params: { tags?: string | string[] }): Promise<void> {
    for (const tag of [params.tags ?? []].flat()) this.entries.delete(tag)
  }
}

describeEachDatabase(
  'scoped selects and the Drizzle cache',
  (database) => {
    let db: LibSQLDatabase
    let cache: MemoryCache
    let t: ReturnType<typeof tablesFor>
    beforeAll(async () => {
      await createIsolationTables(database.current)
      t = tablesFor(database.current)
    })
    beforeEach(async () => {
      await seedIsolationData(database.current)
      cache = new MemoryCache()
      const client = (database.current.db as unknown as { $client: never }).$client
      db = (database.current.kind === 'pglite'
        ? drizzlePglite({ client, cache })
        : database.current.kind === 'postgres'
          ? drizzlePostgres({ client, cache })
          : drizzleLibsql({ client, cache })) as unknown as LibSQLDatabase
    })
    const notesOf = (tenant: string, config: Parameters<ReturnType<typeof select>['$withCache']>[0]) =>
      select(tenant).$withCache(config)
    const select = (tenant: string) =>
      scoped(db, tenant)
        .select({ id: t.notes.id, tenantId: t.notes.tenantId })
        .from(t.notes)
        .orderBy(asc(t.notes.id))

    it("a tag is the tenant's own: each tenant's select is cached and answered apart", async () => {
      expect((await notesOf('acme', { tag: 'notes' })).map((row) => row.tenantId)).toEqual([
        'acme',
        'acme',
        'acme',
      ])
      expect((await notesOf('globex', { tag: 'notes' })).map((row) => row.tenantId)).toEqual([
        'globex',
        'globex',
        'globex',
      ])
      expect([...cache.entries.keys()].sort()).toEqual([
        scopedCacheTag('acme', 'notes'),
        scopedCacheTag('globex', 'notes'),
      ])
      expect(scopedCacheTag('acme', 'notes')).toBe('{acme}:notes')
      // Answered from the cache, the tenant's own entry: a note added since is not in it.
      await database.current.query(
        sql.raw("insert into notes (id, tenant_id, title) values ('acme-n4', 'acme', 'new')"),
      )
      expect(await notesOf('acme', { tag: 'notes', config: { ex: 60 }, autoInvalidate: false })).toHaveLength(
        3,
      )
      await db.$cache.invalidate({ tags: scopedCacheTag('acme', 'notes') })
      expect(cache.entries.has('{acme}:notes')).toBe(false)
      expect(cache.entries.has('{globex}:notes')).toBe(true)
      expect(await notesOf('acme', { tag: 'notes' })).toHaveLength(4)
    })

    it('leaves untagged and disabled caching as Drizzle has them', async () => {
      expect(await notesOf('acme', undefined)).toHaveLength(3)
      expect(await notesOf('globex', false)).toHaveLength(3)
      // Untagged entries are keyed by the statement and its parameters, the tenant's among them.
      expect([...cache.entries.keys()].every((key) => !key.startsWith('{'))).toBe(true)
    })

    it('refuses a config it cannot read as Drizzle does', async () => {
      for (const config of [null, 'notes', { tag: 1 }, { tags: 'x' }, Object.create({ tag: 'x' })]) {
        expect(() => notesOf('acme', config as never)).toThrow(
          expect.objectContaining({ code: 'tenant_unsafe_query' }),
        )
      }
    })
  },
  { kinds: ['libsql-memory', 'pglite', 'postgres'], migrate: false },
)

describe('scopedCacheTag', () => {
  it('refuses a bad tenant id or a tag that is not a string', () => {
    expect(() => scopedCacheTag('a b', 'notes')).toThrow(
      expect.objectContaining({ code: 'tenant_invalid_id' }),
    )
    expect(() => scopedCacheTag('acme', 5 as never)).toThrow(
      expect.objectContaining({ code: 'tenant_unsafe_query' }),
    )
  })
})
