import {
  type AuditedPlanStore,
  assertMethods,
  type Clock,
  type FastPlanStore,
  type ListPlansOptions,
  type ListPlansResult,
  type PlanAuditRecord,
  type PlanChange,
  type PlanChangeResult,
  type PlanConfig,
  type PlanConfigInput,
  PlanInUseError,
  PlanNotFoundError,
  type PlanStore,
  parseOrThrow,
  planConfigInputSchema,
  planConfigNow,
  systemClock,
  validatePlanId,
} from '@tenant/core'
import { eq } from 'drizzle-orm'
import { isForeignKeyViolation, noTenantOn, RowStore } from './audited-rows'
import type { ConfigCacheOptions, ConfigCacheStats } from './config-cache'
import { type AnyDb, type Dialect, detectDriver, type TenantDatabase } from './driver'
import { tablesFor } from './tables'
import { decodePlan, encodePlan, normalizePlan } from './tenant-row'

/** Options of {@link DrizzlePlanStore}. */
export interface DrizzlePlanStoreOptions {
  /**
   * The in-process LRU cache of plans (see {@link ConfigCacheOptions}), or `false` for none. A plan
   * changed through this store reaches its tenants at once in this process; changed by another
   * process, after at most `ttl` (or at once after {@link DrizzlePlanStore.invalidate}).
   * @default {} (on, with the defaults of each option)
   */
  cache?: ConfigCacheOptions | false
  /**
   * Stamps `createdAt` / `updatedAt` and audit records, and ages cache entries.
   * @default systemClock
   */
  clock?: Clock
}

/**
 * A {@link PlanStore} on the app's Drizzle database, in the `plans` table next to `tenants`
 * (created by {@link migrate}), with the same cache, the same drivers and the same atomic audited
 * changes as {@link DrizzleConfigManager}: {@link DrizzlePlanStore.applyPlanChange} writes a plan
 * change and its `plan_audit_log` row together (read them with `DrizzleAuditLog.listPlan`).
 *
 * A plan that tenants are on cannot be deleted (`PlanInUseError`): the store looks for a tenant
 * on it through the `tenants.plan` index, the delete itself is guarded by the same condition, and
 * the foreign key `tenants.plan -> plans.id` refuses it too where the database enforces it.
 *
 * @example
 * ```ts
 * const configs = new DrizzleConfigManager(db)
 * const plans = new DrizzlePlanStore(db)
 * await plans.setPlan({ id: 'pro', quota: { limits: [{ window: 'day', requests: 10_000 }] } })
 * await configs.setTenantConfig({ id: 'acme', plan: 'pro' })
 * const view = withPlans(configs, plans) // what the tenancy chain reads
 * const admin = new AdminService({ store: configs, plans, auditLog: new DrizzleAuditLog(db) })
 * ```
 */
export class DrizzlePlanStore implements PlanStore, AuditedPlanStore, FastPlanStore {
  /** The dialect detected from the database. */
  readonly dialect: Dialect
  readonly #rows: RowStore<PlanConfig, PlanChange>

  constructor(db: TenantDatabase, options: DrizzlePlanStoreOptions = {}) {
    const info = detectDriver(db)
    this.dialect = info.dialect
    const { plans, planAuditLog, tenants } = tablesFor(info.dialect)
    if (options.clock !== undefined) assertMethods(options.clock, 'clock', ['now'])
    const dialect = info.dialect
    this.#rows = new RowStore<PlanConfig, PlanChange>(
      db,
      info,
      {
        kind: 'plan',
        what: 'plan store query',
        table: plans,
        auditTable: planAuditLog,
        validateId: validatePlanId,
        parse: (input) => parseOrThrow(planConfigInputSchema, input),
        encode: (plan) => encodePlan(dialect, plan),
        decode: (row) => decodePlan(dialect, row),
        normalize: (plan) => normalizePlan(dialect, plan),
        notFound: (id) => new PlanNotFoundError(id),
        changeId: (change) => change.planId,
        record: (planId, fields) => ({ planId, ...fields }) as PlanAuditRecord,
        tenantIdOf: () => undefined,
        // The foreign key refused a delete: a tenant was put on the plan at the same moment.
        constraintError: (error, id) => (isForeignKeyViolation(error) ? new PlanInUseError(id) : undefined),
        inUse: {
          query: (q: AnyDb, id) =>
            q.select({ id: tenants.id }).from(tenants).where(eq(tenants.plan, id)).limit(1),
          guard: (q: AnyDb, id) => noTenantOn(q, tenants, id),
          error: (id) => new PlanInUseError(id),
        },
      },
      { cache: options.cache, clock: options.clock ?? systemClock },
    )
  }

  /** Cache counters since construction (a copy), or undefined when the cache is off. */
  get cacheStats(): ConfigCacheStats | undefined {
    return this.#rows.cacheStats
  }

  /**
   * Drops the cached answer for one plan, or every cached answer. Writes through this store do this
   * themselves; call it when you learn that another process changed a plan, so that its tenants
   * do not wait for `ttl`.
   */
  invalidate(planId?: string): void {
    this.#rows.invalidate(planId)
  }

  getPlan(planId: string): Promise<PlanConfig> {
    return this.#rows.get(planId)
  }

  /** `getPlan` as a value on a fresh cache hit, a promise otherwise (see `planConfigNow` in core). */
  [planConfigNow](planId: string): PlanConfig | Promise<PlanConfig> {
    return this.#rows.getNow(planId)
  }

  /** Creates or replaces a plan with one `INSERT ... ON CONFLICT DO UPDATE`; keeps `createdAt`. */
  async setPlan(input: PlanConfigInput): Promise<PlanConfig> {
    return this.#rows.set(input)
  }

  /** Deletes a plan no tenant is on: one guarded `DELETE`. */
  async deletePlan(planId: string): Promise<void> {
    return this.#rows.delete(planId)
  }

  /** One page in id order (byte order on every dialect). Not cached. */
  async listPlans(options?: ListPlansOptions): Promise<ListPlansResult> {
    return this.#rows.list(options)
  }

  /**
   * Applies an admin change to a plan and writes its audit record atomically, as
   * `DrizzleConfigManager.applyChange` does for tenants (one transaction, or one `db.batch` with
   * a revision check on libSQL and D1; `apply` may run more than once). A delete is refused with
   * `PlanInUseError` while a tenant is on the plan, and writes nothing.
   */
  async applyPlanChange(change: PlanChange): Promise<PlanChangeResult> {
    return (await this.#rows.applyChange(change)) as PlanChangeResult
  }
}
