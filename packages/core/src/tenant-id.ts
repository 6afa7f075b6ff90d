import { InvalidTenantIdError } from './errors'

/** Longest tenant id accepted. */
export const MAX_TENANT_ID_LENGTH = 255

// `.` and `..` are dot segments: URL parsers remove them from a path (`/admin/tenants/..` is
// `/admin/`), so such a tenant could never be named in a path (admin routes, fromPathPrefix).
const TENANT_ID = /^(?!\.\.?$)[A-Za-z0-9._-]{1,255}$/

/**
 * True when `id` is 1 to 255 characters of `[A-Za-z0-9._-]`, other than `.` and `..`.
 *
 * @example
 * ```ts
 * isValidTenantId('acme-eu') // true
 * isValidTenantId('acme/eu') // false
 * ```
 */
export function isValidTenantId(id: unknown): id is string {
  return typeof id === 'string' && TENANT_ID.test(id)
}

/**
 * Returns `id` unchanged when valid, otherwise throws {@link InvalidTenantIdError} saying why.
 *
 * @example
 * ```ts
 * validateTenantId('acme-prod') // 'acme-prod'
 * validateTenantId('acme/prod') // throws InvalidTenantIdError
 * ```
 */
export function validateTenantId(id: unknown): string {
  if (typeof id !== 'string') throw new InvalidTenantIdError(`expected a string, got ${typeof id}`)
  if (id.length === 0) throw new InvalidTenantIdError('empty')
  if (id.length > MAX_TENANT_ID_LENGTH) {
    throw new InvalidTenantIdError(`${id.length} characters, at most ${MAX_TENANT_ID_LENGTH} allowed`)
  }
  if (!TENANT_ID.test(id)) {
    throw new InvalidTenantIdError(
      id === '.' || id === '..'
        ? `"${id}" is a dot segment, which URLs remove from a path`
        : 'only letters A-Z a-z, digits, ".", "_" and "-" are allowed',
    )
  }
  return id
}
