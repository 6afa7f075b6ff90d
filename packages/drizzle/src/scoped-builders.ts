import { validateTenantId } from '@tenant/core'
import {
  Column,
  getTableColumns,
  is,
  isSQLWrapper,
  Placeholder,
  SQL,
  StringChunk,
  sql,
  Table,
} from 'drizzle-orm'
import { type SqlDialect, UnsafeQueryError } from './raw-sql-ast'
import { lexSql } from './raw-sql-lex'
import {
  checkSqliteValues,
  inspectData,
  internal,
  readOnly,
  register,
  SealedTraps,
  type SealNotes,
  scopedSql,
  scopedTenantOf,
  sealExpression,
  sealedCount,
  sealedPrepared,
  sealedSubquery,
  sealedTenantCondition,
  sealedValue,
  sealScoped,
} from './scoped-seal'
import { checkTenantIdForm, type TenantIdForm, tenantIdFormOf } from './tenant-id-form'

// Internal: the scoped query builders. Each is Drizzle's own builder behind a Proxy that
// (1) puts `tenant = id` into WHERE as soon as the table is known, and ANDs it with whatever the
//     caller passes to `.where()` later (Drizzle's `.where()` replaces, so the caller cannot drop it);
// (2) puts `joined.tenant = id` into the ON clause of every INNER/LEFT join and refuses the joins
//     that cannot be scoped that way (RIGHT, FULL, CROSS, LATERAL);
// (3) tags every inserted row and refuses to change the tenant column;
// (4) refuses expressions that embed a table, subquery or query builder that was not built through
//     a scoped database of the same tenant;
// (5) hands Drizzle sealed copies of what it checked, and hands out read-only subqueries, counts,
//     prepared statements and selections (./scoped-seal), so nothing changes after the check.
// The types users see are Drizzle's: the proxies behave exactly like the builders they wrap.

/** What a scoped statement needs: the tenant it is for and how to find tenant columns. */
export interface ScopeContext {
  tenantId: string
  /** SQL name of the tenant column. */
  column: string
  /** `schema.table` keys of the shared tables (readable, never filtered, never written). */
  shared: ReadonlySet<string>
  /** The database's casing rules, to compare SQL column names the way Drizzle renders them. */
  columnName: (column: Column) => string
  /** The database's SQL dialect, to read raw condition text by its rules. */
  dialect: SqlDialect
  /** What Drizzle renders for `query` on this database: its text (parameters as placeholders) and parameters. */
  render: (query: SQL) => { sql: string; params: unknown[] }
}

const TableSchema = Symbol.for('drizzle:Schema')
const TableOriginalName = Symbol.for('drizzle:OriginalName')
const TableName = Symbol.for('drizzle:Name')

/** `schema.table` of a Drizzle table (the original table for an alias). */
export function sharedKey(table: Table): string {
  const t = table as unknown as Record<symbol, string | undefined>
  return `${t[TableSchema] ?? ''}.${t[TableOriginalName] ?? t[TableName] ?? ''}`
}

function displayName(table: Table): string {
  return String((table as unknown as Record<symbol, string | undefined>)[TableName])
}

/**
 * A test of whether a name is the tenant column `column` to the database: SQLite compares column
 * names case-insensitively, so `Tenant_Id` is `tenant_id` there; Postgres compares the quoted names
 * Drizzle renders exactly.
 */
function tenantColumnNameTest(column: string, dialect: SqlDialect): (name: string) => boolean {
  if (dialect !== 'sqlite') return (name) => name === column
  const lower = column.toLowerCase()
  return (name) => name.toLowerCase() === lower
}

/**
 * The table's tenant column (through an alias, the aliased column), or undefined. A table with two
 * properties over that column (in any letter case on SQLite, where `Tenant_Id` is `tenant_id`) is
 * refused: the checks would guard one, and an update through the other could move a row to another
 * tenant.
 */
export function tenantColumn(
  table: Table,
  ctx: Pick<ScopeContext, 'column' | 'columnName' | 'dialect'>,
): { key: string; column: Column } | undefined {
  const columns = getTableColumns(table) as Record<string, Column>
  const isTenantColumnName = tenantColumnNameTest(ctx.column, ctx.dialect)
  let found: { key: string; column: Column } | undefined
  for (const key of Object.keys(columns)) {
    const column = columns[key]!
    if (!isTenantColumnName(ctx.columnName(column))) continue
    if (found !== undefined) {
      throw new UnsafeQueryError(
        `table "${displayName(table)}" has two properties ("${found.key}", "${key}") over the tenant column "${ctx.column}"; keep one`,
      )
    }
    found = { key, column }
  }
  return found
}

/**
 * The table's tenant column and how the database compares it with an id (see
 * {@link checkTenantIdForm}), or undefined for a table without one. Refuses a column of a type no
 * rule makes exact. Raw SQL through `TenantDB` uses it for the Drizzle tables it knows.
 */
export function tenantColumnForm(
  table: Table,
  ctx: Pick<ScopeContext, 'column' | 'columnName' | 'dialect'>,
): { key: string; column: Column; form: TenantIdForm } | undefined {
  const tc = tenantColumn(table, ctx)
  if (tc === undefined) return undefined
  const form = tenantIdFormOf(tc.column)
  if (form === undefined) {
    throw new UnsafeQueryError(
      `the tenant column "${ctx.column}" of table "${displayName(table)}" is a ${tc.column.columnType}; use a text column (tenantIdColumn()), an integer or a uuid`,
    )
  }
  return { ...tc, form }
}

