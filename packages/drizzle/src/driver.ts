import { invalidOption, isTenantError, TenantBackendError } from '@tenant/core'
import { is, SQL } from 'drizzle-orm'
import { PgDatabase } from 'drizzle-orm/pg-core'
import { BaseSQLiteDatabase } from 'drizzle-orm/sqlite-core'

/**
 * A Drizzle database the stores accept: any SQLite-family database (libSQL, D1, bun:sqlite,
 * better-sqlite3, ...) or any PostgreSQL database (postgres.js, node-postgres, PGlite, ...).
 * The stores never open or close it.
 */
export type TenantDatabase = BaseSQLiteDatabase<'sync' | 'async', any, any, any> | PgDatabase<any, any, any>

/** The SQL dialect of a {@link TenantDatabase}. */
export type Dialect = 'sqlite' | 'pg'

/**
 * How a database runs several statements atomically:
 * - `pg`: an interactive transaction.
 * - `sqlite-batch`: `db.batch()` (libSQL, D1). Preferred over a transaction because D1 has no
 *   interactive transactions and a libSQL in-memory client has one connection, which an open
 *   transaction would hold against every other query.
 * - `sqlite-sync`: a synchronous transaction (bun:sqlite, better-sqlite3); its body must not await.
 * - `sqlite-async`: an interactive transaction (other async SQLite drivers).
 */
export type AtomicMode = 'pg' | 'sqlite-batch' | 'sqlite-sync' | 'sqlite-async'

/** What the stores know about a database after looking at it once. */
export interface DriverInfo {
  dialect: Dialect
  mode: AtomicMode
}

/**
 * Works out the dialect and the way to run statements atomically, from Drizzle's entity kinds
 * (robust across bundling, unlike `instanceof`). Throws `InvalidTenantConfigError` (issue path
 * `db`) for anything else, when the
 * store is constructed rather than on the first query.
 */
export function detectDriver(db: unknown): DriverInfo {
  if (is(db, PgDatabase)) return { dialect: 'pg', mode: 'pg' }
  if (is(db, BaseSQLiteDatabase)) {
    // `resultKind` is how Drizzle itself tells sync drivers from async ones.
    if ((db as unknown as { resultKind: string }).resultKind === 'sync')
      return { dialect: 'sqlite', mode: 'sqlite-sync' }
    if (typeof (db as { batch?: unknown }).batch === 'function')
      return { dialect: 'sqlite', mode: 'sqlite-batch' }
    return { dialect: 'sqlite', mode: 'sqlite-async' }
  }
  throw invalidOption(
    'db',
    'expected a Drizzle database: a SQLite-family one (libSQL, D1, bun:sqlite) or a PostgreSQL one ' +
      '(postgres.js, node-postgres, PGlite)',
  )
}

/**
 * A Drizzle database or transaction of either dialect, untyped. The stores build the same queries
 * for both dialects: Drizzle's SQLite and Postgres builders have the same surface for what they use
 * (select/insert/update/delete, onConflict*, returning), but their types do not unify, so the
 * query-building code talks to them through this type. Every query runs against all dialects in
 * the tests.
 */
export type AnyDb = any

/**
 * One statement of an atomic unit: raw SQL, or a query built on the database or transaction it is
 * given. Raw SQL must not carry parameters: Drizzle's D1 batch cannot bind them (it needs a
 * prepared statement, which only the query builders produce).
 */
export type Statement = SQL | ((q: AnyDb) => AnyDb)

/** Runs `statements` atomically, all or none, discarding their results. Used by the migrator. */
export async function runStatements(
  db: TenantDatabase,
  info: DriverInfo,
  statements: readonly Statement[],
): Promise<void> {
  const anyDb = db as AnyDb
  const raw = (q: AnyDb, statement: SQL) => (info.dialect === 'pg' ? q.execute(statement) : q.run(statement))
  switch (info.mode) {
    case 'pg':
    case 'sqlite-async':
      await anyDb.transaction(async (tx: AnyDb) => {
        for (const s of statements) await (is(s, SQL) ? raw(tx, s) : s(tx))
      })
      return
    case 'sqlite-batch':
      if (statements.length > 0)
        await anyDb.batch(statements.map((s) => (is(s, SQL) ? raw(anyDb, s) : s(anyDb))))
      return
    case 'sqlite-sync':
      // tx.run(sql) executes at once; a builder executes when run.
      anyDb.transaction((tx: AnyDb) => {
        for (const s of statements) {
          if (is(s, SQL)) tx.run(s)
          else s(tx).run()
        }
      })
      return
  }
}

/** Rows of a raw query, as plain objects keyed by column name. */
export async function queryRows(
  db: TenantDatabase,
  info: DriverInfo,
  query: SQL,
): Promise<Record<string, unknown>[]> {
  const anyDb = db as AnyDb
  if (info.dialect === 'sqlite') return await anyDb.all(query)
  const result = await anyDb.execute(query)
  // postgres.js returns the rows array itself; node-postgres and PGlite return `{ rows }`.
  return Array.isArray(result) ? result : result.rows
}

/**
 * A failure of the database as a `TenantBackendError` (TenantErrors pass through). The driver's
 * message, often the SQL and its parameters, stays in `cause`, out of the message that an HTTP
 * layer may show to a client.
 */
export function toBackendError(error: unknown, what: string, tenantId: string | undefined): Error {
  if (isTenantError(error)) return error
  return new TenantBackendError(
    tenantId === undefined ? `${what} failed` : `${what} failed for tenant "${tenantId}"`,
    { cause: error, ...(tenantId === undefined ? {} : { tenantId }) },
  )
}

/** Runs a query, turning a database failure into a `TenantBackendError` (see {@link toBackendError}). */
export async function runQuery<T>(
  what: string,
  tenantId: string | undefined,
  query: () => PromiseLike<T>,
): Promise<T> {
  try {
    return await query()
  } catch (error) {
    throw toBackendError(error, what, tenantId)
  }
}
