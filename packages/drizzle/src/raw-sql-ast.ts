import { TenantError } from '@tenant/core'
import * as pgBuild from 'node-sql-parser/build/postgresql.js'
import * as sqliteBuild from 'node-sql-parser/build/sqlite.js'
import { lexSql, type SqlToken } from './raw-sql-lex'

// Internal: parsing, rendering and placeholder bookkeeping for the raw-SQL tools. Everything here
// works on node-sql-parser's AST; no function looks for keywords in SQL text.

/** The SQL grammars the raw-SQL tools understand: SQLite-family (libSQL, D1, bun:sqlite) and Postgres. */
export type SqlDialect = 'sqlite' | 'postgresql'

/** A node of node-sql-parser's AST (its published types are incomplete, so we read it loosely). */
export type AstNode = Record<string, any>

/**
 * A statement the isolation layer cannot prove tenant-scoped, or cannot handle at all. The message
 * says why; `reason` holds the same text without the prefix. Code `tenant_unsafe_query`, status
 * 500: it is a bug in the service that issued the query, not in the client's request.
 *
 * @example
 * ```ts
 * try {
 *   validateQuery('SELECT * FROM notes WHERE tenant_id = ? OR 1 = 1', 'tenant_id')
 * } catch (error) {
 *   if (error instanceof UnsafeQueryError) console.error(error.reason) // "... sits under OR/NOT ..."
 * }
 * ```
 */
export class UnsafeQueryError extends TenantError {
  readonly reason: string
  constructor(reason: string, options: { cause?: unknown; tenantId?: string } = {}) {
    super('tenant_unsafe_query', `unsafe query: ${reason}`, options)
    this.name = 'UnsafeQueryError'
    this.reason = reason
  }
}

type ParserInstance = {
  astify(sql: string, opt?: { database?: string }): AstNode | AstNode[]
  sqlify(ast: AstNode | AstNode[], opt?: { database?: string }): string
}

// The per-dialect builds are a tenth of the all-dialects bundle. They are CommonJS, so read
// `Parser` from whichever shape the importing runtime or bundler hands us.
function parserClass(mod: unknown): new () => ParserInstance {
  const m = mod as { Parser?: unknown; default?: { Parser?: unknown } }
  const ctor = m.Parser ?? m.default?.Parser
  if (typeof ctor !== 'function') throw new Error('node-sql-parser: Parser export not found')
  return ctor as new () => ParserInstance
}

const parsers: Partial<Record<SqlDialect, ParserInstance>> = {}

function parser(dialect: SqlDialect): ParserInstance {
  let p = parsers[dialect]
  if (p === undefined) {
    p = new (parserClass(dialect === 'sqlite' ? sqliteBuild : pgBuild))()
    parsers[dialect] = p
  }
  return p
}

/** Throws unless `dialect` is one we support. */
export function checkDialect(dialect: unknown): SqlDialect {
  if (dialect === 'sqlite' || dialect === 'postgresql') return dialect
  throw new TenantError(
    'tenant_invalid_config',
    `unknown SQL dialect ${JSON.stringify(dialect)}: use 'sqlite' or 'postgresql'`,
  )
}

/** Parses exactly one statement; anything else (nothing, two statements, a syntax error) is refused. */
export function parseStatement(sql: string, dialect: SqlDialect): AstNode {
  if (typeof sql !== 'string' || sql.trim() === '') throw new UnsafeQueryError('the statement is empty')
  // What the database reads must be what the parser reads: refuse text they could split apart
  // differently (a backslash before a quote, a comment one of them ends early, ...).
  checkLiterals(sql, lexSql(sql, dialect), dialect)
  let ast: AstNode | AstNode[]
  try {
    ast = parser(dialect).astify(sql, { database: dialect })
  } catch (cause) {
    if (cause instanceof RangeError) throw nestedTooDeeply(cause)
    const detail = cause instanceof Error ? cause.message.split('\n')[0]!.slice(0, 300) : String(cause)
    throw new UnsafeQueryError(`the ${dialect} parser cannot read this statement (${detail})`, { cause })
  }
  const list = (Array.isArray(ast) ? ast : [ast]).filter((s) => s !== null && s !== undefined)
  if (list.length !== 1) {
    throw new UnsafeQueryError(`exactly one statement is allowed, found ${list.length}`)
  }
  checkLogicalGrouping(list[0]!)
  refuseDual(list[0]!)
  return list[0]!
}

/**
 * Refuses a `FROM dual`: the parser reads the name as "no table" (Oracle's and MySQL's dummy
 * table) and the printer writes it back, but SQLite and Postgres have no such table, so they read
 * a real table of that name, which the tenant filter would then leave out. The parser makes such
 * a node only for `dual` written in the text; the quoted name (`"dual"`) is an ordinary table.
 */
