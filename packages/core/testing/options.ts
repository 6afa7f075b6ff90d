import { InvalidTenantConfigError } from '@tenant/core'
import { expect } from 'vitest'

/**
 * Asserts that a constructor or factory refused a bad option the way every package of the toolkit
 * does: an `InvalidTenantConfigError` (`tenant_invalid_config`) with exactly one `invalid_option`
 * issue whose path is `[path]` and whose message matches `message`. Pass the function that should
 * throw, or what it threw or rejected with. Returns the error for further checks.
 *
 * @example
 * ```ts
 * expectInvalidOption(() => new MyQuotaStore({ prefix: 42 }), 'MyQuotaStore.prefix', /must be a string/)
 * expectInvalidOption(await store.usage('acme').catch((e) => e), 'MyQuotaStore.quotas', /needs/)
 * ```
 */
export function expectInvalidOption(
  thrower: (() => unknown) | unknown,
  path: string,
  message: RegExp,
): InvalidTenantConfigError {
  let error: unknown = thrower
  if (typeof thrower === 'function') {
    error = undefined
    try {
      thrower()
    } catch (thrown) {
      error = thrown
    }
  }
  expect(error, `${path}: expected InvalidTenantConfigError`).toBeInstanceOf(InvalidTenantConfigError)
  const { code, issues } = error as InvalidTenantConfigError
  expect(code).toBe('tenant_invalid_config')
  expect(issues, path).toEqual([
    { path: [path], message: expect.stringMatching(message), code: 'invalid_option' },
  ])
  return error as InvalidTenantConfigError
}
