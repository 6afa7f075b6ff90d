import { type AstNode, type Placeholders, type SqlDialect, UnsafeQueryError } from './raw-sql-ast'

// Internal: the proof behind validateQuery. A statement is accepted only when every table it reads
// or writes is pinned to a tenant by a top-level AND conjunct `<table>.<column> = <value>` (in
// WHERE, or in the ON of an INNER/LEFT join for the joined table), in every SELECT of it: the outer
// one, each UNION arm and each subquery. What the proof cannot see through is refused.

/** What the proof needs to know besides the statement. */
export interface VerifyContext {
  dialect: SqlDialect
  /** The tenant column's stored name. */
  column: string
  /** Lower-cased names of tables without a tenant column that may be read unfiltered. */
  shared: ReadonlySet<string>
  placeholders: Placeholders
  /** The user's parameter values, when known. */
  params: readonly unknown[] | undefined
  /** When set, every tenant condition must compare with exactly this tenant. */
  tenantId: string | undefined
}

// Functions that run SQL given as text, dump whole tables, read or write files, or change the
// session (and with it `app.tenant_id`). A filter on the statement cannot see through them.
const FORBIDDEN_FUNCTIONS = new Set([
  'query_to_xml',
  'query_to_xmlschema',
  'query_to_xml_and_xmlschema',
  'cursor_to_xml',
  'cursor_to_xmlschema',
  'table_to_xml',
  'table_to_xmlschema',
  'table_to_xml_and_xmlschema',
  'schema_to_xml',
  'schema_to_xmlschema',
  'schema_to_xml_and_xmlschema',
  'database_to_xml',
  'database_to_xmlschema',
  'database_to_xml_and_xmlschema',
  'dblink',
  'dblink_exec',
  'dblink_open',
  'dblink_fetch',
  'dblink_send_query',
  'set_config',
  'pg_read_file',
  'pg_read_binary_file',
  'pg_ls_dir',
  'lo_import',
  'lo_export',
  'lo_get',
  'load_extension',
  'readfile',
  'writefile',
  'fts3_tokenizer',
])

const WRITE_TYPES = new Set(['insert', 'update', 'delete', 'replace'])
/** Joins whose ON condition can scope the joined table: its rows appear only where ON holds. */
export const JOIN_SCOPED_BY_ON = new Set(['JOIN', 'INNER JOIN', 'LEFT JOIN', 'LEFT OUTER JOIN'])

/** Proves `ast` tenant-scoped or throws {@link UnsafeQueryError} saying why not. */
export function verifyStatement(ast: AstNode, ctx: VerifyContext): void {
  switch (ast.type) {
    case 'select':
      verifySelect(ast, ctx)
      return
    case 'update':
      verifyUpdate(ast, ctx)
      return
    case 'delete':
      verifyDelete(ast, ctx)
      return
    case 'insert':
    case 'replace':
      verifyInsert(ast, ctx)
      return
    default:
      throw new UnsafeQueryError(
        `only SELECT, INSERT, UPDATE and DELETE can be scoped; ${String(ast.type ?? 'this statement').toUpperCase()} is refused`,
      )
  }
}

function verifySelect(select: AstNode, ctx: VerifyContext, label = 'the statement'): void {
  for (let arm: AstNode | undefined = select; arm; arm = arm._next) {
    verifySelectCore(arm, ctx, arm === select ? label : `a UNION/INTERSECT/EXCEPT arm of ${label}`)
  }
}

function verifySelectCore(s: AstNode, ctx: VerifyContext, where: string): void {
  rejectCte(s)
  if (s.into && (s.into.position || s.into.expr)) throw new UnsafeQueryError('SELECT ... INTO is refused')
  const items = fromItems(s.from)
  checkAliases(items, ctx)
  for (const column of ctx.dialect === 'sqlite' ? (s.columns ?? []) : []) {
    // SQLite lets WHERE name an output alias; one named like the tenant column could stand in for it.
    if (
      typeof column?.as === 'string' &&
      sameColumn(column.as, ctx) &&
      tenantColumnQualifier(column.expr, ctx) === undefined
    ) {
      throw new UnsafeQueryError(`an output column may not be named "${column.as}" like the tenant column`)
    }
  }
  proveTables(items, conjunctsOf(s.where), s.where, ctx, (item) => `${where} reads table "${item.table}"`)
  verifyNested(s, ctx, ['_next'])
}