function refuseDual(ast: unknown): void {
  const stack: unknown[] = [ast]
  while (stack.length > 0) {
    const node = stack.pop()
    if (node === null || typeof node !== 'object') continue
    if ((node as { type?: unknown }).type === 'dual') {
      throw new UnsafeQueryError(
        'FROM dual: the SQL parser reads it as no table, the database as a table named dual; quote the name ("dual")',
      )
    }
    for (const value of Object.values(node)) stack.push(value)
  }
}

/**
 * Refuses literals the parser and printer would change, so that what runs is what was written:
 * a run of more than 15 digits (the printer writes numbers back as doubles, so
 * 9223372036854775807 would run as 9223372036854776000), and, in Postgres, two string literals
 * separated by a line break, which the database joins into one and the parser does not.
 */
function checkLiterals(sql: string, tokens: readonly SqlToken[], dialect: SqlDialect): void {
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!
    if (token.kind === 'other' && token.text.length > 15 && /^[0-9]+$/.test(token.text)) {
      throw new UnsafeQueryError(
        `a number with more than 15 digits (${token.text.slice(0, 20)}) would lose precision; bind it as a parameter`,
      )
    }
    const next = tokens[i + 1]
    if (
      dialect === 'postgresql' &&
      token.kind === 'string' &&
      next?.kind === 'string' &&
      sql.slice(token.start + token.text.length, next.start).includes('\n')
    ) {
      throw new UnsafeQueryError(
        'two string literals on separate lines (Postgres joins them into one) are refused',
      )
    }
  }
}

/**
 * Refuses AND and OR mixed without parentheses. node-sql-parser (5.x, both grammars) gets their
 * precedence wrong: it reads `a OR b AND t` as `(a OR b) AND t` and `t AND x IN (1) OR b` as
 * `t AND (x IN (1) OR b)`, where the database reads `a OR (b AND t)` and `(t AND x IN (1)) OR b`.
 * The proof would then see a top-level tenant condition that the database puts under OR, and the
 * printer writes the mix back without parentheses. Where the text groups them itself the parser
 * marks it, and its reading is the database's. Walks with its own stack: a long chain of ORs is
 * no limit.
 */
function checkLogicalGrouping(root: AstNode): void {
  const stack: unknown[] = [root]
  while (stack.length > 0) {
    const node = stack.pop()
    if (node === null || typeof node !== 'object') continue
    if (Array.isArray(node)) {
      for (const item of node) stack.push(item)
      continue
    }
    const n = node as AstNode
    const op = logicalOperator(n)
    if (op !== undefined) {
      for (const side of [n.left, n.right]) {
        const inner = logicalOperator(side)
        if (inner !== undefined && inner !== op && side.parentheses !== true) {
          throw new UnsafeQueryError(
            'AND and OR are mixed without parentheses; the SQL parser reads their precedence differently from the database, so write the grouping you mean, e.g. (a AND b) OR c',
          )
        }
      }
    }
    for (const key of Object.keys(n)) if (key !== 'loc') stack.push(n[key])
  }
}

function logicalOperator(node: unknown): 'AND' | 'OR' | undefined {
  if (node === null || typeof node !== 'object') return undefined
  const n = node as AstNode
  if (n.type !== 'binary_expr' || typeof n.operator !== 'string') return undefined
  const op = n.operator.toUpperCase()
  return op === 'AND' || op === 'OR' ? op : undefined
}

/** Renders an AST back to SQL text. */
export function renderStatement(ast: AstNode, dialect: SqlDialect): string {
  try {
    return parser(dialect).sqlify(ast, { database: dialect })
  } catch (cause) {
    if (cause instanceof RangeError) throw nestedTooDeeply(cause)
    throw cause
  }
}

/** The parser and printer recurse: a statement nested deeper than the stack is refused, typed. */
function nestedTooDeeply(cause: RangeError): UnsafeQueryError {
  return new UnsafeQueryError('the statement is nested too deeply to check; split it up', { cause })
}

/** Calls `fn` on every object below `root` (not `root` itself); a returned node replaces the visited one. */
export function rewriteNodes(root: AstNode, fn: (node: AstNode) => AstNode | undefined): void {
  // Its own stack, not recursion: a long chain of ORs nests as deep as it is long.
  const stack: (AstNode | unknown[])[] = [root]
  while (stack.length > 0) {
    const holder = stack.pop()!
    for (const key of Object.keys(holder)) {
      if (key === 'loc') continue
      const child = (holder as AstNode)[key]
      if (child === null || typeof child !== 'object') continue
      const replacement = Array.isArray(child) ? undefined : fn(child)
      if (replacement !== undefined) (holder as AstNode)[key] = replacement
      else stack.push(child)
    }
  }
}