/**
 * The tenant column of a table the scoped API filters or writes, refused unless the database
 * compares it with the tenant id exactly (the rule raw SQL applies too: {@link checkTenantIdForm}).
 * Two ids that the database reads as one value would be one tenant's rows.
 */
function scopedTenantColumn(table: Table, ctx: ScopeContext): { key: string; column: Column } | undefined {
  const tc = tenantColumnForm(table, ctx)
  if (tc === undefined) return undefined
  checkTenantIdForm(ctx.tenantId, tc.form, displayName(table))
  return tc
}

/** The tenant condition for a table, `undefined` for a shared one; refuses other tables. */
function tableCondition(table: unknown, ctx: ScopeContext, role: string): SQL | undefined {
  if (is(table, Table)) {
    const tc = scopedTenantColumn(table, ctx)
    if (tc !== undefined) return sealedTenantCondition(tc.column, ctx.tenantId)
    if (ctx.shared.has(sharedKey(table))) return undefined
    throw new UnsafeQueryError(
      `table "${displayName(table)}" has no "${ctx.column}" column; list it in \`shared\` if every tenant may read it, or use unscoped(db) for admin work`,
    )
  }
  const owner = scopedTenantOf(table)
  if (owner !== undefined) {
    if (owner !== ctx.tenantId) throw new UnsafeQueryError(`${role} was built for another tenant`)
    return undefined
  }
  throw new UnsafeQueryError(
    `${role} must be a table or a subquery built with a scoped database (views, raw SQL and unscoped subqueries cannot be filtered)`,
  )
}

/** A tenant table the scoped API may write to. */
function writableTenantColumn(table: unknown, ctx: ScopeContext): { key: string; column: Column } {
  if (!is(table, Table)) throw new UnsafeQueryError('the scoped API writes to tables only')
  const tc = scopedTenantColumn(table, ctx)
  if (tc === undefined) {
    throw new UnsafeQueryError(
      `table "${displayName(table)}" has no "${ctx.column}" column; writes to shared tables are admin work (use unscoped(db))`,
    )
  }
  return tc
}

/**
 * Checks a caller's expression (see {@link sealExpression}: no table, view or subquery inside it,
 * no builder of another database or tenant) and answers the sealed copy Drizzle gets: later
 * changes to the caller's objects do not reach the statement. Walks with its own stack, so an
 * expression's depth is no limit.
 */
function sealed<T>(value: T, ctx: ScopeContext): T {
  const notes: SealNotes = { text: false }
  const out = sealExpression(value, ctx.tenantId, notes)
  // Raw text is held to the bracket rule wherever it goes: text after the tenant condition can
  // still reach back (a subquery's ORDER BY commenting out the WHERE of the query it is put in,
  // a numbered SQLite parameter renumbering the tenant's after it).
  if (notes.text) confineFields(out, ctx)
  return out
}

/**
 * The values of an inserted row or an update's `set` on `table`, for Drizzle: an `SQL` value is
 * sealed (it is rendered as SQL); a column or another SQL-like object is checked; anything else,
 * objects and arrays included, is bound as one parameter (a JSON document, an array column), so it
 * is data and is not walked. An object is handed over already bound (see {@link sealedValue}):
 * Drizzle would bind it through the column's encoder when the statement runs, and render it as
 * SQL if it had become an SQL object by then.
 */
function sealValues(
  values: Record<string, unknown>,
  scope: TableScope,
  tenant: TenantValueRule,
): Record<string, unknown> {
  const { ctx, table, key: tenantKey } = scope
  const out: Record<string, unknown> = {}
  const columns = getTableColumns(table) as Record<string, Column>
  // Each value is read once: a getter could answer the tenant check one thing and the copy another.
  for (const [key, value] of Object.entries(values)) {
    if (key === tenantKey) checkTenantValue(value, scope, tenant)
    if (typeof value !== 'object' || value === null) out[key] = value
    else if (is(value, SQL)) {
      // Written before the statement's WHERE (and an upsert's): its text may not end the value.
      const checked = sealExpression(value, ctx.tenantId)
      checkConfined(checked, ctx, VALUE)
      out[key] = checked
    } else if (is(value, Column)) {
      inspectData(value, ctx.tenantId)
      out[key] = value
    } else {
      if (isSQLWrapper(value) || scopedTenantOf(value) !== undefined) inspectData(value, ctx.tenantId)
      // A placeholder is filled in when a prepared statement runs, through the encoder; its sealed
      // copy, not the caller's object (which could be made an SQL object before it runs).
      out[key] = is(value, Placeholder)
        ? sealExpression(value, ctx.tenantId)
        : sealedValue(value, columns[key], ctx.tenantId)
    }
  }
  return out
}

