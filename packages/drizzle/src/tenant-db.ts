import { isThenable, TenantError, validateTenantId } from '@tenant/core'
import { type Column, getTableName, is, isSQLWrapper, Placeholder, SQL, sql, Table } from 'drizzle-orm'
import { type AnyDb, detectDriver, queryRows, runQuery, type TenantDatabase } from './driver'
import { checkColumnName, scopeSql } from './raw-sql'
import { type SqlDialect, UnsafeQueryError } from './raw-sql-ast'
import {
  type ScopeContext,
  scopedCount,
  scopedDelete,
  scopedInsert,
  scopedSelect,
  scopedUpdate,
  sharedKey,
  tenantColumn,
  tenantColumnForm,
} from './scoped-builders'
import { checkSqliteValues, dataParameter } from './scoped-seal'
import type { TenantIdForm } from './tenant-id-form'
import { endingWith, guardSession, type TransactionScope } from './transaction-guard'

/** Where the current tenant comes from: a fixed id, or a function such as `currentTenantId`. */
export type TenantIdSource = string | (() => string | undefined)

/** Options of {@link TenantDB} and {@link scoped}. */
export interface TenantDBOptions {
  /**
   * SQL name of the tenant column, the same in every tenant table (the Drizzle column is found by
   * this name, so `tenantId: text('tenant_id')` matches).
   * @default 'tenant_id'
   */
  column?: string
  /**
   * Tables without a tenant column that every tenant may read (plans, currencies): Drizzle tables
   * for the scoped API, or `'table'` / `'schema.table'` names for raw SQL. They are never filtered
   * and never written through a TenantDB. Any other table without the column is refused. In raw
   * SQL a name matches the table written the same way only: `'plans'` (or the Drizzle table
   * `plans` of the default schema) is the unqualified `plans`, not `archive.plans` or `main.plans`.
   * @default []
   */
  shared?: readonly (Table | string)[]
  /**
   * Tables that have the tenant column, for the raw-SQL proof of `query`/`exec`: inside a
   * subquery an unqualified `tenant_id` is accepted only over one of these (see
   * `RawSqlOptions.tenantTables`). Added to the tables with the column in the schema given to
   * `drizzle({ schema })`.
   * @default the schema's tables that have the column
   */
  tenantTables?: readonly (Table | string)[]
  /**
   * Functions raw SQL may call besides the built-in allow-list (see
   * `RawSqlOptions.allowedFunctions`).
   * @default []
   */
  allowedFunctions?: readonly string[]
}

/** The Drizzle methods a {@link TenantDB} scopes; their types are Drizzle's own. */
type ScopedMethodName =
  | 'select'
  | 'selectDistinct'
  | 'selectDistinctOn'
  | 'insert'
  | 'update'
  | 'delete'
  | '$count'

/** The transaction object Drizzle passes to `TDb.transaction`'s callback. */
export type TransactionOf<TDb> = TDb extends {
  /** Drizzle's `db.transaction(fn, config?)`. */
  transaction(fn: (tx: infer X) => any, ...rest: any[]): any
}
  ? X
  : never

/** What {@link TenantDB.exec} reports. */
export interface ExecResult {
  /** Rows inserted, updated or deleted, as reported by the driver (0 when it does not say). */
  rowsAffected: number
}

function tenantRequired(): TenantError {
  return new TenantError(
    'tenant_required',
    'no tenant for this scoped query: pass a tenant id, or a tenantId() source that returns one (for example currentTenantId inside a tenant request)',
  )
}

function readSource(source: TenantIdSource): string {
  const id = typeof source === 'function' ? source() : source
  if (id === undefined || id === null || id === '') throw tenantRequired()
  return validateTenantId(id)
}

function snakeCase(name: string): string {
  return name.replace(/(?<=[a-z0-9])([A-Z])/g, '_$1').toLowerCase()
}