/** What a placeholder in the rewritten statement stands for. */
export type Binding = { kind: 'user'; index: number } | { kind: 'tenant' }

/**
 * Placeholders, renamed. Every placeholder of the user's statement and every tenant value we add
 * becomes a named parameter `:<prefix>_<id>`, where `prefix` does not occur anywhere in the
 * original text. The rendered SQL can then be split at those names without ambiguity, and the
 * re-parsed statement still says which value each placeholder binds.
 */
export class Placeholders {
  readonly prefix: string
  readonly bindings: Binding[] = []
  readonly #pattern: RegExp

  constructor(sql: string) {
    const lower = sql.toLowerCase()
    let n = 0
    while (lower.includes(`tnt${n}p`)) n++
    this.prefix = `tnt${n}p`
    this.#pattern = new RegExp(`:${this.prefix}_(\\d+)(?![A-Za-z0-9_])`, 'g')
  }

  /** A new named-parameter node bound to `binding`. */
  node(binding: Binding): AstNode {
    this.bindings.push(binding)
    return { type: 'param', value: `${this.prefix}_${this.bindings.length - 1}` }
  }

  /** The binding of a parameter node we created, or undefined for any other node. */
  bindingOf(node: AstNode): Binding | undefined {
    if (node.type !== 'param' || typeof node.value !== 'string') return undefined
    const m = /^(.*)_(\d+)$/.exec(node.value)
    if (m === null || m[1] !== this.prefix) return undefined
    return this.bindings[Number(m[2])]
  }

  /** Splits rendered SQL at our parameters: `text.length === ids.length + 1`. */
  split(sql: string): { text: string[]; ids: number[] } {
    const text: string[] = []
    const ids: number[] = []
    let last = 0
    for (const m of sql.matchAll(this.#pattern)) {
      text.push(sql.slice(last, m.index))
      ids.push(Number(m[1]))
      last = m.index + m[0].length
    }
    text.push(sql.slice(last))
    return { text, ids }
  }
}

function isDollarQuotedString(node: AstNode): boolean {
  return node.type === 'var' && typeof node.suffix === 'string' && node.prefix === node.suffix
}

/**
 * Replaces the user's placeholders (`?` for SQLite, `$1..$n` for Postgres) with named parameters
 * and records which user value each one binds. Named parameters and the other dialect's style
 * are refused, since we could not tell which value they bind.
 *
 * For `?` the value is the n-th placeholder in text order. The AST has no positions for them, so
 * the order is read from the rendered statement, whose clauses come in SQL's fixed order.
 */
export function bindUserPlaceholders(ast: AstNode, dialect: SqlDialect, ph: Placeholders): void {
  const positional: number[] = []
  rewriteNodes(ast, (node) => {
    if (dialect === 'sqlite' && node.type === 'origin' && node.value === '?') {
      const replacement = ph.node({ kind: 'user', index: -1 })
      positional.push(ph.bindings.length - 1)
      return node.parentheses ? { ...replacement, parentheses: true } : replacement
    }
    if (
      dialect === 'postgresql' &&
      node.type === 'var' &&
      node.prefix === '$' &&
      !isDollarQuotedString(node)
    ) {
      const index = Number(node.name)
      if (!Number.isInteger(index) || index < 1) {
        throw new UnsafeQueryError(`unsupported parameter $${String(node.name)}: use $1, $2, ...`)
      }
      const replacement = ph.node({ kind: 'user', index: index - 1 })
      return node.parentheses ? { ...replacement, parentheses: true } : replacement
    }
    if (node.type === 'param' || (node.type === 'var' && !isDollarQuotedString(node))) {
      const style = dialect === 'sqlite' ? '?' : '$1, $2, ...'
      throw new UnsafeQueryError(
        `only positional parameters (${style}) are supported in ${dialect} statements`,
      )
    }
    if (node.type === 'origin' && node.value === '?') {
      throw new UnsafeQueryError('use $1, $2, ... for parameters in postgresql statements, not ?')
    }
    return undefined
  })
  if (positional.length === 0) return
  const order = ph.split(renderStatement(ast, dialect)).ids.filter((id) => positional.includes(id))
  if (order.length !== positional.length || new Set(order).size !== order.length) {
    throw new UnsafeQueryError('could not determine the order of the ? parameters')
  }
  order.forEach((id, i) => {
    ph.bindings[id] = { kind: 'user', index: i }
  })
}
