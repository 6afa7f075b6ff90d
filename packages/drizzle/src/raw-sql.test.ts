import { isTenantError } from '@tenant/core'
import { describe, expect, it } from 'vitest'
import { addTenantFilter, type RawSqlOptions, UnsafeQueryError, validateQuery } from './raw-sql'

function refusal(fn: () => unknown): UnsafeQueryError {
  try {
    fn()
  } catch (error) {
    expect(error).toBeInstanceOf(UnsafeQueryError)
    expect(isTenantError(error)).toBe(true)
    expect((error as UnsafeQueryError).code).toBe('tenant_unsafe_query')
    expect((error as UnsafeQueryError).status).toBe(500)
    return error as UnsafeQueryError
  }
  throw new Error('expected an UnsafeQueryError')
}

const sqlite: RawSqlOptions = { dialect: 'sqlite' }
const pg: RawSqlOptions = { dialect: 'postgresql' }

describe('addTenantFilter', () => {
  it('puts the condition on the outer WHERE and keeps precedence (SQLite)', () => {
    expect(
      addTenantFilter('SELECT * FROM notes WHERE a = ? OR b = ?', 'acme', 'tenant_id', { params: [1, 2] }),
    ).toEqual({
      sql: 'SELECT * FROM "notes" WHERE ("a" = ?1 OR "b" = ?2) AND "notes"."tenant_id" = ?3',
      params: [1, 2, 'acme'],
    })
  })

  it('appends the tenant as $n+1 and keeps the caller placeholders (Postgres)', () => {
    expect(
      addTenantFilter('select * from notes t where a = $1 or b = $2 limit $3', 'acme', 'tenant_id', {
        ...pg,
        params: [1, 2, 10],
      }),
    ).toEqual({
      sql: 'SELECT * FROM "notes" AS "t" WHERE (a = $1 OR b = $2) AND "t"."tenant_id" = $4 LIMIT $3',
      params: [1, 2, 10, 'acme'],
    })
  })

  it('adds a WHERE when there is none, and never inlines the tenant id', () => {
    for (const options of [sqlite, pg]) {
      const { sql, params } = addTenantFilter(
        'SELECT id FROM notes ORDER BY id LIMIT 5',
        'acme',
        'tenant_id',
        options,
      )
      expect(sql).toMatch(/WHERE "notes"\."tenant_id" = (\?1|\$1) ORDER BY/)
      expect(sql).not.toContain('acme')
      expect(params).toEqual(['acme'])
    }
  })

  it('reads any case, whitespace, comments and string literals through the parser', () => {
    const { sql } = addTenantFilter(
      "sElEcT *\n\tFROM   notes  -- WHERE tenant_id = 'x'\nwHeRe\n title = 'a WHERE b OR 1=1' /* OR 1=1 */ OR score = 2",
      'acme',
      'tenant_id',
    )
    expect(sql).toBe(
      `SELECT * FROM "notes" WHERE ("title" = 'a WHERE b OR 1=1' OR "score" = 2) AND "notes"."tenant_id" = ?1`,
    )
  })

  it('qualifies with the alias, and handles quoted identifiers', () => {
    expect(
      addTenantFilter('SELECT "n"."id" FROM "notes" AS "n" WHERE "n"."id" = ?', 'acme', 'tenant_id', {
        params: ['x'],
      }).sql,
    ).toBe('SELECT "n"."id" FROM "notes" AS "n" WHERE ("n"."id" = ?1) AND "n"."tenant_id" = ?2')
    expect(addTenantFilter('SELECT n.id FROM notes n', 'acme', 'org_id', pg).sql).toBe(
      'SELECT "n".id FROM "notes" AS "n" WHERE "n"."org_id" = $1',
    )
  })

  it('scopes INNER/LEFT joined tables in ON and comma-joined ones in WHERE', () => {
    const { sql } = addTenantFilter(
      'SELECT n.id, u.name FROM notes n, shares s LEFT JOIN users u ON u.id = s.user_id',
      'acme',
      'tenant_id',
    )
    expect(sql).toBe(
      'SELECT "n"."id", "u"."name" FROM "notes" AS "n", "shares" AS "s" LEFT JOIN "users" AS "u" ON ("u"."id" = "s"."user_id") AND "u"."tenant_id" = ?1 WHERE "n"."tenant_id" = ?1 AND "s"."tenant_id" = ?1',
    )
  })

  it('leaves shared tables alone', () => {
    const { sql } = addTenantFilter(
      'SELECT u.id, p.name FROM users u JOIN plans p ON p.id = u.plan_id',
      'acme',
      'tenant_id',
      {
        ...pg,
        sharedTables: ['plans'],
      },
    )
    expect(sql).toBe(
      'SELECT "u".id, "p".name FROM "users" AS "u" INNER JOIN "plans" AS "p" ON "p".id = "u".plan_id WHERE "u"."tenant_id" = $1',
    )
  })

  it('filters every UNION arm', () => {
    const { sql } = addTenantFilter(
      'SELECT id FROM notes UNION ALL SELECT id FROM users WHERE name = ?',
      'acme',
      'tenant_id',
      {
        params: ['x'],
      },
    )
    expect(sql).toBe(
      'SELECT "id" FROM "notes" WHERE "notes"."tenant_id" = ?2 UNION ALL SELECT "id" FROM "users" WHERE ("name" = ?1) AND "users"."tenant_id" = ?2',
    )
  })

  it('tags every row of a multi-row INSERT, and checks rows that already name the tenant', () => {
    expect(
      addTenantFilter('INSERT INTO notes (id, title) VALUES (?, ?), (?, ?)', 'acme', 'tenant_id', {
        params: [1, 'a', 2, 'b'],
      }),
    ).toEqual({
      sql: 'INSERT OR ABORT INTO "notes" (id, title, tenant_id) VALUES (?1,?2,?5), (?3,?4,?5)',
      params: [1, 'a', 2, 'b', 'acme'],
    })
    expect(
      addTenantFilter('insert into notes (id, tenant_id) values ($1, $2)', 'acme', 'tenant_id', {
        ...pg,
        params: [1, 'acme'],
      }).sql,
    ).toBe('INSERT INTO "notes" (id, tenant_id) VALUES ($1,$2)')
    const other = refusal(() =>
      addTenantFilter('insert into notes (id, tenant_id) values ($1, $2)', 'acme', 'tenant_id', {
        ...pg,
        params: [1, 'globex'],
      }),
    )
    expect(other.message).toContain('the tenant "acme"')
  })

  it('restricts ON CONFLICT DO UPDATE to the tenant row (Postgres)', () => {
    expect(
      addTenantFilter(
        'INSERT INTO notes (id, title) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET title = excluded.title',
        'acme',
        'tenant_id',
        { ...pg, params: ['n1', 'x'] },
      ).sql,
    ).toBe(
      'INSERT INTO "notes" (id, title, "tenant_id") VALUES ($1,$2,$3) ON CONFLICT (id) DO UPDATE SET title = "excluded".title WHERE "notes"."tenant_id" = $3',
    )
  })

  it('filters UPDATE and DELETE, keeping an OR inside parentheses', () => {
    expect(
      addTenantFilter('UPDATE notes SET title = ? WHERE id = ? OR 1 = 1', 'acme', 'tenant_id', {
        params: ['x', 'n'],
      }).sql,
    ).toBe('UPDATE OR ABORT "notes" SET "title" = ?1 WHERE ("id" = ?2 OR 1 = 1) AND "notes"."tenant_id" = ?3')
    expect(addTenantFilter('delete from notes', 'acme', 'tenant_id', pg).sql).toBe(
      'DELETE FROM "notes" WHERE "notes"."tenant_id" = $1',
    )
  })

  it('leaves out the tenant parameter when no tenant table is read', () => {
    expect(addTenantFilter('SELECT 1', 'acme', 'tenant_id')).toEqual({ sql: 'SELECT 1', params: [] })
  })

  it('refuses what it cannot handle, saying why', () => {
    const cases: [string, RawSqlOptions, string][] = [
      ['SELECT 1; SELECT 2', sqlite, 'exactly one statement'],
      ['DROP TABLE notes', sqlite, 'DROP is refused'],
      ['CREATE TABLE x (a int)', pg, 'CREATE is refused'],
      ['WITH x AS (SELECT * FROM notes) SELECT * FROM x', sqlite, 'WITH'],
      ['INSERT INTO notes (id) SELECT id FROM notes', sqlite, 'INSERT ... SELECT'],
      ['INSERT INTO notes VALUES (1, 2)', sqlite, 'name its columns'],
      ['REPLACE INTO notes (id) VALUES (1)', sqlite, 'REPLACE'],
      ['INSERT OR REPLACE INTO notes (id) VALUES (1)', sqlite, 'REPLACE'],
      // PostgreSQL's JSON operators: printed for SQLite, their "?" was a placeholder of no value.
      ["SELECT title FROM notes x WHERE x.title ? 'a'", sqlite, "the operator ? is PostgreSQL's"],
      ["SELECT title FROM notes x WHERE x.title ?| 'a'", sqlite, "the operator ?| is PostgreSQL's"],
      ['UPDATE notes SET tenant_id = ?', { params: ['acme'] }, 'may not change the tenant column'],
      [
        'SELECT * FROM notes WHERE id IN (SELECT note_id FROM shares)',
        sqlite,
        'a subquery reads table "shares"',
      ],
      ['SELECT * FROM (SELECT * FROM notes) q', sqlite, 'a subquery in FROM reads table "notes"'],
      ['SELECT * FROM notes WHERE x = :x', sqlite, 'positional parameters'],
      ['SELECT * FROM notes WHERE x = ?', pg, 'the postgresql parser cannot read'],
      ['SELECT * FROM Notes', pg, 'lower case'],
      ['SELECT * FROM notes WHERE a = ?', sqlite, 'parameter 1 but 0 were given'],
      ['SELECT * FROM json_each(?) j', { params: ['[]'] }, 'only tables and subqueries'],
      ['SELECT * FROM notes WHERE', sqlite, 'cannot read this statement'],
      ['', sqlite, 'empty'],
    ]
    for (const [statement, options, reason] of cases) {
      const error = refusal(() => addTenantFilter(statement, 'acme', 'tenant_id', options))
      expect(error.message, statement).toContain(reason)
    }
  })

  it('validates the tenant id, the column name, the dialect and shared table names', () => {
    expect(() => addTenantFilter('SELECT * FROM notes', "acme' OR '1'='1", 'tenant_id')).toThrowError(
      expect.objectContaining({ code: 'tenant_invalid_id' }),
    )
    for (const column of ['tenant-id', 'tenant_id; drop table x', '"tenant_id"', '1abc', '']) {
      expect(() => addTenantFilter('SELECT * FROM notes', 'acme', column)).toThrowError(
        expect.objectContaining({ code: 'tenant_invalid_config' }),
      )
    }
    expect(() =>
      addTenantFilter('SELECT 1', 'acme', 'tenant_id', { dialect: 'mysql' as never }),
    ).toThrowError(expect.objectContaining({ code: 'tenant_invalid_config' }))
    expect(() => addTenantFilter('SELECT 1', 'acme', 'tenant_id', { sharedTables: ['a b'] })).toThrowError(
      expect.objectContaining({ code: 'tenant_invalid_config' }),
    )
  })

  it('renames its own parameters around names already in the text', () => {
    const { sql } = addTenantFilter(
      "SELECT * FROM notes WHERE title = ':tnt0p_0' AND x = ?",
      'acme',
      'tenant_id',
      {
        params: [1],
      },
    )
    expect(sql).toBe(
      `SELECT * FROM "notes" WHERE ("title" = ':tnt0p_0' AND "x" = ?1) AND "notes"."tenant_id" = ?2`,
    )
  })
})

