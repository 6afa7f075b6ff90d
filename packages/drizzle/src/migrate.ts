import { invalidOption, TenantBackendError } from '@tenant/core'
import { eq, getTableName, type SQL, sql } from 'drizzle-orm'
import { bigint, pgTable, text as pgText } from 'drizzle-orm/pg-core'
import { integer, sqliteTable, text } from 'drizzle-orm/sqlite-core'
import { type AnyDb, type DriverInfo, detectDriver, runStatements, type TenantDatabase } from './driver'
import { migrations as pgMigrations } from './pg/migrations'
import { planAuditLog, plans, tenantAuditLog, tenants } from './pg/schema'
import { migrations as sqliteMigrations } from './sqlite/migrations'

/** One migration shipped with the package: drizzle-kit's up statements and the hand-written down. */
export interface ShippedMigration {
  /** drizzle-kit's tag, e.g. `0000_init`; also the key in the migrations table. */
  tag: string
  /** SHA-256 (hex) of the up file, recorded when applied. */
  hash: string
  up: readonly string[]
  down: readonly string[]
}

/** Options of {@link migrate}. */
export interface MigrateOptions {
  /**
   * The table recording which of this package's migrations are applied. Separate from Drizzle's
   * `__drizzle_migrations`, so the app's own migrations and ours never interleave in one journal.
   * @default '__tenant_migrations'
   */
  migrationsTable?: string
}

/** Options of {@link rollback}. */
export interface RollbackOptions extends MigrateOptions {
  /**
   * How many applied migrations to revert, newest first, or `'all'`.
   * @default 1
   */
  steps?: number | 'all'
}

const DEFAULT_TABLE = '__tenant_migrations'
// The tables the migrations create (the same names on both dialects).
const OWN_TABLES = new Set<string>([plans, tenants, tenantAuditLog, planAuditLog].map((t) => getTableName(t)))

/**
 * Applies this package's migrations that the database does not have yet (the `tenants` and
 * `tenant_audit_log` tables), each in its own transaction (a `db.batch` on libSQL and D1) together
 * with its row in the migrations table. Safe to call on every start and from several processes at
 * once: a migration another process applied first is skipped (on a SQLite file, a process that
 * finds the file locked fails with `TenantBackendError`; retry it). The SQL is bundled with the code,
 * so it works on Workers and from an installed package alike. On Postgres the tables go into the
 * first schema of the connection's `search_path`.
 *
 * Resolves the tags it applied (empty when the database was up to date).
 *
 * @example
 * ```ts
 * import { drizzle } from 'drizzle-orm/libsql'
 * import { migrate, DrizzleConfigManager } from '@tenant/drizzle'
 * const db = drizzle({ connection: { url: 'file:tenants.db' } })
 * await migrate(db)
 * const configs = new DrizzleConfigManager(db)
 * ```
 */
export async function migrate(db: TenantDatabase, options: MigrateOptions = {}): Promise<string[]> {
  const info = detectDriver(db)
  return typedFailure('migrate', () => applyMigrations(db, info, shippedMigrations(info), options))
}

// Typed like every other store failure: reading or creating the journal can fail raw (on a SQLite
// file another process holds locked, SQLITE_BUSY: SQLite does not wait by itself), and a driver's
// message can carry SQL, which stays in `cause`.
async function typedFailure<T>(what: 'migrate' | 'rollback', run: () => Promise<T>): Promise<T> {
  try {
    return await run()
  } catch (error) {
    if (
      error instanceof TenantBackendError ||
      (error as { code?: unknown })?.code === 'tenant_invalid_config'
    ) {
      throw error
    }
    throw new TenantBackendError(`${what} failed (the database's error is the cause)`, { cause: error })
  }
}

/**
 * Reverts the newest applied migrations of this package (one by default) with their down scripts,
 * each in its own transaction. Dropping the tables deletes every tenant and audit record: this is
 * for tests and for uninstalling. Resolves the tags it reverted, newest first.
 *
 * @example
 * ```ts
 * await rollback(db, { steps: 'all' }) // back to an empty database
 * ```
 */
export async function rollback(db: TenantDatabase, options: RollbackOptions = {}): Promise<string[]> {
  const info = detectDriver(db)
  return typedFailure('rollback', () => revertMigrations(db, info, shippedMigrations(info), options))
}

/** The migrations this package ships for the database's dialect. */
export function shippedMigrations(info: Pick<DriverInfo, 'dialect'>): readonly ShippedMigration[] {
  return info.dialect === 'pg' ? pgMigrations : sqliteMigrations
}

