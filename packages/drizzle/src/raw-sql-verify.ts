import { type AstNode, type Placeholders, type SqlDialect, UnsafeQueryError } from './raw-sql-ast'
import { checkTenantIdForm, type TenantIdForm } from './tenant-id-form'

// Internal: the proof behind validateQuery. A statement is accepted only when every table it reads
// or writes is pinned to a tenant by a top-level AND conjunct `<table>.<column> = <value>` (in
// WHERE, or in the ON of an INNER/LEFT join for the joined table), in every SELECT of it: the outer
// one, each UNION arm and each subquery. What the proof cannot see through is refused.

/** What the proof needs to know besides the statement. */
export interface VerifyContext {
  dialect: SqlDialect
  /** The tenant column's stored name. */
  column: string
  /**
   * Lower-cased names (`table` or `schema.table`) of tables without a tenant column that may be
   * read unfiltered. A name matches a reference written the same way only (see {@link tableKey}).
   */
  shared: ReadonlySet<string>
  placeholders: Placeholders
  /** The user's parameter values, when known. */
  params: readonly unknown[] | undefined
  /** When set, every tenant condition must compare with exactly this tenant. */
  tenantId: string | undefined
  /**
   * Lower-cased names (`table` or `schema.table`) of the tables known to have the tenant column;
   * inside a subquery only these may be pinned by an unqualified tenant column.
   */
  tenantTables?: ReadonlySet<string> | undefined
  /** Lower-cased names (`name` or `schema.name`) of functions allowed besides the built-in list. */
  allowedFunctions?: ReadonlySet<string> | undefined
  /**
   * How the tenant column of the table with this {@link tableKey} compares with an id, when the
   * caller knows its type (`TenantDB`: its Drizzle tables); undefined for an unknown type, which
   * gets the rule for every type. May throw for a column no rule makes exact.
   */
  tenantIdForm?: ((key: string) => TenantIdForm | undefined) | undefined
  /** Filled in by {@link verifyStatement}: the tenant tables of the statement, with their rule. */
  idForms?: readonly { table: string; form: TenantIdForm | { unknown: SqlDialect } }[] | undefined
}

/**
 * Where a SELECT sits. Inside a subquery a column reference the subquery's own tables do not
 * have resolves to an enclosing query's row (SQLite does this even for a qualified reference
 * whose qualifier names an inner table), so there a tenant condition only proves what it seems
 * to when the column surely belongs to the inner table.
 */
interface Scope {
  /** True when enclosing queries' columns are visible (correlated subqueries, LATERAL). */
  nested: boolean
  /** Folded names of the FROM entries of the enclosing queries. */
  outer: ReadonlySet<string>
}

const TOP: Scope = { nested: false, outer: new Set() }

// Functions a scoped statement may call: the databases' built-in scalar, aggregate, window, date,
// math, string and JSON functions that compute from their arguments. Everything else is refused,
// because a function can read data the tenant filter does not cover: ones that run SQL given as
// text (`query_to_xml`, `ts_stat`, `dblink`), read files or large objects, change the session
// (`set_config` could rewrite `app.tenant_id`), or any function of your own. Allow your own vetted
// ones with the `allowedFunctions` option.
function words(list: string): string[] {
  return list.trim().split(/\s+/)
}

