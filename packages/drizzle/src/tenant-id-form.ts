import { type SqlDialect, UnsafeQueryError } from './raw-sql-ast'

// Internal: the one rule, for the scoped builders and for raw SQL alike, that a tenant id must be
// written so that the database cannot read another id as the same value. The database compares the
// tenant column with the id after converting the id to the column's type: SQLite's INTEGER affinity
// turns '01', '1.0' and '1e0' into 1, Postgres reads a parameter compared with an integer column as
// an integer and one compared with a uuid column as a uuid (upper case, no hyphens: the same uuid).
// Two ids that convert to one value would be one tenant.

/** How the database compares a tenant column with an id: as text (by bytes), as an integer, as a uuid. */
export type TenantIdForm = 'text' | 'integer' | 'uuid'

const CANONICAL_INTEGER = /^(0|[1-9][0-9]{0,15})$/
const CANONICAL_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

// Ids (1-255 of [A-Za-z0-9._-]) that a database could read as a number: SQLite's numeric text
// (`1`, `1.`, `.5`, `1e5`, `-1`), Postgres 16's integer input with `_` between digits (`1_000`) and
// with a base prefix (`0x1f`, `0o17`, `0b101`). A superset is fine: such an id is refused unless
// it is canonical, so the only cost of a wider net is refusing an odd id, never a leak.
const NUMBER_LIKE =
  /^-?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE]-?[0-9_]+)?$|^-?0(?:[xX][0-9A-Fa-f_]+|[oO][0-7_]+|[bB][01_]+)$/
// Ids Postgres could read as a uuid: 32 hex digits, with hyphens anywhere between them (Postgres
// takes one after any group of four, and refuses the rest, which costs nothing to refuse too).
const UUID_LIKE = /^[0-9A-Fa-f-]+$/

function uuidLike(id: string): boolean {
  return UUID_LIKE.test(id) && id.replaceAll('-', '').length === 32
}

/** True when `id` is the one spelling of its value for a tenant column of `form`. */
function canonical(id: string, form: TenantIdForm): boolean {
  switch (form) {
    case 'text':
      return true
    case 'integer':
      // Beyond 2^53 ids could round to the same JavaScript number (and, past 2^63, the same REAL in SQLite).
      return CANONICAL_INTEGER.test(id) && Number.isSafeInteger(Number(id))
    case 'uuid':
      return CANONICAL_UUID.test(id)
  }
}

/**
 * Throws `UnsafeQueryError` unless the database compares `tenantId` with the tenant column of
 * `table` exactly.
 *
 * - A known `form` (the scoped builders, and `TenantDB`'s raw SQL over its Drizzle tables): a text
 *   column takes any id; an integer column only canonical integers (`1`, never `01`, `1.0`, `1e0`
 *   or beyond 2^53); a Postgres uuid column only the lower-case hyphenated form.
 * - An unknown type (`addTenantFilter`/`validateQuery`, which get a column name only, and raw SQL
 *   over tables outside the Drizzle schema): the column may be text, integer or (Postgres) uuid, so
 *   the id must be canonical under each of them that could read it: an id that looks like a number
 *   must be a canonical integer, and on Postgres one that looks like a uuid must be lower-case and
 *   hyphenated. Every other id (`acme`, `ACME`, `1password`) is the only spelling of itself under
 *   every type, and passes.
 */
export function checkTenantIdForm(
  tenantId: string,
  form: TenantIdForm | { unknown: SqlDialect },
  table: string,
): void {
  if (typeof form === 'string') {
    if (canonical(tenantId, form)) return
    throw new UnsafeQueryError(
      `tenant "${tenantId}" is not in the canonical form of the ${form} tenant column of table "${table}": the database would read other ids as the same value`,
    )
  }
  const forms: TenantIdForm[] = []
  if (NUMBER_LIKE.test(tenantId)) forms.push('integer')
  if (form.unknown === 'postgresql' && uuidLike(tenantId)) forms.push('uuid')
  for (const f of forms) {
    if (canonical(tenantId, f)) continue
    throw new UnsafeQueryError(
      `tenant "${tenantId}" is not in the canonical form of ${f === 'integer' ? 'an' : 'a'} ${f} tenant column, and the type of the tenant column of table "${table}" is not known: the database could read other ids as the same value (use ${f === 'integer' ? 'ids without leading zeros, decimals or exponents' : 'the lower-case hyphenated uuid'}, or give TenantDB the table in drizzle({ schema }) or tenantTables)`,
    )
  }
}

const TEXT_COLUMNS = new Set(['SQLiteText', 'PgText', 'PgVarchar', 'PgChar'])
const INTEGER_COLUMNS = new Set([
  'SQLiteInteger',
  'PgInteger',
  'PgSmallInt',
  'PgBigInt53',
  'PgSerial',
  'PgSmallSerial',
  'PgBigSerial53',
])

/**
 * How the database compares a Drizzle tenant column with an id, or undefined for a column type no
 * rule makes exact (JSON text, numeric, floats, bigint as `bigint`, ...).
 */
export function tenantIdFormOf(column: { columnType: string; dataType: string }): TenantIdForm | undefined {
  const { columnType, dataType } = column
  if (dataType === 'string' && TEXT_COLUMNS.has(columnType)) return 'text'
  if (dataType === 'number' && INTEGER_COLUMNS.has(columnType)) return 'integer'
  if (columnType === 'PgUUID') return 'uuid'
  return undefined
}
