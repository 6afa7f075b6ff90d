import type { ConfigManager, ListTenantsOptions, ListTenantsResult } from './config'
import { isTenantError, TenantBackendError } from './errors'
import {
  type FastConfigStore,
  promiseOf,
  readPlanConfig,
  readTenantConfig,
  tenantConfigNow,
} from './fast-path'
import { markPlanView } from './plan-views'
import { effectiveTenantConfig, type PlanStore } from './plans'
import type {
  ConcurrencyConfig,
  PlanConfig,
  PolicyConfig,
  QuotaConfig,
  RateLimitConfig,
  TenantConfig,
  TenantConfigInput,
} from './schemas'
import { assertMethods } from './validate'

/**
 * The read side of plans: a {@link ConfigManager} (and quota, policy and rate-limit provider) whose
 * reads are effective configs, the tenant's own config over its plan's (see
 * {@link effectiveTenantConfig}). Give it to the tenancy chain, the quota managers, the rate
 * limiter and the policy evaluator in place of the tenant store. Writes pass through to `configs`
 * unchanged and return what it stored (the tenant's own config).
 *
 * A read is the tenant lookup, then, for a tenant on a plan, the plan lookup and a WeakMap hit:
 * both stores hand out frozen objects, so the combination is computed once per pair. A plan change
 * therefore applies to every tenant of it at their next read, without rewriting them: at once with
 * the in-memory store, after the plan cache's `ttl` (or at once, in the process that made the
 * change) with `DrizzlePlanStore`. A tenant with `plan: null` reads exactly as from `configs`.
 *
 * A tenant whose plan does not exist (deleted behind the stores' back) fails closed: its reads
 * throw `TenantBackendError` (503 `tenant_backend_unavailable`), never an unlimited config. Stores
 * with an `invalidate(id)` (the caching Drizzle stores) are read once more past their caches
 * first, so that a tenant another process moved to a new plan (and whose old plan it deleted) is
 * not refused for the two caches' different ages.
 *
 * @example
 * ```ts
 * const configs = new InMemoryConfigManager()
 * const plans = new InMemoryPlanStore({ tenants: configs })
 * const view = withPlans(configs, plans)
 * const quotas = new InMemoryQuotaManager(view)
 * app.use(tenancy({ configManager: view, quota: quotas, policy: new ConfigPolicyEvaluator(view) }))
 * ```
 */
