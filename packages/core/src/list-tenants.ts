import { z } from 'zod'
import { DEFAULT_LIST_LIMIT, type ListTenantsOptions, MAX_LIST_LIMIT } from './config'
import { InvalidTenantConfigError } from './errors'
import { storableText } from './json'
import { MAX_TENANT_ID_LENGTH } from './tenant-id'

/** {@link ListTenantsOptions} after validation, with defaults applied. */
export type ResolvedListTenantsOptions =
  | { mode: 'offset'; limit: number; offset: number }
  | { mode: 'keyset'; limit: number; after: string }

/** Schema of a page size: a whole number from 1 to {@link MAX_LIST_LIMIT}, optional. For every paged list. */
export const listLimitSchema = z
  .number()
  .int('must be a whole number')
  .min(1, 'must be >= 1')
  .max(MAX_LIST_LIMIT, `must be <= ${MAX_LIST_LIMIT}`)
  .optional()

const listOptionsSchema = z.strictObject({
  limit: listLimitSchema,
  offset: z
    .number()
    .int('must be a whole number')
    .min(0, 'must be >= 0')
    .max(Number.MAX_SAFE_INTEGER)
    .optional(),
  // Any string a previous page could have returned as `next`. Not required to be an existing id
  // (it may have been deleted since); an id-shaped prefix such as "acme-" is a valid cursor too.
  // Text a store cannot compare (U+0000, unpaired surrogates) is refused here, for every store
  // alike: Postgres would fail the query (a 503) where SQLite answers a page.
  after: z
    .string()
    .min(1, 'must not be empty')
    .max(MAX_TENANT_ID_LENGTH)
    .superRefine(storableText)
    .optional(),
})

/**
 * Validates `listTenants` options once, for every store: `limit` a whole number from 1 to
 * 1000 (default 50), `offset` a whole number >= 0, `after` a non-empty string that every store
 * can compare (no U+0000, no unpaired surrogate: `storableTextProblem`), and never both
 * `offset` and `after`. Throws `InvalidTenantConfigError` listing every problem.
 *
 * @example
 * ```ts
 * resolveListTenantsOptions({ after: 'acme', limit: 10 }) // { mode: 'keyset', limit: 10, after: 'acme' }
 * resolveListTenantsOptions({ offset: -1 })               // throws InvalidTenantConfigError
 * ```
 */
export function resolveListTenantsOptions(options: ListTenantsOptions = {}): ResolvedListTenantsOptions {
  const result = listOptionsSchema.safeParse(options)
  if (!result.success) throw new InvalidTenantConfigError(result.error.issues)
  const { limit = DEFAULT_LIST_LIMIT, offset, after } = result.data
  if (offset !== undefined && after !== undefined) {
    throw new InvalidTenantConfigError([
      { path: ['after'], message: 'use either offset or after, not both', code: 'custom' },
    ])
  }
  return after === undefined
    ? { mode: 'offset', limit, offset: offset ?? 0 }
    : { mode: 'keyset', limit, after }
}

/**
 * The order of `listTenants`: UTF-16 code-unit order, which for valid ids (ASCII only) is byte
 * order, so `'A' < 'Z' < '_' < 'a'` and `'-' < '.' < '0'`. SQL stores must compare with a binary
 * collation (`COLLATE "C"` on Postgres) to agree.
 *
 * @example
 * ```ts
 * ['b', 'a-1', 'A', '_x'].sort(compareTenantIds) // ['A', '_x', 'a-1', 'b']
 * ```
 */
export function compareTenantIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
