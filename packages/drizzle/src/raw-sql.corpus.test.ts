// The adversarial raw-SQL corpus: statements that try to read or change another tenant's rows.
// Each one, run for tenant "acme" against seeded data of three tenants, must either be refused
// (UnsafeQueryError) or run and touch only acme's rows (or, for one ambiguous statement, be refused
// by the database itself). Both tools are held to it:
// - TenantDB.query/exec (addTenantFilter + proof), checked by running the filtered statement;
// - validateQuery on the statement as written: what it accepts is run unchanged and checked.
import { isTenantError } from '@tenant/core'
import { sql } from 'drizzle-orm'
import type { LibSQLDatabase } from 'drizzle-orm/libsql'
import { beforeAll, beforeEach, expect, it } from 'vitest'
import { describeEachDatabase, type TestDatabase } from '../test/databases'
import { allRows, createIsolationTables, seedIsolationData, TENANTS } from '../test/isolation-db'
import { validateQuery } from './raw-sql'
import { scoped } from './scoped'
import type { TenantDB } from './tenant-db'

/** `failed`: the statement passed our checks but the database refused it (an error, nothing ran). */
type Outcome = 'scoped' | 'refused' | 'failed'
type PerDialect<T> = T | { sqlite: T; pg: T }

interface CorpusCase {
  name: string
  /** The statement; `{?}` becomes `?` (SQLite) or `$n` (Postgres). */
  sql: string
  params?: unknown[]
  /** A write: run with exec(), then check that no other tenant's row changed. */
  write?: boolean
  /** What TenantDB.query/exec does with it. */
  tenantDb: PerDialect<Outcome>
  /** What validateQuery (tenantId 'acme') says about the statement as written. */
  validate: PerDialect<Outcome>
  /** Rows TenantDB.query returns, or rows TenantDB.exec changes, when scoped. */
  rows?: PerDialect<number>
  only?: 'sqlite' | 'pg'
}

