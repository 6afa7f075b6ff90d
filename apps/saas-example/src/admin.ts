import {
  AdminService,
  type AuditedPlanStore,
  type AuditedTenantStore,
  type AuditLog,
  type Clock,
  type ConcurrencyLimiter,
  type ConfigManager,
  type PlanStore,
  type QuotaManager,
  type RateLimiter,
} from '@tenant/core'
import type { TenantMetrics } from '@tenant/prometheus'
import type { ResourceStore } from './db/resource-store'

/**
 * What the app's admin service is built from. Every store is required (`concurrency` may be
 * `undefined`, but must be given), so a path that creates tenants cannot leave a reset out; only
 * `metrics`, which live in the serving process, is optional.
 */
export interface AdminDeps {
  configs: ConfigManager & AuditedTenantStore
  plans: PlanStore & AuditedPlanStore
  auditLog: AuditLog
  /** The quota store the chain charges: reset before a tenant is created. */
  quotas: QuotaManager
  /** The rate limiter the chain uses: its bucket is reset before a tenant is created. */
  rateLimiter: RateLimiter
  /** The concurrency limiter the chain uses, or `undefined` when there is none. */
  concurrency: ConcurrencyLimiter | undefined
  /** The tenant-scoped rows: purged before a tenant is created. */
  resources: Pick<ResourceStore, 'purge'>
  /**
   * The app's per-tenant metrics (`createApp` passes its own): a tenant created under the id of a
   * deleted one has the old customer's series removed and its label freed (`forget`), so its
   * counters start at zero. Optional because the counters live in the process serving `/metrics`:
   * `pnpm seed` runs in another process, and `--seed` runs before the server takes requests.
   * @default undefined
   */
  metrics?: Pick<TenantMetrics, 'forget'>
  /**
   * The stores' clock: the time of the records the service writes itself (usage and in-flight
   * resets), which must agree with the records the stores write.
   */
  clock: Clock
}

/**
 * The one construction of the app's `AdminService`, used by every path that creates tenants: the
 * admin plane (`createApp`), `--seed` (`Server.seed()`) and `pnpm seed`. A tenant created under the
 * id of a deleted one starts with none of its quota usage, in-flight slots, rate-limit burst or
 * resources (`freshStart`), whichever path creates it; on the admin plane, none of its metrics either.
 *
 * @example
 * ```ts
 * await seedDemoTenants(appAdminService({ configs, plans, auditLog, ...limits, resources, clock }))
 * ```
 */
export function appAdminService(deps: AdminDeps): AdminService {
  return new AdminService({
    store: deps.configs,
    plans: deps.plans,
    auditLog: deps.auditLog,
    quotas: deps.quotas,
    rateLimiter: deps.rateLimiter,
    clock: deps.clock,
    ...(deps.concurrency === undefined ? {} : { concurrency: deps.concurrency }),
    freshStart: async (tenantId) => {
      await deps.resources.purge(tenantId)
      deps.metrics?.forget(tenantId)
    },
  })
}
