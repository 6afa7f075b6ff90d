// Asserting typed errors in the isolation tests.
import { isTenantError } from '@tenant/core'
import { expect } from 'vitest'

/**
 * Awaits `promise` (or calls it, when it is a function: the scoped builders throw while a query is
 * built) and asserts that it fails with a `TenantError` of `code`; answers that error.
 */
export async function rejects(promise: unknown, code: string): Promise<Error> {
  try {
    await (typeof promise === 'function' ? (promise as () => unknown)() : promise)
  } catch (error) {
    expect(isTenantError(error), String(error)).toBe(true)
    expect((error as { code: string }).code).toBe(code)
    return error as Error
  }
  throw new Error(`expected a ${code} error`)
}