const corpus: CorpusCase[] = [
  // Missing filter, OR-bypass and friends.
  { name: 'no filter at all', sql: 'SELECT * FROM notes', tenantDb: 'scoped', validate: 'refused', rows: 3 },
  {
    name: 'a proper filter',
    sql: 'SELECT * FROM notes WHERE tenant_id = {?}',
    params: ['acme'],
    tenantDb: 'scoped',
    validate: 'scoped',
    rows: 3,
  },
  {
    name: 'OR 1=1 after the filter',
    sql: 'SELECT * FROM notes WHERE tenant_id = {?} OR 1=1',
    params: ['acme'],
    tenantDb: 'scoped',
    validate: 'refused',
    rows: 3,
  },
  {
    name: 'filter as the second OR arm',
    sql: 'SELECT * FROM notes WHERE score > 1 OR tenant_id = {?}',
    params: ['acme'],
    tenantDb: 'scoped',
    validate: 'refused',
    rows: 3,
  },
  {
    // The parser gets AND/OR precedence wrong, so any mix without parentheses is refused.
    name: 'AND binds tighter than OR',
    sql: 'SELECT * FROM notes WHERE tenant_id = {?} AND 1 = 1 OR score = 2',
    params: ['acme'],
    tenantDb: 'refused',
    validate: 'refused',
  },
  {
    name: 'OR before AND, which the parser reads as (a OR b) AND tenant',
    sql: 'SELECT * FROM notes WHERE score = 5 OR score = 1 AND tenant_id = {?}',
    params: ['acme'],
    tenantDb: 'refused',
    validate: 'refused',
  },
  {
    name: 'OR before AND in a DELETE',
    sql: "DELETE FROM notes WHERE id = 'globex-n1' OR id = 'x' AND tenant_id = {?}",
    params: ['acme'],
    write: true,
    tenantDb: 'refused',
    validate: 'refused',
  },
  {
    name: 'IN then OR, which the parser reads as tenant AND (x IN (...) OR b)',
    sql: 'SELECT * FROM notes WHERE tenant_id = {?} AND score IN (1) OR 1 = 1',
    params: ['acme'],
    tenantDb: 'refused',
    validate: 'refused',
  },
  {
    name: 'OR before AND inside a derived table',
    sql: 'SELECT * FROM (SELECT * FROM notes WHERE 1 = 1 OR 1 = 1 AND tenant_id = {?}) AS q',
    params: ['acme'],
    tenantDb: 'refused',
    validate: 'refused',
  },
  {
    name: 'OR before AND inside a scalar subquery',
    sql: 'SELECT id, (SELECT max(n2.title) FROM notes n2 WHERE 1 = 1 OR 1 = 1 AND n2.tenant_id = {?}) AS leak FROM notes WHERE tenant_id = {?}',
    params: ['acme', 'acme'],
    tenantDb: 'refused',
    validate: 'refused',
  },
  {
    name: 'AND and OR grouped with parentheses',
    sql: 'SELECT * FROM notes WHERE (score = 5 OR score = 1) AND tenant_id = {?}',
    params: ['acme'],
    tenantDb: 'scoped',
    validate: 'scoped',
    rows: 1,
  },
  {
    name: 'OR of two tenants',
    sql: 'SELECT * FROM notes WHERE tenant_id = {?} OR tenant_id = {?}',
    params: ['acme', 'globex'],
    tenantDb: 'scoped',
    validate: 'refused',
    rows: 3,
  },
  {
    name: 'NOT around an inequality',
    sql: 'SELECT * FROM notes WHERE NOT (tenant_id <> {?})',
    params: ['acme'],
    tenantDb: 'scoped',
    validate: 'refused',
    rows: 3,
  },
  {
    name: 'IN list instead of =',
    sql: 'SELECT * FROM notes WHERE tenant_id IN ({?}, {?})',
    params: ['acme', 'globex'],
    tenantDb: 'scoped',
    validate: 'refused',
    rows: 3,
  },
  {
    name: 'LIKE wildcard',
    sql: "SELECT * FROM notes WHERE tenant_id LIKE '%'",
    tenantDb: 'scoped',
    validate: 'refused',
    rows: 3,
  },
  {
    name: 'tautology tenant_id = tenant_id',
    sql: 'SELECT * FROM notes WHERE tenant_id = tenant_id',
    tenantDb: 'scoped',
    validate: 'refused',
    rows: 3,
  },
  {
    name: 'comparison with NULL',
    sql: 'SELECT * FROM notes WHERE tenant_id = NULL',
    tenantDb: 'scoped',
    validate: 'refused',
    rows: 0,
  },
  {
    name: 'another tenant as the parameter',
    sql: 'SELECT * FROM notes WHERE tenant_id = {?}',
    params: ['globex'],
    tenantDb: 'scoped',
    validate: 'refused',
    rows: 0,
  },
  {
    name: 'another tenant as a literal',
    sql: "SELECT * FROM notes WHERE tenant_id = 'globex'",
    tenantDb: 'scoped',
    validate: 'refused',
    rows: 0,
  },
  {
    name: 'the tenant as a literal',
    sql: "SELECT * FROM notes WHERE tenant_id = 'acme'",
    tenantDb: 'scoped',
    validate: 'scoped',
    rows: 3,
  },
  // Layout: case, whitespace, newlines, comments, string literals.
  {
    name: 'newline WHERE with OR',
    sql: 'select *\nfrom notes\nwhere\n  tenant_id = {?}\n  or score = 3',
    params: ['acme'],
    tenantDb: 'scoped',
    validate: 'refused',
    rows: 3,
  },
  {
    name: 'mixed case keywords and names',
    sql: 'SeLeCt * FrOm NoTeS wHeRe TeNaNt_Id = {?}',
    params: ['acme'],
    tenantDb: { sqlite: 'scoped', pg: 'refused' },
    validate: { sqlite: 'scoped', pg: 'refused' },
    rows: 3,
  },
  {
    name: 'line comment hiding nothing, then OR',
    sql: 'SELECT * FROM notes WHERE tenant_id = {?} -- AND 1 = 0\n OR 1 = 1',
    params: ['acme'],
    tenantDb: 'scoped',
    validate: 'refused',
    rows: 3,
  },
  {
    name: 'block comment holding a fake filter',
    sql: "SELECT * FROM notes /* WHERE tenant_id = 'acme' */",
    tenantDb: 'scoped',
    validate: 'refused',
    rows: 3,
  },
  {
    name: 'string literal containing WHERE and OR',
    sql: "SELECT * FROM notes WHERE title = 'x WHERE tenant_id = ''acme'' OR 1=1'",
    tenantDb: 'scoped',
    validate: 'refused',
    rows: 0,
  },
  {
    name: 'string literal with a comment marker',
    sql: "SELECT * FROM notes WHERE tenant_id = {?} AND title <> 'it''s -- not a comment'",
    params: ['acme'],
    tenantDb: 'scoped',
    validate: 'scoped',
    rows: 3,
  },
  {
    name: 'parenthesised filter',
    sql: 'SELECT * FROM notes WHERE (tenant_id = {?}) AND (score = 1 OR score = 2)',
    params: ['acme'],
    tenantDb: 'scoped',
    validate: 'scoped',
    rows: 2,
  },
  // Aliases and quoted identifiers.
  {
    name: 'alias',
    sql: 'SELECT n.id FROM notes n WHERE n.tenant_id = {?}',
    params: ['acme'],
    tenantDb: 'scoped',
    validate: 'scoped',
    rows: 3,
  },
  {
    name: 'quoted alias and column',
    sql: 'SELECT "n"."id" FROM "notes" AS "n" WHERE "n"."tenant_id" = {?}',
    params: ['acme'],
    tenantDb: 'scoped',
    validate: 'scoped',
    rows: 3,
  },
  {
    name: 'quoted column unqualified',
    sql: 'SELECT * FROM notes WHERE "tenant_id" = {?}',
    params: ['acme'],
    tenantDb: 'scoped',
    validate: 'scoped',
    rows: 3,
  },
  {
    name: 'upper-case alias',
    sql: 'SELECT * FROM notes N WHERE N.tenant_id = {?}',
    params: ['acme'],
    tenantDb: { sqlite: 'scoped', pg: 'refused' },
    validate: { sqlite: 'scoped', pg: 'refused' },
    rows: 3,
  },
  {
    name: 'output alias named like the tenant column',
    sql: "SELECT 'acme' AS tenant_id, id FROM notes WHERE tenant_id = {?}",
    params: ['acme'],
    tenantDb: { sqlite: 'refused', pg: 'scoped' },
    validate: { sqlite: 'refused', pg: 'scoped' },
    rows: 3,
  },
  // Joins.
  {
    name: 'join without filters',
    sql: 'SELECT n.id, u.name FROM notes n JOIN users u ON u.id = n.owner_id',
    tenantDb: 'scoped',
    validate: 'refused',
    rows: 3,
  },
  {
    name: 'join that matches every user',
    sql: 'SELECT n.id, u.name FROM notes n JOIN users u ON 1 = 1 WHERE n.tenant_id = {?}',
    params: ['acme'],
    tenantDb: 'scoped',
    validate: 'refused',
    rows: 6,
  },
  {
    name: 'join linked through the tenant column',
    sql: 'SELECT n.id, u.name FROM notes n JOIN users u ON u.id = n.owner_id AND u.tenant_id = n.tenant_id WHERE n.tenant_id = {?}',
    params: ['acme'],
    tenantDb: 'scoped',
    validate: 'scoped',
    rows: 3,
  },
  {
    name: 'left join pointing at another tenant',
    sql: "SELECT n.id, u.name FROM notes n LEFT JOIN users u ON u.tenant_id = 'globex' WHERE n.tenant_id = {?}",
    params: ['acme'],
    tenantDb: 'scoped',
    validate: 'refused',
    rows: 3,
  },
  {
    name: 'comma join',
    sql: 'SELECT n.id, u.name FROM notes n, users u WHERE n.tenant_id = {?}',
    params: ['acme'],
    tenantDb: 'scoped',
    validate: 'refused',
    rows: 6,
  },
  {
    name: 'shared lookup table',
    sql: 'SELECT u.id, p.name FROM users u JOIN plans p ON p.id = u.plan_id WHERE u.tenant_id = {?}',
    params: ['acme'],
    tenantDb: 'scoped',
    validate: 'scoped',
    rows: 2,
  },
  {
    name: 'unqualified filter with two tables',
    sql: 'SELECT n.id FROM notes n JOIN shares s ON s.note_id = n.id WHERE tenant_id = {?}',
    params: ['acme'],
    tenantDb: 'failed',
    validate: 'refused',
  },
  // Subqueries.
  {
    name: 'unscoped IN subquery',
    sql: 'SELECT * FROM notes WHERE id IN (SELECT note_id FROM shares)',
    tenantDb: 'refused',
    validate: 'refused',
  },
  {
    name: 'scoped IN subquery',
    sql: 'SELECT * FROM notes WHERE tenant_id = {?} AND id IN (SELECT note_id FROM shares WHERE shares.tenant_id = {?})',
    params: ['acme', 'acme'],
    tenantDb: 'scoped',
    validate: 'scoped',
    rows: 1,
  },
  {
    // Safe here (shares has the column), but not provable without knowing the schema.
    name: 'IN subquery with an unqualified tenant column and no schema',
    sql: 'SELECT * FROM notes WHERE tenant_id = {?} AND id IN (SELECT note_id FROM shares WHERE tenant_id = {?})',
    params: ['acme', 'acme'],
    tenantDb: 'refused',
    validate: 'refused',
  },
  // A subquery over a table without the tenant column: its unqualified tenant_id is the outer row's.
  {
    name: 'unqualified tenant column in a subquery over a table without one',
    sql: "SELECT id, (SELECT max(detail) FROM audit_events WHERE tenant_id = {?} AND detail LIKE 'globex%') AS leaked FROM notes WHERE tenant_id = {?}",
    params: ['acme', 'acme'],
    tenantDb: 'refused',
    validate: 'refused',
  },
  {
    name: 'subquery table qualified with the outer alias it shadows (SQLite resolves outward)',
    sql: "SELECT id, (SELECT max(detail) FROM audit_events WHERE audit_events.tenant_id = {?} AND detail LIKE 'globex%') AS leaked FROM notes AS audit_events WHERE audit_events.tenant_id = {?}",
    params: ['acme', 'acme'],
    tenantDb: 'refused',
    validate: 'refused',
  },
  {
    name: 'EXISTS subquery over a table without the column, unqualified',
    sql: "SELECT * FROM notes WHERE tenant_id = {?} AND EXISTS (SELECT 1 FROM audit_events WHERE tenant_id = {?} AND detail = 'globex event')",
    params: ['acme', 'acme'],
    tenantDb: 'refused',
    validate: 'refused',
  },
  // What the parser reads must be what the database reads.
  {
    name: 'backslash before a quote: the parser reads an escape, the database the end of the literal',
    sql: "SELECT * FROM notes WHERE title = 'x\\' OR 1=1) --'",
    tenantDb: 'refused',
    validate: 'refused',
  },
  {
    name: 'backslash literal that deletes every tenant',
    sql: "DELETE FROM notes WHERE title = 'x\\' OR 1=1 --'",
    write: true,
    tenantDb: 'refused',
    validate: 'refused',
  },
  {
    name: 'backslash literal that updates every tenant',
    sql: "UPDATE notes SET title = 'pwned' WHERE title = 'x\\' OR 1=1 --'",
    write: true,
    tenantDb: 'refused',
    validate: 'refused',
  },
  // Inside what the parser takes for one literal, the database reads code ('acme' spelt without
  // quotes, which would end the parser's literal).
  ...(['sqlite', 'pg'] as const).flatMap((only): CorpusCase[] => {
    const text = (s: string) =>
      only === 'sqlite'
        ? `char(${[...s].map((c) => c.charCodeAt(0)).join(', ')})`
        : [...s].map((c) => `chr(${c.charCodeAt(0)})`).join(' || ')
    return [
      {
        name: 'backslash literal that moves every row to the tenant',
        sql: `UPDATE notes SET title = 'x\\', tenant_id = ${text('acme')} --' WHERE tenant_id = {?}`,
        params: ['acme'],
        write: true,
        tenantDb: 'refused',
        validate: 'refused',
        only,
      },
      {
        name: 'backslash literal that inserts a row for another tenant',
        sql: `INSERT INTO notes (id, title) VALUES ('z9', 'x\\', ${text('globex')}) --')`,
        write: true,
        tenantDb: 'refused',
        validate: 'refused',
        only,
      },
    ]
  }),
  {
    name: 'a comment that SQLite ends at a line feed and the parser at a carriage return',
    sql: 'SELECT * FROM notes -- note\r WHERE tenant_id = {?}',
    params: ['acme'],
    tenantDb: 'refused',
    validate: 'refused',
    only: 'sqlite',
  },
  {
    name: 'a "#" the parser reads as a comment',
    sql: 'SELECT * FROM notes WHERE tenant_id = {?} # note',
    params: ['acme'],
    tenantDb: 'refused',
    validate: 'refused',
    only: 'sqlite',
  },
  {
    name: 'a NUL character, where SQLite stops reading',
    sql: 'SELECT * FROM notes \u0000 WHERE tenant_id = {?}',
    params: ['acme'],
    tenantDb: 'refused',
    validate: 'refused',
  },
  {
    name: 'a dollar-quoted string',
    sql: 'SELECT * FROM notes WHERE tenant_id = {?} AND title <> $$x$$',
    params: ['acme'],
    tenantDb: 'refused',
    validate: 'refused',
    only: 'pg',
  },
  {
    name: 'an E string with a backslash escape',
    sql: "SELECT * FROM notes WHERE tenant_id = {?} AND title <> E'x\\'y'",
    params: ['acme'],
    tenantDb: 'refused',
    validate: 'refused',
    only: 'pg',
  },
  // Comparison modifiers on the tenant predicate.
  {
    name: 'COLLATE NOCASE on the tenant value (matches tenant ACME)',
    sql: "SELECT * FROM notes WHERE tenant_id = 'acme' COLLATE NOCASE",
    tenantDb: 'scoped',
    validate: 'refused',
    rows: 3,
    only: 'sqlite',
  },
  {
    name: 'COLLATE NOCASE on the tenant column',
    sql: 'SELECT * FROM notes WHERE tenant_id COLLATE NOCASE = {?}',
    params: ['acme'],
    tenantDb: 'scoped',
    validate: 'refused',
    rows: 3,
    only: 'sqlite',
  },
  {
    name: 'COLLATE on a tenant link between tables',
    sql: 'SELECT n.id FROM notes n JOIN shares s ON s.tenant_id = n.tenant_id COLLATE NOCASE WHERE n.tenant_id = {?}',
    params: ['acme'],
    tenantDb: 'scoped',
    validate: 'refused',
    only: 'sqlite',
  },
  {
    name: 'subquery scoped to another tenant',
    sql: 'SELECT * FROM notes WHERE tenant_id = {?} AND owner_id IN (SELECT id FROM users WHERE tenant_id = {?})',
    params: ['acme', 'globex'],
    tenantDb: 'refused',
    validate: 'refused',
  },
  {
    name: 'scalar subquery in the select list',
    sql: "SELECT (SELECT title FROM notes WHERE tenant_id = 'globex' LIMIT 1) AS t FROM notes WHERE tenant_id = {?}",
    params: ['acme'],
    tenantDb: 'refused',
    validate: 'refused',
  },
  {
    name: 'EXISTS over another table',
    sql: "SELECT * FROM notes WHERE tenant_id = {?} AND EXISTS (SELECT 1 FROM users WHERE name = 'globex one')",
    params: ['acme'],
    tenantDb: 'refused',
    validate: 'refused',
  },
  {
    name: 'correlated subquery filtered on the outer table only',
    sql: 'SELECT * FROM notes n WHERE n.tenant_id = {?} AND EXISTS (SELECT 1 FROM shares s WHERE n.tenant_id = {?})',
    params: ['acme', 'acme'],
    tenantDb: 'refused',
    validate: 'refused',
  },
  {
    name: 'unscoped derived table',
    sql: 'SELECT * FROM (SELECT * FROM notes) AS q',
    tenantDb: 'refused',
    validate: 'refused',
  },
  {
    name: 'scoped derived table',
    sql: 'SELECT * FROM (SELECT * FROM notes WHERE tenant_id = {?}) AS q',
    params: ['acme'],
    tenantDb: 'scoped',
    validate: 'scoped',
    rows: 3,
  },
  {
    name: 'HAVING with an unscoped subquery',
    sql: 'SELECT owner_id FROM notes WHERE tenant_id = {?} GROUP BY owner_id HAVING COUNT(*) < (SELECT COUNT(*) FROM notes)',
    params: ['acme'],
    tenantDb: 'refused',
    validate: 'refused',
  },
  // Set operations and CTEs.
  {
    name: 'UNION with an unscoped arm',
    sql: 'SELECT id FROM notes WHERE tenant_id = {?} UNION SELECT id FROM notes',
    params: ['acme'],
    tenantDb: 'scoped',
    validate: 'refused',
    rows: 3,
  },
  {
    name: 'UNION ALL into another table',
    sql: 'SELECT id FROM notes WHERE tenant_id = {?} UNION ALL SELECT id FROM users',
    params: ['acme'],
    tenantDb: 'scoped',
    validate: 'refused',
    rows: 5,
  },
  {
    name: 'UNION of scoped arms with ORDER BY and LIMIT',
    sql: 'SELECT id FROM notes WHERE tenant_id = {?} UNION SELECT id FROM users WHERE tenant_id = {?} ORDER BY id LIMIT 4',
    params: ['acme', 'acme'],
    tenantDb: 'scoped',
    validate: 'scoped',
    rows: 4,
  },
  {
    name: 'CTE',
    sql: 'WITH x AS (SELECT * FROM notes) SELECT * FROM x',
    tenantDb: 'refused',
    validate: 'refused',
  },
  {
    name: 'CTE that looks scoped',
    sql: 'WITH x AS (SELECT * FROM notes WHERE tenant_id = {?}) SELECT * FROM x',
    params: ['acme'],
    tenantDb: 'refused',
    validate: 'refused',
  },
  // Functions: only the built-in allow-list.
  {
    name: 'ts_stat runs SQL given as text',
    sql: "SELECT ts_stat('SELECT to_tsvector(title) FROM notes') AS words FROM notes WHERE tenant_id = {?}",
    params: ['acme'],
    tenantDb: 'refused',
    validate: 'refused',
    only: 'pg',
  },
  {
    name: 'xpath over query_to_xml output',
    sql: "SELECT xpath('//title/text()', query_to_xml('select title from notes', true, false, '')) AS t FROM notes WHERE tenant_id = {?}",
    params: ['acme'],
    tenantDb: 'refused',
    validate: 'refused',
    only: 'pg',
  },
  {
    name: 'a function of the database that reads every tenant',
    sql: 'SELECT all_titles() AS t FROM notes WHERE tenant_id = {?}',
    params: ['acme'],
    tenantDb: 'refused',
    validate: 'refused',
    only: 'pg',
  },
  {
    name: 'a schema-qualified call of a refused function',
    sql: "SELECT pg_catalog.query_to_xml('select title from notes', true, false, '') AS t FROM notes WHERE tenant_id = {?}",
    params: ['acme'],
    tenantDb: 'refused',
    validate: 'refused',
    only: 'pg',
  },
  {
    name: 'allowed functions still work',
    sql: "SELECT lower(title) AS t, coalesce(owner_id, 'none') AS o, length(id) AS n FROM notes WHERE tenant_id = {?}",
    params: ['acme'],
    tenantDb: 'scoped',
    validate: 'scoped',
    rows: 3,
  },
  // Several statements, DDL, dangerous functions.
  {
    name: 'stacked statements',
    sql: 'SELECT * FROM notes WHERE tenant_id = {?}; DELETE FROM notes',
    params: ['acme'],
    tenantDb: 'refused',
    validate: 'refused',
  },
  { name: 'DDL', sql: 'DROP TABLE notes', tenantDb: 'refused', validate: 'refused' },
  {
    name: 'SQL run from a string',
    sql: "SELECT query_to_xml('select * from notes', true, false, '') FROM notes WHERE tenant_id = {?}",
    params: ['acme'],
    tenantDb: 'refused',
    validate: 'refused',
    only: 'pg',
  },
  {
    name: 'session setting changed inside a query',
    sql: "SELECT set_config('app.tenant_id', 'globex', false) FROM notes WHERE tenant_id = {?}",
    params: ['acme'],
    tenantDb: 'refused',
    validate: 'refused',
    only: 'pg',
  },
  // Writes.
  {
    name: 'UPDATE without a filter',
    sql: "UPDATE notes SET title = 'pwned'",
    write: true,
    tenantDb: 'scoped',
    validate: 'refused',
    rows: 3,
  },
  {
    name: 'UPDATE another tenant by id with OR',
    sql: "UPDATE notes SET title = 'pwned' WHERE id = {?} OR 1 = 1",
    params: ['globex-n1'],
    write: true,
    tenantDb: 'scoped',
    validate: 'refused',
    rows: 3,
  },
  {
    name: 'UPDATE moving a row to the tenant',
    sql: "UPDATE notes SET tenant_id = 'acme' WHERE id = 'globex-n1'",
    write: true,
    tenantDb: 'refused',
    validate: 'refused',
  },
  {
    name: 'UPDATE with a scoped filter',
    sql: 'UPDATE notes SET score = score + 1 WHERE tenant_id = {?} AND id = {?}',
    params: ['acme', 'acme-n1'],
    write: true,
    tenantDb: 'scoped',
    validate: 'scoped',
    rows: 1,
  },
  {
    name: 'DELETE another tenant by id',
    sql: "DELETE FROM notes WHERE id = 'globex-n1'",
    write: true,
    tenantDb: 'scoped',
    validate: 'refused',
    rows: 0,
  },
  {
    name: 'DELETE everything',
    sql: 'DELETE FROM notes',
    write: true,
    tenantDb: 'scoped',
    validate: 'refused',
    rows: 3,
  },
  {
    name: 'multi-row INSERT without the tenant',
    sql: "INSERT INTO notes (id, title) VALUES ('z1', 'a'), ('z2', 'b')",
    write: true,
    tenantDb: 'scoped',
    validate: 'refused',
    rows: 2,
  },
  {
    name: 'INSERT for another tenant',
    sql: "INSERT INTO notes (id, tenant_id, title) VALUES ('z3', 'globex', 'x')",
    write: true,
    tenantDb: 'refused',
    validate: 'refused',
  },
  {
    name: 'multi-row INSERT smuggling one foreign row',
    sql: "INSERT INTO notes (id, tenant_id, title) VALUES ('z4', {?}, 'a'), ('z5', 'globex', 'b')",
    params: ['acme'],
    write: true,
    tenantDb: 'refused',
    validate: 'refused',
  },
  {
    name: 'INSERT with the tenant',
    sql: "INSERT INTO notes (id, tenant_id, title) VALUES ('z6', {?}, 'a')",
    params: ['acme'],
    write: true,
    tenantDb: 'scoped',
    validate: 'scoped',
    rows: 1,
  },
  {
    name: 'INSERT ... SELECT copying other tenants',
    sql: "INSERT INTO notes (id, tenant_id, title) SELECT id || 'x', tenant_id, title FROM notes",
    write: true,
    tenantDb: 'refused',
    validate: 'refused',
  },
  {
    name: "INSERT copying another tenant's value through a subquery",
    sql: "INSERT INTO notes (id, tenant_id, title) VALUES ('z7', {?}, (SELECT title FROM notes WHERE tenant_id = 'globex' LIMIT 1))",
    params: ['acme'],
    write: true,
    tenantDb: 'refused',
    validate: 'refused',
  },
  {
    name: "UPDATE copying another tenant's value through a subquery",
    sql: "UPDATE notes SET title = (SELECT title FROM notes WHERE id = 'globex-n1') WHERE tenant_id = {?}",
    params: ['acme'],
    write: true,
    tenantDb: 'refused',
    validate: 'refused',
  },
  {
    name: "RETURNING another tenant's value through a subquery",
    sql: "DELETE FROM notes WHERE tenant_id = {?} AND id = 'acme-n1' RETURNING (SELECT title FROM notes WHERE id = 'globex-n1') AS t",
    params: ['acme'],
    write: true,
    tenantDb: 'refused',
    validate: 'refused',
    only: 'pg',
  },
  {
    name: "RETURNING a subquery whose unqualified tenant column is the inserted row's",
    sql: "INSERT INTO notes (id, tenant_id, title) VALUES ('x1', {?}, 't') RETURNING (SELECT max(detail) FROM audit_events WHERE tenant_id = {?}) AS leak",
    params: ['acme', 'acme'],
    write: true,
    tenantDb: 'refused',
    validate: 'refused',
  },
  {
    name: 'REPLACE over another tenant row',
    sql: "REPLACE INTO notes (id, tenant_id, title) VALUES ('globex-n1', 'acme', 'x')",
    write: true,
    tenantDb: 'refused',
    validate: 'refused',
  },
  {
    name: 'INSERT OR REPLACE over another tenant row',
    sql: "INSERT OR REPLACE INTO notes (id, tenant_id, title) VALUES ('globex-n1', 'acme', 'x')",
    write: true,
    tenantDb: 'refused',
    validate: 'refused',
  },
  {
    name: 'upsert onto another tenant row',
    sql: "INSERT INTO notes (id, title) VALUES ('globex-n1', 'x') ON CONFLICT (id) DO UPDATE SET title = excluded.title",
    write: true,
    tenantDb: 'scoped',
    validate: 'refused',
    rows: 0,
    only: 'pg',
  },
]