/**
 * A tenant's view of a Drizzle database: every query built through it is filtered by the tenant,
 * every inserted row is tagged with it, an update can never change the tenant column, joins stay
 * scoped, and raw SQL goes through {@link addTenantFilter}'s parser-based scoping and proof. Its
 * builders expose Drizzle's public API only, so the typed API gives no way back to the unscoped
 * database: admin work uses {@link unscoped}.
 *
 * Without a tenant (a source that returns `undefined`) every query throws `TenantError`
 * (`tenant_required`, 401) before touching the database.
 *
 * Raw SQL holds the tenant id to the builders' rule for the tables it reads or writes: for a
 * Drizzle table it knows (the schema given to `drizzle({ schema })`, or `tenantTables`) by its
 * tenant column's type; for any other table, as for a column of unknown type (see
 * {@link addTenantFilter}).
 *
 * Join rule: `innerJoin`/`leftJoin` put `joined.tenant_id = <tenant>` into the ON clause of every
 * joined tenant table; `rightJoin`, `fullJoin`, `crossJoin` and lateral joins are refused, and so
 * is joining a table that has no tenant column unless it is listed in `shared`.
 *
 * @example
 * ```ts
 * const tdb = new TenantDB(db, { tenantId: 'acme' })
 * await tdb.insert(notes).values({ id: 'n1', title: 'hello' })        // tenant_id = 'acme'
 * const mine = await tdb.select().from(notes).where(eq(notes.id, 'n1')) // ... AND tenant_id = 'acme'
 * const rows = await tdb.query('SELECT title FROM notes WHERE id = ?', ['n1'])
 * ```
 */
export class TenantDB<TDb extends TenantDatabase = TenantDatabase> {
  readonly #db: TDb
  readonly #source: TenantIdSource
  readonly #column: string
  readonly #sharedOption: readonly (Table | string)[]
  readonly #shared: ReadonlySet<string>
  readonly #sharedNames: string[]
  readonly #tenantTableOption: readonly (Table | string)[]
  readonly #tenantTables: string[]
  /** The Drizzle tables with the tenant column, by the key raw SQL names them with (`null`: two tables). */
  readonly #rawTables: ReadonlyMap<string, Table | null>
  readonly #allowedFunctions: readonly string[]
  readonly #dialect: SqlDialect

  /** `db.select(...)`, scoped. */
  declare readonly select: TDb['select']
  /** `db.selectDistinct(...)`, scoped. */
  declare readonly selectDistinct: TDb['selectDistinct']
  /** `db.selectDistinctOn(...)` (Postgres only), scoped. */
  declare readonly selectDistinctOn: TDb extends { selectDistinctOn: infer M } ? M : never
  /** `db.insert(table)`, scoped: every row is tagged with the tenant. */
  declare readonly insert: TDb['insert']
  /** `db.update(table)`, scoped: cannot change the tenant column. */
  declare readonly update: TDb['update']
  /** `db.delete(table)`, scoped. */
  declare readonly delete: TDb['delete']
  /** `db.$count(table, filters)`, scoped. */
  declare readonly $count: TDb['$count']