const COMMON_FUNCTIONS = words(`
  avg count max min sum string_agg row_number rank dense_rank percent_rank cume_dist ntile lag
  lead first_value last_value nth_value coalesce nullif concat concat_ws format length lower upper
  ltrim rtrim trim replace substr substring octet_length abs round ceil ceiling floor trunc sign
  mod power pow sqrt exp ln log log10 pi degrees radians random acos asin atan atan2 cos sin tan
  acosh asinh atanh cosh sinh tanh
`)
const SQLITE_FUNCTIONS = words(`
  char glob hex ifnull iif if instr like likelihood likely unlikely printf quote randomblob
  soundex typeof unhex unicode zeroblob log2 group_concat total date time datetime julianday
  unixepoch strftime timediff current_date current_time current_timestamp json jsonb json_array
  jsonb_array json_array_length json_error_position json_extract jsonb_extract json_insert
  jsonb_insert json_object jsonb_object json_patch jsonb_patch json_remove jsonb_remove
  json_replace jsonb_replace json_set jsonb_set json_type json_valid json_quote json_group_array
  jsonb_group_array json_group_object jsonb_group_object
`)
const PG_FUNCTIONS = words(`
  ascii bit_length btrim char_length character_length chr initcap left lpad md5 overlay position
  regexp_count regexp_instr regexp_like regexp_match regexp_matches regexp_replace
  regexp_split_to_array regexp_substr repeat reverse right rpad split_part starts_with strpos
  to_hex translate encode decode sha224 sha256 sha384 sha512 normalize greatest least num_nonnulls
  num_nulls gen_random_uuid cbrt div factorial gcd lcm scale min_scale trim_scale width_bucket cot
  acosd asind atand atan2d cosd cotd sind tand array_agg bit_and bit_or bit_xor bool_and bool_or
  every json_agg jsonb_agg json_object_agg jsonb_object_agg stddev stddev_pop stddev_samp variance
  var_pop var_samp corr covar_pop covar_samp mode percentile_cont percentile_disc any_value age
  clock_timestamp current_date current_time current_timestamp date_bin date_part date_trunc
  isfinite justify_days justify_hours justify_interval localtime localtimestamp make_date
  make_interval make_time make_timestamp make_timestamptz now statement_timestamp
  transaction_timestamp to_timestamp to_char to_date to_number to_json to_jsonb array_to_json
  row_to_json json_build_array jsonb_build_array json_build_object jsonb_build_object json_object
  jsonb_object json_array_length jsonb_array_length json_extract_path jsonb_extract_path
  json_extract_path_text jsonb_extract_path_text json_typeof jsonb_typeof jsonb_set jsonb_set_lax
  jsonb_insert json_strip_nulls jsonb_strip_nulls jsonb_pretty jsonb_path_exists jsonb_path_match
  jsonb_path_query jsonb_path_query_array jsonb_path_query_first json_array_elements
  jsonb_array_elements json_array_elements_text jsonb_array_elements_text json_object_keys
  jsonb_object_keys array_append array_cat array_dims array_fill array_length array_lower
  array_position array_positions array_prepend array_remove array_replace array_to_string
  array_upper cardinality string_to_array unnest trim_array to_tsvector to_tsquery plainto_tsquery
  phraseto_tsquery websearch_to_tsquery ts_rank ts_rank_cd ts_headline setweight strip
  tsvector_to_array numnode
`)
const ALLOWED_FUNCTIONS: Record<SqlDialect, ReadonlySet<string>> = {
  sqlite: new Set([...COMMON_FUNCTIONS, ...SQLITE_FUNCTIONS]),
  postgresql: new Set([...COMMON_FUNCTIONS, ...PG_FUNCTIONS]),
}

const WRITE_TYPES = new Set(['insert', 'update', 'delete', 'replace'])
/** Joins whose ON condition can scope the joined table: its rows appear only where ON holds. */
export const JOIN_SCOPED_BY_ON = new Set(['JOIN', 'INNER JOIN', 'LEFT JOIN', 'LEFT OUTER JOIN'])

/** Proves `ast` tenant-scoped or throws {@link UnsafeQueryError} saying why not. */
export function verifyStatement(ast: AstNode, context: VerifyContext): void {
  // Every tenant id the statement compares (the bound tenant, literals, known parameters) must be
  // the one spelling of its value for every tenant table the statement reads or writes: one table's
  // rows can be tied to another's through `a.tenant_id = b.tenant_id`, so the strictest rule of
  // them all applies to each.
  const ctx: VerifyContext = { ...context, idForms: tenantTableForms(ast, context) }
  if (ctx.tenantId !== undefined) checkIdForms(ctx.tenantId, ctx)
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

function verifySelect(select: AstNode, ctx: VerifyContext, label = 'the statement', scope = TOP): void {
  for (let arm: AstNode | undefined = select; arm; arm = arm._next) {
    verifySelectCore(arm, ctx, arm === select ? label : `a UNION/INTERSECT/EXCEPT arm of ${label}`, scope)
  }
  // A subquery in an expression list reaches us as its own fields plus a copy under `ast`: the
  // copy sits at the same level, not one deeper.
  if (select.ast?.type === 'select' && select.ast !== select) verifySelect(select.ast, ctx, label, scope)
}

function verifySelectCore(s: AstNode, ctx: VerifyContext, where: string, scope: Scope): void {
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
  proveTables(
    items,
    conjunctsOf(s.where),
    s.where,
    ctx,
    (item) => `${where} reads table "${item.table}"`,
    scope,
  )
  verifyNested(s, ctx, ['_next', 'ast'], { sub: enclosing(scope, items, ctx), derived: scope })
}

/** The scope of a subquery of a query that reads `items` and itself sits in `scope`. */
function enclosing(scope: Scope, items: AstNode[], ctx: VerifyContext): Scope {
  const outer = new Set(scope.outer)
  for (const item of items) if (tableName(item) !== undefined) outer.add(foldIdent(tableName(item), ctx))
  return { nested: true, outer }
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
  scope: Scope,
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
      const refs = trustedRefs(item, name, single, scope, ctx)
      const proven =
        conjuncts.some(
          (c) => isTenantCondition(c, name, refs, ctx) || isTenantLink(c, name, pinned, refs, ctx),
        ) ||
        own.some(
          (c) =>
            isTenantCondition(c, name, { ...refs, unqualified: false }, ctx) ||
            isTenantLink(c, name, pinned, refs, ctx),
        )
      if (proven) {
        pinned.add(name)
        pending.splice(pending.indexOf(item), 1)
        progress = true
      }
    }
  }
  const first = pending[0]
  if (first !== undefined) {
    throw new UnsafeQueryError(missingCondition(describe(first), tableName(first), where, first, ctx, scope))
  }
}

