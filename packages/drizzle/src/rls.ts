import { invalidOption, TenantError, validateTenantId } from '@tenant/core'
import { getTableName, is, sql } from 'drizzle-orm'
import {
  type PgDatabase,
  type PgPolicy,
  type PgPolicyToOption,
  PgTable,
  PgTransaction,
  pgPolicy,
} from 'drizzle-orm/pg-core'
import { type AnyDb, detectDriver, queryRows, runQuery } from './driver'
import { checkColumnName, UnsafeQueryError } from './raw-sql'
import { type TransactionOf, transactionConfig } from './tenant-db'
import { endingWith, guardSession, methodNames, type TransactionScope } from './transaction-guard'

const PG = { dialect: 'pg' as const, mode: 'pg' as const }

/** The custom setting that carries the tenant inside a transaction. */
export const DEFAULT_TENANT_SETTING = 'app.tenant_id'

/** Options of the row-level security helpers. */
export interface TenantRlsOptions {
  /**
   * SQL name of the tenant column (a `text` column).
   * @default 'tenant_id'
   */
  column?: string
  /**
   * The custom setting that holds the tenant; it must contain a dot (`prefix.name`).
   * @default 'app.tenant_id'
   */
  setting?: string
  /**
   * Name of the policy. {@link tenantRlsSql} prefixes it with the table name.
   * @default 'tenant_isolation'
   */
  name?: string
  /**
   * Roles the policy applies to (the application role), or `'public'` for every role.
   * @default 'public'
   */
  to?: string | readonly string[]
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/
const SETTING = /^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$/

function quoteIdent(name: string, what: string): string {
  if (!IDENT.test(name)) {
    throw new TenantError(
      'tenant_invalid_config',
      `${what} ${JSON.stringify(name)} must be a plain identifier`,
    )
  }
  return `"${name}"`
}

function settingName(setting: string | undefined): string {
  const s = setting ?? DEFAULT_TENANT_SETTING
  if (typeof s !== 'string' || !SETTING.test(s)) {
    throw new TenantError(
      'tenant_invalid_config',
      `setting ${JSON.stringify(s)} must look like "app.tenant_id"`,
    )
  }
  return s
}

function qualifiedTable(table: string | PgTable): string {
  if (is(table, PgTable)) {
    const schema = (table as unknown as Record<symbol, string | undefined>)[Symbol.for('drizzle:Schema')]
    const name = quoteIdent(getTableName(table), 'table')
    return schema ? `${quoteIdent(schema, 'schema')}.${name}` : name
  }
  const parts = String(table).split('.')
  if (parts.length > 2)
    throw new TenantError(
      'tenant_invalid_config',
      `table ${JSON.stringify(table)} must be "table" or "schema.table"`,
    )
  return parts.map((p) => quoteIdent(p, 'table')).join('.')
}

function roles(to: TenantRlsOptions['to']): string {
  const list = to === undefined ? ['public'] : typeof to === 'string' ? [to] : [...to]
  if (list.length === 0) throw new TenantError('tenant_invalid_config', 'the policy needs at least one role')
  return list.map((r) => (r.toLowerCase() === 'public' ? 'PUBLIC' : quoteIdent(r, 'role'))).join(', ')
}

/**
 * The policy condition: the row's tenant equals the setting. `current_setting(..., true)` is NULL
 * when the setting was never set in the session and `''` after a transaction that set it locally
 * ended; `NULLIF` turns both into NULL, and `tenant_id = NULL` is never true: no tenant, no rows.
 *
 * @example
 * ```ts
 * tenantRlsCondition() // "tenant_id" = NULLIF(current_setting('app.tenant_id', true), '')
 * ```
 */
export function tenantRlsCondition(options: Pick<TenantRlsOptions, 'column' | 'setting'> = {}): string {
  const column = quoteIdent(checkColumnName(options.column ?? 'tenant_id'), 'column')
  return `${column} = NULLIF(current_setting('${settingName(options.setting)}', true), '')`
}

/**
 * The statements that put a table under tenant row-level security: `ENABLE` and `FORCE ROW LEVEL
 * SECURITY` (so the table owner is filtered too) and one policy for all commands with the same
 * condition in `USING` (rows you can see, update, delete) and `WITH CHECK` (rows you can write).
 * Run them once, as the table owner, in a migration.
 *
 * @example
 * ```ts
 * for (const statement of tenantRlsSql('notes', { to: 'app' })) await admin.execute(sql.raw(statement))
 * ```
 */
export function tenantRlsSql(table: string | PgTable, options: TenantRlsOptions = {}): string[] {
  const target = qualifiedTable(table)
  const bare = is(table, PgTable) ? getTableName(table) : String(table).split('.').pop()!
  const name = quoteIdent(`${bare}_${options.name ?? 'tenant_isolation'}`, 'policy name')
  const condition = tenantRlsCondition(options)
  return [
    `ALTER TABLE ${target} ENABLE ROW LEVEL SECURITY`,
    `ALTER TABLE ${target} FORCE ROW LEVEL SECURITY`,
    `DROP POLICY IF EXISTS ${name} ON ${target}`,
    `CREATE POLICY ${name} ON ${target} AS PERMISSIVE FOR ALL TO ${roles(options.to)} USING (${condition}) WITH CHECK (${condition})`,
  ]
}

/**
 * `ALTER TABLE ... FORCE ROW LEVEL SECURITY`: drizzle-kit emits `ENABLE` for a table with policies
 * but has no `FORCE`; add this to a custom migration when you define policies with
 * {@link tenantRlsPolicy}.
 *
 * @example
 * ```ts
 * forceRlsSql('notes') // 'ALTER TABLE "notes" FORCE ROW LEVEL SECURITY'
 * // in a drizzle-kit custom migration (drizzle-kit generate --custom), after the policy's migration
 * ```
 */
export function forceRlsSql(table: string | PgTable): string {
  return `ALTER TABLE ${qualifiedTable(table)} FORCE ROW LEVEL SECURITY`
}

/**
 * The tenant policy as a Drizzle `pgPolicy`, for the third argument of `pgTable`; drizzle-kit then
 * generates `ENABLE ROW LEVEL SECURITY` and `CREATE POLICY`. Add {@link forceRlsSql} in a custom
 * migration.
 *
 * @example
 * ```ts
 * export const notes = pgTable('notes', { id: text('id').primaryKey(), tenantId: text('tenant_id').notNull() }, () => [
 *   tenantRlsPolicy({ to: 'app' }),
 * ])
 * ```
 */
export function tenantRlsPolicy(options: TenantRlsOptions = {}): PgPolicy {
  const condition = sql.raw(tenantRlsCondition(options))
  const to =
    options.to === undefined ? 'public' : typeof options.to === 'string' ? options.to : [...options.to]
  for (const role of typeof to === 'string' ? [to] : to) if (role !== 'public') quoteIdent(role, 'role')
  return pgPolicy(options.name ?? 'tenant_isolation', {
    as: 'permissive',
    for: 'all',
    to: to as PgPolicyToOption,
    using: condition,
    withCheck: condition,
  })
}

/**
 * Runs {@link tenantRlsSql} for each table, in one transaction. Connect as the table owner (a
 * migration role), not as the application role.
 *
 * @example
 * ```ts
 * await enableTenantRls(adminDb, ['notes', 'comments'], { to: 'app' })
 * ```
 */
export async function enableTenantRls(
  db: PgDatabase<any, any, any>,
  tables: readonly (string | PgTable)[],
  options: TenantRlsOptions = {},
): Promise<void> {
  postgresDb(db, 'enableTenantRls')
  const statements = tables.flatMap((t) => tenantRlsSql(t, options))
  await (db as AnyDb).transaction(async (tx: AnyDb) => {
    for (const statement of statements) await tx.execute(sql.raw(statement))
  })
}

/** Options of {@link withTenantRls}. */
export interface WithTenantRlsOptions {
  /** @default 'app.tenant_id' */
  setting?: string
  /** Passed to Drizzle's `transaction()` (isolation level, access mode). */
  config?: Parameters<PgDatabase<any, any, any>['transaction']>[1]
}

/**
 * Runs `fn` in a transaction in which Postgres row-level security sees `tenantId`: first
 * `SELECT set_config('app.tenant_id', $1, true)` with the tenant as a bound parameter, then `fn`.
 * `true` makes the setting transaction-local, so the pooled connection carries no tenant
 * afterwards, whether `fn` commits or throws. Use it with a non-owner role without BYPASSRLS
 * and tables under {@link tenantRlsSql}; queries inside need no filter, though combining it with
 * {@link scoped} gives two barriers.
 *
 * @example
 * ```ts
 * const rows = await withTenantRls(db, 'acme', (tx) => tx.select().from(notes)) // only acme's rows
 * ```
 */
export async function withTenantRls<TDb extends PgDatabase<any, any, any>, R>(
  db: TDb,
  tenantId: string,
  fn: (tx: TransactionOf<TDb>) => Promise<R> | R,
  options: WithTenantRlsOptions = {},
): Promise<R> {
  postgresDb(db, 'withTenantRls')
  validateTenantId(tenantId)
  const setting = settingName(options.setting)
  // Drizzle writes these options into the statement that opens the transaction, and postgres.js
  // runs a text of several statements: checked as TenantDB.transaction checks them, or a value
  // could set the tenant for the whole pooled session.
  const config = transactionConfig(options.config, 'postgresql')
  const scope: TransactionScope = { tenantId, call: `withTenantRls(db, "${tenantId}")`, sessions: [] }
  // Inside another transaction this one is a savepoint, and releasing a savepoint keeps what
  // set_config(..., true) set in it: the enclosing transaction would go on with the tenant set.
  const nested = is(db, PgTransaction)
  const begin = (db as AnyDb).transaction
  // The enclosing transaction is this call's until it is over (see holdTransaction).
  const release = nested ? holdTransaction(db, scope.call) : undefined
  try {
    return await begin.call(
      db,
      async (tx: AnyDb) => {
        // One statement reads the setting and, only when no other tenant holds it, sets ours. A nested
        // call (a savepoint) for another tenant is refused: releasing the savepoint would leave that
        // tenant set for the rest of the outer tenant's transaction, and queries of the outer one
        // running meanwhile on the same connection would see the inner tenant's rows. The value before
        // is read in a subquery that `offset 0` keeps from being merged into the outer select, so it
        // is read before set_config runs.
        const [row] = await queryRows(
          tx,
          PG,
          sql`select case when coalesce(before.value, ${tenantId}) = ${tenantId}
          then set_config(${setting}, ${tenantId}, true) end as applied, before.value as previous
          from (select nullif(current_setting(${setting}, true), '') as value offset 0) before`,
        )
        if (row?.applied !== tenantId) {
          throw new UnsafeQueryError(
            `withTenantRls(db, "${tenantId}") inside a transaction (or session) that already carries another tenant in ${setting}: one transaction serves one tenant; run the other tenant's work in a transaction of its own`,
            { tenantId },
          )
        }
        // A savepoint on some drivers (PGlite, node-postgres) shares the session of the transaction
        // around it, which must keep working; only a session this transaction opened is ours to end.
        if (tx.session !== (db as AnyDb).session) scope.sessions.push(guardSession(tx.session, scope))
        const handle = endingWith(tx, scope)
        let result: R
        try {
          result = await fn(handle.tx)
        } finally {
          handle.end()
        }
        if (nested) {
          // The setting is still this tenant's, or fn's answer may hold another tenant's rows: a
          // savepoint of the enclosing transaction opened while a tenant was set and rolled back
          // while fn ran sets back the tenant it saw. And the tenant this call set is taken back
          // before the savepoint is released (a rollback to it, when fn threw, takes it back by itself).
          const previous = row.previous === null || row.previous === undefined ? '' : row.previous
          const [after] = await queryRows(
            tx,
            PG,
            sql`select now.value, set_config(${setting}, ${previous}, true)
            from (select nullif(current_setting(${setting}, true), '') as value offset 0) now`,
          )
          if (after?.value !== tenantId) {
            throw new UnsafeQueryError(
              `withTenantRls(db, "${tenantId}"): the tenant in ${setting} changed while fn ran (a savepoint of the enclosing transaction rolled back, or work ran on it alongside): its answer is withheld`,
              { tenantId },
            )
          }
        }
        return result
      },
      config,
    )
  } finally {
    release?.()
    // After the commit or rollback, which some drivers (node-postgres) send through the session.
    for (const session of scope.sessions) session.end()
  }
}

/**
 * Keeps the enclosing transaction `outer` for one nested call until `release()`: every method of
 * it (a query, a savepoint, another call's savepoint) throws `UnsafeQueryError` meanwhile, and a
 * second nested call is refused. Work on the enclosing transaction alongside the call runs on the
 * same connection while the call's tenant is set: a query there would see that tenant's rows, and
 * a savepoint opened then and rolled back later would set that tenant again, in the enclosing
 * transaction or under the next call for another tenant.
 */
function holdTransaction(outer: object, call: string): () => void {
  const held = heldTransactions.get(outer)
  if (held !== undefined) {
    throw new UnsafeQueryError(
      `${call} inside a transaction that ${held} is running on: nested calls on one transaction run one after another (await each)`,
    )
  }
  heldTransactions.set(outer, call)
  const own = new Map<string, PropertyDescriptor | undefined>()
  for (const name of methodNames(outer)) {
    own.set(name, Object.getOwnPropertyDescriptor(outer, name))
    Object.defineProperty(outer, name, {
      configurable: true,
      writable: true,
      value() {
        throw new UnsafeQueryError(
          `this transaction is in use by ${call} until it returns: run other work on it after (or inside fn, through its tx)`,
        )
      },
    })
  }
  return () => {
    for (const [name, descriptor] of own) {
      if (descriptor === undefined) delete (outer as Record<string, unknown>)[name]
      else Object.defineProperty(outer, name, descriptor)
    }
    heldTransactions.delete(outer)
  }
}

const heldTransactions = new WeakMap<object, string>()

/** Throws `tenant_invalid_config` (path `db`) unless `db` is a Drizzle PostgreSQL database or transaction. */
function postgresDb(db: unknown, where: string): void {
  // A TenantDB, or a TenantDB transaction, has no execute(): the statements here need it.
  if (detectDriver(db).dialect !== 'pg') {
    throw invalidOption('db', `${where} needs a Drizzle PostgreSQL database or transaction, not a SQLite one`)
  }
}

/** What {@link checkTenantRls} found. */
export interface TenantRlsReport {
  /** True when nothing below was found. */
  ok: boolean
  /** Each problem, in words. */
  problems: string[]
}

/**
 * Checks, from the application's own connection, that row-level security will actually apply:
 * - the role is not a superuser, has no BYPASSRLS, and is no member of a role that is or has
 *   (`SET ROLE` would turn RLS off); before PostgreSQL 16, it has no CREATEROLE either (it could
 *   grant itself a table owner's role);
 * - the role may not TRUNCATE a table (RLS does not restrict TRUNCATE);
 * - the tables are the named ones and the partitions and inheritance children under them that
 *   the role may use (queried by name, a child is filtered by its own policies);
 * - each table exists, has RLS enabled, and has it forced when this role owns the table or is a
 *   member of its owner role (Postgres treats both as the owner, whom RLS spares unless forced);
 * - each table has at least one policy, and every permissive policy that applies to this role
 *   reads a setting (`current_setting(...)`) in its `USING` and `WITH CHECK`: a permissive policy
 *   is OR-ed with the tenant policy, so one like `USING (true)` shows every tenant's rows.
 * Call it at start-up and refuse to serve when `ok` is false.
 *
 * @example
 * ```ts
 * const report = await checkTenantRls(db, ['notes'])
 * if (!report.ok) throw new Error(report.problems.join('; '))
 * ```
 */
export async function checkTenantRls(
  db: PgDatabase<any, any, any>,
  tables: readonly (string | PgTable)[],
): Promise<TenantRlsReport> {
  postgresDb(db, 'checkTenantRls')
  const problems: string[] = []
  const info = PG
  const [role] = await runQuery('RLS check', undefined, () =>
    queryRows(
      db,
      info,
      sql`select current_user as name, rolsuper, rolbypassrls,
            rolcreaterole and current_setting('server_version_num')::int < 160000 as grants_any
          from pg_roles where rolname = current_user`,
    ),
  )
  if (role?.rolsuper) problems.push(`role "${role.name}" is a superuser, which bypasses row-level security`)
  if (role?.rolbypassrls) problems.push(`role "${role?.name}" has BYPASSRLS`)
  // Before PostgreSQL 16, CREATEROLE may grant itself any role but a superuser: a table's owner,
  // as whom it can turn the table's RLS off.
  if (role?.grants_any && !role.rolsuper) {
    problems.push(
      `role "${role.name}" has CREATEROLE, which before PostgreSQL 16 lets it grant itself any table owner's role`,
    )
  }
  // A superuser is a member of every role: what follows would only repeat the problem above.
  const superuser = role?.rolsuper === true
  const bypassing = superuser
    ? []
    : await runQuery('RLS check', undefined, () =>
        queryRows(
          db,
          info,
          sql`select r.rolname as name from pg_roles r
            where (r.rolsuper or r.rolbypassrls) and r.rolname <> current_user
              and pg_has_role(current_user, r.oid, 'MEMBER')
            order by r.rolname`,
        ),
      )
  for (const other of bypassing) {
    problems.push(
      `role "${role?.name}" is a member of "${other.name}", which bypasses row-level security (SET ROLE turns it off)`,
    )
  }
  // Each named table, then the partitions and inheritance children under it that this role may use
  // (a privilege on the table or on some of its columns, in a schema it may use): a query that names
  // one of those directly is checked against its own policies, not its parent's.
  const checked: string[] = []
  for (const table of tables) {
    const named = qualifiedTable(table)
    const children = await runQuery('RLS check', undefined, () =>
      queryRows(
        db,
        info,
        sql`with recursive tree(oid) as (
              select i.inhrelid from pg_inherits i where i.inhparent = to_regclass(${named})
              union select i.inhrelid from pg_inherits i join tree t on i.inhparent = t.oid)
            select c.oid::regclass::text as name from tree join pg_class c on c.oid = tree.oid
            where has_schema_privilege(current_user, c.relnamespace, 'USAGE')
              and (has_table_privilege(current_user, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE')
                or has_any_column_privilege(current_user, c.oid, 'SELECT, INSERT, UPDATE'))
            order by 1`,
      ),
    )
    checked.push(named, ...children.map((child) => child.name as string))
  }
  for (const name of checked) {
    const [row] = await runQuery('RLS check', undefined, () =>
      queryRows(
        db,
        info,
        sql`select c.relrowsecurity as enabled, c.relforcerowsecurity as forced,
              pg_has_role(current_user, c.relowner, 'MEMBER') as owned,
              pg_get_userbyid(c.relowner) = current_user as own,
              pg_get_userbyid(c.relowner) as owner,
              has_table_privilege(current_user, c.oid, 'TRUNCATE') as truncates,
              (select count(*) from pg_policy p where p.polrelid = c.oid)::int as policies
            from pg_class c where c.oid = to_regclass(${name})`,
      ),
    )
    if (row === undefined) {
      problems.push(`table ${name} does not exist`)
      continue
    }
    // Row-level security does not apply to TRUNCATE: it empties the table for every tenant.
    if (row.truncates && !superuser) {
      problems.push(`role "${role?.name}" may TRUNCATE ${name}, which row-level security does not restrict`)
    }
    if (!row.enabled) problems.push(`table ${name} does not have row-level security enabled`)
    if (row.owned && !row.forced && (row.own || !superuser)) {
      problems.push(
        row.own
          ? `table ${name} is owned by this role and RLS is not forced`
          : `table ${name} is owned by "${row.owner}", a role this role is a member of, and RLS is not forced`,
      )
    }
    if (Number(row.policies) === 0) problems.push(`table ${name} has no policy (every row would be hidden)`)
    // Permissive policies for this role (or PUBLIC) are OR-ed together: each must read a setting.
    const open = await runQuery('RLS check', undefined, () =>
      queryRows(
        db,
        info,
        sql`select p.polname as name from pg_policy p
              where p.polrelid = to_regclass(${name}) and p.polpermissive
                and (0 = any(p.polroles) or exists (
                  select 1 from unnest(p.polroles) r where pg_has_role(current_user, r, 'MEMBER')))
                and ((p.polqual is not null
                      and pg_get_expr(p.polqual, p.polrelid) not like '%current_setting(%')
                  or (p.polwithcheck is not null
                      and pg_get_expr(p.polwithcheck, p.polrelid) not like '%current_setting(%'))
              order by p.polname`,
      ),
    )
    for (const policy of open) {
      problems.push(
        `table ${name} has the permissive policy "${policy.name}", which reads no tenant setting: it may show or accept other tenants' rows`,
      )
    }
  }
  return { ok: problems.length === 0, problems }
}
