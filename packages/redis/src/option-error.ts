import { InvalidTenantConfigError } from '@tenant/core'

/**
 * A store option that cannot work, reported at construction the way core reports bad wiring:
 * `InvalidTenantConfigError` (`tenant_invalid_config`) naming the option.
 */
export function optionError(path: string, message: string): InvalidTenantConfigError {
  return new InvalidTenantConfigError([{ path: path.split('.'), message, code: 'custom' }])
}

/**
 * A whole-number option of at least `min`, or `fallback` when it is unset. Anything else throws
 * {@link optionError} naming it, at construction.
 */
export function wholeNumberOption(
  path: string,
  value: number | undefined,
  fallback: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`
    throw optionError(path, `must be a whole number ${range}, got ${String(value)}`)
  }
  return value
}
