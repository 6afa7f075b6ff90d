import { mkdirSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createClient } from '@libsql/client'
import { checkTenantRls, type TenantDatabase } from '@tenant/drizzle'
import { sql } from 'drizzle-orm'
import { drizzle as drizzleLibsql } from 'drizzle-orm/libsql'
import { drizzle as drizzlePostgres, type PostgresJsDatabase } from 'drizzle-orm/postgres-js'
import postgres from 'postgres'
import type { Logger } from '../logger'
import type { ServerSettings } from '../settings'
import { migrateDatabase } from './migrate'

/** The app's database, migrated and ready. */
export interface OpenDatabase {
  dialect: 'sqlite' | 'pg'
  db: TenantDatabase
  /** For the start-up banner, without credentials: `libSQL file /abs/data/app.db`, `PostgreSQL ...`. */
  description: string
  close(): Promise<void>
}

/** The local path of a `file:` URL (relative ones against the working directory), else undefined. */
export function libsqlFilePath(url: string): string | undefined {
  if (!url.startsWith('file:')) return undefined
  if (url.startsWith('file://')) return fileURLToPath(url)
  return resolve(url.slice('file:'.length).split('?')[0]!)
}

/** A URL without its password, for logs. */
export function redact(url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return '(unparseable URL)'
  }
}

/**
 * Opens the database named by `DATABASE_URL` and migrates it: an embedded libSQL file by default
 * (its folder is created), a remote libSQL, or PostgreSQL. On PostgreSQL the migrations run on
 * `MIGRATION_DATABASE_URL` (the owner of the tables) when set, which then grants the app's role
 * what it needs; then the app's own connection is checked with `checkTenantRls`, and the start is
 * refused (or, with `RLS_CHECK=warn`, logged) when row-level security would not apply to it.
 *
 * @example
 * ```ts
 * const database = await openDatabase(parseSettings(serverSettingsSchema, process.env), jsonLogger())
 * const configs = new DrizzleConfigManager(database.db)
 * ```
 */
export async function openDatabase(settings: ServerSettings, logger: Logger): Promise<OpenDatabase> {
  const url = settings.DATABASE_URL
  if (!/^postgres(ql)?:/.test(url)) {
    const file = libsqlFilePath(url)
    if (file !== undefined) mkdirSync(dirname(file), { recursive: true })
    const client = createClient({
      url: file === undefined ? url : `file:${file}`,
      ...(settings.DATABASE_AUTH_TOKEN === undefined ? {} : { authToken: settings.DATABASE_AUTH_TOKEN }),
    })
    const db = drizzleLibsql({ client })
    try {
      const applied = await migrateDatabase({ dialect: 'sqlite', db })
      if (applied.length > 0) logger.info({ msg: 'database migrated', toolkit: applied })
    } catch (error) {
      client.close()
      throw error
    }
    return {
      dialect: 'sqlite',
      db,
      description: file === undefined ? `libSQL ${redact(url)}` : `libSQL file ${file}`,
      close: async () => client.close(),
    }
  }

  const schema = settings.DATABASE_SCHEMA
  const connection = (target: string, max: number) =>
    postgres(target, {
      max,
      onnotice: () => {},
      connect_timeout: 10,
      ...(schema === undefined ? {} : { connection: { search_path: schema } }),
    })
  const ownerUrl = settings.MIGRATION_DATABASE_URL ?? url
  const owner = connection(ownerUrl, 1)
  const client = connection(url, 10)
  const db = drizzlePostgres({ client })
  try {
    const ownerDb = drizzlePostgres({ client: owner })
    if (schema !== undefined) await owner.unsafe(`create schema if not exists "${schema}"`)
    const [{ current: targetSchema } = { current: 'public' }] = await owner<
      { current: string }[]
    >`select current_schema() as current`
    const applied = await migrateDatabase({ dialect: 'pg', db: ownerDb, schema: targetSchema })
    if (applied.length > 0) logger.info({ msg: 'database migrated', toolkit: applied })
    if (settings.MIGRATION_DATABASE_URL !== undefined) await grantAppRole(ownerDb, db, targetSchema)
    const report = await checkTenantRls(db, ['resources'])
    if (!report.ok) {
      const message = `row-level security would not protect the resources table for this connection: ${report.problems.join('; ')}`
      if (settings.RLS_CHECK === 'enforce') {
        throw new Error(
          `${message}. Connect DATABASE_URL as a role without SUPERUSER or BYPASSRLS and run the migrations ` +
            'as the owner with MIGRATION_DATABASE_URL (see README, "PostgreSQL roles"), or set RLS_CHECK=warn.',
        )
      }
      logger.warn({ msg: 'row-level security check failed', problems: report.problems })
    }
  } catch (error) {
    await Promise.all([client.end({ timeout: 1 }), owner.end({ timeout: 1 })])
    throw error
  }
  await owner.end({ timeout: 5 })
  return {
    dialect: 'pg',
    db,
    description: `PostgreSQL ${redact(url)}${schema === undefined ? '' : ` (schema ${schema})`}`,
    close: () => client.end({ timeout: 5 }),
  }
}

/**
 * What the application role may do, granted by the owner after migrating: read and write tenants,
 * plans and resources, append to (never rewrite) the audit logs. Idempotent.
 */
async function grantAppRole(
  owner: PostgresJsDatabase,
  app: PostgresJsDatabase,
  schema: string,
): Promise<void> {
  const [row] = await app.execute<{ role: string }>(sql`select current_user as role`)
  const role = sql.identifier(String(row!.role))
  const target = sql.identifier(schema)
  await owner.transaction(async (tx) => {
    await tx.execute(sql`grant usage on schema ${target} to ${role}`)
    await tx.execute(
      sql`grant select, insert, update, delete on ${target}.tenants, ${target}.plans, ${target}.resources to ${role}`,
    )
    await tx.execute(
      sql`grant select, insert on ${target}.tenant_audit_log, ${target}.plan_audit_log to ${role}`,
    )
  })
}
