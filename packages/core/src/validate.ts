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
  if (missing.length > 0) {
    throw new InvalidTenantConfigError([
      { path: [name], message: `must have method(s) ${missing.join(', ')}`, code: 'invalid_type' },
    ])
  }
}
