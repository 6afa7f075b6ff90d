import { fileURLToPath } from 'node:url'
import { migrate as migrateToolkit } from '@tenant/drizzle'
import type { LibSQLDatabase } from 'drizzle-orm/libsql'
import { migrate as migrateLibsql } from 'drizzle-orm/libsql/migrator'
import type { PostgresJsDatabase } from 'drizzle-orm/postgres-js'
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator'

/** Drizzle's journal of the app's own migrations, apart from the toolkit's `__tenant_migrations`. */
export const APP_MIGRATIONS_TABLE = '__app_migrations'

const folder = (dialect: 'sqlite' | 'pg') =>
  fileURLToPath(new URL(`../../drizzle/${dialect}`, import.meta.url))

/**
 * Brings a database up to date: first the toolkit's tables (`tenants`, `tenant_audit_log`) with
 * `migrate(db)` from `@tenant/drizzle`, then the app's own migrations from `drizzle/sqlite` or
 * `drizzle/pg` (the resources table; on Postgres also its row-level-security policy) with
 * Drizzle's migrator. Both are no-ops on an up-to-date database, so every start may call it.
 * Run it as the owner of the tables (on Postgres, not as the application role).
 *
 * Resolves the toolkit migrations it applied.
 *
 * @example
 * ```ts
 * await migrateDatabase({ dialect: 'sqlite', db: drizzle({ connection: { url: 'file:data/app.db' } }) })
 * ```
 */
export async function migrateDatabase(
  target:
    | { dialect: 'sqlite'; db: LibSQLDatabase }
    | { dialect: 'pg'; db: PostgresJsDatabase; schema: string },
): Promise<string[]> {
  const applied = await migrateToolkit(target.db)
  if (target.dialect === 'sqlite') {
    await migrateLibsql(target.db, {
      migrationsFolder: folder('sqlite'),
      migrationsTable: APP_MIGRATIONS_TABLE,
    })
  } else {
    // The journal lives next to the tables, so each schema (each test run) has its own.
    await migratePostgres(target.db, {
      migrationsFolder: folder('pg'),
      migrationsTable: APP_MIGRATIONS_TABLE,
      migrationsSchema: target.schema,
    })
  }
  return applied
}