/**
 * Every tenant table of `items` must be pinned: directly (`t.col = <tenant>` in WHERE, or in the
 * ON of its INNER/LEFT join), or through `t.col = u.col` with `u` already pinned (rows of `t` then
 * carry the same tenant as rows of `u`). Iterates to a fixed point.
 */
function proveTables(
  items: AstNode[],
  conjuncts: AstNode[],
  where: unknown,
  ctx: VerifyContext,
  describe: (item: AstNode) => string,
): void {
  const pending = items.filter(
    (item) => !isDerivedTable(item) && item.type !== 'dual' && !isShared(item, ctx),
  )
  const pinned = new Set<string>()
  const single = items.length === 1
  const onConjuncts = (item: AstNode) =>
    items.indexOf(item) > 0 && JOIN_SCOPED_BY_ON.has(String(item.join ?? '').toUpperCase())
      ? conjunctsOf(item.on)
      : []
  let progress = true
  while (progress && pending.length > 0) {
    progress = false
    for (const item of [...pending]) {
      const name = foldIdent(tableName(item), ctx)
      const own = onConjuncts(item)
      const proven =
        conjuncts.some(
          (c) => isTenantCondition(c, name, single, ctx) || isTenantLink(c, name, pinned, ctx),
        ) || own.some((c) => isTenantCondition(c, name, false, ctx) || isTenantLink(c, name, pinned, ctx))
      if (proven) {
        pinned.add(name)
        pending.splice(pending.indexOf(item), 1)
        progress = true
      }
    }
  }
  const first = pending[0]
  if (first !== undefined) {
    throw new UnsafeQueryError(missingCondition(describe(first), tableName(first), where, first, ctx))
  }
}

function verifyUpdate(s: AstNode, ctx: VerifyContext): void {
  rejectCte(s)
  const target = singleTable(s.table, 'UPDATE')
  const items = fromItems(s.from)
  checkAliases([target, ...items], ctx)
  rejectSharedWrite(target, ctx)
  for (const assignment of s.set ?? []) {
    if (assignedColumnIsTenant(assignment, ctx)) {
      throw new UnsafeQueryError(`an UPDATE may not change the tenant column "${ctx.column}"`)
    }
  }
  proveTables([target, ...items], conjunctsOf(s.where), s.where, ctx, (item) =>
    item === target ? `the UPDATE of table "${item.table}"` : `UPDATE ... FROM reads table "${item.table}"`,
  )
  verifyNested(s, ctx, ['table'])
}

function verifyDelete(s: AstNode, ctx: VerifyContext): void {
  rejectCte(s)
  const target = singleTable(s.from, 'DELETE')
  checkAliases([target], ctx)
  rejectSharedWrite(target, ctx)
  proveTables([target], conjunctsOf(s.where), s.where, ctx, (item) => `the DELETE from table "${item.table}"`)
  verifyNested(s, ctx, ['table', 'from'])
}

function verifyInsert(s: AstNode, ctx: VerifyContext): void {
  if (
    s.type === 'replace' ||
    (s.or ?? []).some((o: AstNode) => String(o?.value).toLowerCase() === 'replace')
  ) {
    throw new UnsafeQueryError('REPLACE deletes the conflicting row, which may belong to another tenant')
  }
  rejectCte(s)
  const target = singleTable(s.table, 'INSERT')
  checkAliases([target], ctx)
  rejectSharedWrite(target, ctx)
  if (s.values?.type !== 'values') {
    throw new UnsafeQueryError('INSERT ... SELECT cannot be proven scoped; insert VALUES instead')
  }
  if (!Array.isArray(s.columns) || s.columns.length === 0) {
    throw new UnsafeQueryError('an INSERT must name its columns, including the tenant column')
  }
  const index = s.columns.findIndex((c: unknown) => insertColumnIsTenant(c, ctx))
  if (index < 0) throw new UnsafeQueryError(`an INSERT must set the tenant column "${ctx.column}"`)
  for (const row of s.values.values ?? []) {
    const values = row?.value
    if (!Array.isArray(values) || values.length !== s.columns.length) {
      throw new UnsafeQueryError('every VALUES row must have one value per named column')
    }
    if (!isTenantValue(values[index], ctx)) {
      throw new UnsafeQueryError(`every VALUES row must set "${ctx.column}" to ${expected(ctx)}`)
    }
  }
  if (s.on_duplicate_update) throw new UnsafeQueryError('ON DUPLICATE KEY UPDATE is refused')
  const action = s.conflict?.action?.expr
  if (action?.type === 'update') {
    for (const assignment of action.set ?? []) {
      if (assignedColumnIsTenant(assignment, ctx)) {
        throw new UnsafeQueryError(`ON CONFLICT DO UPDATE may not change the tenant column "${ctx.column}"`)
      }
    }
    // The conflicting row may belong to another tenant when the unique key lacks the tenant column.
    const name = foldIdent(tableName(target), ctx)
    if (!conjunctsOf(action.where).some((c) => isTenantCondition(c, name, false, ctx))) {
      throw new UnsafeQueryError(
        `ON CONFLICT DO UPDATE needs "WHERE ${name}.${ctx.column} = ..." so it cannot update another tenant's row`,
      )
    }
  }
  verifyNested(s, ctx, ['table', 'conflict'])
  if (action?.type === 'update') verifyNested({ set: action.set, where: action.where }, ctx, [])
}