  constructor(db: TDb, options: TenantDBOptions & { tenantId: TenantIdSource }) {
    const info = detectDriver(db)
    const source: unknown = options?.tenantId
    if (source === undefined || source === null || source === '') throw tenantRequired()
    // Anything but a function is an id, and validateTenantId refuses one that is not a string.
    if (typeof source !== 'function') validateTenantId(source)
    this.#db = db
    this.#source = options.tenantId
    this.#column = checkColumnName(options.column ?? 'tenant_id')
    this.#dialect = info.dialect === 'pg' ? 'postgresql' : 'sqlite'
    if (options.shared !== undefined && !Array.isArray(options.shared)) {
      throw new TenantError(
        'tenant_invalid_config',
        'shared must be an array of Drizzle tables or table names',
      )
    }
    if (options.tenantTables !== undefined && !Array.isArray(options.tenantTables)) {
      throw new TenantError(
        'tenant_invalid_config',
        'tenantTables must be an array of Drizzle tables or table names',
      )
    }
    this.#sharedOption = [...(options.shared ?? [])]
    const shared = new Set<string>()
    const names: string[] = []
    for (const entry of this.#sharedOption) {
      if (is(entry, Table)) {
        shared.add(sharedKey(entry))
        const name = rawTableName(entry, this.#dialect)
        if (name !== undefined) names.push(name)
      } else if (typeof entry === 'string') {
        names.push(entry)
        const [a, b] = entry.split('.')
        // Drizzle tables in the default schema have no schema name; Postgres calls it public.
        if (b === undefined) shared.add(`.${a}`).add(`public.${a}`)
        else shared.add(`${a}.${b}`).add(a === 'public' ? `.${b}` : `${a}.${b}`)
      } else {
        throw new TenantError('tenant_invalid_config', 'shared entries must be Drizzle tables or table names')
      }
    }
    this.#shared = shared
    this.#sharedNames = names
    this.#tenantTableOption = [...(options.tenantTables ?? [])]
    const columnOf = {
      column: this.#column,
      columnName: (c: Column) => this.#columnName(c),
      dialect: this.#dialect,
    }
    const hasColumn = (table: Table): boolean => {
      try {
        return tenantColumn(table, columnOf) !== undefined
      } catch (error) {
        // Two properties over the column: it has the column. Statements over it are refused when
        // they are built (the builders) or checked (raw SQL, through #rawTables), not here.
        if (error instanceof UnsafeQueryError) return true
        throw error
      }
    }
    const { names: tenantNames, tables } = tenantTableNames(
      db,
      this.#tenantTableOption,
      hasColumn,
      this.#dialect,
    )
    this.#tenantTables = tenantNames
    this.#rawTables = tables
    if (options.allowedFunctions !== undefined && !Array.isArray(options.allowedFunctions)) {
      throw new TenantError('tenant_invalid_config', 'allowedFunctions must be an array of function names')
    }
    this.#allowedFunctions = [...(options.allowedFunctions ?? [])]
    const anyDb = db as AnyDb
    const define = (name: ScopedMethodName, fn: (...args: any[]) => unknown) => {
      if (typeof anyDb[name] === 'function')
        Object.defineProperty(this, name, { value: fn, enumerable: true })
    }
    define('select', (...args) => scopedSelect(anyDb, 'select', args, this.#context()))
    define('selectDistinct', (...args) => scopedSelect(anyDb, 'selectDistinct', args, this.#context()))
    define('selectDistinctOn', (...args) => scopedSelect(anyDb, 'selectDistinctOn', args, this.#context()))
    define('insert', (table) => scopedInsert(anyDb, table, this.#context()))
    define('update', (table) => scopedUpdate(anyDb, table, this.#context()))
    define('delete', (table) => scopedDelete(anyDb, table, this.#context()))
    define('$count', (source, filters) => scopedCount(anyDb, source, filters, this.#context()))
  }

  /** The current tenant; throws `TenantError` (`tenant_required`) when there is none. */
  get tenantId(): string {
    return readSource(this.#source)
  }

  /** SQL name of the tenant column. */
  get column(): string {
    return this.#column
  }

  #context(): ScopeContext {
    return {
      tenantId: this.tenantId,
      column: this.#column,
      shared: this.#shared,
      columnName: (column: Column) => this.#columnName(column),
      dialect: this.#dialect,
      render: (query: SQL) => (this.#db as AnyDb).dialect.sqlToQuery(query),
    }
  }

  /** A column's SQL name under the database's casing rules. */
  #columnName(column: Column): string {
    const dialect = (this.#db as AnyDb).dialect
    if (typeof dialect?.casing?.getColumnCasing === 'function') return dialect.casing.getColumnCasing(column)
    return column.keyAsName ? snakeCase(column.name) : column.name
  }

  /**
   * How the tenant column of the Drizzle table raw SQL names `key` compares with an id, by the
   * builders' rule (and refused where they refuse); undefined for a table it does not know (or
   * knows twice), which then gets the rule for an unknown type.
   */
  #tenantIdForm(key: string): TenantIdForm | undefined {
    const table = this.#rawTables.get(key)
    if (table === undefined || table === null) return undefined
    return tenantColumnForm(table, {
      column: this.#column,
      columnName: (c) => this.#columnName(c),
      dialect: this.#dialect,
    })?.form
  }

  #scoped(statement: string, params: readonly unknown[]): { tenantId: string; query: SQL } {
    if (!Array.isArray(params)) throw new TenantError('tenant_invalid_config', 'params must be an array')
    const tenantId = this.tenantId
    const parts = scopeSql(
      statement,
      tenantId,
      this.#column,
      {
        dialect: this.#dialect,
        params,
        sharedTables: this.#sharedNames,
        tenantTables: this.#tenantTables,
        allowedFunctions: this.#allowedFunctions,
      },
      (key) => this.#tenantIdForm(key),
    )
    // bun:sqlite would read an object as named parameters, the tenant's place among them.
    if (parts.dialect === 'sqlite') checkSqliteValues(parts.values)
    const chunks: SQL[] = []
    parts.text.forEach((text, i) => {
      chunks.push(sql.raw(text))
      if (i < parts.values.length) {
        const value = parts.values[i]
        // Drizzle would splice an SQL object into the text instead of binding it: values only,
        // bound through an encoder that refuses one (an object made SQL-like by its prototype's
        // `constructor` passes isSQLWrapper, not Drizzle's own is()).
        if (isSQLWrapper(value) || is(value, Placeholder) || is(value, SQL)) {
          throw new UnsafeQueryError('raw SQL parameters must be values, not Drizzle SQL objects')
        }
        chunks.push(sql`${dataParameter(value)}`)
      }
    })
    return { tenantId, query: sql.join(chunks) }
  }

  /**
   * Runs one raw SELECT (or a write with RETURNING) scoped to the tenant and returns its rows.
   * Placeholders are the dialect's own: `?` for SQLite, `$1..$n` for Postgres. The statement is
   * parsed, filtered like {@link addTenantFilter}, proven scoped on exactly the text that runs,
   * and refused with an `UnsafeQueryError` (`tenant_unsafe_query`) otherwise.
   *
   * @example
   * ```ts
   * const rows = await tdb.query<{ title: string }>('SELECT title FROM notes WHERE done = ? OR pinned = ?', [0, 1])
   * ```
   */
  async query<R = Record<string, unknown>>(statement: string, params: readonly unknown[] = []): Promise<R[]> {
    const { tenantId, query } = this.#scoped(statement, params)
    const info = detectDriver(this.#db)
    return (await runQuery('raw tenant query', tenantId, () => queryRows(this.#db, info, query))) as R[]
  }

  /**
   * Runs one raw INSERT, UPDATE or DELETE scoped to the tenant (see {@link TenantDB.query}) and
   * reports the rows it changed.
   *
   * @example
   * ```ts
   * const { rowsAffected } = await tdb.exec('UPDATE notes SET done = 1 WHERE id = ?', ['n1'])
   * ```
   */
  async exec(statement: string, params: readonly unknown[] = []): Promise<ExecResult> {
    const { tenantId, query } = this.#scoped(statement, params)
    const anyDb = this.#db as AnyDb
    const result = await runQuery('raw tenant statement', tenantId, () =>
      this.#dialect === 'sqlite' ? anyDb.run(query) : anyDb.execute(query),
    )
    return { rowsAffected: rowsAffectedOf(result) }
  }

  /**
   * Runs `fn` in a database transaction with a TenantDB of the same tenant over the transaction.
   *
   * @example
   * ```ts
   * await tdb.transaction(async (tx) => {
   *   await tx.insert(notes).values({ id: 'n2', title: 'b' })
   *   await tx.update(counters).set({ notes: sql`${counters.notes} + 1` })
   * })
   * ```
   */
  transaction<R>(
    fn: (tx: TenantDB<TransactionOf<TDb> & TenantDatabase>) => R,
    config?: unknown,
  ): Promise<Awaited<R>> {
    const options = {
      tenantId: this.tenantId,
      column: this.#column,
      shared: this.#sharedOption,
      tenantTables: this.#tenantTableOption,
      allowedFunctions: this.#allowedFunctions,
    }
    let checked: Record<string, unknown> | undefined
    try {
      checked = transactionConfig(config, this.#dialect)
    } catch (error) {
      // A rejection, as for every other failure of the call, not a synchronous throw.
      return Promise.reject(error)
    }
    const db = this.#db as AnyDb
    const scope: TransactionScope = {
      tenantId: this.tenantId,
      call: `scoped(db, "${this.tenantId}").transaction()`,
      sessions: [],
    }
    // The sessions end after the commit or rollback, which some drivers send through them.
    const endSessions = () => {
      for (const session of scope.sessions) session.end()
    }
    let out: unknown
    try {
      // Not an async function: a synchronous driver (bun:sqlite) runs fn synchronously and commits
      // when it returns.
      out = db.transaction((tx: AnyDb) => {
        // A savepoint may share the session of the transaction around it, which must keep working.
        if (tx.session !== db.session) scope.sessions.push(guardSession(tx.session, scope))
        const handle = endingWith(tx, scope)
        let result: unknown
        try {
          result = fn(new TenantDB(handle.tx as TransactionOf<TDb> & TenantDatabase, options))
        } catch (error) {
          handle.end()
          throw error
        }
        if (!isThenable(result)) {
          handle.end()
          return result
        }
        return (result as Promise<unknown>).finally(handle.end)
      }, checked)
    } catch (error) {
      endSessions()
      return Promise.reject(error)
    }
    return Promise.resolve(out).finally(endSessions) as Promise<Awaited<R>>
  }
}

// What Drizzle's transaction options may be: it writes them into `set transaction` / `begin` as
// text, and postgres.js runs a text with several statements as it is.
const TRANSACTION_OPTIONS: Record<SqlDialect, Record<string, readonly unknown[]>> = {
  postgresql: {
    isolationLevel: ['read uncommitted', 'read committed', 'repeatable read', 'serializable'],
    accessMode: ['read only', 'read write'],
    deferrable: [true, false],
  },
  sqlite: { behavior: ['deferred', 'immediate', 'exclusive'] },
}

/**
 * `config` for Drizzle's `transaction()`, as a copy holding only the options of the dialect, each
 * one of its values; anything else is a `tenant_invalid_config` error (a value written into the
 * statement could run SQL of its own outside the scoped API).
 */
export function transactionConfig(config: unknown, dialect: SqlDialect): Record<string, unknown> | undefined {
  if (config === undefined) return undefined
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new TenantError('tenant_invalid_config', 'transaction options must be an object')
  }
  const allowed = TRANSACTION_OPTIONS[dialect]
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(config)) {
    if (value === undefined) continue
    const values = Object.hasOwn(allowed, key) ? allowed[key]! : undefined
    if (values === undefined || !values.includes(value)) {
      throw new TenantError(
        'tenant_invalid_config',
        `transaction option "${key}" must be one of ${values === undefined ? `no value (the options are ${Object.keys(allowed).join(', ')})` : values.map((v) => JSON.stringify(v)).join(', ')}`,
      )
    }
    out[key] = value
  }
  return out
}

/**
 * The name raw SQL uses for a Drizzle table: `name` for a table in the default schema (Drizzle
 * renders it unqualified), `schema.name` otherwise. Undefined on Postgres for a name with
 * capitals: Postgres folds unquoted names to lower case and the raw-SQL tools refuse capitals, so
 * a Drizzle table "Notes" must not be taken for `notes`.
 */
function rawTableName(table: Table, dialect: SqlDialect): string | undefined {
  const key = sharedKey(table)
  const name = key.startsWith('.') ? getTableName(table) : key
  return dialect === 'postgresql' && name !== name.toLowerCase() ? undefined : name
}

/**
 * For the raw-SQL proof: the names of the given tables and names and of the schema's tables that
 * `hasColumn`, and those Drizzle tables by the (lower-cased) name raw SQL uses for them; a name
 * two different tables claim maps to `null`, so neither one's column type is assumed.
 */
function tenantTableNames(
  db: TenantDatabase,
  given: readonly (Table | string)[],
  hasColumn: (table: Table) => boolean,
  dialect: SqlDialect,
): { names: string[]; tables: Map<string, Table | null> } {
  const fullSchema = (db as AnyDb)._?.fullSchema
  const fromSchema =
    typeof fullSchema === 'object' && fullSchema !== null
      ? Object.values(fullSchema).filter((t): t is Table => is(t, Table) && hasColumn(t))
      : []
  const names: string[] = []
  const tables = new Map<string, Table | null>()
  for (const entry of [...fromSchema, ...given]) {
    if (is(entry, Table)) {
      const name = rawTableName(entry, dialect)
      if (name === undefined) continue
      names.push(name)
      const key = name.toLowerCase()
      const known = tables.get(key)
      tables.set(key, known === undefined || known === entry ? entry : null)
    } else if (typeof entry === 'string') names.push(entry)
    else {
      throw new TenantError(
        'tenant_invalid_config',
        'tenantTables entries must be Drizzle tables or table names',
      )
    }
  }
  return { names, tables }
}

function rowsAffectedOf(result: unknown): number {
  if (result === null || typeof result !== 'object') return 0
  const r = result as Record<string, any>
  // libSQL: rowsAffected; PGlite: affectedRows; postgres.js: count; node-postgres: rowCount;
  // bun:sqlite / better-sqlite3: changes; D1: meta.changes.
  for (const value of [r.rowsAffected, r.affectedRows, r.count, r.rowCount, r.changes, r.meta?.changes]) {
    if (typeof value === 'number') return value
    if (typeof value === 'bigint') return Number(value)
  }
  return 0
}
