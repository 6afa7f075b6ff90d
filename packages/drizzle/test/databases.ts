// Real databases for the @tenant/drizzle tests (no mocks): libSQL in memory and in a temp file,
// PGlite (Postgres compiled to WASM, in-process), Cloudflare D1 in workerd (Miniflare, see d1.ts)
// and, when TEST_DATABASE_URL is set, a real PostgreSQL server through postgres.js, in a schema of
// its own per database opened, dropped on close, so that parallel runs never see each other's rows.
//
// Under CI (process.env.CI set), a missing TEST_DATABASE_URL fails the Postgres suites instead of
// skipping them; an unreachable server fails them everywhere.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PGlite } from '@electric-sql/pglite'
import { type Client, createClient } from '@libsql/client'
import { type Logger, type SQL, sql } from 'drizzle-orm'
import { type DrizzleD1Database, drizzle as drizzleD1 } from 'drizzle-orm/d1'
import { drizzle as drizzleLibsql, type LibSQLDatabase } from 'drizzle-orm/libsql'
import { drizzle as drizzlePglite, type PgliteDatabase } from 'drizzle-orm/pglite'
import { drizzle as drizzlePostgres, type PostgresJsDatabase } from 'drizzle-orm/postgres-js'
import postgres from 'postgres'
import { afterAll, beforeAll, describe, it } from 'vitest'
import { type Dialect, detectDriver, queryRows } from '../src/driver'
import { migrate } from '../src/migrate'
import { startD1 } from './d1'

/** The database setups every store test runs against. */
export const databaseKinds = ['libsql-memory', 'libsql-file', 'pglite', 'postgres'] as const
/**
 * Also Cloudflare D1, run by workerd through Miniflare (the same engine as `wrangler dev`); not in
 * {@link databaseKinds} because booting workerd is slower, so suites opt in.
 */
export const withD1 = [...databaseKinds, 'd1'] as const
/** One of {@link withD1}. */
export type DatabaseKind = (typeof withD1)[number]

/** A Drizzle database of any kind the tests use. */
export type AnyTestDb = LibSQLDatabase | PgliteDatabase | PostgresJsDatabase | DrizzleD1Database

/** An open test database. */
export interface TestDatabase {
  kind: DatabaseKind
  dialect: Dialect
  db: AnyTestDb
  /** Statements run through `db` since it was opened (from Drizzle's logger). */
  readonly queries: number
  /** Deletes every row of the package's tables (after {@link migrate}). */
  reset(): Promise<void>
  /** Runs raw SQL (either dialect) and returns its rows keyed by column name. */
  query(statement: SQL): Promise<Record<string, unknown>[]>
  /** The tables in the database's own schema (Postgres) or file (SQLite), sorted. */
  tables(): Promise<string[]>
  /**
   * Makes the database fail for real from now on: closes the libSQL client or PGlite instance,
   * ends the postgres.js pool, or shuts workerd down (D1). Queries after this reject; `close()`
   * still cleans up.
   */
  fail(): Promise<void>
  /** Closes the database and removes what it created (temp file, Postgres schema). */
  close(): Promise<void>
  /** For `postgres`: the connection URL and the schema this database lives in. */
  postgres?: { url: string; schema: string; sql: postgres.Sql }
}

/** Options of {@link openDatabase}. */
export interface OpenDatabaseOptions {
  /** Apply the package's migrations after opening. @default true */
  migrate?: boolean
}

type Opened = Omit<TestDatabase, 'queries' | 'reset' | 'query' | 'tables'>

/** Why a kind cannot run here, or undefined when it can. */
export function unavailableReason(kind: DatabaseKind): string | undefined {
  if (kind === 'postgres' && !process.env.TEST_DATABASE_URL) return 'TEST_DATABASE_URL is not set'
  return undefined
}

function counter(): { logger: Logger; count: () => number } {
  let n = 0
  return {
    logger: {
      logQuery: () => {
        n += 1
      },
    },
    count: () => n,
  }
}