function isPlainObject(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/** What a written row may put in the tenant column, and what the refusal calls the write. */
interface TenantValueRule {
  /** `'tenant'`: only the scoped tenant (or nothing); `'none'`: nothing (an upsert's `set`). */
  readonly allows: 'tenant' | 'none'
  readonly what: string
}

const INSERTED_ROW: TenantValueRule = { allows: 'tenant', what: 'an inserted row' }
const UPDATE_SET: TenantValueRule = { allows: 'tenant', what: 'an update' }
const UPSERT_SET: TenantValueRule = { allows: 'none', what: 'an upsert' }

function checkTenantValue(value: unknown, scope: TableScope, rule: TenantValueRule): void {
  if (value === undefined) return
  if (rule.allows === 'none') {
    throw new UnsafeQueryError(`${rule.what} may not change the tenant column "${scope.key}"`)
  }
  if (value !== scope.ctx.tenantId) {
    throw new UnsafeQueryError(
      `${rule.what} sets "${scope.key}" to something other than the scoped tenant "${scope.ctx.tenantId}"`,
    )
  }
}

/**
 * Applies `seal` to a builder argument, or, for a Drizzle callback argument
 * (`where((fields) => ...)`), to what the callback returns; Drizzle gets what `seal` answers.
 */
function checkedArg<T>(arg: T, seal: (value: unknown) => unknown): T {
  if (typeof arg !== 'function') return seal(arg) as T
  return ((...a: unknown[]) => seal(callback(arg)(...a))) as T
}

/**
 * A Drizzle callback (`where((fields, ops) => ...)`) called with read-only views of its
 * arguments: Drizzle passes a proxy over the builder's own field map, where a field the callback
 * added would be selected.
 */
function callback(fn: unknown): (...a: unknown[]) => unknown {
  return (...a) =>
    (fn as (...a: unknown[]) => unknown)(
      ...a.map((x) => (x !== null && typeof x === 'object' ? readOnly(x) : x)),
    )
}

/** An argument whose expression is checked and sealed (see {@link sealed}). */
function inspected<T>(arg: T, ctx: ScopeContext): T {
  return checkedArg(arg, (value) => sealed(value, ctx))
}

/**
 * `(<tenant condition> and (<caller's condition>))`. Drizzle's `and()` joins its arguments
 * without parentheses of their own, so a caller's raw `sql\`a = 1 OR 1=1\`` would bind looser than
 * the tenant predicate and match every tenant's rows; in its own parentheses it cannot. A condition
 * that could close those parentheses itself is refused (see {@link checkConfined}).
 */
export function bindTenant(condition: SQL, user: unknown, ctx: ScopeContext): SQL {
  const checked = sealExpression(user, ctx.tenantId)
  if (checked === undefined) return condition
  checkConfined(checked, ctx)
  return scopedSql(ctx.tenantId)`(${condition} and (${checked}))`
}

/**
 * Refuses a condition whose text, as Drizzle renders it on this database, could escape the
 * parentheses around it: an unbalanced `)`, a comment, a `;`, or anything the lexer cannot read
 * the way the database does (a backslash in a quoted run). The rendered text, not a walk of the
 * condition's parts: raw text reaches the statement through `sql` templates, arrays, parameters
 * whose value is SQL, objects with `getSQL()` and embedded scoped subqueries alike, and only the
 * renderer knows every way.
 */
function checkConfined(user: unknown, ctx: ScopeContext, rule: TextRule = IN_BRACKETS): void {
  // A sealed SQL object renders alone as it renders inside another; anything else is wrapped in one.
  const plainSql = user !== null && typeof user === 'object' && Object.getPrototypeOf(user) === SQL.prototype
  let depth = 0
  let marks = 0
  const query = ctx.render(plainSql ? (user as SQL) : sql`${user}`)
  const text = query.sql
  for (const token of lexSql(text, ctx.dialect)) {
    if (token.kind === 'open') depth++
    else if (token.kind === 'close') depth--
    else if (token.kind === 'comment' || token.kind === 'semicolon') depth = -1
    else if (token.kind === 'other' && depth === 0 && rule !== IN_BRACKETS) {
      const word = token.text.toLowerCase()
      if (CLAUSE_WORDS.has(word) || (rule === VALUE && word === ',')) {
        throw new UnsafeQueryError(
          `an expression written before the tenant condition may not hold "${token.text}" outside brackets: it could end its ${rule === VALUE ? 'value or ' : ''}clause and start another (wrap an expression that needs it in parentheses)`,
        )
      }
    }
    if (ctx.dialect === 'sqlite' && token.kind === 'other') {
      if (numberedParameter(text, token.start)) {
        throw new UnsafeQueryError(
          "raw text with a numbered or named parameter (?1, :name, @name, $name) renumbers the parameters after it on SQLite, the tenant's among them; bind values as parameters instead",
        )
      }
      if (token.text === '?') marks++
    } else if (token.kind === 'other' && PG_PARAMETER.test(token.text)) {
      // Drizzle writes $1, $2, ... once each, in order: any other is raw text naming a parameter,
      // whose cast there ($1::"char") would decide how Postgres reads the tenant's value.
      marks++
      if (token.text !== `$${marks}`) rawParameter()
    }
    if (depth < 0) break
  }
  if (depth !== 0) {
    throw new UnsafeQueryError(
      'an expression whose SQL text has unbalanced parentheses, a comment or a ";" could escape its place in the statement (and the tenant condition)',
    )
  }
  // SQLite binds `?` by position: one written as raw text takes the value of the next parameter,
  // the tenant's among them. Drizzle writes one mark per parameter it binds, so any other is raw.
  if (marks !== query.params.length) rawParameter()
}

const PG_PARAMETER = /^\$\d+$/

function rawParameter(): never {
  throw new UnsafeQueryError(
    'raw text with a parameter mark of its own (a "?" on SQLite, "$1" on Postgres) reads the value of another parameter, the tenant\'s among them (on Postgres a cast there decides how the tenant\'s value is read); bind values as parameters instead',
  )
}

/** Where a caller's text goes, and so what may not be in it outside brackets. */
type TextRule = 'in-brackets' | 'clause' | 'value'
/** A condition: the scoped API puts it in brackets of its own. */
const IN_BRACKETS: TextRule = 'in-brackets'
/** A selected field or an upsert's conflict clause, written before the tenant condition. */
const CLAUSE: TextRule = 'clause'
/** A `set` or inserted value: one item of a list, before the tenant condition. */
const VALUE: TextRule = 'value'

/**
 * Words that end an expression's clause and start another (`where`, a second `on conflict`, a
 * `from` with more tables, a `union`). Text written before the tenant condition (a selected field,
 * a `set` value, an inserted value, an upsert's conflict clause) may not hold them outside
 * brackets: `excluded.title where 1 on conflict do update set ...` in a `set` value opens an
 * upsert clause of its own, without the tenant's `where`, on SQLite.
 */
const CLAUSE_WORDS = new Set([
  'conflict',
  'do',
  'except',
  'from',
  'group',
  'having',
  'intersect',
  'into',
  'join',
  'limit',
  'offset',
  'on',
  'order',
  'returning',
  'select',
  'set',
  'union',
  'using',
  'values',
  'where',
  'window',
])

/**
 * True when the token at `at` of rendered SQLite text starts a parameter other than the bare `?`
 * Drizzle writes: `?NNN`, `:name`, `@name` or `$name`. SQLite numbers a bare `?` one after the
 * largest number used before it, so any of these shifts the binding of every `?` after it.
 */
function numberedParameter(text: string, at: number): boolean {
  const c = text[at]
  if (c !== '?' && c !== ':' && c !== '@' && c !== '$') return false
  const next = text[at + 1]
  return next !== undefined && /[A-Za-z0-9_$]/.test(next)
}

/**
 * Holds the SQL among selected fields (a map, nested maps, `selectDistinctOn`'s list) to the rule
 * of {@link checkConfined}: they are written before FROM and WHERE, so text that ends them (a
 * comment, a `;`, an unbalanced `)`) could take the tenant condition with it. Sealed already.
 */
function confineFields(fields: unknown, ctx: ScopeContext, rule: TextRule = IN_BRACKETS): void {
  if (fields === null || typeof fields !== 'object') return
  const proto = Object.getPrototypeOf(fields)
  if (proto === SQL.prototype) checkConfined(fields, ctx, rule)
  else if (proto === SQL.Aliased.prototype) checkConfined((fields as SQL.Aliased).sql, ctx, rule)
  else if (Array.isArray(fields)) for (const field of fields) confineFields(field, ctx, rule)
  else if (proto === Object.prototype || proto === null) {
    for (const field of Object.values(fields)) confineFields(field, ctx, rule)
  }
}

/**
 * A caller's expression written before the tenant condition (selected fields, an upsert's
 * conflict clause), sealed and always held to the strict bracket rule (clause words too).
 */
function sealedBefore<T>(value: T, ctx: ScopeContext): T {
  const out = sealExpression(value, ctx.tenantId)
  confineFields(out, ctx, CLAUSE)
  return out
}

function withCondition(condition: SQL | undefined, where: unknown, ctx: ScopeContext): unknown {
  if (condition === undefined) return confined(where, ctx)
  if (typeof where === 'function') {
    return (...a: unknown[]) => bindTenant(condition, callback(where)(...a), ctx)
  }
  return bindTenant(condition, where, ctx)
}

/** A condition on a shared table: inspected, and held to the same text rule as a tenant table's. */
function confined<T>(where: T, ctx: ScopeContext): T {
  return checkedArg(where, (value) => {
    const checked = sealExpression(value, ctx.tenantId)
    if (checked !== undefined) checkConfined(checked, ctx)
    return checked
  })
}

/**
 * What a builder's statement is scoped by: the context, and on a tenant table the tenant condition
 * its WHERE holds, the table and the key of its tenant column.
 */
interface Scope {
  readonly ctx: ScopeContext
  readonly condition?: SQL | undefined
}

/** The scope of a statement that writes a tenant table. */
interface TableScope extends Scope {
  readonly condition: SQL
  readonly table: Table
  readonly key: string
}

/**
 * A builder's intercepts by method name, each called with the builder's scope, the builder, and
 * the method's arguments. One table per kind of builder: intercepts made per statement were a
 * score of closures each.
 */
type Intercepts<S extends Scope = Scope> = Readonly<
  Record<string, (scope: S, target: any, ...args: any[]) => unknown>
>

// Methods whose arguments are not SQL (execution, promise callbacks) are passed through untouched.
const PASS_THROUGH = new Set([
  'then',
  'catch',
  'finally',
  'execute',
  'run',
  'all',
  'get',
  'values',
  'toSQL',
  'getUsedTables',
  '$dynamic',
  'setToken',
  'mapResult',
])

// Drizzle's public builder API (select, insert, update and delete, both dialects) that is not
// intercepted: its arguments are checked and sealed, except for the methods above. Anything else
// on a builder is Drizzle's internals (its config, session and dialect, createJoin()), which would
// hand back the unscoped builder or database, so reading it throws.
const PUBLIC = new Set([
  ...PASS_THROUGH,
  // Intercepted on every builder (see common()).
  'prepare',
  // Intercepted on selects: the tag is made the tenant's own.
  '$withCache',
  'getSelectedFields',
  'getSQL',
  'groupBy',
  'orderBy',
  'limit',
  'offset',
  'returning',
  'onConflictDoNothing',
  // Read by Drizzle when it renders a builder embedded in another statement.
  'shouldOmitSQLParens',
])

function refuse(message: string): () => never {
  return () => {
    throw new UnsafeQueryError(message)
  }
}

// What every builder hands out that holds Drizzle's objects: sealed statements and read-only views.
// One set for all builders: a set per scope context, looked up by it, was a WeakMap entry per
// statement, which the garbage collector holds on to far longer.
const COMMON: Intercepts = {
  // The live statement holds the parameters Drizzle made of inserted and set values, which a
  // caller could rewrite before the builder runs: a sealed copy instead (Drizzle embeds a
  // builder and runs set operations through it, so those see the same).
  getSQL: ({ ctx }, t) => sealScoped(t.getSQL(), ctx.tenantId),
  // A proxy over the builder's own field map (Drizzle's has no traps): an added field would run.
  getSelectedFields: (_scope, t) => readOnly(t.getSelectedFields()),
  // Its statement, driver client and session would otherwise be one cast away.
  prepare: ({ ctx }, t, ...args) => sealedPrepared(t.prepare(...args), ctx.dialect === 'sqlite'),
  // A SQLite builder run with placeholder values: Drizzle fills them in past the checks of the
  // rendered statement, and bun:sqlite reads an object among them as named parameters, in place of
  // the tenant's. So they run through the sealed prepared statement, which checks them as filled.
  run: runWithValues('run'),
  all: runWithValues('all'),
  get: runWithValues('get'),
  values: runWithValues('values'),
}

function runWithValues(method: 'run' | 'all' | 'get' | 'values'): Intercepts[string] {
  return ({ ctx }, t, ...args) => {
    if (ctx.dialect !== 'sqlite' || args[0] === undefined) return t[method](...args)
    return sealedPrepared(t.prepare(), true)[method](...args)
  }
}

const LOCK_STRENGTHS = new Set(['update', 'no key update', 'share', 'key share'])

/**
 * Postgres `for(strength, { of, noWait, skipLocked })`: Drizzle writes the strength into the
 * statement as raw text, so only the four lock strengths pass; `of` names tables.
 */
function lockClause(strength: unknown, config: unknown): [string, Record<string, unknown>] {
  if (typeof strength !== 'string' || !LOCK_STRENGTHS.has(strength)) {
    throw new UnsafeQueryError('for() takes a lock strength: update, no key update, share or key share')
  }
  if (config === undefined) return [strength, {}]
  if (config === null || typeof config !== 'object')
    throw new UnsafeQueryError('for() options must be an object')
  const { of, noWait, skipLocked } = config as Record<string, unknown>
  const tables = of === undefined ? [] : Array.isArray(of) ? [...of] : [of]
  if (!tables.every((table) => is(table, Table))) throw new UnsafeQueryError('for() of: names tables only')
  return [
    strength,
    { of: of === undefined ? undefined : tables, noWait: noWait === true, skipLocked: skipLocked === true },
  ]
}

// Drizzle's internals on a builder: anything not in its public API.
const notPublic = (prop: string | symbol): boolean =>
  typeof prop === 'string' && !PUBLIC.has(prop) && prop !== 'constructor'

/** Drizzle's builder behind a proxy with our intercepts; any method returning the builder returns the proxy. */
function scopedProxy<T extends object, S extends Scope>(target: T, scope: S, own: Intercepts<S>): T {
  const traps = new BuilderTraps(scope, own)
  const proxy = new Proxy(target, traps)
  traps.proxy = proxy
  return register(proxy, scope.ctx.tenantId)
}

/** The traps of one scoped builder: its scope, its own intercepts, and its proxy. */
class BuilderTraps<S extends Scope> extends SealedTraps<any> {
  proxy: object | undefined

  constructor(
    readonly scope: S,
    readonly own: Intercepts<S>,
  ) {
    super()
  }

  hidden(prop: string | symbol): boolean {
    return notPublic(prop)
  }

  get(t: any, prop: string | symbol): unknown {
    const { scope, own, proxy } = this
    // The builder's own intercepts first, then the common ones (looked up, not merged per builder).
    const fn =
      typeof prop !== 'string'
        ? undefined
        : Object.hasOwn(own, prop)
          ? own[prop]!
          : Object.hasOwn(COMMON, prop)
            ? COMMON[prop]!
            : undefined
    if (fn !== undefined) {
      return (...args: unknown[]) => {
        const result = fn(scope, t, ...args)
        return result === t ? proxy : result
      }
    }
    if (typeof prop === 'symbol' || prop === 'constructor') return Reflect.get(t, prop, t)
    if (!PUBLIC.has(prop)) internal(prop)
    const value = Reflect.get(t, prop, t)
    if (typeof value !== 'function') return value
    return (...args: unknown[]) => {
      const checked = PASS_THROUGH.has(prop) ? args : args.map((a) => inspected(a, scope.ctx))
      const result = (value as (...a: unknown[]) => unknown).apply(t, checked)
      return result === t ? proxy : result
    }
  }
}

function setOperator(name: string): Intercepts[string] {
  return ({ ctx }, t, right: unknown) => {
    if (typeof right === 'function' || scopedTenantOf(right) !== ctx.tenantId) {
      throw new UnsafeQueryError(`${name}() needs a query built with a scoped database of the same tenant`)
    }
    return t[name](right)
  }
}

function joinIntercept(name: string): Intercepts[string] {
  return ({ ctx }, t, table: unknown, on: unknown) => {
    const condition = tableCondition(table, ctx, `the table joined by ${name}()`)
    return t[name](table, withCondition(condition, on, ctx))
  }
}

/** `where()` of a statement whose WHERE holds the tenant condition of its scope. */
const tenantWhere: Intercepts[string] = ({ ctx, condition }, t, where: unknown) =>
  t.where(withCondition(condition, where, ctx))

const UNSCOPABLE_JOIN =
  'cannot be scoped: the joined rows would not all pass through the ON condition; use innerJoin/leftJoin or unscoped(db)'

/** The query builder after `.from()`, with the tenant condition of its scope already in WHERE. */
const SELECT_QUERY: Intercepts = {
  where: tenantWhere,
  $withCache: ({ ctx }, t, config?: unknown) => t.$withCache(scopedCacheConfig(config, ctx)),
  having: ({ ctx }, t, having: unknown) => t.having(inspected(having, ctx)),
  orderBy: ({ ctx }, t, ...columns: unknown[]) => {
    if (typeof columns[0] === 'function') {
      const order = inspected(columns[0], ctx) as (...a: unknown[]) => unknown
      return t.orderBy((...a: unknown[]) => byOutputNames(order(...a), t, ctx))
    }
    return t.orderBy(...columns.map((column) => byOutputNames(inspected(column, ctx), t, ctx)))
  },
  innerJoin: joinIntercept('innerJoin'),
  leftJoin: joinIntercept('leftJoin'),
  rightJoin: refuse(`rightJoin ${UNSCOPABLE_JOIN}`),
  fullJoin: refuse(`fullJoin ${UNSCOPABLE_JOIN}`),
  crossJoin: refuse(`crossJoin ${UNSCOPABLE_JOIN}`),
  innerJoinLateral: refuse(`innerJoinLateral ${UNSCOPABLE_JOIN}`),
  leftJoinLateral: refuse(`leftJoinLateral ${UNSCOPABLE_JOIN}`),
  crossJoinLateral: refuse(`crossJoinLateral ${UNSCOPABLE_JOIN}`),
  union: setOperator('union'),
  unionAll: setOperator('unionAll'),
  intersect: setOperator('intersect'),
  intersectAll: setOperator('intersectAll'),
  except: setOperator('except'),
  exceptAll: setOperator('exceptAll'),
  // Used by the standalone union(a, b) helpers of drizzle-orm/*-core.
  // Drizzle keeps the operations it is given and reads them again when it renders (`type` as
  // raw text): it gets copies, each field read once and checked, never the caller's objects.
  addSetOperators: ({ ctx }, t, operators: unknown) => {
    if (!Array.isArray(operators))
      throw new UnsafeQueryError('addSetOperators takes an array of set operations')
    return t.addSetOperators(Array.from(operators, (operation) => setOperation(operation, ctx)))
  },
  // Drizzle's subquery with its statement sealed and its internals read-only (./scoped-seal).
  as: ({ ctx }, t, alias: string) => sealedSubquery(t, alias, ctx.tenantId),
  for: (_scope, t, strength: unknown, config: unknown) => t.for(...lockClause(strength, config)),
}

/**
 * An `orderBy` item of a query with a set operation, as Drizzle will render it: after a `union`
 * it orders the whole result by output names, and rewrites in place each column among an `sql`
 * item's parts into its name, which a sealed item does not allow. Such an item is handed over
 * with the rewrite done (and sealed); anything else as it is.
 */
function byOutputNames(item: unknown, t: any, ctx: ScopeContext): unknown {
  if (t.config.setOperators.length === 0) return item
  if (Array.isArray(item)) return item.map((one) => byOutputNames(one, t, ctx))
  if (item === null || typeof item !== 'object' || Object.getPrototypeOf(item) !== SQL.prototype) return item
  const { queryChunks, shouldInlineParams } = item as unknown as {
    queryChunks: unknown[]
    shouldInlineParams: boolean
  }
  if (!queryChunks.some((chunk) => is(chunk, Column))) return item
  const named = new SQL(
    queryChunks.map((chunk) =>
      is(chunk, Column) ? sql.identifier(ctx.columnName(chunk)) : chunk,
    ) as SQL['queryChunks'],
  )
  return sealExpression(shouldInlineParams ? named.inlineParams() : named, ctx.tenantId)
}

const SET_OPERATIONS = new Set(['union', 'intersect', 'except'])

/**
 * A set operation of Drizzle's standalone `union(a, b)` helpers, as a copy: `type` one of the three
 * (Drizzle writes it into the statement as text), `isAll` a boolean, `rightSelect` a query of a
 * scoped database of the same tenant; `orderBy`, `limit` and `offset` go through the builder.
 */
function setOperation(operation: unknown, ctx: ScopeContext): object {
  if (!isPlainObject(operation)) throw new UnsafeQueryError('a set operation must be a plain object')
  const { type, isAll, rightSelect, ...rest } = operation as Record<string, unknown>
  if (typeof type !== 'string' || !SET_OPERATIONS.has(type)) {
    throw new UnsafeQueryError('a set operation is a union, an intersect or an except')
  }
  if (Object.values(rest).some((value) => value !== undefined)) {
    throw new UnsafeQueryError(
      'a set operation takes type, isAll and rightSelect only (orderBy, limit and offset go through the builder)',
    )
  }
  if (scopedTenantOf(rightSelect) !== ctx.tenantId) {
    throw new UnsafeQueryError(
      'a set operation needs queries built with a scoped database of the same tenant',
    )
  }
  return { type, isAll: isAll === true, rightSelect }
}

/** `db.select(fields)` and its kin, before `.from()`. */
const SELECT: Intercepts = {
  from: ({ ctx }, t, source: unknown) => {
    const condition = tableCondition(source, ctx, 'the FROM source')
    const query = t.from(source)
    if (condition !== undefined) query.where(condition)
    return scopedProxy(query, { ctx, condition }, SELECT_QUERY)
  },
}

/**
 * The Drizzle cache tag a scoped select of `tenantId` is cached under when it names `tag` in
 * `$withCache({ tag })`: `{tenantId}:tag`. Drizzle keys a tagged query's entry by its tag alone
 * (not by the statement and its parameters, where the tenant is), so the same tag from two
 * tenants would be one entry, and the tenant that filled it would answer the other's select.
 * Invalidate a tenant's entry with it: `db.$cache.invalidate({ tags: scopedCacheTag('acme', 'notes') })`.
 *
 * @example
 * ```ts
 * await scoped(db, 'acme').select().from(notes).$withCache({ tag: 'notes' }) // cached as '{acme}:notes'
 * await db.$cache.invalidate({ tags: scopedCacheTag('acme', 'notes') })
 * ```
 */
export function scopedCacheTag(tenantId: string, tag: string): string {
  if (typeof tag !== 'string') throw new UnsafeQueryError(`a cache tag must be a string, got ${typeof tag}`)
  // Tenant ids hold no '{', '}' or ':': no two (tenant, tag) pairs give one key.
  return `{${validateTenantId(tenantId)}}:${tag}`
}

const CACHE_FIELDS = new Set(['tag', 'config', 'autoInvalidate'])

/** `$withCache(config)` of a scoped select: its tag made the tenant's own, each field read once. */
function scopedCacheConfig(config: unknown, ctx: ScopeContext): unknown {
  if (config === undefined || config === false) return config
  if (!isPlainObject(config)) {
    throw new UnsafeQueryError('$withCache takes false or an object ({ tag, config, autoInvalidate })')
  }
  const copy: Record<string, unknown> = {}
  for (const [field, value] of Object.entries(config as Record<string, unknown>)) {
    if (!CACHE_FIELDS.has(field)) throw new UnsafeQueryError(`$withCache: unknown option "${field}"`)
    if (value !== undefined)
      copy[field] = field === 'tag' ? scopedCacheTag(ctx.tenantId, value as string) : value
  }
  return copy
}

/** `db.select(fields)`, `db.selectDistinct(fields)`, `db.selectDistinctOn(on, fields)`. */
export function scopedSelect(db: any, method: string, args: unknown[], ctx: ScopeContext): unknown {
  const builder = db[method](...args.map((a) => sealedBefore(a, ctx)))
  sqliteDialect(builder, ctx)
  return scopedProxy(builder, { ctx }, SELECT)
}

/** An insert after `.values()`: an upsert cannot touch other tenants' rows. */
const INSERT_QUERY: Intercepts<TableScope> = {
  // Its target and where come before the statement's end: held to the strict rule.
  onConflictDoNothing: ({ ctx }, t, config?: unknown) =>
    config === undefined ? t.onConflictDoNothing() : t.onConflictDoNothing(sealedBefore(config, ctx)),
  onConflictDoUpdate: (scope, t, config: Record<string, unknown>) => {
    const { ctx, condition } = scope
    // Each field read once (a getter could answer differently the second time).
    const { where, setWhere, set: values, ...rest } = config
    if (where !== undefined && setWhere !== undefined) {
      throw new UnsafeQueryError('an upsert takes where or setWhere (the same clause), not both')
    }
    // Drizzle reads any object's own properties as assignments (a function's too): a plain
    // object only, and Drizzle gets its sealed copy.
    if (!isPlainObject(values)) throw new UnsafeQueryError('an upsert needs set: an object of values')
    const setValues = sealValues(values as Record<string, unknown>, scope, UPSERT_SET)
    // The conflicting row may be another tenant's when the unique key lacks the tenant column:
    // only update it when it is ours.
    return t.onConflictDoUpdate({
      ...sealedBefore(rest, ctx),
      set: setValues,
      setWhere: bindTenant(condition, setWhere ?? where, ctx),
    })
  },
}

/** `db.insert(table)`, before `.values()`. */
const INSERT: Intercepts<TableScope> = {
  values: (scope, t, values: unknown) => {
    const { ctx, key } = scope
    const rows = Array.isArray(values) ? values : [values]
    const tagged = rows.map((row) => {
      if (row === null || typeof row !== 'object') throw new UnsafeQueryError('insert values must be objects')
      // sealValues answers a new object of its own: tag it in place rather than copy it again.
      const sealedRow = sealValues(row as Record<string, unknown>, scope, INSERTED_ROW)
      sealedRow[key] = ctx.tenantId
      return sealedRow
    })
    return scopedProxy(t.values(Array.isArray(values) ? tagged : tagged[0]), scope, INSERT_QUERY)
  },
  select: refuse('INSERT ... SELECT is refused by the scoped API: insert values'),
}

/**
 * SQLite: the builder renders with a dialect of its own (one per database dialect, kept here).
 * - INSERT and UPDATE say `or abort`: a table's own conflict clause (`id text primary key on
 *   conflict replace`, Drizzle's `integer().primaryKey({ onConflict: 'replace' })`) would turn a
 *   write that collides with another row's key into a REPLACE, deleting that row, another
 *   tenant's included. The statement's clause overrides the table's, and ABORT is what SQLite
 *   does without a clause anywhere: a collision fails the statement and changes nothing. Drizzle
 *   has no API for the clause.
 * - Every value the statement binds is held to `checkSqliteValues` as Drizzle renders it for the
 *   driver (`sqlToQuery`), whichever builder made it: bun:sqlite reads an object among them as
 *   named parameters.
 */
const sqliteDialects = new WeakMap<object, object>()

function sqliteDialect(builder: { dialect: object }, ctx: ScopeContext): void {
  if (ctx.dialect !== 'sqlite') return
  const dialect = builder.dialect as Record<string, (...args: unknown[]) => SQL>
  let guarded = sqliteDialects.get(dialect)
  if (guarded === undefined) {
    guarded = Object.create(dialect, {
      sqlToQuery: {
        value(this: object, ...args: unknown[]) {
          const query = (dialect.sqlToQuery as unknown as (...a: unknown[]) => { params: unknown[] }).apply(
            this,
            args,
          )
          checkSqliteValues(query.params)
          return query
        },
      },
      buildInsertQuery: {
        value(this: object, config: unknown) {
          return withVerb(
            dialect.buildInsertQuery!.call(this, config),
            'insert into ',
            'insert or abort into ',
          )
        },
      },
      buildUpdateQuery: {
        value(this: object, config: unknown) {
          return withVerb(dialect.buildUpdateQuery!.call(this, config), 'update ', 'update or abort ')
        },
      },
    }) as object
    sqliteDialects.set(dialect, guarded)
  }
  builder.dialect = guarded
}

/** `query` with its verb chunk `from` (as Drizzle renders it) written `to`. */
function withVerb(query: SQL, from: string, to: string): SQL {
  const chunks = query.queryChunks
  const at = chunks.findIndex(
    (chunk) => is(chunk, StringChunk) && chunk.value.length === 1 && chunk.value[0] === from,
  )
  // Another Drizzle version rendering it otherwise: refused rather than run without the clause.
  if (at < 0) throw new UnsafeQueryError(`Drizzle rendered a statement without "${from.trim()}"`)
  const copy = [...chunks]
  copy[at] = new StringChunk(to)
  return new SQL(copy)
}

/** `db.insert(table)`: every row is tagged with the tenant; upserts cannot touch other tenants. */
export function scopedInsert(db: any, table: unknown, ctx: ScopeContext): unknown {
  const { key, column } = writableTenantColumn(table, ctx)
  const condition = sealedTenantCondition(column, ctx.tenantId)
  const builder = db.insert(table)
  sqliteDialect(builder, ctx)
  return scopedProxy(builder, { ctx, condition, table: table as Table, key }, INSERT)
}

const UPDATE_JOIN = 'joins in UPDATE are refused by the scoped API: use a scoped subquery in where()'

/** An update after `.set()`, with the tenant condition already in WHERE. */
const UPDATE_QUERY: Intercepts = {
  where: tenantWhere,
  from: refuse('UPDATE ... FROM is refused by the scoped API: use a scoped subquery in where()'),
  innerJoin: refuse(UPDATE_JOIN),
  leftJoin: refuse(UPDATE_JOIN),
  rightJoin: refuse(UPDATE_JOIN),
  fullJoin: refuse(UPDATE_JOIN),
}

/** `db.update(table)`, before `.set()`. */
const UPDATE: Intercepts<TableScope> = {
  set: (scope, t, values: Record<string, unknown>) => {
    const { condition } = scope
    if (values === null || typeof values !== 'object')
      throw new UnsafeQueryError('update values must be an object')
    const query = t.set(sealValues(values, scope, UPDATE_SET))
    query.where(condition)
    return scopedProxy(query, scope, UPDATE_QUERY)
  },
}

/** `db.update(table)`: WHERE always has the tenant condition; the tenant column cannot change. */
export function scopedUpdate(db: any, table: unknown, ctx: ScopeContext): unknown {
  const { key, column } = writableTenantColumn(table, ctx)
  const condition = sealedTenantCondition(column, ctx.tenantId)
  const builder = db.update(table)
  sqliteDialect(builder, ctx)
  return scopedProxy(builder, { ctx, condition, table: table as Table, key }, UPDATE)
}

/** A delete, with the tenant condition already in WHERE. */
const DELETE: Intercepts = { where: tenantWhere }

/** `db.delete(table)`: WHERE always has the tenant condition. */
export function scopedDelete(db: any, table: unknown, ctx: ScopeContext): unknown {
  const { column } = writableTenantColumn(table, ctx)
  const condition = sealedTenantCondition(column, ctx.tenantId)
  const query = db.delete(table)
  sqliteDialect(query, ctx)
  query.where(condition)
  return scopedProxy(query, { ctx, condition }, DELETE)
}

/** `db.$count(table, filters)` with the tenant condition. */
export function scopedCount(db: any, source: unknown, filters: unknown, ctx: ScopeContext): unknown {
  const condition = tableCondition(source, ctx, 'the $count source')
  const where =
    condition === undefined
      ? (confined(filters, ctx) as SQL | undefined)
      : bindTenant(condition, filters, ctx)
  return sealedCount(db.$count(source, where), ctx.tenantId)
}
