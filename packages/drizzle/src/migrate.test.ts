import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { createClient } from '@libsql/client'
import {
  InvalidTenantConfigError,
  isTenantError,
  TenantBackendError,
  toTenantConfigInput,
  withPlans,
} from '@tenant/core'
import { sql } from 'drizzle-orm'
import { drizzle as drizzleLibsql } from 'drizzle-orm/libsql'
import { beforeEach, describe, expect, it } from 'vitest'
import { describeEachDatabase, withD1 } from '../test/databases'
import { DrizzleAuditLog } from './audit-log'
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
import { DrizzlePlanStore } from './plan-store'
import { migrations as sqliteMigrations } from './sqlite/migrations'

const repoDrizzle = join(import.meta.dirname, '..', '..', '..', 'drizzle')
const wrangler = join(repoDrizzle, '..', 'node_modules', '.bin', 'wrangler')
const run = promisify(execFile)
const PACKAGE_TABLES = ['__tenant_migrations', 'plan_audit_log', 'plans', 'tenant_audit_log', 'tenants']
const TAGS = ['0000_init', '0001_plans', '0002_subjects_concurrency']

describe('migrate and rollback failures', () => {
  it('are TenantBackendError with the driver error as cause, for a closed client and a foreign journal', async () => {
    const closed = createClient({ url: ':memory:' })
    const db = drizzleLibsql({ client: closed })
    await migrate(db)
    closed.close()
    for (const run of [() => migrate(db), () => rollback(db)]) {
      const error = await run().catch((caught: unknown) => caught)
      expect(error).toBeInstanceOf(TenantBackendError)
      expect((error as TenantBackendError).cause).toBeDefined()
    }
    // A journal table of another shape: its SQL stays in the cause, out of the message.
    const other = createClient({ url: ':memory:' })
    const db2 = drizzleLibsql({ client: other })
    await db2.run(sql`create table other_journal (id integer primary key, name text)`)
    for (const run of [
      () => migrate(db2, { migrationsTable: 'other_journal' }),
      () => rollback(db2, { migrationsTable: 'other_journal' }),
    ]) {
      const error = await run().catch((caught: unknown) => caught)
      expect(isTenantError(error), String(error)).toBe(true)
    }
    other.close()
  })
})

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
      expect(apply.stdout).toContain('0001_plans.sql')
      expect(apply.stdout).not.toContain('down')
      const query =
        "select name from sqlite_master where type = 'table' and name in ('tenants', 'tenant_audit_log', 'plans', 'plan_audit_log')"
      const { stdout } = await run(
        wrangler,
        ['d1', 'execute', 'tenants', '--local', '--json', '--command', query],
        {
          cwd: dir,
          env,
        },
      )
      const names = (JSON.parse(stdout) as { results: { name: string }[] }[])[0]!.results.map((r) => r.name)
      expect(names.sort()).toEqual(['plan_audit_log', 'plans', 'tenant_audit_log', 'tenants'])
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
      expect(await migrate(db)).toEqual(TAGS)
      expect(await database.current.tables()).toEqual(PACKAGE_TABLES)
      expect(await migrate(db)).toEqual([])
      const journal = await database.current.query(
        sql`select tag, hash from __tenant_migrations order by tag`,
      )
      const shipped = shippedMigrations(detectDriver(db))
      expect(journal).toEqual(shipped.map((m) => ({ tag: m.tag, hash: m.hash })))
      // Its own journal: an app's Drizzle migrations table is neither created nor read.
      expect(await database.current.tables()).not.toContain('__drizzle_migrations')
    })

    it('goes up, down and up again, and the store works after each up', async () => {
      const { db } = database.current
      await migrate(db)
      await new DrizzleConfigManager(db, { cache: false }).setTenantConfig({ id: 'before-down' })
      expect(await rollback(db, { steps: 'all' })).toEqual([...TAGS].reverse())
      expect(await database.current.tables()).toEqual(['__tenant_migrations'])
      await expect(new DrizzleConfigManager(db, { cache: false }).getTenantConfig('x')).rejects.toMatchObject(
        {
          code: 'tenant_backend_unavailable',
        },
      )
      expect(await rollback(db)).toEqual([])
      expect(await migrate(db)).toEqual(TAGS)
      const manager = new DrizzleConfigManager(db, { cache: false })
      // Down dropped the data with the tables.
      await expect(manager.getTenantConfig('before-down')).rejects.toMatchObject({ code: 'tenant_not_found' })
      await manager.setTenantConfig({ id: 'after-up', quota: { limits: [{ window: 'month', tokens: 1 }] } })
      expect((await manager.listTenants()).items.map((t) => t.id)).toEqual(['after-up'])
    })

    it('lets concurrent callers race: each migration is applied exactly once', async () => {
      const { db } = database.current
      const results = await Promise.all([migrate(db), migrate(db), migrate(db)])
      expect(results.flat().sort()).toEqual(TAGS)
      expect(await database.current.query(sql`select tag from __tenant_migrations order by tag`)).toEqual(
        TAGS.map((tag) => ({ tag })),
      )
    })

    it('applies in order, rolls back newest first, and `all` empties the journal', async () => {
      const { db } = database.current
      const info = detectDriver(db)
      const list = [
        ...shippedMigrations(info),
        extra('0099_extra', ['create table extra_table (a integer)', 'insert into extra_table values (1)']),
      ]
      expect(await applyMigrations(db, info, list)).toEqual([...TAGS, '0099_extra'])
      expect(await revertMigrations(db, info, list)).toEqual(['0099_extra'])
      expect(await database.current.tables()).toEqual(PACKAGE_TABLES)
      expect(await applyMigrations(db, info, list)).toEqual(['0099_extra'])
      expect(await revertMigrations(db, info, list, { steps: 'all' })).toEqual([
        '0099_extra',
        ...[...TAGS].reverse(),
      ])
      expect(await database.current.tables()).toEqual(['__tenant_migrations'])
    })

    it('rolls a failing migration back entirely, journal row included', async () => {
      const { db } = database.current
      const info = detectDriver(db)
      await migrate(db)
      const broken = extra('0099_broken', [
        'create table extra_table (a integer)',
        'select * from no_such_table',
      ])
      const error = await applyMigrations(db, info, [...shippedMigrations(info), broken]).catch(
        (e: unknown) => e,
      )
      expect(isTenantError(error) && error.code).toBe('tenant_backend_unavailable')
      expect((error as Error).message).toContain('0099_broken')
      // The SQL and the driver's text (which quotes it, or names its tables) stay in the cause.
      expect((error as Error).message).not.toMatch(/no_such_table|extra_table|Failed query|insert into/i)
      expect((error as Error).cause).toBeDefined()
      expect(await database.current.tables()).toEqual(PACKAGE_TABLES)
      expect(await database.current.query(sql`select tag from __tenant_migrations order by tag`)).toEqual(
        TAGS.map((tag) => ({ tag })),
      )
    })

    it('refuses to roll back migrations it does not ship', async () => {
      const { db } = database.current
      const info = detectDriver(db)
      const list = [...shippedMigrations(info), extra('0099_extra', ['create table extra_table (a integer)'])]
      await applyMigrations(db, info, list)
      await expect(rollback(db)).rejects.toThrow(/0099_extra/)
      expect(await database.current.tables()).toContain('extra_table')
      expect(await revertMigrations(db, info, list, { steps: 2 })).toEqual([
        '0099_extra',
        '0002_subjects_concurrency',
      ])
    })

    it('keeps its journal in the table it is told to', async () => {
      const { db } = database.current
      expect(await migrate(db, { migrationsTable: 'custom_journal' })).toEqual(TAGS)
      expect(await database.current.query(sql`select tag from custom_journal order by tag`)).toEqual(
        TAGS.map((tag) => ({ tag })),
      )
      expect(await rollback(db, { migrationsTable: 'custom_journal', steps: 'all' })).toEqual(
        [...TAGS].reverse(),
      )
    })

    it('upgrades a database of 0000_init in place: tenants and history kept, plans usable, and back', async () => {
      const { db } = database.current
      const info = detectDriver(db)
      const [init] = shippedMigrations(info)
      expect(await applyMigrations(db, info, [init!])).toEqual(['0000_init'])
      // Rows as a 1.1.0 store wrote them: no plan column, audit snapshots without `plan`.
      const ts = (ms: number) => (info.dialect === 'pg' ? sql`to_timestamp(${ms / 1000})` : sql`${ms}`)
      const snapshot = JSON.stringify({
        id: 'acme',
        status: 'active',
        quota: { limits: [{ window: 'day', requests: 5 }] },
        rateLimit: null,
        policy: { allowedModels: [], allowedTools: [], allowedMethods: [], allowedPaths: [] },
        metadata: {},
        createdAt: 1_000,
        updatedAt: 1_000,
      })
      await database.current.query(
        sql`insert into tenants (id, quota_requests_per_day, created_at, updated_at) values ('acme', 5, ${ts(1_000)}, ${ts(1_000)})`,
      )
      await database.current.query(
        sql`insert into tenant_audit_log (tenant_id, actor, action, before, after, at) values ('acme', 'old', 'tenant.create', null, ${snapshot}, ${ts(1_000)})`,
      )

      expect(await migrate(db)).toEqual(['0001_plans', '0002_subjects_concurrency'])
      expect(await database.current.tables()).toEqual(PACKAGE_TABLES)
      const configs = new DrizzleConfigManager(db, { cache: false })
      const acme = await configs.getTenantConfig('acme')
      expect(acme).toMatchObject({
        id: 'acme',
        plan: null,
        quota: { limits: [{ window: 'day', requests: 5 }] },
      })
      const [record] = (await new DrizzleAuditLog(db).list('acme')).items
      expect(record).toMatchObject({
        actor: 'old',
        action: 'tenant.create',
        after: { id: 'acme', plan: null },
      })

      const plans = new DrizzlePlanStore(db, { cache: false })
      await plans.setPlan({ id: 'pro', quota: { limits: [{ window: 'day', tokens: 100 }] } })
      await configs.setTenantConfig({ ...toTenantConfigInput(acme), plan: 'pro' })
      expect(await withPlans(configs, plans).quotaConfig('acme')).toEqual({
        limits: [{ window: 'day', requests: 5, tokens: 100 }],
      })

      // And down again: the tenant keeps its own config, the plans are gone.
      expect(await rollback(db, { steps: 2 })).toEqual(['0002_subjects_concurrency', '0001_plans'])
      expect(await database.current.tables()).toEqual(['__tenant_migrations', 'tenant_audit_log', 'tenants'])
      const rows = await database.current.query(sql`select id, quota_requests_per_day from tenants`)
      expect(rows.map((r) => [r.id, Number(r.quota_requests_per_day)])).toEqual([['acme', 5]])
      expect(await migrate(db)).toEqual(['0001_plans', '0002_subjects_concurrency'])
      expect((await configs.getTenantConfig('acme')).plan).toBeNull()
    })

    it('checks its options', async () => {
      const { db } = database.current
      await expect(rollback(db, { steps: -1 })).rejects.toThrow(/rollback\.steps: must be a whole number/)
      await expect(rollback(db, { steps: 1.5 })).rejects.toBeInstanceOf(InvalidTenantConfigError)
      await expect(migrate(db, { migrationsTable: '' })).rejects.toThrow(/migrationsTable: must be a name/)
      // A journal in the place of one of the package's tables left the database half-migrated.
      for (const name of ['plans', 'tenants', 'Tenant_Audit_Log', 'plan_audit_log']) {
        await expect(migrate(db, { migrationsTable: name })).rejects.toThrow(/migrationsTable: must not be/)
      }
      expect(await database.current.tables()).toEqual([])
      await expect(migrate({} as never)).rejects.toBeInstanceOf(InvalidTenantConfigError)
    })
  },
  { migrate: false, kinds: withD1 },
)
