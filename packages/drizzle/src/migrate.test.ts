import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { InvalidTenantConfigError, isTenantError } from '@tenant/core'
import { sql } from 'drizzle-orm'
import { beforeEach, describe, expect, it } from 'vitest'
import { describeEachDatabase, withD1 } from '../test/databases'
import { DrizzleConfigManager } from './config-manager'
import { detectDriver } from './driver'
import {
  applyMigrations,
  migrate,
  revertMigrations,
  rollback,
  type ShippedMigration,
  shippedMigrations,
} from './migrate'
import { readMigrationFolder } from './migration-files'
import { migrations as pgMigrations } from './pg/migrations'
import { migrations as sqliteMigrations } from './sqlite/migrations'

const repoDrizzle = join(import.meta.dirname, '..', '..', '..', 'drizzle')
const wrangler = join(repoDrizzle, '..', 'node_modules', '.bin', 'wrangler')
const run = promisify(execFile)
const PACKAGE_TABLES = ['__tenant_migrations', 'tenant_audit_log', 'tenants']

describe('shipped migrations', () => {
  it('are exactly the SQL in the drizzle/ folder (rerun `pnpm embed-migrations` after editing it)', () => {
    expect(sqliteMigrations).toEqual(readMigrationFolder(join(repoDrizzle, 'sqlite')))
    expect(pgMigrations).toEqual(readMigrationFolder(join(repoDrizzle, 'pg')))
  })

  it('apply with `wrangler d1 migrations apply` from the shipped folder (down scripts ignored)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tenant-drizzle-wrangler-'))
    try {
      writeFileSync(join(dir, 'index.js'), 'export default { fetch: () => new Response(null) }')
      writeFileSync(
        join(dir, 'wrangler.toml'),
        [
          'name = "tenant-drizzle-migrations"',
          'main = "index.js"',
          'compatibility_date = "2025-01-01"',
          '[[d1_databases]]',
          'binding = "DB"',
          'database_name = "tenants"',
          'database_id = "00000000-0000-0000-0000-000000000000"',
          `migrations_dir = ${JSON.stringify(join(repoDrizzle, 'sqlite'))}`,
        ].join('\n'),
      )
      const env = { ...process.env, CI: '1', WRANGLER_SEND_METRICS: 'false', NO_COLOR: '1' }
      const apply = await run(wrangler, ['d1', 'migrations', 'apply', 'tenants', '--local'], {
        cwd: dir,
        env,
      })
      expect(apply.stdout).toContain('0000_init.sql')
      expect(apply.stdout).not.toContain('down')
      const query =
        "select name from sqlite_master where type = 'table' and name in ('tenants', 'tenant_audit_log')"
      const { stdout } = await run(
        wrangler,
        ['d1', 'execute', 'tenants', '--local', '--json', '--command', query],
        {
          cwd: dir,
          env,
        },
      )
      const names = (JSON.parse(stdout) as { results: { name: string }[] }[])[0]!.results.map((r) => r.name)
      expect(names.sort()).toEqual(['tenant_audit_log', 'tenants'])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 120_000)

  it('have a down script for every up migration, on both dialects', () => {
    for (const list of [sqliteMigrations, pgMigrations]) {
      expect(list.length).toBeGreaterThan(0)
      for (const migration of list) {
        expect(migration.up.length, migration.tag).toBeGreaterThan(0)
        expect(migration.down.length, migration.tag).toBeGreaterThan(0)
      }
    }
  })
})

/** A second migration, to exercise ordering, partial rollback and failure on real databases. */
function extra(tag: string, up: string[], down = ['drop table extra_table']): ShippedMigration {
  return { tag, hash: `hash-${tag}`, up, down }
}