describe('validateQuery', () => {
  const accepted: [string, RawSqlOptions?][] = [
    ['SELECT * FROM notes WHERE tenant_id = ?'],
    ['SELECT * FROM notes WHERE ? = tenant_id AND id = ?'],
    ["SELECT * FROM notes WHERE tenant_id = 'acme'"],
    ['SELECT * FROM notes WHERE (tenant_id = ?) AND (a = 1 OR b = 2)'],
    ['SELECT * FROM notes n WHERE n.tenant_id = ?'],
    ['SELECT * FROM "notes" "n" WHERE "n"."tenant_id" = ?'],
    ['SELECT * FROM notes WHERE "tenant_id" = ?'],
    ['SELECT * FROM NOTES WHERE TENANT_ID == ?'],
    ['select * from notes where "tenant_id" = $1', pg],
    ['select * from notes n where n.tenant_id = $1 limit $2', pg],
    ['SELECT n.id FROM notes n JOIN users u ON u.id = n.owner_id AND u.tenant_id = ? WHERE n.tenant_id = ?'],
    ['SELECT n.id FROM notes n LEFT JOIN users u ON u.tenant_id = n.tenant_id WHERE n.tenant_id = ?'],
    ['SELECT n.id FROM notes n, users u WHERE n.tenant_id = ? AND u.tenant_id = n.tenant_id'],
    [
      'SELECT * FROM notes WHERE tenant_id = ? AND id IN (SELECT note_id FROM shares WHERE shares.tenant_id = ?)',
    ],
    [
      'SELECT * FROM notes WHERE tenant_id = ? AND id IN (SELECT note_id FROM shares s WHERE s.tenant_id = ?)',
    ],
    [
      'SELECT * FROM notes WHERE tenant_id = ? AND id IN (SELECT note_id FROM shares WHERE tenant_id = ?)',
      { tenantTables: ['shares'] },
    ],
    // A subquery in FROM of the outer statement sees no other row.
    ['SELECT * FROM (SELECT * FROM notes WHERE tenant_id = ?) AS q'],
    [
      'SELECT * FROM notes WHERE tenant_id = ? AND score > (SELECT avg(score) FROM notes n2 WHERE n2.tenant_id = ?)',
    ],
    [
      'SELECT * FROM notes WHERE tenant_id = ? AND score > (SELECT avg(score) FROM notes WHERE notes.tenant_id = ?)',
      { tenantTables: ['notes'] },
    ],
    ["SELECT * FROM notes WHERE tenant_id = ? AND title = 'it''s' -- a comment\n AND 1 = 1"],
    ['SELECT * FROM notes /* a comment */ WHERE tenant_id = ?'],
    [
      'SELECT lower(title), count(*), group_concat(id), json_extract(title, ?) FROM notes WHERE tenant_id = ?',
    ],
    [
      'SELECT * FROM notes WHERE tenant_id = ? AND NOT (score > 1) AND EXISTS (SELECT 1 FROM plans)',
      { sharedTables: ['plans'] },
    ],
    ['select pg_catalog.lower(title), date_trunc($2, now()) from notes where tenant_id = $1', pg],
    ['select my_fn(title) from notes where tenant_id = $1', { ...pg, allowedFunctions: ['my_fn'] }],
    ['select app.my_fn(title) from notes where tenant_id = $1', { ...pg, allowedFunctions: ['app.my_fn'] }],
    ['SELECT id FROM notes WHERE tenant_id = ? UNION SELECT id FROM users WHERE tenant_id = ?'],
    [
      'SELECT u.id, p.name FROM users u JOIN plans p ON p.id = u.plan_id WHERE u.tenant_id = ?',
      { sharedTables: ['plans'] },
    ],
    ['SELECT 1'],
    ['UPDATE notes SET title = ? WHERE tenant_id = ? AND id = ?'],
    ['DELETE FROM notes WHERE id = ? AND tenant_id = ?'],
    ['INSERT INTO notes (id, tenant_id) VALUES (?, ?), (?, ?)'],
    [
      'insert into notes (id, tenant_id) values ($1, $2) on conflict (id) do update set title = excluded.title where notes.tenant_id = $2',
      pg,
    ],
  ]
  it.each(accepted)('accepts %s', (statement, options) => {
    expect(() => validateQuery(statement, 'tenant_id', options)).not.toThrow()
  })

  const refused: [string, string, RawSqlOptions?][] = [
    ['SELECT * FROM notes', 'without "notes.tenant_id = ..."'],
    ['SELECT * FROM notes WHERE tenant_id = ? OR 1 = 1', 'under OR/NOT'],
    ['SELECT * FROM notes WHERE NOT tenant_id <> ?', 'under OR/NOT'],
    [
      'SELECT * FROM notes WHERE tenant_id = ? AND 1 = 1 OR x = 2',
      'AND and OR are mixed without parentheses',
    ],
    ['SELECT * FROM notes WHERE tenant_id IN (?)', 'under OR/NOT'],
    ['SELECT * FROM notes WHERE tenant_id = tenant_id', 'compare with a parameter or string literal'],
    ['SELECT * FROM notes WHERE tenant_id = NULL', 'compare with a parameter or string literal'],
    ['SELECT * FROM notes n JOIN users u ON u.id = n.owner_id WHERE tenant_id = ?', 'qualified with "n"'],
    ['SELECT * FROM notes n WHERE notes.tenant_id = ?', 'qualified with "n"'],
    ['SELECT * FROM notes n JOIN users u ON 1 = 1 WHERE n.tenant_id = ?', 'reads table "users"'],
    [
      'SELECT * FROM notes WHERE tenant_id = ? AND id IN (SELECT note_id FROM shares)',
      'a subquery reads table "shares"',
    ],
    [
      'SELECT * FROM notes n WHERE n.tenant_id = ? AND EXISTS (SELECT 1 FROM shares s WHERE n.tenant_id = ?)',
      'a subquery reads table "shares"',
    ],
    [
      'SELECT (SELECT title FROM notes LIMIT 1) AS t FROM users WHERE tenant_id = ?',
      'a subquery reads table "notes"',
    ],
    // An unqualified tenant column in a subquery binds to the outer row when the inner table lacks it.
    [
      'SELECT * FROM notes WHERE tenant_id = ? AND id IN (SELECT note_id FROM shares WHERE tenant_id = ?)',
      'qualify it ("shares.tenant_id") or declare the table in tenantTables',
    ],
    [
      'SELECT * FROM notes WHERE tenant_id = ? AND id IN (SELECT note_id FROM shares WHERE tenant_id = ?)',
      'qualify it',
      { tenantTables: ['notes'] },
    ],
    // SQLite looks for audit.tenant_id in the outer "audit" when the inner one has no such column.
    [
      'SELECT (SELECT max(detail) FROM audit WHERE audit.tenant_id = ?) FROM notes audit WHERE audit.tenant_id = ?',
      "give the subquery's table a distinct alias",
    ],
    // Inside a subquery, a subquery in FROM can see the enclosing query's row too.
    [
      'SELECT (SELECT x FROM (SELECT detail AS x FROM audit WHERE tenant_id = ?) d) FROM notes WHERE tenant_id = ?',
      'qualify it',
    ],
    [
      'select * from notes n, lateral (select 1 from audit where tenant_id = $2) x where n.tenant_id = $1',
      'qualify it',
      pg,
    ],
    ["SELECT * FROM notes WHERE tenant_id = 'acme' COLLATE NOCASE", 'COLLATE'],
    ['SELECT * FROM notes WHERE tenant_id COLLATE NOCASE = ?', 'COLLATE'],
    [
      'SELECT * FROM notes n JOIN shares s ON s.tenant_id = n.tenant_id COLLATE NOCASE WHERE n.tenant_id = ?',
      'COLLATE',
    ],
    ['select * from notes where tenant_id collate "C" = $1', 'COLLATE', pg],
    ['SELECT * FROM notes WHERE +tenant_id = ?', 'without "notes.tenant_id = ..."'],
    // Only built-in functions that compute from their arguments.
    [
      "select ts_stat('select to_tsvector(title) from notes') from notes where tenant_id = $1",
      'ts_stat()',
      pg,
    ],
    [
      'select pg_catalog.query_to_xml($2, true, false, $3) from notes where tenant_id = $1',
      'pg_catalog.query_to_xml()',
      pg,
    ],
    ['select public.lower(title) from notes where tenant_id = $1', 'public.lower()', pg],
    ['select "LOWER"(title) from notes where tenant_id = $1', 'LOWER()', pg],
    ['select set_config($2, $3, true) from notes where tenant_id = $1', 'set_config()', pg],
    ['select current_setting($2) from notes where tenant_id = $1', 'current_setting()', pg],
    ['select my_fn(title) from notes where tenant_id = $1', 'allowedFunctions', pg],
    ['SELECT load_extension(?) FROM notes WHERE tenant_id = ?', 'load_extension()'],
    ['SELECT * FROM notes WHERE tenant_id = ? AND score = (SELECT my_fn())', 'my_fn()'],
    // What the parser reads must be what the database reads.
    [
      "SELECT * FROM notes WHERE tenant_id = ? AND title = 'x\\' OR 1=1) --'",
      'a backslash inside a string literal',
    ],
    ['SELECT "x\\" FROM notes WHERE tenant_id = ?', 'a backslash inside a quoted name'],
    ['SELECT * FROM notes -- c\r WHERE tenant_id = ?', 'a comment with a control or non-ASCII character'],
    [
      'SELECT * FROM notes -- caf\u00e9\n WHERE tenant_id = ?',
      'a comment with a control or non-ASCII character',
    ],
    ['SELECT * FROM notes WHERE tenant_id = ? /* a /* b */', 'a nested comment'],
    ['SELECT * FROM notes WHERE tenant_id = ? /* open', 'an unterminated comment'],
    ['SELECT * FROM notes WHERE tenant_id = ? # c', 'a "#"'],
    ['SELECT * FROM notes\u0000 WHERE tenant_id = ?', 'a NUL character'],
    ['SELECT * FROM notes\u00a0WHERE tenant_id = ?', 'non-ASCII character outside quotes'],
    ["SELECT * FROM notes WHERE tenant_id = ? AND title = 'open", 'an unterminated string literal'],
    ['select * from notes where tenant_id = $1 and title = $$x$$', 'a dollar-quoted string', pg],
    ['select * from notes where tenant_id = $1 and title = $t$x$t$', 'a dollar-quoted string', pg],
    ["select * from notes where tenant_id = $1 and title = E'x'", 'the E prefix', pg],
    ["select * from notes where tenant_id = $1 and title = U&'x'", 'a U& string', pg],
    ['SELECT id FROM notes WHERE tenant_id = ? UNION SELECT id FROM users', 'UNION/INTERSECT/EXCEPT arm'],
    ['WITH x AS (SELECT * FROM notes WHERE tenant_id = ?) SELECT * FROM x', 'WITH'],
    [
      'INSERT INTO notes (id, tenant_id) SELECT id, tenant_id FROM notes WHERE tenant_id = ?',
      'INSERT ... SELECT',
    ],
    ['INSERT INTO notes (id) VALUES (?)', 'must set the tenant column'],
    ['INSERT INTO notes (id, tenant_id) VALUES (?, ?), (?, tenant_id)', 'every VALUES row'],
    ['UPDATE notes SET tenant_id = ? WHERE tenant_id = ?', 'may not change the tenant column'],
    ['DELETE FROM notes WHERE id = ?', 'the DELETE from table "notes"'],
    [
      'insert into notes (id, tenant_id) values ($1, $2) on conflict (id) do update set title = excluded.title',
      'ON CONFLICT DO UPDATE needs',
      pg,
    ],
    ['select query_to_xml($2, true, false, $3) from notes where tenant_id = $1', 'query_to_xml()', pg],
    ["SELECT 'x' AS tenant_id, * FROM notes WHERE tenant_id = ?", 'output column'],
    ['SELECT * FROM notes n, notes N WHERE n.tenant_id = ?', 'both called'],
    ['UPDATE plans SET name = ?', 'shared', { sharedTables: ['plans'] }],
    ['SELECT * FROM notes WHERE tenant_id = ?; DELETE FROM notes', 'exactly one statement'],
  ]
  it.each(refused)('refuses %s', (statement, reason, options) => {
    const error = refusal(() => validateQuery(statement, 'tenant_id', options))
    expect(error.message).toContain(reason)
  })

  it('with a tenantId, accepts only conditions bound to that tenant', () => {
    const statement =
      'SELECT * FROM notes WHERE tenant_id = ? AND id IN (SELECT note_id FROM shares WHERE shares.tenant_id = ?)'
    expect(() =>
      validateQuery(statement, 'tenant_id', { tenantId: 'acme', params: ['acme', 'acme'] }),
    ).not.toThrow()
    expect(
      refusal(() => validateQuery(statement, 'tenant_id', { tenantId: 'acme', params: ['acme', 'globex'] }))
        .message,
    ).toContain('a subquery reads table "shares"')
    // Without the values the binding cannot be proven.
    refusal(() => validateQuery(statement, 'tenant_id', { tenantId: 'acme' }))
    expect(() =>
      validateQuery("SELECT * FROM notes WHERE tenant_id = 'acme'", 'tenant_id', { tenantId: 'acme' }),
    ).not.toThrow()
    refusal(() =>
      validateQuery("SELECT * FROM notes WHERE tenant_id = 'globex'", 'tenant_id', { tenantId: 'acme' }),
    )
  })

  it('matches column case the way each database does', () => {
    // Postgres: an unquoted name folds to lower case, a quoted one is exact.
    expect(() => validateQuery('select * from notes where TENANT_ID = $1', 'tenant_id', pg)).not.toThrow()
    refusal(() => validateQuery('select * from notes where "TENANT_ID" = $1', 'tenant_id', pg))
    expect(() => validateQuery('select * from notes where "TenantId" = $1', 'TenantId', pg)).not.toThrow()
    refusal(() => validateQuery('select * from notes where TenantId = $1', 'TenantId', pg))
    // SQLite: identifiers are case-insensitive, quoted or not.
    expect(() => validateQuery('SELECT * FROM notes WHERE "TENANT_ID" = ?', 'tenant_id')).not.toThrow()
  })
})