/** Every SELECT below `node` (subqueries anywhere, derived tables) is proven on its own. */
function verifyNested(node: AstNode, ctx: VerifyContext, skip: string[]): void {
  const visit = (value: unknown) => {
    if (value === null || typeof value !== 'object') return
    if (Array.isArray(value)) {
      for (const v of value) visit(v)
      return
    }
    const n = value as AstNode
    if (n.type === 'select') {
      verifySelect(n, ctx, 'a subquery')
      return
    }
    if (WRITE_TYPES.has(n.type))
      throw new UnsafeQueryError('a data-modifying statement inside another is refused')
    if (n.type === 'function' || n.type === 'aggr_func') {
      const name = functionName(n)
      if (name !== undefined && FORBIDDEN_FUNCTIONS.has(name)) {
        throw new UnsafeQueryError(
          `function ${name}() is refused: it can read data the tenant filter does not cover`,
        )
      }
    }
    for (const key of Object.keys(n)) if (key !== 'loc') visit(n[key])
  }
  for (const key of Object.keys(node)) if (!skip.includes(key) && key !== 'loc') visit(node[key])
}

function functionName(node: AstNode): string | undefined {
  const name = node.name
  if (typeof name === 'string') return name.toLowerCase()
  const parts = name?.name
  if (Array.isArray(parts) && parts.length > 0) {
    const last = parts[parts.length - 1]
    return typeof last?.value === 'string' ? last.value.toLowerCase() : undefined
  }
  return undefined
}

/** Refuses a statement with a WITH clause. */
export function rejectCte(s: AstNode): void {
  if (s.with !== null && s.with !== undefined && (!Array.isArray(s.with) || s.with.length > 0)) {
    throw new UnsafeQueryError('WITH (common table expressions) cannot be proven scoped; use a subquery')
  }
}

/** The FROM list, refusing anything that is not a table, a subquery or nothing. */
export function fromItems(from: unknown): AstNode[] {
  if (from === null || from === undefined) return []
  if (!Array.isArray(from)) throw new UnsafeQueryError('unsupported FROM clause')
  for (const item of from as AstNode[]) {
    if (item?.type === 'dual') continue
    if (item?.on?.type === 'expr_list') {
      // node-sql-parser reads `JOIN x ON c, y` as an ON list, hiding table y from the proof.
      throw new UnsafeQueryError('a comma after a JOIN ... ON condition is refused; write CROSS JOIN')
    }
    if (isDerivedTable(item)) continue
    if (typeof item?.table !== 'string' || item.expr !== undefined) {
      throw new UnsafeQueryError(
        'only tables and subqueries may appear in FROM (no table functions or VALUES)',
      )
    }
  }
  return from as AstNode[]
}

/** True for a subquery in FROM (`(SELECT ...) AS x`). */
export function isDerivedTable(item: AstNode): boolean {
  return item?.expr?.ast?.type === 'select' && item.table === undefined
}

function singleTable(list: unknown, statement: string): AstNode {
  const items = fromItems(list)
  if (items.length !== 1 || isDerivedTable(items[0]!) || items[0]!.join) {
    throw new UnsafeQueryError(`${statement} must name exactly one table`)
  }
  return items[0]!
}

/** The name a column reference uses for this FROM item: its alias, else the table name. */
export function tableName(item: AstNode): string {
  return typeof item.as === 'string' ? item.as : item.table
}

function foldIdent(name: string, ctx: VerifyContext): string {
  return ctx.dialect === 'sqlite' ? name.toLowerCase() : name
}