/** Which references to the tenant column the proof may take as this item's own column. */
interface TrustedRefs {
  qualified: boolean
  unqualified: boolean
}

/**
 * At the top of a statement a reference resolves to the statement's own tables. In a subquery,
 * a table that lacks the column lets the reference resolve to an enclosing query's row, so the
 * reference counts only when the table is declared in `tenantTables`, or, qualified, when no
 * enclosing query uses the same name (SQLite would look there).
 */
function trustedRefs(
  item: AstNode,
  name: string,
  single: boolean,
  scope: Scope,
  ctx: VerifyContext,
): TrustedRefs {
  if (!scope.nested) return { qualified: true, unqualified: single }
  const declared = ctx.tenantTables !== undefined && isListedTable(item, ctx.tenantTables)
  return { qualified: declared || !scope.outer.has(name), unqualified: single && declared }
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
  proveTables(
    [target, ...items],
    conjunctsOf(s.where),
    s.where,
    ctx,
    (item) =>
      item === target ? `the UPDATE of table "${item.table}"` : `UPDATE ... FROM reads table "${item.table}"`,
    TOP,
  )
  verifyNested(s, ctx, ['table'], { sub: enclosing(TOP, [target, ...items], ctx), derived: TOP })
}

function verifyDelete(s: AstNode, ctx: VerifyContext): void {
  rejectCte(s)
  const target = singleTable(s.from, 'DELETE')
  checkAliases([target], ctx)
  rejectSharedWrite(target, ctx)
  proveTables(
    [target],
    conjunctsOf(s.where),
    s.where,
    ctx,
    (item) => `the DELETE from table "${item.table}"`,
    TOP,
  )
  verifyNested(s, ctx, ['table', 'from'], { sub: enclosing(TOP, [target], ctx), derived: TOP })
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
    const refs = { qualified: true, unqualified: false }
    if (!conjunctsOf(action.where).some((c) => isTenantCondition(c, name, refs, ctx))) {
      throw new UnsafeQueryError(
        `ON CONFLICT DO UPDATE needs "WHERE ${name}.${ctx.column} = ..." so it cannot update another tenant's row`,
      )
    }
  }
  // A subquery in VALUES sees no other row; one in RETURNING sees the inserted row (an unqualified
  // tenant column there could be the target's, always this tenant's); one in DO UPDATE sees the
  // target row and `excluded`.
  verifyNested(s, ctx, ['table', 'conflict', 'returning'], { sub: TOP, derived: TOP })
  const returning = enclosing(TOP, [target], ctx)
  verifyNested({ returning: s.returning }, ctx, [], { sub: returning, derived: returning })
  if (action?.type === 'update') {
    const sub = enclosing(TOP, [target, { table: 'excluded' }], ctx)
    verifyNested({ set: action.set, where: action.where }, ctx, [], { sub, derived: sub })
  }
}

/**
 * Every SELECT below `node` (subqueries anywhere, derived tables) is proven on its own, in its
 * scope: `derived` for a subquery in FROM (it sees only what the query around it sees), `sub`
 * for every other one and for LATERAL (they also see the query's own FROM entries). Every
 * function called must be on the allow-list.
 */