export function withPlans(
  configs: ConfigManager & Partial<CachedStore>,
  plans: Pick<PlanStore, 'getPlan'> & Partial<CachedStore>,
): ConfigManager & FastConfigStore {
  assertMethods(configs, 'withPlans.configs', [
    'getTenantConfig',
    'setTenantConfig',
    'deleteTenantConfig',
    'listTenants',
  ])
  assertMethods(plans, 'withPlans.plans', ['getPlan'])

  // The effective config of a stored tenant: a value when both stores answer without I/O (the
  // in-memory stores, fresh cache hits), so the chain's fast path stays free of promises.
  // `fresh`: the tenant was read past the caches, after its plan was not found in them.
  const applyPlan = (tenant: TenantConfig, fresh = false): TenantConfig | Promise<TenantConfig> => {
    const planId = tenant.plan
    if (planId === null) return tenant
    let plan: PlanConfig | Promise<PlanConfig>
    try {
      plan = readPlanConfig(plans, planId)
    } catch (error) {
      return planMissing(tenant, planId, error, fresh)
    }
    if (!(plan instanceof Promise)) return effectiveTenantConfig(tenant, plan)
    return plan.then(
      (p) => effectiveTenantConfig(tenant, p),
      (error: unknown) => planMissing(tenant, planId, error, fresh),
    )
  }
  const planMissing = (
    tenant: TenantConfig,
    planId: string,
    error: unknown,
    fresh: boolean,
  ): Promise<TenantConfig> => {
    if (fresh || !isPlanNotFound(error) || !cached) throw missingPlan(tenant, planId, error)
    return readAgain(tenant.id, planId)
  }
  // Caching stores (DrizzleConfigManager, DrizzlePlanStore) keep their entries for their own ttl
  // each: a tenant read from one while another process moved it to a new plan and deleted the old
  // one, or a plan cached as missing before another process created it and put the tenant on it,
  // would refuse a tenant whose stored config is valid. So a missing plan is read once more, the
  // tenant and the plan past the caches, before the tenant is refused.
  const cached = typeof configs.invalidate === 'function' || typeof plans.invalidate === 'function'
  const readAgain = (tenantId: string, planId: string): Promise<TenantConfig> => {
    configs.invalidate?.(tenantId)
    plans.invalidate?.(planId)
    return promiseOf(() => {
      const tenant = readTenantConfig(configs, tenantId)
      return tenant instanceof Promise ? tenant.then((t) => applyPlan(t, true)) : applyPlan(tenant, true)
    })
  }
  const now = (tenantId: string): TenantConfig | Promise<TenantConfig> => {
    const tenant = readTenantConfig(configs, tenantId)
    return tenant instanceof Promise ? tenant.then((t) => applyPlan(t)) : applyPlan(tenant)
  }
  const getTenantConfig = (tenantId: string): Promise<TenantConfig> => promiseOf(() => now(tenantId))

  const view: ConfigManager & FastConfigStore = {
    [tenantConfigNow]: now,
    getTenantConfig,
    setTenantConfig: (input: TenantConfigInput) => configs.setTenantConfig(input),
    deleteTenantConfig: (tenantId: string) => configs.deleteTenantConfig(tenantId),
    async listTenants(options?: ListTenantsOptions): Promise<ListTenantsResult> {
      const page = await configs.listTenants(options)
      // One lookup per plan on the page, not per tenant.
      const byPlan = new Map<string, Promise<PlanConfig>>()
      const items = await Promise.all(
        page.items.map(async (tenant) => {
          const planId = tenant.plan
          if (planId === null) return tenant
          let plan = byPlan.get(planId)
          if (plan === undefined) {
            plan = plans.getPlan(planId)
            byPlan.set(planId, plan)
          }
          try {
            return effectiveTenantConfig(tenant, await plan)
          } catch (error) {
            throw missingPlan(tenant, planId, error)
          }
        }),
      )
      return page.next === undefined ? { items } : { items, next: page.next }
    },
    quotaConfig: (tenantId: string): Promise<QuotaConfig> =>
      getTenantConfig(tenantId).then((config) => config.quota),
    policyConfig: (tenantId: string): Promise<PolicyConfig> =>
      getTenantConfig(tenantId).then((config) => config.policy),
    rateLimitConfig: (tenantId: string): Promise<RateLimitConfig | null> =>
      getTenantConfig(tenantId).then((config) => config.rateLimit),
    concurrencyConfig: (tenantId: string): Promise<ConcurrencyConfig | null> =>
      getTenantConfig(tenantId).then((config) => config.concurrency),
  }
  markPlanView(view)
  return view
}

/** A store that caches what it reads and can drop an entry (`DrizzleConfigManager`, `DrizzlePlanStore`). */
interface CachedStore {
  invalidate(id?: string): void
}

function isPlanNotFound(error: unknown): boolean {
  return isTenantError(error) && error.code === 'plan_not_found'
}

// An unknown plan behind a stored tenant is a broken store, not a tenant without limits: answered
// like a failing backend (503), so the request is refused rather than let through unlimited.
function missingPlan(tenant: TenantConfig, planId: string, error: unknown): unknown {
  if (!isPlanNotFound(error)) return error
  return new TenantBackendError(
    `tenant "${tenant.id}" is on plan "${planId}", which does not exist; its requests are refused until the plan is restored or the tenant moved`,
    { tenantId: tenant.id, cause: error },
  )
}
