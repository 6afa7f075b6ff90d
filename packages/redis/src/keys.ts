import { validateTenantId } from '@tenant/core'
import { optionError } from './option-error'

// Letters, digits and `: . _ -`: never `{` or `}` (which would move the Cluster hash tag), never
// whitespace or glob characters. Tenant ids cannot contain `:`, so in `{prefix:tenant}` the
// tenant is whatever follows the last `:`: two (prefix, tenant) pairs never share a tag.
const PREFIX = /^[A-Za-z0-9:._-]{1,128}$/

/**
 * Validates a `prefix` option (1 to 128 characters of `[A-Za-z0-9:._-]`), or returns `fallback`.
 * Throws `InvalidTenantConfigError` at construction.
 */
export function validatePrefix(prefix: string | undefined, fallback: string): string {
  if (prefix === undefined) return fallback
  if (typeof prefix !== 'string' || !PREFIX.test(prefix)) {
    throw optionError(
      'prefix',
      `must be 1 to 128 characters of [A-Za-z0-9:._-], got ${JSON.stringify(prefix)}`,
    )
  }
  return prefix
}

/**
 * The Cluster hash tag of a tenant's keys, `{prefix:tenant}`: every key of one tenant under one
 * prefix lives in one slot, so a script may touch all of them atomically. Validates the id
 * (`InvalidTenantIdError`) because it becomes part of a key.
 */
export function tenantTag(prefix: string, tenantId: string): string {
  return `{${prefix}:${validateTenantId(tenantId)}}`
}