describe('validateQuery: a Postgres alias with a column list', () => {
  it('is refused: it can rename the tenant column away, and the parser folds the list into the alias', () => {
    const statement =
      "select id, (select string_agg(title, ',') from notes as n2(a, b) where tenant_id = $1) as leak from notes where tenant_id = $1"
    expect(() =>
      validateQuery(statement, 'tenant_id', {
        dialect: 'postgresql',
        params: ['acme'],
        tenantId: 'acme',
        tenantTables: ['notes'],
      }),
    ).toThrowError(
      expect.objectContaining({ code: 'tenant_unsafe_query', message: expect.stringMatching(/column list/) }),
    )
  })
})

describe('raw SQL: bad input is a typed error, and what runs is what was written', () => {
  const code = (fn: () => unknown): string | undefined => {
    try {
      fn()
    } catch (error) {
      expect(isTenantError(error), String(error)).toBe(true)
      return (error as { code: string }).code
    }
    return undefined
  }

  it('refuses options that are not an object, and params that are not an array', () => {
    const statement = 'SELECT * FROM notes WHERE id = ?'
    expect(code(() => addTenantFilter(statement, 'acme', 'tenant_id', null as never))).toBe(
      'tenant_invalid_config',
    )
    expect(code(() => validateQuery(statement, 'tenant_id', null as never))).toBe('tenant_invalid_config')
    // A string would have been split into one parameter per character.
    expect(code(() => addTenantFilter(statement, 'acme', 'tenant_id', { params: 'ab' as never }))).toBe(
      'tenant_invalid_config',
    )
    expect(code(() => validateQuery(statement, 'tenant_id', { params: 'ab' as never }))).toBe(
      'tenant_invalid_config',
    )
  })

  it('refuses a chain of ORs nested deeper than the parser can follow, as UnsafeQueryError', () => {
    const ors = Array.from({ length: 8000 }, (_, i) => `id = '${i}'`).join(' OR ')
    const statement = `SELECT * FROM notes WHERE tenant_id = ? AND (${ors})`
    for (const run of [
      () => addTenantFilter(statement, 'acme', 'tenant_id'),
      () => validateQuery(statement, 'tenant_id'),
    ]) {
      expect(code(run)).toBe('tenant_unsafe_query')
    }
  })

  it('refuses a number the printer would round', () => {
    const statement = 'SELECT * FROM notes WHERE tenant_id = ? AND score = 9223372036854775807'
    expect(() => addTenantFilter(statement, 'acme', 'tenant_id')).toThrowError(/more than 15 digits/)
    expect(
      addTenantFilter('SELECT * FROM notes WHERE score = 123456789012345', 'acme', 'tenant_id').sql,
    ).toContain('123456789012345')
  })

  it('refuses Postgres string literals continued on the next line', () => {
    const statement = "select * from notes where title = 'a'\n'b'"
    expect(() => addTenantFilter(statement, 'acme', 'tenant_id', { dialect: 'postgresql' })).toThrowError(
      /separate lines/,
    )
  })
})