/** {@link migrate} over an explicit migration list (tests use it with more than one migration). */
export async function applyMigrations(
  db: TenantDatabase,
  info: DriverInfo,
  migrations: readonly ShippedMigration[],
  options: MigrateOptions = {},
): Promise<string[]> {
  const journal = await openJournal(db, info, options)
  const applied = new Set(await appliedTags(db, journal))
  const done: string[] = []
  for (const migration of migrations) {
    if (applied.has(migration.tag)) continue
    const record = (q: AnyDb) =>
      q.insert(journal).values({ tag: migration.tag, hash: migration.hash, appliedAt: nowMs(info) })
    try {
      // The journal row goes first: if another process is applying the same migration, its
      // primary key stops this transaction before any DDL runs.
      await runStatements(db, info, [record, ...migration.up.map((s) => sql.raw(s))])
    } catch (error) {
      if ((await appliedTags(db, journal)).includes(migration.tag)) continue
      throw new TenantBackendError(
        `migration ${migration.tag} failed and was rolled back (the database's error is the cause)`,
        { cause: error },
      )
    }
    done.push(migration.tag)
  }
  return done
}

/** {@link rollback} over an explicit migration list. */
export async function revertMigrations(
  db: TenantDatabase,
  info: DriverInfo,
  migrations: readonly ShippedMigration[],
  options: RollbackOptions = {},
): Promise<string[]> {
  const steps = options.steps ?? 1
  if (steps !== 'all' && !(Number.isInteger(steps) && steps >= 0)) {
    throw invalidOption('rollback.steps', `must be a whole number >= 0 or 'all', got ${String(steps)}`)
  }
  const journal = await openJournal(db, info, options)
  const order = new Map(migrations.map((m, i) => [m.tag, i]))
  const applied = await appliedTags(db, journal)
  const unknown = applied.filter((tag) => !order.has(tag))
  if (unknown.length > 0) {
    throw new TenantBackendError(
      `cannot roll back: the database has migrations this version of @tenant/drizzle does not ship ` +
        `(${unknown.join(', ')}); roll back with the version that applied them`,
    )
  }
  const newestFirst = applied.sort((a, b) => order.get(b)! - order.get(a)!)
  const reverted: string[] = []
  for (const tag of steps === 'all' ? newestFirst : newestFirst.slice(0, steps)) {
    const migration = migrations[order.get(tag)!]!
    const forget = (q: AnyDb) => q.delete(journal).where(eq(journal.tag, tag))
    try {
      await runStatements(db, info, [...migration.down.map((s) => sql.raw(s)), forget])
    } catch (error) {
      throw new TenantBackendError(
        `rollback of ${tag} failed and was undone (the database's error is the cause)`,
        {
          cause: error,
        },
      )
    }
    reverted.push(tag)
  }
  return reverted
}

/** Checks the journal's name, creates the table if needed, and returns it as a Drizzle table. */
async function openJournal(db: TenantDatabase, info: DriverInfo, options: MigrateOptions) {
  const table = options.migrationsTable ?? DEFAULT_TABLE
  if (typeof table !== 'string' || table.length === 0 || table.length > 63) {
    throw invalidOption('migrationsTable', 'must be a name of 1 to 63 characters')
  }
  // The journal would take the place of a table the migrations create, and the database would be
  // left half-migrated. SQLite's table names ignore case.
  if (OWN_TABLES.has(table.toLowerCase())) {
    throw invalidOption('migrationsTable', `must not be "${table}", a table of @tenant/drizzle's own`)
  }
  await ensureTable(db, info, table)
  return journalTable(info, table)
}

async function ensureTable(db: TenantDatabase, info: DriverInfo, table: string): Promise<void> {
  const stamp = info.dialect === 'pg' ? sql`bigint` : sql`integer`
  const create = sql`create table if not exists ${sql.identifier(table)} (tag text primary key not null, hash text not null, applied_at ${stamp} not null)`
  // Postgres' IF NOT EXISTS is not safe against a concurrent CREATE (both pass the check, one
  // fails on the catalog's unique index); a transaction-scoped advisory lock serialises them.
  // SQLite takes a database-wide write lock for DDL anyway.
  const statements =
    info.dialect === 'pg'
      ? [sql`select pg_advisory_xact_lock(hashtext(${`@tenant/drizzle:${table}`}))`, create]
      : [create]
  await runStatements(db, info, statements)
}

// A Drizzle table for the journal under the name chosen, so that its writes are query builders
// (D1's batch binds parameters only for those).
function journalTable(info: DriverInfo, name: string) {
  return info.dialect === 'pg'
    ? pgTable(name, {
        tag: pgText('tag').primaryKey(),
        hash: pgText('hash').notNull(),
        appliedAt: bigint('applied_at', { mode: 'number' }).notNull(),
      })
    : sqliteTable(name, {
        tag: text('tag').primaryKey(),
        hash: text('hash').notNull(),
        appliedAt: integer('applied_at').notNull(),
      })
}

async function appliedTags(db: TenantDatabase, journal: ReturnType<typeof journalTable>): Promise<string[]> {
  const rows: { tag: string }[] = await (db as AnyDb).select({ tag: journal.tag }).from(journal)
  return rows.map((row) => row.tag)
}

// The database's clock, not the app's: the journal records when the schema changed on the server.
function nowMs(info: DriverInfo): SQL {
  return info.dialect === 'pg'
    ? sql`(extract(epoch from clock_timestamp()) * 1000)::bigint`
    : sql`cast((julianday('now') - 2440587.5) * 86400000 as integer)`
}
