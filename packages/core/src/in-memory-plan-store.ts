import { type Clock, systemClock } from './clock'
import type { ConfigManager } from './config'
import { PlanInUseError, PlanNotFoundError } from './errors'
import { type FastPlanStore, planConfigNow } from './fast-path'
import { copyJson, deepFreeze } from './json'
import { resolveListTenantsOptions } from './list-tenants'
import { type ListPlansOptions, type ListPlansResult, type PlanStore, validatePlanId } from './plans'
import { type PlanConfig, type PlanConfigInput, planConfigInputSchema } from './schemas'
import { SortedIdMap } from './sorted-id-map'
import { assertMethods, invalidOption, parseOrThrow } from './validate'

/** Options of {@link InMemoryPlanStore}. */
export interface InMemoryPlanStoreOptions {
  /**
   * The tenants that may reference these plans: `deletePlan` scans them and refuses a plan still
   * in use. Required, so that no plan can be deleted from under its tenants.
   */
  tenants: Pick<ConfigManager, 'listTenants'>
  /**
   * Stamps `createdAt` / `updatedAt`.
   * @default systemClock
   */
  clock?: Clock
}

// Pages of the in-use scan: large, since it reads an in-memory store.
const SCAN_PAGE = 1000

/**
 * A {@link PlanStore} that keeps plans in memory: for tests, single-process apps, and as the
 * reference every other store is compared to. Plans are copied on the way in and deeply frozen;
 * every read shares that object. Deleting a plan scans `tenants` for a tenant still on it (plans
 * are deleted rarely; a database store answers the same question with an index).
 *
 * @example
 * ```ts
 * const configs = new InMemoryConfigManager()
 * const plans = new InMemoryPlanStore({ tenants: configs })
 * await plans.setPlan({ id: 'pro', quota: { limits: [{ window: 'day', requests: 10_000 }] } })
 * await configs.setTenantConfig({ id: 'acme', plan: 'pro' })
 * const view = withPlans(configs, plans) // what the tenancy chain reads
 * ```
 */
export class InMemoryPlanStore implements PlanStore, FastPlanStore {
  readonly #clock: Clock
  readonly #tenants: Pick<ConfigManager, 'listTenants'>
  readonly #plans = new SortedIdMap<PlanConfig>()
  // Per plan id, the last hold or delete in flight (see holdPlan).
  readonly #holds = new Map<string, Promise<void>>()

  constructor(options: InMemoryPlanStoreOptions) {
    if (typeof options !== 'object' || options === null) {
      throw invalidOption('InMemoryPlanStore', 'options must be an object with `tenants`')
    }
    assertMethods(options.tenants, 'InMemoryPlanStore.tenants', ['listTenants'])
    if (options.clock !== undefined) assertMethods(options.clock, 'clock', ['now'])
    this.#tenants = options.tenants
    this.#clock = options.clock ?? systemClock
  }

  getPlan(planId: string): Promise<PlanConfig> {
    const plan = this.#plans.get(planId)
    return plan !== undefined ? Promise.resolve(plan) : this.#missing(planId)
  }

  /** `getPlan` as a value (see `planConfigNow` in core); throws for an unknown plan. */
  [planConfigNow](planId: string): PlanConfig {
    const plan = this.#plans.get(planId)
    if (plan !== undefined) return plan
    validatePlanId(planId)
    throw new PlanNotFoundError(planId)
  }

  async setPlan(input: PlanConfigInput): Promise<PlanConfig> {
    const parsed = copyJson(parseOrThrow(planConfigInputSchema, input))
    const now = Math.floor(this.#clock.now())
    const existing = this.#plans.get(parsed.id)
    const plan = deepFreeze<PlanConfig>({ ...parsed, createdAt: existing?.createdAt ?? now, updatedAt: now })
    this.#plans.set(parsed.id, plan)
    return plan
  }

  async deletePlan(planId: string): Promise<void> {
    validatePlanId(planId)
    // Held for the whole scan: a tenant put on the plan through holdPlan either is written before
    // the scan starts (and found) or waits for the delete (and finds the plan gone).
    return this.holdPlan(planId, async () => {
      if (this.#plans.get(planId) === undefined) throw new PlanNotFoundError(planId)
      if (await this.#inUse(planId)) throw new PlanInUseError(planId)
      this.#plans.delete(planId)
    })
  }

  /**
   * Runs `task` while `planId` cannot be deleted (see `PlanStore.holdPlan`): tasks on one plan,
   * and its deletes, run one at a time in this process. `AdminService` puts tenants on plans
   * inside it; a raw `setTenantConfig` does not, and can still name a plan being deleted.
   */
  holdPlan<T>(planId: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#holds.get(planId) ?? Promise.resolve()
    const result = previous.then(task)
    const tail = result.then(
      () => undefined,
      () => undefined,
    )
    this.#holds.set(planId, tail)
    // Only plans with work in flight keep an entry.
    void tail.then(() => {
      if (this.#holds.get(planId) === tail) this.#holds.delete(planId)
    })
    return result
  }

  async listPlans(options?: ListPlansOptions): Promise<ListPlansResult> {
    return this.#plans.page(resolveListTenantsOptions(options))
  }

  async #inUse(planId: string): Promise<boolean> {
    let page = await this.#tenants.listTenants({ limit: SCAN_PAGE })
    for (;;) {
      if (page.items.some((tenant) => tenant.plan === planId)) return true
      if (page.next === undefined) return false
      page = await this.#tenants.listTenants({ limit: SCAN_PAGE, after: page.next })
    }
  }

  async #missing(planId: string): Promise<never> {
    validatePlanId(planId)
    throw new PlanNotFoundError(planId)
  }
}