function checkAliases(items: AstNode[], ctx: VerifyContext): void {
  const seen = new Set<string>()
  for (const item of items) {
    if (isDerivedTable(item) || item.type === 'dual') {
      if (typeof item.as === 'string') checkIdentifierCase(item.as, ctx)
      continue
    }
    checkIdentifierCase(item.table, ctx)
    if (typeof item.as === 'string') checkIdentifierCase(item.as, ctx)
    const name = tableName(item).toLowerCase()
    if (seen.has(name))
      throw new UnsafeQueryError(
        `two FROM entries are both called "${tableName(item)}"; give them distinct aliases`,
      )
    seen.add(name)
  }
}

// Postgres folds unquoted names to lower case, and the parser keeps no trace of the quotes, so
// `"N"` and `N` look the same in the AST but are different names to the server.
function checkIdentifierCase(name: unknown, ctx: VerifyContext): void {
  if (ctx.dialect === 'postgresql' && typeof name === 'string' && /[A-Z]/.test(name)) {
    throw new UnsafeQueryError(
      `write the table name or alias "${name}" in lower case: the parser cannot tell "${name}" from ${name}, which Postgres reads as ${name.toLowerCase()}`,
    )
  }
}

function isShared(item: AstNode, ctx: VerifyContext): boolean {
  return isSharedTable(item, ctx.shared)
}

/** True when the FROM item names a table listed in `shared` (bare or schema-qualified, any case). */
export function isSharedTable(item: AstNode, shared: ReadonlySet<string>): boolean {
  const table = String(item.table).toLowerCase()
  const schema = typeof item.db === 'string' ? `${item.db.toLowerCase()}.${table}` : undefined
  return shared.has(table) || (schema !== undefined && shared.has(schema))
}

function rejectSharedWrite(item: AstNode, ctx: VerifyContext): void {
  if (isShared(item, ctx)) {
    throw new UnsafeQueryError(
      `table "${item.table}" is shared; writes to it are admin work (use unscoped(db))`,
    )
  }
}

/** The top-level AND conjuncts of a condition (parentheses around ANDs do not matter). */
export function conjunctsOf(expr: unknown): AstNode[] {
  if (expr === null || expr === undefined || typeof expr !== 'object') return []
  const e = expr as AstNode
  if (e.type === 'binary_expr' && String(e.operator).toUpperCase() === 'AND') {
    return [...conjunctsOf(e.left), ...conjunctsOf(e.right)]
  }
  return [e]
}

function sameColumn(name: string, ctx: VerifyContext): boolean {
  return name.toLowerCase() === ctx.column.toLowerCase()
}

/**
 * When `node` references the tenant column, the qualifier it uses (`null` when unqualified);
 * otherwise undefined. Postgres: an unquoted name folds to lower case, a quoted one is exact.
 */
function tenantColumnQualifier(node: unknown, ctx: VerifyContext): string | null | undefined {
  if (node === null || typeof node !== 'object') return undefined
  const n = node as AstNode
  if (ctx.dialect === 'sqlite' && n.type === 'double_quote_string') {
    // SQLite reads an unknown "name" as a string, a known one as a column; a tenant table has the column.
    return sameColumn(String(n.value), ctx) ? null : undefined
  }
  if (n.type !== 'column_ref' || n.schema || n.db) return undefined
  const col = n.column
  let matches: boolean
  if (typeof col === 'string') matches = ctx.dialect === 'sqlite' ? sameColumn(col, ctx) : col === ctx.column
  else if (col?.expr?.type === 'default') {
    const value = String(col.expr.value)
    matches = ctx.dialect === 'sqlite' ? sameColumn(value, ctx) : value.toLowerCase() === ctx.column
  } else if (col?.expr?.type === 'double_quote_string') {
    const value = String(col.expr.value)
    matches = ctx.dialect === 'sqlite' ? sameColumn(value, ctx) : value === ctx.column
  } else matches = false
  if (!matches) return undefined
  return typeof n.table === 'string' && n.table !== '' ? n.table : null
}

function isTenantValue(node: unknown, ctx: VerifyContext): boolean {
  if (node === null || typeof node !== 'object') return false
  const n = node as AstNode
  let known = false
  let value: unknown
  const binding = ctx.placeholders.bindingOf(n)
  if (binding?.kind === 'tenant') {
    known = ctx.tenantId !== undefined
    value = ctx.tenantId
  } else if (binding?.kind === 'user') {
    if (ctx.params !== undefined) {
      if (binding.index >= ctx.params.length) {
        throw new UnsafeQueryError(
          `parameter ${binding.index + 1} is used but only ${ctx.params.length} were given`,
        )
      }
      known = true
      value = ctx.params[binding.index]
    }
  } else if (n.type === 'single_quote_string' && typeof n.value === 'string') {
    known = true
    value = n.value
  } else return false
  if (ctx.tenantId !== undefined) return known && value === ctx.tenantId
  return !known || (typeof value === 'string' && value !== '')
}