describe('raw SQL without the column type: a tenant id must be the only spelling of its value', () => {
  const statement = 'SELECT * FROM notes WHERE tenant_id = ?'
  const pgStatement = 'SELECT * FROM notes WHERE tenant_id = $1'
  const uuid = '0b6c4a4e-9d0f-4f4e-8a59-0c5f1d2e3a4b'

  it('refuses ids a database reads as a number unless they are canonical integers', () => {
    for (const id of [
      '01',
      '00',
      '-0',
      '-1',
      '1.0',
      '1.',
      '.5',
      '1e0',
      '1E3',
      '1_000',
      '0x1',
      '0b1',
      '0o7',
      '9007199254740993',
    ]) {
      for (const [sql, options] of [
        [statement, sqlite],
        [pgStatement, pg],
      ] as const) {
        expect(
          refusal(() => addTenantFilter('SELECT * FROM notes', id, 'tenant_id', options)).reason,
        ).toMatch(/canonical form of an integer tenant column/)
        refusal(() => validateQuery(sql, 'tenant_id', { ...options, tenantId: id, params: [id] }))
        refusal(() => validateQuery(sql, 'tenant_id', { ...options, params: [id] }))
        refusal(() => validateQuery(`SELECT * FROM notes WHERE tenant_id = '${id}'`, 'tenant_id', options))
      }
    }
  })

  it('on Postgres, refuses a uuid that is not lower-case and hyphenated; SQLite has no uuid type', () => {
    for (const id of [uuid.toUpperCase(), uuid.replaceAll('-', ''), `${uuid.slice(0, 8)}${uuid.slice(9)}`]) {
      expect(refusal(() => addTenantFilter('SELECT * FROM notes', id, 'tenant_id', pg)).reason).toMatch(
        /canonical form of an? (uuid|integer) tenant column/,
      )
      refusal(() => validateQuery(pgStatement, 'tenant_id', { ...pg, params: [id] }))
      expect(addTenantFilter('SELECT * FROM notes', id, 'tenant_id', sqlite).params).toEqual([id])
    }
    expect(addTenantFilter('SELECT * FROM notes', uuid, 'tenant_id', pg).params).toEqual([uuid])
  })

  it('keeps every other id: names, canonical integers, ids that only start with a digit', () => {
    for (const id of [
      'acme',
      'ACME',
      '0',
      '7',
      '9007199254740991',
      '1password',
      '3dfx',
      'e1',
      'a.b-c_d',
      '-',
      '1-2',
      '1.2.3',
      'x'.repeat(255),
    ]) {
      for (const options of [sqlite, pg]) {
        expect(addTenantFilter('SELECT * FROM notes', id, 'tenant_id', options).params).toEqual([id])
        validateQuery(options === pg ? pgStatement : statement, 'tenant_id', {
          ...options,
          tenantId: id,
          params: [id],
        })
      }
    }
  })

  it('checks nothing when no tenant table is read (no tenant is bound)', () => {
    expect(addTenantFilter('SELECT 1', '01', 'tenant_id').params).toEqual([])
    expect(
      addTenantFilter('SELECT * FROM plans', '01', 'tenant_id', { sharedTables: ['plans'] }).params,
    ).toEqual([])
  })
})