function verifyNested(
  node: AstNode,
  ctx: VerifyContext,
  skip: string[],
  scopes: { sub: Scope; derived: Scope },
): void {
  const visit = (value: unknown) => {
    if (value === null || typeof value !== 'object') return
    if (Array.isArray(value)) {
      for (const v of value) visit(v)
      return
    }
    const n = value as AstNode
    if (n.type === 'select') {
      verifySelect(n, ctx, 'a subquery', scopes.sub)
      return
    }
    if (WRITE_TYPES.has(n.type))
      throw new UnsafeQueryError('a data-modifying statement inside another is refused')
    if (n.type === 'function' || n.type === 'aggr_func' || n.type === 'window_func') checkFunction(n, ctx)
    if (n.type === 'binary_expr' && ctx.dialect === 'sqlite' && PG_ONLY_OPERATORS.has(String(n.operator))) {
      throw new UnsafeQueryError(
        `the operator ${String(n.operator)} is PostgreSQL's; in SQLite a "?" in it is a placeholder no value is bound for`,
      )
    }
    for (const key of Object.keys(n)) if (key !== 'loc') visit(n[key])
  }
  for (const key of Object.keys(node)) {
    if (skip.includes(key) || key === 'loc') continue
    if (key !== 'from' || !Array.isArray(node.from)) {
      visit(node[key])
      continue
    }
    for (const item of node.from as AstNode[]) {
      if (!isDerivedTable(item)) {
        visit(item)
        continue
      }
      verifySelect(item.expr.ast, ctx, 'a subquery in FROM', item.prefix ? scopes.sub : scopes.derived)
      for (const k of Object.keys(item)) if (k !== 'loc' && k !== 'expr') visit(item[k])
    }
  }
}

// PostgreSQL's JSON operators, which the SQLite grammar of node-sql-parser also reads. Printed for
// SQLite, the `?` in them is a placeholder: the text would hold one more mark than values bound.
const PG_ONLY_OPERATORS = new Set(['?', '?|', '?&', '@>', '<@', '#>', '#>>', '#-'])

// `NOT (...)` and `EXISTS (...)` reach the AST as calls of functions with these names.
const KEYWORD_CALLS = new Set(['not', 'exists'])

function checkFunction(node: AstNode, ctx: VerifyContext): void {
  const parts = node.name?.name
  if (Array.isArray(parts) && parts.length === 1 && parts[0]?.type === 'default' && !node.name.schema) {
    if (KEYWORD_CALLS.has(String(parts[0].value).toLowerCase())) return
  }
  const name = functionName(node, ctx)
  const [schema, bare] = name.includes('.') ? name.split('.', 2) : [undefined, name]
  const builtIn =
    (schema === undefined || (ctx.dialect === 'postgresql' && schema === 'pg_catalog')) &&
    ALLOWED_FUNCTIONS[ctx.dialect].has(bare!)
  if (builtIn || ctx.allowedFunctions?.has(name)) return
  throw new UnsafeQueryError(
    `function ${name}() is not on the list of functions a scoped statement may call (functions can read data the tenant filter does not cover); allow your own vetted functions with allowedFunctions`,
  )
}

// Names PostgreSQL reads as grammar, not as a function looked up by name and argument types: no
// function of the database can stand in for them, and `pg_catalog.coalesce(...)` does not parse.
const PG_GRAMMAR_CALLS = new Set(
  words(`
  coalesce nullif greatest least trim current_date current_time current_timestamp localtime
  localtimestamp
`),
)

/**
 * Writes every call of an allowed built-in in a PostgreSQL statement as `pg_catalog.name(...)`,
 * before the statement is printed and checked. PostgreSQL looks an unqualified name up along the
 * search path by name and argument types, so a function of the database's own named like a
 * built-in with other argument types (`length(notes)`, which could read every tenant's rows) would
 * be called in its stead; in pg_catalog there is only the built-in. A call in special syntax
 * (`POSITION('a' IN b)`, a name the parser marks `origin`) is grammar, and kept; so is a name the
 * caller allowed as its own (`allowedFunctions`).
 */
export function pinBuiltinsToCatalog(
  ast: unknown,
  ctx: Pick<VerifyContext, 'dialect' | 'allowedFunctions'>,
): void {
  if (ctx.dialect !== 'postgresql') return
  const seen = new Set<unknown>()
  const visit = (node: unknown): void => {
    if (node === null || typeof node !== 'object' || seen.has(node)) return
    seen.add(node)
    const n = node as AstNode
    // Not window functions (row_number() OVER ...), nor aggregates with OVER, FILTER, DISTINCT or
    // ORDER BY: the parser reads no schema on some of them (the statement would be refused), and
    // only an aggregate or window function of the database's own could stand in for them.
    const plainAggregate =
      n.type === 'aggr_func' && !n.over && !n.filter && !n.args?.distinct && !n.args?.orderby
    if (n.type === 'function' || plainAggregate) {
      pinCall(n, ctx)
    }
    for (const value of Object.values(n)) visit(value)
  }
  visit(ast)
}

