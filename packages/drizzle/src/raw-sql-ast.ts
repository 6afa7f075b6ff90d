import { TenantError } from '@tenant/core'
import * as pgBuild from 'node-sql-parser/build/postgresql.js'
import * as sqliteBuild from 'node-sql-parser/build/sqlite.js'
import { lexSql } from './raw-sql-lex'

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
  lexSql(sql, dialect)
  let ast: AstNode | AstNode[]
  try {
    ast = parser(dialect).astify(sql, { database: dialect })
  } catch (cause) {
    const detail = cause instanceof Error ? cause.message.split('\n')[0]!.slice(0, 300) : String(cause)
    throw new UnsafeQueryError(`the ${dialect} parser cannot read this statement (${detail})`, { cause })
  }
  const list = (Array.isArray(ast) ? ast : [ast]).filter((s) => s !== null && s !== undefined)
  if (list.length !== 1) {
    throw new UnsafeQueryError(`exactly one statement is allowed, found ${list.length}`)
  }
  return list[0]!
}

/** Renders an AST back to SQL text. */
export function renderStatement(ast: AstNode, dialect: SqlDialect): string {
  return parser(dialect).sqlify(ast, { database: dialect })
}

/** Calls `fn` on every object below `root` (not `root` itself); a returned node replaces the visited one. */
export function rewriteNodes(root: AstNode, fn: (node: AstNode) => AstNode | undefined): void {
  const visit = (holder: AstNode | unknown[]) => {
    for (const key of Object.keys(holder)) {
      if (key === 'loc') continue
      const child = (holder as AstNode)[key]
      if (child === null || typeof child !== 'object') continue
      const replacement = Array.isArray(child) ? undefined : fn(child)
      if (replacement !== undefined) (holder as AstNode)[key] = replacement
      else visit(child)
    }
  }
  visit(root)
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
