import { auditTimestamp } from './audit'
import { type Clock, systemClock } from './clock'
import type { ConfigManager } from './config'
import { PlanInUseError, PlanNotFoundError, TenantBackendError } from './errors'
import { type FastPlanStore, planConfigNow, promiseOf } from './fast-path'
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

// What runs on one plan: shared holds, or one exclusive delete (then `holders` is 0).
interface PlanHold {
  holders: number
  deleting: boolean
}

function beingDeleted(planId: string): TenantBackendError {
  return new TenantBackendError(`plan "${planId}" is being deleted; retry once the delete has settled`)
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
  // Per plan id with work in flight: how many holds run, or that a delete runs (see holdPlan).
  // Nothing ever waits on an entry, so there is no queue: an entry lives while its calls run and
  // the map holds at most one per plan with a hold or a delete under way.
  readonly #holds = new Map<string, PlanHold>()

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
    // The whole-ms stamp of the other stores: a clock giving no valid time refuses the write.
    const now = auditTimestamp(this.#clock)
    const existing = this.#plans.get(parsed.id)
    const plan = deepFreeze<PlanConfig>({ ...parsed, createdAt: existing?.createdAt ?? now, updatedAt: now })
    this.#plans.set(parsed.id, plan)
    return plan
  }

  /**
   * Removes a plan. Throws `PlanNotFoundError` when absent and `PlanInUseError` (409) while a
   * tenant is on it, or while a {@link holdPlan} of it is in flight (a tenant being put on the
   * plan or moved off it; retry once it settles). Throws `TenantBackendError` (503) while another
   * delete of the plan is under way. It never waits for either.
   */
  async deletePlan(planId: string): Promise<void> {
    validatePlanId(planId)
    const current = this.#holds.get(planId)
    if (current?.deleting) throw beingDeleted(planId)
    // A hold in flight may be about to put a tenant on the plan, or may yet restore one onto it
    // (a failed audit append undone): either way the plan is in use until it settles. Refusing
    // rather than waiting means a hold that never settles cannot hang the delete.
    if (current !== undefined) {
      throw new PlanInUseError(planId, {
        cause: new Error(`a tenant change involving plan "${planId}" is in progress`),
      })
    }
    const entry: PlanHold = { holders: 0, deleting: true }
    this.#holds.set(planId, entry)
    // Exclusive for the whole scan: a tenant put on the plan through holdPlan either was written
    // before the delete began (and is found), or is refused until the delete ends.
    try {
      if (this.#plans.get(planId) === undefined) throw new PlanNotFoundError(planId)
      if (await this.#inUse(planId)) throw new PlanInUseError(planId)
      this.#plans.delete(planId)
    } finally {
      if (this.#holds.get(planId) === entry) this.#holds.delete(planId)
    }
  }

  /**
   * Runs `task` while `planId` cannot be deleted (see `PlanStore.holdPlan`). Holds are shared:
   * holds of one plan run side by side and never wait for each other, so one tenant write that
   * never settles delays no other. A delete is exclusive and nothing waits for it either: while
   * holds are in flight `deletePlan` fails at once with `PlanInUseError` (409), and while a delete
   * is under way `holdPlan` fails at once with `TenantBackendError` (503, retry), without running
   * `task`. The remaining limit: a task that never settles keeps its plan undeletable in this
   * process (each delete is refused at once, never hung). `AdminService` puts tenants on plans
   * (and moves or deletes them) inside it; a raw `setTenantConfig` does not, and can still name a
   * plan being deleted.
   */
  holdPlan<T>(planId: string, task: () => Promise<T>): Promise<T> {
    try {
      validatePlanId(planId)
      if (typeof task !== 'function') throw invalidOption('holdPlan.task', 'must be a function')
    } catch (error) {
      return Promise.reject(error)
    }
    const current = this.#holds.get(planId)
    if (current?.deleting) return Promise.reject(beingDeleted(planId))
    const entry = current ?? { holders: 0, deleting: false }
    entry.holders += 1
    if (current === undefined) this.#holds.set(planId, entry)
    const release = () => {
      entry.holders -= 1
      if (entry.holders === 0 && this.#holds.get(planId) === entry) this.#holds.delete(planId)
    }
    const result = promiseOf(task)
    // Released when the task settles, whichever way.
    result.then(release, release)
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
