import { type SqlDialect, UnsafeQueryError } from './raw-sql-ast'

// Internal: a lexer with the target database's own rules, for the places where node-sql-parser
// and the database could read the same text differently. The proof runs on the parser's reading;
// the database runs its own. Where the two could disagree about where a literal, a quoted name or
// a comment ends, the statement is refused instead of proven: found by trying each construct on
// the parser and on SQLite and PostgreSQL.
//
// - Backslashes inside quotes: the parser reads `\'` as an escaped quote; SQLite and PostgreSQL
//   (standard_conforming_strings, the default) read a backslash and the end of the literal.
// - `E'...'`, `U&'...'` and dollar-quoted strings (Postgres): their escape and end rules are the
//   database's; bind values as parameters instead.
// - `#` (SQLite): the parser starts a comment, SQLite does not.
// - Comments: SQLite ends `--` at a line feed only, the parser also at a carriage return; Postgres
//   nests `/* */`. A comment may hold printable ASCII (and tabs, and a `--` comment its closing
//   line feed), and no `/*` inside a block comment.
// - NUL ends a statement early in SQLite; other control characters and non-ASCII characters
//   outside quotes (the engines' ideas of whitespace and identifier characters differ) are refused.

/** A token of {@link lexSql}; only the kinds the callers need are told apart. */
export interface SqlToken {
  kind: 'string' | 'quoted-name' | 'comment' | 'open' | 'close' | 'semicolon' | 'other'
  /** Offset in the text. */
  start: number
  /** The token's text. */
  text: string
}

function refuse(what: string, at: number): never {
  throw new UnsafeQueryError(
    `${what} at offset ${at}: the SQL parser and the database could read it differently, so it is refused (bind values as parameters)`,
  )
}

const WORD_CHAR = /[A-Za-z0-9_$]/
const COMMENT_CHAR = /^[\t\x20-\x7e]*$/

/**
 * Splits `text` into tokens with the dialect's rules, refusing every construct whose reading could
 * differ between node-sql-parser and the database (see the list above this function's module).
 * Whitespace is dropped; words, numbers and operators are `other`.
 */
export function lexSql(text: string, dialect: SqlDialect): SqlToken[] {
  const tokens: SqlToken[] = []
  const n = text.length
  let i = 0
  const push = (kind: SqlToken['kind'], start: number, end: number) =>
    tokens.push({ kind, start, text: text.slice(start, end) })

  // A quoted run from `i` (at the opening quote) to its closing quote; a doubled quote is an
  // escaped one. Returns the offset after the closing quote.
  const quoted = (open: string, close: string, what: string): number => {
    let j = i + 1
    for (;;) {
      if (j >= n) refuse(`an unterminated ${what}`, i)
      const c = text[j]!
      if (c === '\\') refuse(`a backslash inside a ${what}`, j)
      if (c === '\u0000') refuse('a NUL character', j)
      if (c === close) {
        if (close === open && text[j + 1] === close) {
          j += 2
          continue
        }
        return j + 1
      }
      j++
    }
  }

  while (i < n) {
    const c = text[i]!
    const next = text[i + 1]
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++
    } else if (c === "'") {
      const end = quoted("'", "'", 'string literal')
      push('string', i, end)
      i = end
    } else if (c === '"') {
      const end = quoted('"', '"', 'quoted name')
      push('quoted-name', i, end)
      i = end
    } else if (dialect === 'sqlite' && c === '`') {
      const end = quoted('`', '`', 'quoted name')
      push('quoted-name', i, end)
      i = end
    } else if (dialect === 'sqlite' && c === '[') {
      const end = quoted('[', ']', 'quoted name')
      push('quoted-name', i, end)
      i = end
    } else if (c === '-' && next === '-') {
      let end = text.indexOf('\n', i)
      if (end < 0) end = n
      if (!COMMENT_CHAR.test(text.slice(i, end))) refuse('a comment with a control or non-ASCII character', i)
      push('comment', i, end)
      i = end
    } else if (c === '/' && next === '*') {
      const end = text.indexOf('*/', i + 2)
      if (end < 0) refuse('an unterminated comment', i)
      const body = text.slice(i + 2, end)
      if (body.includes('/*')) refuse('a nested comment', i)
      if (!COMMENT_CHAR.test(body.replaceAll('\n', ' '))) {
        refuse('a comment with a control or non-ASCII character', i)
      }
      push('comment', i, end + 2)
      i = end + 2
    } else if (c === '(') {
      push('open', i, i + 1)
      i++
    } else if (c === ')') {
      push('close', i, i + 1)
      i++
    } else if (c === ';') {
      push('semicolon', i, i + 1)
      i++
    } else if (dialect === 'sqlite' && c === '#') {
      refuse('a "#" (the parser reads a comment, SQLite does not)', i)
    } else if (
      dialect === 'postgresql' &&
      c === '$' &&
      (i === 0 || !WORD_CHAR.test(text[i - 1]!)) &&
      /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.test(text.slice(i, i + 66))
    ) {
      refuse('a dollar-quoted string', i)
    } else if (WORD_CHAR.test(c)) {
      let j = i + 1
      while (j < n && WORD_CHAR.test(text[j]!)) j++
      // E'...', U&'...' (Postgres) and N'...', B'...' read escapes or prefixes by the database's rules.
      if (text[j] === "'" && /^[EeUuNnBb]$/.test(text.slice(i, j))) {
        refuse(`a string with the ${text.slice(i, j)} prefix`, i)
      }
      if (dialect === 'postgresql' && text[j] === '&' && /^[Uu]$/.test(text.slice(i, j))) {
        refuse('a U& string or name', i)
      }
      push('other', i, j)
      i = j
    } else if (c.charCodeAt(0) < 0x20 || c.charCodeAt(0) > 0x7e) {
      refuse(c === '\u0000' ? 'a NUL character' : 'a control or non-ASCII character outside quotes', i)
    } else {
      push('other', i, i + 1)
      i++
    }
  }
  return tokens
}