describe('raw SQL: a listed table name matches that table, written the same way, only', () => {
  it('a bare shared name is the unqualified table, not one in another schema or attached database', () => {
    for (const [options, names] of [
      [sqlite, ['main.plans', 'archive.plans', 'temp.plans']],
      [pg, ['public.plans', 'archive.plans']],
    ] as const) {
      validateQuery('SELECT * FROM plans', 'tenant_id', { ...options, sharedTables: ['plans'] })
      for (const name of names) {
        const error = refusal(() =>
          validateQuery(`SELECT * FROM ${name}`, 'tenant_id', { ...options, sharedTables: ['plans'] }),
        )
        expect(error.reason).toContain(`list "${name}" to share this one`)
        // addTenantFilter filters it like any tenant table.
        expect(
          addTenantFilter(`SELECT * FROM ${name}`, 'acme', 'tenant_id', {
            ...options,
            sharedTables: ['plans'],
          }).sql,
        ).toMatch(/WHERE "plans"\."tenant_id" = (\?1|\$1)$/)
        validateQuery(`SELECT * FROM ${name}`, 'tenant_id', { ...options, sharedTables: [name] })
        refusal(() => validateQuery('SELECT * FROM plans', 'tenant_id', { ...options, sharedTables: [name] }))
      }
    }
  })

  it('refuses writes to a shared table only where the name matches, and filters the others', () => {
    refusal(() =>
      validateQuery('DELETE FROM main.plans', 'tenant_id', { ...sqlite, sharedTables: ['main.plans'] }),
    )
    expect(
      addTenantFilter('DELETE FROM main.plans', 'acme', 'tenant_id', { ...sqlite, sharedTables: ['plans'] })
        .sql,
    ).toBe('DELETE FROM "main"."plans" WHERE "plans"."tenant_id" = ?1')
  })

  it('a tenant table name is trusted for an unqualified tenant column in a subquery in its own schema only', () => {
    for (const [options, p, other] of [
      [sqlite, '?', 'archive.notes'],
      [sqlite, '?', 'main.notes'],
      [pg, '$1', 'archive.notes'],
      [pg, '$1', 'public.notes'],
    ] as const) {
      const sql = (from: string) =>
        `SELECT u.id FROM users u WHERE u.tenant_id = 'acme' AND u.id IN (SELECT a.owner_id FROM ${from} a WHERE tenant_id = ${p})`
      validateQuery(sql('notes'), 'tenant_id', { ...options, params: ['acme'], tenantTables: ['notes'] })
      refusal(() =>
        validateQuery(sql(other), 'tenant_id', { ...options, params: ['acme'], tenantTables: ['notes'] }),
      )
      validateQuery(sql(other), 'tenant_id', { ...options, params: ['acme'], tenantTables: [other] })
    }
  })

  it('Postgres: refuses a schema with capitals (the parser drops the quotes of "Archive") and reads db.schema.table as its own name', () => {
    refusal(() =>
      validateQuery('SELECT * FROM "Archive".plans', 'tenant_id', { ...pg, sharedTables: ['archive.plans'] }),
    )
    refusal(() =>
      validateQuery('SELECT * FROM Archive.plans', 'tenant_id', { ...pg, sharedTables: ['archive.plans'] }),
    )
    refusal(() =>
      validateQuery('SELECT * FROM app.archive.plans', 'tenant_id', {
        ...pg,
        sharedTables: ['archive.plans', 'plans'],
      }),
    )
  })
})