function render(statement: string, dialect: 'sqlite' | 'pg'): string {
  let n = 0
  return statement.replaceAll('{?}', () => (dialect === 'sqlite' ? '?' : `$${++n}`))
}

function pick<T>(value: PerDialect<T>, dialect: 'sqlite' | 'pg'): T {
  return typeof value === 'object' && value !== null && 'sqlite' in value ? value[dialect] : (value as T)
}

/** Runs a statement exactly as written, outside any scoping, through the driver's own client. */
async function runAsWritten(
  database: TestDatabase,
  statement: string,
  params: unknown[],
): Promise<Record<string, unknown>[]> {
  const client = (database.db as unknown as { $client: any }).$client
  if (database.kind.startsWith('libsql')) {
    const rs = await client.execute({ sql: statement, args: params })
    return rs.rows.map((row: any) =>
      Object.fromEntries(rs.columns.map((c: string, i: number) => [c, row[i]])),
    )
  }
  if (database.kind === 'pglite') return (await client.query(statement, params)).rows
  return [...(await client.unsafe(statement, params))]
}

// Besides the three seeded tenants: a tenant whose id differs from acme only in case, and an
// audit table without a tenant column whose rows name their tenant.
const FOREIGN = [...TENANTS.filter((t) => t !== 'acme'), 'ACME']

