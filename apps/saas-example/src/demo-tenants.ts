import { type AdminService, isTenantError, type PlanConfigInput, type TenantConfigInput } from '@tenant/core'

/**
 * The two demo plans of `--seed` / `pnpm seed`: free (small quotas, one cheap model, 4 requests in
 * flight) and pro (large quotas, every model, 50 in flight). A tenant on a plan inherits its limits; changing a plan changes them for
 * every tenant on it.
 */
export const demoPlans: readonly PlanConfigInput[] = [
  {
    id: 'free',
    quota: {
      limits: [
        { window: 'minute', requests: 20 },
        { window: 'day', requests: 1_000, tokens: 100_000 },
      ],
      // Per model (a chat completion's body `model`, otherwise the X-Model header, as the quota
      // subject `model:<name>`).
      subjects: [{ match: 'model:*', limits: [{ window: 'minute', requests: 10 }] }],
    },
    rateLimit: { requestsPerSecond: 2, burst: 5 },
    concurrency: { maxInFlight: 4 },
    policy: { allowedModels: ['gpt-4o-mini'], allowedTools: [], allowedMethods: [], allowedPaths: [] },
    metadata: { name: 'Free' },
  },
  {
    id: 'pro',
    quota: {
      limits: [
        { window: 'minute', requests: 600 },
        { window: 'month', requests: 1_000_000, tokens: 50_000_000 },
      ],
      // Per model: every model 300 requests a minute, the large one 60, out of the tenant's 600.
      subjects: [
        { match: 'model:*', limits: [{ window: 'minute', requests: 300 }] },
        { match: 'model:gpt-4o', limits: [{ window: 'minute', requests: 60, tokens: 2_000_000 }] },
      ],
    },
    rateLimit: { requestsPerSecond: 50, burst: 100 },
    concurrency: { maxInFlight: 50 },
    metadata: { name: 'Pro' },
  },
]

/** The two demo tenants, one on each plan, with nothing of their own but a name. */
export const demoTenants: readonly TenantConfigInput[] = [
  { id: 'demo-free', plan: 'free', metadata: { name: 'Demo Free Ltd' } },
  { id: 'demo-pro', plan: 'pro', metadata: { name: 'Demo Pro Inc' } },
]

/** What seeding did for one tenant. */
export interface SeedResult {
  id: string
  plan: string
  /** `created` now, or `exists` from an earlier seed (left as it is). */
  outcome: 'created' | 'exists'
}

/**
 * Creates the demo plans and tenants that do not exist yet, through the admin service (so each
 * creation is in the audit log, by actor `seed`), plans first. Idempotent: an existing plan or
 * tenant is left untouched, even if it was changed since.
 *
 * @example
 * ```ts
 * for (const r of await seedDemoTenants(admin)) console.log(r.id, r.outcome)
 * ```
 */
export async function seedDemoTenants(admin: AdminService): Promise<SeedResult[]> {
  for (const plan of demoPlans) {
    try {
      await admin.createPlan(plan, { actor: 'seed' })
    } catch (error) {
      if (!isTenantError(error) || error.code !== 'plan_already_exists') throw error
    }
  }
  const results: SeedResult[] = []
  for (const tenant of demoTenants) {
    const plan = String(tenant.plan)
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
