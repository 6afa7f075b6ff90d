// The migration that tells the tenants of one id apart (resources.tenant_created_at) must keep every
// existing row with the tenant now under its id: a database migrated from the version before it
// serves the same resources afterwards. The earlier version is built by running the migrations
// without the last one, then the full set, as a deployment would.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createClient } from '@libsql/client'
import { ManualClock } from '@tenant/core'
import { DrizzleConfigManager, migrate as migrateToolkit } from '@tenant/drizzle'
import { sql } from 'drizzle-orm'
import { drizzle as drizzleLibsql } from 'drizzle-orm/libsql'
import { migrate as migrateLibsql } from 'drizzle-orm/libsql/migrator'
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js'
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator'
import postgres from 'postgres'
import { afterAll, describe, expect, it } from 'vitest'
import { APP_MIGRATIONS_TABLE, migrateDatabase } from '../src/db/migrate'
import { DrizzleResourceStore } from '../src/db/resource-store'
import { createPostgresSandbox } from './e2e/backends'

const T0 = Date.UTC(2030, 2, 1, 9, 0, 0)
const made: string[] = []
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true })
})

/** A copy of the app's `dialect` migrations up to the one named `tag`, excluded: the version before it. */
function migrationsBefore(dialect: 'sqlite' | 'pg', tag: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'saas-migrations-'))
  made.push(dir)
  cpSync(fileURLToPath(new URL(`../drizzle/${dialect}`, import.meta.url)), dir, { recursive: true })
  const journalPath = join(dir, 'meta/_journal.json')
  const journal = JSON.parse(readFileSync(journalPath, 'utf8')) as { entries: { tag: string }[] }
  expect(journal.entries.map((e) => e.tag)).toContain(tag)
  journal.entries = journal.entries.slice(
    0,
    journal.entries.findIndex((e) => e.tag === tag),
  )
  writeFileSync(journalPath, JSON.stringify(journal))
  return dir
}

describe('resources.tenant_created_at', () => {
  it('SQLite: existing rows go to the tenant under their id; rows of a deleted tenant to none', async () => {
    const db = drizzleLibsql({ client: createClient({ url: ':memory:' }) })
    await migrateToolkit(db)
    await migrateLibsql(db, {
      migrationsFolder: migrationsBefore('sqlite', '0001_resource_tenant_instance'),
      migrationsTable: APP_MIGRATIONS_TABLE,
    })
    const configs = new DrizzleConfigManager(db, { clock: new ManualClock(T0) })
    await configs.setTenantConfig({ id: 'acme' })
    for (const [id, tenant] of [
      ['res_kept', 'acme'],
      ['res_orphan', 'gone'],
    ]) {
      await db.run(
        sql`insert into resources (id, tenant_id, name, data, created_at, updated_at) values (${id}, ${tenant}, 'n', '{}', ${T0}, ${T0})`,
      )
    }
    await migrateDatabase({ dialect: 'sqlite', db })
    const rows = await db.all(sql`select id, tenant_created_at as owner from resources order by id`)
    expect(rows).toEqual([
      { id: 'res_kept', owner: T0 },
      { id: 'res_orphan', owner: 0 },
    ])
    const listed = await new DrizzleResourceStore(db).list({ id: 'acme', createdAt: T0 }, { limit: 10 })
    expect(listed.items.map((r) => r.id)).toEqual(['res_kept'])
  })

  it.runIf(process.env.TEST_DATABASE_URL)(
    'PostgreSQL: the same, under FORCE ROW LEVEL SECURITY (the owner migrates)',
    async () => {
      const sandbox = await createPostgresSandbox()
      const client = postgres(sandbox.ownerUrl, {
        max: 1,
        onnotice: () => {},
        connection: { search_path: sandbox.schema },
      })
      try {
        await client.unsafe(`create schema "${sandbox.schema}"`)
        const db = drizzlePostgres({ client })
        await migrateToolkit(db)
        await migratePostgres(db, {
          migrationsFolder: migrationsBefore('pg', '0002_resource_tenant_instance'),
          migrationsTable: APP_MIGRATIONS_TABLE,
          migrationsSchema: sandbox.schema,
        })
        await new DrizzleConfigManager(db, { clock: new ManualClock(T0) }).setTenantConfig({ id: 'acme' })
        // The table forces RLS on its owner too: each insert as its tenant.
        for (const [id, tenant] of [
          ['res_kept', 'acme'],
          ['res_orphan', 'gone'],
        ]) {
          await client.begin(async (tx) => {
            await tx`select set_config('app.tenant_id', ${tenant!}, true)`
            await tx`insert into resources (id, tenant_id, name, data, created_at, updated_at)
              values (${id!}, ${tenant!}, 'n', '{}', now(), now())`
          })
        }
        await migrateDatabase({ dialect: 'pg', db, schema: sandbox.schema })
        const rows = await sandbox.admin.unsafe(
          `select id, tenant_created_at::text as owner from "${sandbox.schema}".resources order by id`,
        )
        expect(rows.map((r) => ({ ...r }))).toEqual([
          { id: 'res_kept', owner: String(T0) },
          { id: 'res_orphan', owner: '0' },
        ])
        const [force] = await sandbox.admin.unsafe(
          `select relforcerowsecurity from pg_class where oid = '"${sandbox.schema}".resources'::regclass`,
        )
        expect(force!.relforcerowsecurity).toBe(true)
      } finally {
        await client.end({ timeout: 1 })
        await sandbox.drop()
      }
    },
    60_000,
  )
})