async function seedCorpusExtras(database: TestDatabase): Promise<void> {
  await database.query(sql.raw('delete from audit_events'))
  for (const t of TENANTS) {
    await database.query(sql.raw(`insert into audit_events (detail) values ('${t} event')`))
  }
  await database.query(
    sql.raw(
      "insert into notes (id, tenant_id, owner_id, title, score) values ('ACME-n1', 'ACME', null, 'ACME secret', 1)",
    ),
  )
  await database.query(
    sql.raw("insert into shares (note_id, tenant_id, user_id) values ('ACME-n1', 'ACME', 'ACME-u1')"),
  )
}

async function createCorpusExtras(database: TestDatabase): Promise<void> {
  await database.query(sql.raw('create table if not exists audit_events (detail text not null)'))
  if (database.dialect === 'pg') {
    await database.query(
      sql.raw(
        "create or replace function all_titles() returns text language sql as 'select string_agg(title, '','') from notes'",
      ),
    )
  }
}

/** Every tenant-tagged value in the rows belongs to acme (ids `acme-..`, titles `acme note ..`). */
function expectOnlyAcme(rows: Record<string, unknown>[]): void {
  for (const row of rows) {
    for (const value of Object.values(row)) {
      const text = typeof value === 'string' ? value : JSON.stringify(value ?? null)
      for (const tenant of FOREIGN) {
        if (text.includes(tenant)) throw new Error(`leaked a ${tenant} value: ${JSON.stringify(row)}`)
      }
    }
  }
}