function pinCall(node: AstNode, ctx: Pick<VerifyContext, 'dialect' | 'allowedFunctions'>): void {
  const name = node.name
  const bare =
    typeof name === 'string'
      ? name.toLowerCase()
      : Array.isArray(name?.name) && name.name.length === 1 && !name.schema
        ? String(name.name[0]?.value ?? '').toLowerCase()
        : undefined
  if (bare === undefined || !ALLOWED_FUNCTIONS.postgresql.has(bare) || PG_GRAMMAR_CALLS.has(bare)) return
  if (ctx.allowedFunctions?.has(bare)) return
  if (typeof name === 'string') {
    if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) node.name = `pg_catalog.${name}`
    return
  }
  // A quoted name is looked up the same way ("length" is length); one in other case is no built-in
  // and was refused already.
  const part = name.name[0]
  if (part?.type === 'default' || (part?.type === 'double_quote_string' && part.value === bare)) {
    name.schema = { type: 'default', value: 'pg_catalog' }
  }
}

/** `name` or `schema.name` as the database reads it: unquoted parts folded to lower case. */
function functionName(node: AstNode, ctx: VerifyContext): string {
  const part = (p: unknown): string => {
    if (typeof p === 'string') return p.toLowerCase()
    const value = String((p as AstNode)?.value ?? '')
    return (p as AstNode)?.type === 'double_quote_string' && ctx.dialect === 'postgresql'
      ? value
      : value.toLowerCase()
  }
  const name = node.name
  if (typeof name === 'string') return name.toLowerCase()
  const parts: unknown[] = Array.isArray(name?.name) ? name.name : []
  const schema = name?.schema ? [part(name.schema)] : []
  const all = [...schema, ...parts.map(part)]
  // A name the parser shapes differently is refused rather than guessed at.
  return all.length > 0 && all.every((p) => p !== '') ? all.join('.') : '(unreadable name)'
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
    checkIdentifierCase(item.db, ctx)
    checkIdentifierCase(item.schema, ctx)
    if (typeof item.as === 'string') {
      checkIdentifierCase(item.as, ctx)
      // Postgres's `AS n(a, b)` renames the table's columns; the parser folds the list into the
      // alias, so a renamed-away tenant column would look present.
      if (item.as.includes('(')) {
        throw new UnsafeQueryError(`a table alias with a column list ("${item.as}") is refused`)
      }
    }
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

/** True when the FROM item names a table listed in `shared`, written the same way (see {@link tableKey}). */
export function isSharedTable(item: AstNode, shared: ReadonlySet<string>): boolean {
  return isListedTable(item, shared)
}

/**
 * The table a FROM item or target names, as written: `table`, `schema.table` (SQLite: attached
 * `database.table`, `main.table` included) or `db.schema.table`, lower-cased (SQLite folds case;
 * Postgres names with capitals are refused by {@link checkAliases}). An unqualified name and the
 * same name with a schema are different keys: the first resolves through the connection's search
 * path (SQLite: temp, main, then attached databases), which we cannot see, so neither is taken for
 * the other.
 */
export function tableKey(item: AstNode): string {
  return [item.db, item.schema, item.table]
    .filter((part): part is string => typeof part === 'string' && part !== '')
    .join('.')
    .toLowerCase()
}

/**
 * True when the FROM item names a table of `list` (lower-cased `table` or `schema.table`), written
 * the same way: `plans` matches `plans` only, not `archive.plans` or `main.plans`, and
 * `archive.plans` matches `archive.plans` only.
 */
function isListedTable(item: AstNode, list: ReadonlySet<string>): boolean {
  return list.has(tableKey(item))
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
  if (known && typeof value === 'string' && value !== '') checkIdForms(value, ctx)
  return !known || (typeof value === 'string' && value !== '')
}

function checkIdForms(tenantId: string, ctx: VerifyContext): void {
  for (const { table, form } of ctx.idForms ?? []) checkTenantIdForm(tenantId, form, table)
}

/**
 * Every table the statement names, anywhere (FROM lists, joins, targets, subqueries), that is not
 * shared, with how its tenant column compares with an id. Collected from the whole tree, not only
 * from the tables the proof reaches, so that none is missed.
 */
function tenantTableForms(ast: AstNode, ctx: VerifyContext): NonNullable<VerifyContext['idForms']> {
  const forms = new Map<string, TenantIdForm | { unknown: SqlDialect }>()
  const seen = new Set<object>()
  const visit = (value: unknown, key: string | undefined) => {
    if (value === null || typeof value !== 'object' || seen.has(value)) return
    seen.add(value)
    if (Array.isArray(value)) {
      for (const item of value) {
        // FROM lists and the target lists of INSERT/UPDATE/DELETE.
        if ((key === 'from' || key === 'table') && typeof item?.table === 'string' && !isShared(item, ctx)) {
          const k = tableKey(item)
          if (!forms.has(k)) forms.set(k, ctx.tenantIdForm?.(k) ?? { unknown: ctx.dialect })
        }
        visit(item, undefined)
      }
      return
    }
    for (const [k, v] of Object.entries(value)) if (k !== 'loc') visit(v, k)
  }
  visit(ast, undefined)
  return [...forms].map(([table, form]) => ({ table, form }))
}

// The parts of a tenant condition may carry nothing but what the proof read: no COLLATE (SQLite
// `= 'acme' COLLATE NOCASE` matches tenant ACME), no other modifier the parser attaches.
const PLAIN_KEYS: Record<string, ReadonlySet<string>> = {
  binary_expr: new Set(['type', 'operator', 'left', 'right']),
  column_ref: new Set(['type', 'table', 'column']),
  double_quote_string: new Set(['type', 'value']),
  single_quote_string: new Set(['type', 'value']),
  param: new Set(['type', 'value']),
}

function isPlain(node: unknown): boolean {
  if (node === null || typeof node !== 'object') return false
  const n = node as AstNode
  const keys = PLAIN_KEYS[n.type]
  if (keys === undefined) return false
  return Object.keys(n).every(
    (key) =>
      keys.has(key) || key === 'loc' || key === 'parentheses' || n[key] === null || n[key] === undefined,
  )
}

/** `<name>.<column> = <tenant value>` (either side), through the references `refs` trusts. */
function isTenantCondition(c: AstNode, name: string, refs: TrustedRefs, ctx: VerifyContext): boolean {
  if (c.type !== 'binary_expr' || (c.operator !== '=' && c.operator !== '==') || !isPlain(c)) return false
  for (const [ref, value] of [
    [c.left, c.right],
    [c.right, c.left],
  ]) {
    const qualifier = tenantColumnQualifier(ref, ctx)
    if (qualifier === undefined || !isPlain(ref) || !isPlain(value)) continue
    const qualified = refs.qualified && qualifier !== null && foldIdent(qualifier, ctx) === name
    if ((qualified || (qualifier === null && refs.unqualified)) && isTenantValue(value, ctx)) return true
  }
  return false
}

/** `<name>.<column> = <other>.<column>` with `other` already pinned to the tenant. */
function isTenantLink(
  c: AstNode,
  name: string,
  pinned: ReadonlySet<string>,
  refs: TrustedRefs,
  ctx: VerifyContext,
): boolean {
  if (c.type !== 'binary_expr' || (c.operator !== '=' && c.operator !== '==') || !isPlain(c)) return false
  if (!refs.qualified || !isPlain(c.left) || !isPlain(c.right)) return false
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
  scope: Scope,
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
  const equalities = candidates.filter(
    (c) => c.type === 'binary_expr' && (c.operator === '=' || c.operator === '==') && mentions(c),
  )
  const refs = trustedRefs(item, name, true, scope, ctx)
  if (equalities.some((c) => JSON.stringify(c).includes('"collate":{'))) {
    hint = '; COLLATE (or another modifier) on the tenant condition is refused: it can match other tenants'
  } else if (scope.nested && (!refs.qualified || !refs.unqualified) && equalities.length > 0) {
    hint = !refs.qualified
      ? `; in a subquery, "${name}" also names a table of an enclosing query, where SQLite would look for the column: give the subquery's table a distinct alias`
      : `; in a subquery, an unqualified "${ctx.column}" can resolve to an enclosing query's row when the table has no such column: qualify it ("${name}.${ctx.column}") or declare the table in tenantTables`
  } else if (equalities.length > 0) {
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
  const bare = String(item.table).toLowerCase()
  if (tableKey(item) !== bare && ctx.shared.has(bare)) {
    hint += `; shared "${bare}" names the unqualified table only: list "${tableKey(item)}" to share this one`
  }
  return `${what} without ${wanted}${hint}`
}
