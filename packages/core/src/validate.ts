import type { z } from 'zod'
import { InvalidTenantConfigError } from './errors'
import type { TenantConfig } from './schemas'
import { tenantConfigInputSchema, tenantConfigSchema } from './schemas'

/**
 * Parses `value` with `schema`, throwing {@link InvalidTenantConfigError} listing every issue.
 * The one place zod failures become our error type.
 */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const result = schema.safeParse(value)
  if (!result.success) throw new InvalidTenantConfigError(result.error.issues)
  return result.data
}

/** Validates caller input for a tenant and applies defaults. Throws {@link InvalidTenantConfigError}. */
export function parseTenantConfigInput(value: unknown): Omit<TenantConfig, 'createdAt' | 'updatedAt'> {
  return parseOrThrow(tenantConfigInputSchema, value)
}

/** Validates a complete stored config (for stores decoding rows). Throws {@link InvalidTenantConfigError}. */
export function parseTenantConfig(value: unknown): TenantConfig {
  return parseOrThrow(tenantConfigSchema, value)
}