async function othersSnapshot(database: TestDatabase): Promise<string> {
  const parts: unknown[] = []
  for (const table of ['notes', 'users', 'shares', 'audit_events']) {
    parts.push((await allRows(database, table)).filter((r) => r.tenant_id !== 'acme'))
  }
  return JSON.stringify(parts)
}

async function acmeCount(database: TestDatabase): Promise<number> {
  return (await allRows(database, 'notes')).filter((r) => r.tenant_id === 'acme').length
}

describeEachDatabase(
  'adversarial raw SQL corpus',
  (database) => {
    let tdb: TenantDB<LibSQLDatabase>
    beforeAll(async () => {
      await createIsolationTables(database.current)
      await createCorpusExtras(database.current)
      tdb = scoped(database.current.db as unknown as LibSQLDatabase, 'acme', { shared: ['plans'] })
    })
    beforeEach(async () => {
      await seedIsolationData(database.current)
      await seedCorpusExtras(database.current)
    })

    const dialect = database.kind.startsWith('libsql') ? 'sqlite' : 'pg'
    for (const c of corpus.filter((x) => x.only === undefined || x.only === dialect)) {
      it(`TenantDB: ${c.name}`, async () => {
        const statement = render(c.sql, dialect)
        const before = await othersSnapshot(database.current)
        const acmeBefore = await acmeCount(database.current)
        let outcome: Outcome = 'scoped'
        try {
          if (c.write) {
            const { rowsAffected } = await tdb.exec(statement, c.params ?? [])
            if (c.rows !== undefined) expect(rowsAffected).toBe(pick(c.rows, dialect))
          } else {
            const rows = await tdb.query(statement, c.params ?? [])
            expectOnlyAcme(rows)
            if (c.rows !== undefined) expect(rows).toHaveLength(pick(c.rows, dialect))
          }
        } catch (error) {
          const code = isTenantError(error) ? (error as { code: string }).code : undefined
          if (code === 'tenant_unsafe_query') outcome = 'refused'
          else if (code === 'tenant_backend_unavailable') outcome = 'failed'
          else throw error
        }
        expect(await othersSnapshot(database.current)).toBe(before)
        if (outcome !== 'scoped') expect(await acmeCount(database.current)).toBe(acmeBefore)
        expect(outcome).toBe(pick(c.tenantDb, dialect))
      })

      it(`validateQuery: ${c.name}`, async () => {
        const statement = render(c.sql, dialect)
        const params = c.params ?? []
        let outcome: Outcome = 'scoped'
        try {
          validateQuery(statement, 'tenant_id', {
            dialect: dialect === 'pg' ? 'postgresql' : 'sqlite',
            tenantId: 'acme',
            params,
            sharedTables: ['plans'],
          })
        } catch (error) {
          if (!isTenantError(error) || (error as { code: string }).code !== 'tenant_unsafe_query') throw error
          outcome = 'refused'
        }
        expect(outcome).toBe(pick(c.validate, dialect))
        if (outcome === 'scoped') {
          // Accepted as written: run it unchanged, outside any scoping, and check what it did.
          const before = await othersSnapshot(database.current)
          const rows = await runAsWritten(database.current, statement, params)
          expectOnlyAcme(rows)
          expect(await othersSnapshot(database.current)).toBe(before)
        }
      })
    }
  },
  { kinds: ['libsql-memory', 'pglite', 'postgres'], migrate: false },
)
