import { TenantError, validateTenantId } from '@tenant/core'
import {
  type AstNode,
  bindUserPlaceholders,
  checkDialect,
  Placeholders,
  parseStatement,
  renderStatement,
  type SqlDialect,
  UnsafeQueryError,
} from './raw-sql-ast'
import {
  assignedColumnIsTenant,
  fromItems,
  insertColumnIsTenant,
  isDerivedTable,
  isSharedTable,
  JOIN_SCOPED_BY_ON,
  pinBuiltinsToCatalog,
  rejectCte,
  tableName,
  type VerifyContext,
  verifyStatement,
} from './raw-sql-verify'
import type { TenantIdForm } from './tenant-id-form'

export { type SqlDialect, UnsafeQueryError } from './raw-sql-ast'

/** Options shared by {@link addTenantFilter} and {@link validateQuery}. */
export interface RawSqlOptions {
  /**
   * The SQL grammar: `'sqlite'` for libSQL, D1 and bun:sqlite (`?` placeholders), `'postgresql'`
   * for postgres.js, PGlite and node-postgres (`$1..$n`).
   * @default 'sqlite'
   */
  dialect?: SqlDialect
  /**
   * Values of the statement's own placeholders. Required by {@link addTenantFilter} when the
   * statement has placeholders; lets {@link validateQuery} check the tenant a placeholder binds.
   * @default undefined
   */
  params?: readonly unknown[]
  /**
   * Tables without a tenant column (plans, currencies) that may be read without a filter. Writes
   * to them are refused. Names are matched case-insensitively and as written: `'plans'` is the
   * unqualified `plans` only (not `archive.plans`, nor `main.plans` / `public.plans`, which the
   * connection's search path may or may not resolve `plans` to), `'archive.plans'` is
   * `archive.plans` only. List each spelling your statements use.
   * @default []
   */
  sharedTables?: readonly string[]
  /**
   * Tables that have the tenant column (bare or `schema.table` names, any case, matched as written
   * like `sharedTables`). Inside a subquery an unqualified tenant column (`WHERE tenant_id = ?`)
   * would resolve to the enclosing query's row if the subquery's table had no such column, so
   * there it is accepted only for these tables; qualify it (`shares.tenant_id = ?`) otherwise.
   * `TenantDB` fills this in from the schema given to `drizzle()`.
   * @default []
   */
  tenantTables?: readonly string[]
  /**
   * Functions a statement may call besides the built-in allow-list (lower-case `name`, or
   * `schema.name` for a schema-qualified call): your own functions, once you know they read
   * nothing the tenant filter does not cover.
   * @default []
   */
  allowedFunctions?: readonly string[]
}

/** Options of {@link validateQuery}. */
export interface ValidateQueryOptions extends RawSqlOptions {
  /**
   * When set, every tenant condition must compare with exactly this tenant (a string literal or a
   * placeholder whose value in `params` is this id); without it any literal or placeholder counts.
   * @default undefined
   */
  tenantId?: string
}

