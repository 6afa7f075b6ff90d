import type { TenantConfig } from '@tenant/core'

/** The variables the tenancy middleware sets on the Hono context. */
export interface TenantVariables {
  /** The resolved tenant id. */
  tenantId: string
  /**
   * The tenant's stored config, when the resolver checked the tenant against a `configManager`
   * (and the store answered); otherwise `undefined`.
   */
  tenant: TenantConfig | undefined
}

/**
 * The Hono environment of an app behind the tenancy middleware: types `c.var.tenantId` and
 * `c.var.tenant`.
 *
 * @example
 * ```ts
 * const app = new Hono<TenantEnv>()
 * app.use('/api/*', tenancy({ configManager }))
 * app.get('/api/me', (c) => c.json({ tenant: c.var.tenantId }))
 * ```
 */
export interface TenantEnv {
  Variables: TenantVariables
}

/**
 * The environment behind a resolver with `allowMissing: true`: `c.var.tenantId` may be
 * `undefined`.
 */
export interface OptionalTenantEnv {
  Variables: { tenantId: string | undefined; tenant: TenantConfig | undefined }
}
