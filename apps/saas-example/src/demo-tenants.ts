import { type AdminService, isTenantError, type TenantConfigInput } from '@tenant/core'

/**
 * The two demo tenants of `--seed` / `pnpm seed`: a free plan (small quotas, one cheap model) and
 * a pro plan (large quotas, every model).
 */
export const demoTenants: readonly TenantConfigInput[] = [
  {
    id: 'demo-free',
    quota: {
      limits: [
        { window: 'minute', requests: 20 },
        { window: 'day', requests: 1_000, tokens: 100_000 },
      ],
    },
    rateLimit: { requestsPerSecond: 2, burst: 5 },
    policy: { allowedModels: ['gpt-4o-mini'], allowedTools: [], allowedMethods: [], allowedPaths: [] },
    metadata: { plan: 'free', name: 'Demo Free Ltd' },
  },
  {
    id: 'demo-pro',
    quota: {
      limits: [
        { window: 'minute', requests: 600 },
        { window: 'month', requests: 1_000_000, tokens: 50_000_000 },
      ],
    },
    rateLimit: { requestsPerSecond: 50, burst: 100 },
    policy: { allowedModels: [], allowedTools: [], allowedMethods: [], allowedPaths: [] },
    metadata: { plan: 'pro', name: 'Demo Pro Inc' },
  },
]

/** What seeding did for one tenant. */
export interface SeedResult {
  id: string
  plan: string
  /** `created` now, or `exists` from an earlier seed (left as it is). */
  outcome: 'created' | 'exists'
}

/**
 * Creates the demo tenants that do not exist yet, through the admin service (so each creation is in
 * the audit log, by actor `seed`). Idempotent: an existing tenant is left untouched, even if it was
 * changed since.
 *
 * @example
 * ```ts
 * for (const r of await seedDemoTenants(admin)) console.log(r.id, r.outcome)
 * ```
 */
export async function seedDemoTenants(admin: AdminService): Promise<SeedResult[]> {
  const results: SeedResult[] = []
  for (const tenant of demoTenants) {
    const plan = String(tenant.metadata?.plan)
    try {
      await admin.create(tenant, { actor: 'seed' })
      results.push({ id: tenant.id, plan, outcome: 'created' })
    } catch (error) {
      if (!isTenantError(error) || error.code !== 'tenant_already_exists') throw error
      results.push({ id: tenant.id, plan, outcome: 'exists' })
    }
  }
  return results
}