/** `<name>.<column> = <tenant value>` (either side), unqualified allowed when `single`. */
function isTenantCondition(c: AstNode, name: string, single: boolean, ctx: VerifyContext): boolean {
  if (c.type !== 'binary_expr' || (c.operator !== '=' && c.operator !== '==')) return false
  for (const [ref, value] of [
    [c.left, c.right],
    [c.right, c.left],
  ]) {
    const qualifier = tenantColumnQualifier(ref, ctx)
    if (qualifier === undefined) continue
    const qualified = qualifier !== null && foldIdent(qualifier, ctx) === name
    if ((qualified || (qualifier === null && single)) && isTenantValue(value, ctx)) return true
  }
  return false
}

/** `<name>.<column> = <other>.<column>` with `other` already pinned to the tenant. */
function isTenantLink(c: AstNode, name: string, pinned: ReadonlySet<string>, ctx: VerifyContext): boolean {
  if (c.type !== 'binary_expr' || (c.operator !== '=' && c.operator !== '==')) return false
  const left = tenantColumnQualifier(c.left, ctx)
  const right = tenantColumnQualifier(c.right, ctx)
  if (typeof left !== 'string' || typeof right !== 'string') return false
  const l = foldIdent(left, ctx)
  const r = foldIdent(right, ctx)
  return (l === name && r !== name && pinned.has(r)) || (r === name && l !== name && pinned.has(l))
}

/** True when an UPDATE assignment (SET col = ...) targets the tenant column. */
export function assignedColumnIsTenant(assignment: AstNode, ctx: VerifyContext): boolean {
  if (typeof assignment?.column === 'string') return sameColumn(assignment.column, ctx)
  return tenantColumnQualifier({ ...assignment, schema: undefined, db: undefined }, ctx) !== undefined
}

/** True when an INSERT column list entry is the tenant column. */
export function insertColumnIsTenant(column: unknown, ctx: VerifyContext): boolean {
  if (typeof column === 'string')
    return ctx.dialect === 'sqlite' ? sameColumn(column, ctx) : column === ctx.column
  const c = column as AstNode
  if (c?.type === 'default') {
    return ctx.dialect === 'sqlite'
      ? sameColumn(String(c.value), ctx)
      : String(c.value).toLowerCase() === ctx.column
  }
  if (c?.type === 'double_quote_string') {
    return ctx.dialect === 'sqlite' ? sameColumn(String(c.value), ctx) : c.value === ctx.column
  }
  return false
}

function expected(ctx: VerifyContext): string {
  return ctx.tenantId === undefined ? 'a parameter or string literal' : `the tenant "${ctx.tenantId}"`
}

/** Explains why no condition was accepted, naming the common mistakes. */
function missingCondition(
  what: string,
  name: string,
  where: unknown,
  item: AstNode,
  ctx: VerifyContext,
): string {
  const wanted = `"${name}.${ctx.column} = ..." as a top-level AND condition`
  const mentions = (node: unknown): boolean => {
    if (node === null || typeof node !== 'object') return false
    if (tenantColumnQualifier(node, ctx) !== undefined) return true
    const n = node as AstNode
    if (n.type === 'select') return false
    return Object.keys(n).some((k) => k !== 'loc' && mentions(n[k]))
  }
  let hint = ''
  const top = conjunctsOf(where)
  const candidates = [...top, ...conjunctsOf(item.on)]
  if (
    candidates.some(
      (c) => c.type === 'binary_expr' && (c.operator === '=' || c.operator === '==') && mentions(c),
    )
  ) {
    hint =
      ctx.tenantId !== undefined
        ? `; the tenant condition compares with something other than ${expected(ctx)}, or is not qualified with "${name}"`
        : `; the tenant condition must compare with ${expected(ctx)} and be qualified with "${name}" when several tables are read`
  } else if (mentions(where) || mentions(item.on)) {
    hint =
      '; the tenant condition sits under OR/NOT or inside an expression, so rows of other tenants can still match'
  } else if (item.join && !JOIN_SCOPED_BY_ON.has(String(item.join).toUpperCase())) {
    hint = `; for a ${String(item.join)} the condition must be in WHERE`
  }
  return `${what} without ${wanted}${hint}`
}