describeEachDatabase(
  'migrate',
  (database) => {
    beforeEach(async () => {
      const { db } = database.current
      await rollback(db, { steps: 'all' })
      for (const table of ['__tenant_migrations', 'custom_journal', 'extra_table']) {
        await database.current.query(sql`drop table if exists ${sql.identifier(table)}`)
      }
    })

    it('creates the tables once; a second run is a no-op', async () => {
      const { db } = database.current
      expect(await database.current.tables()).toEqual([])
      expect(await migrate(db)).toEqual(['0000_init'])
      expect(await database.current.tables()).toEqual(PACKAGE_TABLES)
      expect(await migrate(db)).toEqual([])
      const journal = await database.current.query(sql`select tag, hash from __tenant_migrations`)
      const shipped = shippedMigrations(detectDriver(db))
      expect(journal).toEqual([{ tag: '0000_init', hash: shipped[0]!.hash }])
      // Its own journal: an app's Drizzle migrations table is neither created nor read.
      expect(await database.current.tables()).not.toContain('__drizzle_migrations')
    })

    it('goes up, down and up again, and the store works after each up', async () => {
      const { db } = database.current
      await migrate(db)
      await new DrizzleConfigManager(db, { cache: false }).setTenantConfig({ id: 'before-down' })
      expect(await rollback(db)).toEqual(['0000_init'])
      expect(await database.current.tables()).toEqual(['__tenant_migrations'])
      await expect(new DrizzleConfigManager(db, { cache: false }).getTenantConfig('x')).rejects.toMatchObject(
        {
          code: 'tenant_backend_unavailable',
        },
      )
      expect(await rollback(db)).toEqual([])
      expect(await migrate(db)).toEqual(['0000_init'])
      const manager = new DrizzleConfigManager(db, { cache: false })
      // Down dropped the data with the tables.
      await expect(manager.getTenantConfig('before-down')).rejects.toMatchObject({ code: 'tenant_not_found' })
      await manager.setTenantConfig({ id: 'after-up', quota: { limits: [{ window: 'month', tokens: 1 }] } })
      expect((await manager.listTenants()).items.map((t) => t.id)).toEqual(['after-up'])
    })

    it('lets concurrent callers race: each migration is applied exactly once', async () => {
      const { db } = database.current
      const results = await Promise.all([migrate(db), migrate(db), migrate(db)])
      expect(results.flat()).toEqual(['0000_init'])
      expect(await database.current.query(sql`select tag from __tenant_migrations`)).toEqual([
        { tag: '0000_init' },
      ])
    })

    it('applies in order, rolls back newest first, and `all` empties the journal', async () => {
      const { db } = database.current
      const info = detectDriver(db)
      const list = [
        ...shippedMigrations(info),
        extra('0001_extra', ['create table extra_table (a integer)', 'insert into extra_table values (1)']),
      ]
      expect(await applyMigrations(db, info, list)).toEqual(['0000_init', '0001_extra'])
      expect(await revertMigrations(db, info, list)).toEqual(['0001_extra'])
      expect(await database.current.tables()).toEqual(PACKAGE_TABLES)
      expect(await applyMigrations(db, info, list)).toEqual(['0001_extra'])
      expect(await revertMigrations(db, info, list, { steps: 'all' })).toEqual(['0001_extra', '0000_init'])
      expect(await database.current.tables()).toEqual(['__tenant_migrations'])
    })

    it('rolls a failing migration back entirely, journal row included', async () => {
      const { db } = database.current
      const info = detectDriver(db)
      await migrate(db)
      const broken = extra('0001_broken', ['create table extra_table (a integer)', 'this is not sql'])
      const error = await applyMigrations(db, info, [...shippedMigrations(info), broken]).catch(
        (e: unknown) => e,
      )
      expect(isTenantError(error) && error.code).toBe('tenant_backend_unavailable')
      expect((error as Error).message).toContain('0001_broken')
      expect((error as Error).cause).toBeDefined()
      expect(await database.current.tables()).toEqual(PACKAGE_TABLES)
      expect(await database.current.query(sql`select tag from __tenant_migrations`)).toEqual([
        { tag: '0000_init' },
      ])
    })

    it('refuses to roll back migrations it does not ship', async () => {
      const { db } = database.current
      const info = detectDriver(db)
      const list = [...shippedMigrations(info), extra('0001_extra', ['create table extra_table (a integer)'])]
      await applyMigrations(db, info, list)
      await expect(rollback(db)).rejects.toThrow(/0001_extra/)
      expect(await database.current.tables()).toContain('extra_table')
      expect(await revertMigrations(db, info, list, { steps: 2 })).toEqual(['0001_extra', '0000_init'])
    })

    it('keeps its journal in the table it is told to', async () => {
      const { db } = database.current
      expect(await migrate(db, { migrationsTable: 'custom_journal' })).toEqual(['0000_init'])
      expect(await database.current.query(sql`select tag from custom_journal`)).toEqual([
        { tag: '0000_init' },
      ])
      expect(await rollback(db, { migrationsTable: 'custom_journal' })).toEqual(['0000_init'])
    })

    it('checks its options', async () => {
      const { db } = database.current
      await expect(rollback(db, { steps: -1 })).rejects.toThrow(/rollback\.steps: must be a whole number/)
      await expect(rollback(db, { steps: 1.5 })).rejects.toBeInstanceOf(InvalidTenantConfigError)
      await expect(migrate(db, { migrationsTable: '' })).rejects.toThrow(/migrationsTable: must be a name/)
      await expect(migrate({} as never)).rejects.toBeInstanceOf(InvalidTenantConfigError)
    })
  },
  { migrate: false, kinds: withD1 },
)