/** A statement and its bound values, ready for a driver. */
export interface TenantStatement {
  sql: string
  params: unknown[]
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/

/** Throws unless `column` is a plain SQL identifier (letters, digits, `_`; at most 63 characters). */
export function checkColumnName(column: unknown): string {
  if (typeof column !== 'string' || !IDENTIFIER.test(column)) {
    throw new TenantError(
      'tenant_invalid_config',
      `tenant column ${JSON.stringify(column)} must be a plain identifier: letters, digits and _, not starting with a digit`,
    )
  }
  return column
}

/** Lower-cased `name` / `schema.name` entries of a list option; refuses anything else. */
function nameSet(names: readonly string[] | undefined, what: string): Set<string> {
  const set = new Set<string>()
  if (names !== undefined && !Array.isArray(names)) {
    throw new TenantError('tenant_invalid_config', `${what}s must be an array of names`)
  }
  for (const t of names ?? []) {
    if (
      typeof t !== 'string' ||
      !t.split('.').every((part) => IDENTIFIER.test(part)) ||
      t.split('.').length > 2
    ) {
      throw new TenantError(
        'tenant_invalid_config',
        `${what} ${JSON.stringify(t)} must be "name" or "schema.name"`,
      )
    }
    set.add(t.toLowerCase())
  }
  return set
}

/**
 * The caller's parameters, read once into a frozen copy: the tenant checks and the values bound
 * must see the same values (an index with a getter could answer the check one value and the
 * binding another).
 */
function snapshot(params: readonly unknown[] | undefined): readonly unknown[] | undefined {
  return params === undefined ? undefined : Object.freeze(Array.from(params))
}

/** The parts of a {@link VerifyContext} that come from the options; refuses options that are not an object. */
function listsOf(
  options: RawSqlOptions,
): Pick<VerifyContext, 'shared' | 'tenantTables' | 'allowedFunctions'> {
  if (typeof options !== 'object' || options === null) {
    throw new TenantError('tenant_invalid_config', 'options must be an object')
  }
  if (options.params !== undefined && !Array.isArray(options.params)) {
    throw new TenantError('tenant_invalid_config', 'params must be an array')
  }
  return {
    shared: nameSet(options.sharedTables, 'shared table'),
    tenantTables: nameSet(options.tenantTables, 'tenant table'),
    allowedFunctions: nameSet(options.allowedFunctions, 'allowed function'),
  }
}

/** The scoped statement split at its parameters: `text.length === values.length + 1`. */
export interface ScopedSqlParts {
  text: string[]
  values: unknown[]
  /** For each value: the user's parameter index, or -1 for the tenant. */
  sources: number[]
  dialect: SqlDialect
}

/**
 * Internal core of {@link addTenantFilter} and `TenantDB.query/exec`: parse, add the tenant
 * conditions, render, then parse the rendered text again and prove it scoped for this tenant.
 * The proof runs on exactly the text the database receives. `tenantIdForm` tells, by table key,
 * how a tenant column whose type the caller knows compares with an id (`TenantDB`); without it
 * every table gets the rule for an unknown type (see `checkTenantIdForm`).
 */
export function scopeSql(
  sql: string,
  tenantId: string,
  column: string,
  options: RawSqlOptions & { dialect: SqlDialect; params: readonly unknown[] | undefined },
  tenantIdForm?: (key: string) => TenantIdForm | undefined,
): ScopedSqlParts {
  validateTenantId(tenantId)
  checkColumnName(column)
  const dialect = checkDialect(options.dialect)
  const lists = listsOf(options)
  const params = snapshot(options.params)
  const ast = parseStatement(sql, dialect)
  const placeholders = new Placeholders(sql)
  bindUserPlaceholders(ast, dialect, placeholders)
  const ctx: VerifyContext = {
    dialect,
    column,
    ...lists,
    placeholders,
    params,
    tenantId,
    tenantIdForm,
  }
  addConditions(ast, ctx, () => placeholders.node({ kind: 'tenant' }))
  pinBuiltinsToCatalog(ast, ctx)
  const rendered = renderStatement(ast, dialect)
  const reparsed = parseStatement(rendered, dialect)
  if (renderStatement(reparsed, dialect) !== rendered) {
    // The parser and printer disagree about this statement; what we checked might not be what runs.
    throw new UnsafeQueryError(
      'the statement does not survive a parse/print round trip unchanged; simplify it',
    )
  }
  verifyStatement(reparsed, ctx)
  const { text, ids } = placeholders.split(
    dialect === 'sqlite' ? abortOnConflict(rendered, reparsed) : rendered,
  )
  const values: unknown[] = []
  const sources: number[] = []
  for (const id of ids) {
    const binding = placeholders.bindings[id]!
    if (binding.kind === 'tenant') {
      values.push(tenantId)
      sources.push(-1)
    } else {
      if (params === undefined || binding.index >= params.length) {
        throw new UnsafeQueryError(
          `the statement uses parameter ${binding.index + 1} but ${params?.length ?? 0} were given (pass them in params)`,
        )
      }
      values.push(params[binding.index])
      sources.push(binding.index)
    }
  }
  return { text, values, sources, dialect }
}

/**
 * SQLite: `rendered` with `OR ABORT` after the verb of an INSERT or UPDATE that names no conflict
 * clause. A table's own clause (`id text primary key on conflict replace`) would otherwise turn the
 * statement into a REPLACE, which deletes the row whose key it collides with, another tenant's
 * included; the statement's clause overrides the table's, and ABORT is SQLite's default (the
 * statement fails and changes nothing). The parser cannot print `UPDATE OR ABORT`, so the clause
 * goes into the text it printed and proved, at its start, which the printer always writes so.
 */
function abortOnConflict(rendered: string, ast: AstNode): string {
  const verb =
    ast.type === 'insert' && ast.or === undefined ? 'INSERT' : ast.type === 'update' ? 'UPDATE' : undefined
  if (verb === undefined) return rendered
  if (!rendered.startsWith(`${verb} `)) {
    throw new UnsafeQueryError(`the statement does not start with ${verb} as printed; simplify it`)
  }
  return `${verb} OR ABORT${rendered.slice(verb.length)}`
}

/**
 * Adds `<table>.<column> = <tenant>` to a raw SQL statement, using node-sql-parser's AST (never
 * string search), and returns it with its parameters. The condition lands on the outer statement
 * and keeps precedence (`WHERE a OR b` becomes `WHERE (a OR b) AND "t"."tenant_id" = ?`): on the
 * WHERE of a SELECT (of every UNION arm), UPDATE or DELETE, in the ON clause of each INNER/LEFT
 * joined table, and as a column of every INSERT row. Statements it cannot handle (several
 * statements, DDL, CTEs, `INSERT ... SELECT`, `REPLACE`) are refused with an
 * {@link UnsafeQueryError}; the result is then proven scoped like {@link validateQuery}, so a
 * subquery must carry its own tenant condition bound to the same tenant.
 *
 * The tenant id is always a bound parameter, appended after the statement's own: `$n+1` in
 * Postgres, `?n+1` in SQLite (the statement's `?` become `?1..?n` in order). `params` must hold a
 * value for every placeholder of the statement.
 *
 * Only the column's name is known here, not its type, and the database compares the tenant column
 * with the id after converting the id to that type. So an id that some database reads as a number
 * must be a canonical integer (`1`, not `01`, `1.0`, `1e0`, `0x1`), and in Postgres one that reads
 * as a uuid must be lower-case and hyphenated; otherwise the statement is refused
 * (`UnsafeQueryError`). Other ids (`acme`, `ACME`, `1password`) are the only spelling of
 * themselves under every type and always pass.
 *
 * @example
 * ```ts
 * const { sql, params } = addTenantFilter('SELECT * FROM notes WHERE a = ? OR b = ?', 'acme', 'tenant_id', {
 *   params: [1, 2],
 * })
 * // sql:    SELECT * FROM "notes" WHERE ("a" = ?1 OR "b" = ?2) AND "notes"."tenant_id" = ?3
 * // params: [1, 2, 'acme']
 * ```
 */
export function addTenantFilter(
  sql: string,
  tenantId: string,
  column: string,
  options: RawSqlOptions = {},
): TenantStatement {
  listsOf(options)
  const dialect = checkDialect(options.dialect ?? 'sqlite')
  const params = snapshot(options.params) ?? []
  const parts = scopeSql(sql, tenantId, column, {
    dialect,
    params,
    sharedTables: options.sharedTables,
    tenantTables: options.tenantTables,
    allowedFunctions: options.allowedFunctions,
  })
  const userParams = [...params]
  const tenantIndex = userParams.length + 1
  const marker = dialect === 'sqlite' ? '?' : '$'
  let out = parts.text[0]!
  parts.sources.forEach((source, i) => {
    out += `${marker}${source < 0 ? tenantIndex : source + 1}${parts.text[i + 1]}`
  })
  // A statement without tenant tables (SELECT 1) has no tenant placeholder; drivers refuse unused ones.
  return { sql: out, params: parts.sources.includes(-1) ? [...userParams, tenantId] : userParams }
}

/**
 * Proves a raw SQL statement tenant-scoped, or throws an {@link UnsafeQueryError} that says why
 * not. Accepted: every table read or written is pinned by a top-level AND condition
 * `<table or alias>.<column> = <placeholder or 'literal'>` (unqualified only when it is the only
 * table), in the WHERE of the SELECT/UPDATE/DELETE, of every UNION arm and of every subquery, or
 * in the ON clause of an INNER/LEFT joined table; every INSERT row sets the column. Refused: a
 * missing condition, one under OR/NOT (OR-bypass), an unscoped subquery or UNION arm, WITH (CTE),
 * `INSERT ... SELECT`, `REPLACE`, an UPDATE of the column, several statements, DDL, anything the
 * parser cannot read, and functions that run SQL from text or read files (`query_to_xml`,
 * `dblink`, `pg_read_file`, ...).
 *
 * Every tenant value it can see (`tenantId`, string literals, `params`) is held to the same id rule
 * as {@link addTenantFilter}'s: a number-like id must be a canonical integer, and in Postgres a
 * uuid-like one lower-case and hyphenated. A placeholder whose value it is not given is the
 * caller's to bind: pass `tenantId` or `params` to have it checked.
 *
 * It checks the statement as node-sql-parser reads it. `TenantDB.query` goes further: it runs the
 * parser's own rendering of the statement, so what runs is what was checked.
 *
 * @example
 * ```ts
 * validateQuery('SELECT * FROM notes WHERE tenant_id = ? AND id = ?', 'tenant_id') // ok
 * validateQuery('SELECT * FROM notes WHERE tenant_id = ? OR 1 = 1', 'tenant_id')   // throws: under OR
 * ```
 */
export function validateQuery(sql: string, column: string, options: ValidateQueryOptions = {}): void {
  checkColumnName(column)
  const lists = listsOf(options)
  // Read once: a getter could pass the check with one id and hand the proof another.
  const { tenantId } = options
  if (tenantId !== undefined) validateTenantId(tenantId)
  const dialect = checkDialect(options.dialect ?? 'sqlite')
  const ast = parseStatement(sql, dialect)
  const placeholders = new Placeholders(sql)
  bindUserPlaceholders(ast, dialect, placeholders)
  verifyStatement(ast, {
    dialect,
    column,
    ...lists,
    placeholders,
    params: snapshot(options.params),
    tenantId,
  })
}

function columnRef(ctx: VerifyContext, qualifier: string): AstNode {
  return ctx.dialect === 'sqlite'
    ? { type: 'column_ref', table: qualifier, column: ctx.column }
    : {
        type: 'column_ref',
        table: qualifier,
        column: { expr: { type: 'double_quote_string', value: ctx.column } },
      }
}

/** `(expr) AND p1 AND p2 ...`; the parentheses keep an OR in `expr` from swallowing our conditions. */
function conjoin(expr: AstNode | null | undefined, conditions: AstNode[]): AstNode | undefined {
  let out: AstNode | undefined = expr ? { ...expr, parentheses: true } : undefined
  for (const c of conditions)
    out = out === undefined ? c : { type: 'binary_expr', operator: 'AND', left: out, right: c }
  return out
}

function addConditions(ast: AstNode, ctx: VerifyContext, tenantValue: () => AstNode): void {
  const condition = (qualifier: string): AstNode => ({
    type: 'binary_expr',
    operator: '=',
    left: columnRef(ctx, qualifier),
    right: tenantValue(),
  })
  switch (ast.type) {
    case 'select': {
      for (let arm: AstNode | undefined = ast; arm; arm = arm._next) {
        rejectCte(arm)
        const inWhere: AstNode[] = []
        fromItems(arm.from).forEach((item, i) => {
          if (isDerivedTable(item) || item.type === 'dual' || isSharedTable(item, ctx.shared)) return
          const name = tableName(item)
          if (i > 0 && JOIN_SCOPED_BY_ON.has(String(item.join ?? '').toUpperCase()) && !item.using) {
            item.on = conjoin(item.on, [condition(name)])
          } else inWhere.push(condition(name))
        })
        arm.where = conjoin(arm.where, inWhere) ?? null
      }
      return
    }
    case 'update': {
      rejectCte(ast)
      for (const assignment of ast.set ?? []) {
        if (assignedColumnIsTenant(assignment, ctx)) {
          throw new UnsafeQueryError(`an UPDATE may not change the tenant column "${ctx.column}"`)
        }
      }
      const targets = fromItems(ast.table)
      const others = fromItems(ast.from).filter((i) => !isDerivedTable(i) && !isSharedTable(i, ctx.shared))
      ast.where = conjoin(
        ast.where,
        [...targets, ...others].map((i) => condition(tableName(i))),
      )
      return
    }
    case 'delete': {
      rejectCte(ast)
      ast.where = conjoin(
        ast.where,
        fromItems(ast.from).map((i) => condition(tableName(i))),
      )
      return
    }
    case 'insert':
    case 'replace': {
      // Refusals (REPLACE, INSERT ... SELECT, no column list) come from the proof that follows.
      if (ast.values?.type !== 'values' || !Array.isArray(ast.columns) || ast.columns.length === 0) return
      if (!ast.columns.some((c: unknown) => insertColumnIsTenant(c, ctx))) {
        ast.columns.push(
          ctx.dialect === 'sqlite' ? ctx.column : { type: 'double_quote_string', value: ctx.column },
        )
        for (const row of ast.values.values ?? [])
          if (Array.isArray(row?.value)) row.value.push(tenantValue())
      }
      const action = ast.conflict?.action?.expr
      const target = fromItems(ast.table)[0]
      if (action?.type === 'update' && target !== undefined) {
        action.where = conjoin(action.where, [condition(tableName(target))])
      }
      return
    }
    default:
      // The proof refuses it with the reason.
      return
  }
}