function randomName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 10)}`
}

/** Opens a fresh, empty database of `kind` (migrated unless told otherwise). */
export async function openDatabase(
  kind: DatabaseKind,
  options: OpenDatabaseOptions = {},
): Promise<TestDatabase> {
  const reason = unavailableReason(kind)
  if (reason) throw new Error(`cannot open a ${kind} database: ${reason}`)
  const { logger, count } = counter()
  let opened: Opened
  switch (kind) {
    case 'libsql-memory': {
      const client = createClient({ url: ':memory:' })
      opened = libsql(kind, client, logger, async () => {})
      break
    }
    case 'libsql-file': {
      const dir = mkdtempSync(join(tmpdir(), 'tenant-drizzle-'))
      const client = createClient({ url: `file:${join(dir, 'test.db')}` })
      opened = libsql(kind, client, logger, async () => rmSync(dir, { recursive: true, force: true }))
      break
    }
    case 'pglite': {
      const client = new PGlite()
      await client.waitReady
      const closeOnce = async () => {
        if (!client.closed) await client.close()
      }
      opened = {
        kind,
        dialect: 'pg',
        db: drizzlePglite({ client, logger }),
        fail: closeOnce,
        close: closeOnce,
      }
      break
    }
    case 'd1': {
      const { client, dispose } = await startD1()
      let disposed = false
      const disposeOnce = async () => {
        if (!disposed) {
          disposed = true
          await dispose()
        }
      }
      opened = {
        kind,
        dialect: 'sqlite',
        db: drizzleD1(client as never, { logger }),
        fail: disposeOnce,
        close: disposeOnce,
      }
      break
    }
    case 'postgres': {
      const url = process.env.TEST_DATABASE_URL!
      const schema = randomName('t')
      const admin = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 5 })
      try {
        await admin.unsafe(`create schema "${schema}"`)
      } catch (error) {
        await admin.end({ timeout: 1 })
        throw new Error(`PostgreSQL at TEST_DATABASE_URL is unreachable: ${String(error)}`, { cause: error })
      }
      const client = postgres(url, {
        max: 4,
        onnotice: () => {},
        connect_timeout: 5,
        connection: { search_path: schema },
      })
      let ended = false
      const endClient = async () => {
        if (!ended) {
          ended = true
          await client.end({ timeout: 1 })
        }
      }
      opened = {
        kind,
        dialect: 'pg',
        db: drizzlePostgres({ client, logger }),
        fail: endClient,
        close: async () => {
          await endClient()
          await admin.unsafe(`drop schema if exists "${schema}" cascade`)
          await admin.end({ timeout: 1 })
        },
        postgres: { url, schema, sql: client },
      }
      break
    }
  }
  const database: TestDatabase = {
    ...opened,
    get queries() {
      return count()
    },
    async reset() {
      if (opened.dialect === 'pg') {
        await database.query(sql`truncate tenants, plans, tenant_audit_log, plan_audit_log`)
      } else {
        // Tenants before the plans they reference.
        for (const table of ['tenants', 'plans', 'tenant_audit_log', 'plan_audit_log']) {
          await database.query(sql`delete from ${sql.identifier(table)}`)
        }
      }
    },
    query: (statement) => queryRows(opened.db, detectDriver(opened.db), statement),
    async tables() {
      const rows = await database.query(
        opened.dialect === 'pg'
          ? sql`select table_name as name from information_schema.tables where table_schema = current_schema()`
          : // D1 keeps its own bookkeeping tables (_cf_*) next to the app's.
            sql`select name from sqlite_master where type = 'table' and name not like 'sqlite_%' and name not like '_cf_%'`,
      )
      return rows.map((r) => String(r.name)).sort()
    },
  }
  if (options.migrate !== false) await migrate(database.db)
  return database
}

function libsql(kind: DatabaseKind, client: Client, logger: Logger, cleanup: () => Promise<void>): Opened {
  return {
    kind,
    dialect: 'sqlite',
    db: drizzleLibsql({ client, logger }),
    fail: async () => client.close(),
    close: async () => {
      client.close()
      await cleanup()
    },
  }
}

/** A database shared by the tests of one `describe` block; opened before them, closed after. */
export interface SharedDatabase {
  readonly kind: DatabaseKind
  /** The open database (only inside tests and hooks). */
  readonly current: TestDatabase
}

/**
 * Defines `body` once per database kind, each in its own `describe` titled `title [kind]`. Kinds
 * that cannot run here are skipped with the reason, except under CI, where they fail. For tests
 * that open (and break) databases of their own with {@link openDatabase}.
 */
export function describeEachKind(
  title: string,
  body: (kind: DatabaseKind) => void,
  kinds: readonly DatabaseKind[] = databaseKinds,
): void {
  for (const kind of kinds) {
    const reason = unavailableReason(kind)
    if (reason === undefined) {
      describe(`${title} [${kind}]`, () => body(kind))
    } else if (process.env.CI) {
      describe(`${title} [${kind}]`, () => {
        it('needs its database under CI', () => {
          throw new Error(`${kind} is required under CI: ${reason}`)
        })
      })
    } else {
      describe.skip(`${title} [${kind}] (skipped: ${reason})`, () => {
        it('needs its database', () => {})
      })
    }
  }
}

/** Options of {@link describeEachDatabase}. */
export interface DescribeEachDatabaseOptions {
  /** The kinds to run on. @default databaseKinds */
  kinds?: readonly DatabaseKind[]
  /** Apply the package's migrations when opening. @default true */
  migrate?: boolean
}

/**
 * Like {@link describeEachKind}, with one database (migrated unless `migrate: false`) opened for
 * the block before its tests and closed after them.
 *
 * @example
 * ```ts
 * describeEachDatabase('DrizzleConfigManager', (database) => {
 *   beforeEach(() => database.current.reset())
 *   it('stores', async () => { new DrizzleConfigManager(database.current.db) ... })
 * })
 * ```
 */
export function describeEachDatabase(
  title: string,
  body: (database: SharedDatabase) => void,
  options: DescribeEachDatabaseOptions = {},
): void {
  describeEachKind(
    title,
    (kind) => {
      let open: TestDatabase | undefined
      beforeAll(async () => {
        open = await openDatabase(kind, { migrate: options.migrate ?? true })
      })
      afterAll(async () => {
        await open?.close()
      })
      body({
        kind,
        get current() {
          if (!open) throw new Error(`the ${kind} database is only open inside tests and hooks`)
          return open
        },
      })
    },
    options.kinds,
  )
}
