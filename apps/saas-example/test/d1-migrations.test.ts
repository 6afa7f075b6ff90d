// drizzle/d1 is generated (scripts/d1-migrations.ts) from the toolkit's and the app's SQLite
// migrations: it must be up to date, and it must build the same database as migrateDatabase().
import { createClient } from '@libsql/client'
import { migrate } from '@tenant/drizzle'
import { drizzle } from 'drizzle-orm/libsql'
import { describe, expect, it } from 'vitest'
import { plan, readExisting } from '../scripts/d1-migrations'
import { migrateDatabase } from '../src/db/migrate'

async function schemaOf(client: ReturnType<typeof createClient>) {
  const result = await client.execute(
    "select type, name, tbl_name, sql from sqlite_master where name not like 'sqlite_%' and name not like '__%migrations' order by name",
  )
  return result.rows.map((r) => ({ ...r }))
}

describe('drizzle/d1', () => {
  it('is up to date with the toolkit and app migrations (run `pnpm d1:migrations`)', () => {
    const existing = readExisting()
    expect(Object.keys(existing).length).toBeGreaterThan(0)
    expect(plan(existing)).toEqual(existing)
  })

  it('builds the same tables and indexes as migrateDatabase(), and the toolkit sees its migrations applied', async () => {
    const viaD1 = createClient({ url: ':memory:' })
    for (const sql of Object.values(readExisting())) await viaD1.executeMultiple(sql)
    const viaNode = createClient({ url: ':memory:' })
    await migrateDatabase({ dialect: 'sqlite', db: drizzle({ client: viaNode }) })

    expect(await schemaOf(viaD1)).toEqual(await schemaOf(viaNode))
    expect((await schemaOf(viaD1)).map((r) => r.name)).toContain('resources')
    expect(await migrate(drizzle({ client: viaD1 }))).toEqual([])
  })
})
