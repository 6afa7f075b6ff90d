import type { z } from 'zod'
import { InvalidTenantConfigError } from './errors'
import type { TenantConfig } from './schemas'
import { tenantConfigInputSchema, tenantConfigSchema } from './schemas'

/**
 * Parses `value` with `schema`, throwing {@link InvalidTenantConfigError} listing every issue.
 * The one place zod failures become our error type.
 *
 * @example
 * ```ts
 * const rateLimit = parseOrThrow(rateLimitConfigSchema, { requestsPerSecond: 5, burst: 10 })
 * parseOrThrow(quotaLimitSchema, { window: 'week' }) // throws InvalidTenantConfigError, issues[0].path: ['window']
 * ```
 */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const result = schema.safeParse(value)
  if (!result.success) throw new InvalidTenantConfigError(result.error.issues)
  return result.data
}

/**
 * Validates caller input for a tenant and applies defaults. Throws {@link InvalidTenantConfigError}.
 *
 * @example
 * ```ts
 * parseTenantConfigInput({ id: 'acme' })
 * // { id: 'acme', status: 'active', quota: { limits: [] }, rateLimit: null,
 * //   policy: { allowedModels: [], allowedTools: [], allowedMethods: [], allowedPaths: [] }, metadata: {} }
 * ```
 */
export function parseTenantConfigInput(value: unknown): Omit<TenantConfig, 'createdAt' | 'updatedAt'> {
  return parseOrThrow(tenantConfigInputSchema, value)
}

/**
 * Validates a complete stored config (for stores decoding rows). Throws {@link InvalidTenantConfigError}.
 *
 * @example
 * ```ts
 * const config = parseTenantConfig(JSON.parse(row.config)) // a complete TenantConfig, or InvalidTenantConfigError
 * ```
 */
export function parseTenantConfig(value: unknown): TenantConfig {
  return parseOrThrow(tenantConfigSchema, value)
}

/**
 * The error of a bad option or call argument, built where it is detected: an
 * {@link InvalidTenantConfigError} (`tenant_invalid_config`) with one issue, code `'invalid_option'`,
 * whose path is `[where]`. Every package reports bad wiring with it, so a caller handles one typed
 * error (`isTenantError`) instead of a mix of `TypeError`s and `RangeError`s. Name the option in
 * `where` (`'Owner.option'`) and say what it must be in `message`.
 *
 * @example
 * ```ts
 * if (typeof options.onError !== 'function') throw invalidOption('tenantQuota.onError', 'must be a function')
 * // InvalidTenantConfigError: invalid tenant config: tenantQuota.onError: must be a function
 * // issues: [{ path: ['tenantQuota.onError'], message: 'must be a function', code: 'invalid_option' }]
 * ```
 */
export function invalidOption(where: string, message: string): InvalidTenantConfigError {
  return new InvalidTenantConfigError([{ path: [where], message, code: 'invalid_option' }])
}

/**
 * Checks, when a factory or constructor is called, that `value` has each of `methods`, so that
 * passing the wrong object fails at wiring time with `InvalidTenantConfigError` instead of with a
 * `TypeError` on the first request.
 *
 * @example
 * ```ts
 * assertMethods(provider, 'provider', ['policyConfig'])
 * ```
 */
export function assertMethods(value: unknown, name: string, methods: readonly string[]): void {
  const missing = methods.filter(
    (m) => typeof (value as Record<string, unknown> | null | undefined)?.[m] !== 'function',
  )
  if (missing.length > 0) throw invalidOption(name, `must have method(s) ${missing.join(', ')}`)
}
