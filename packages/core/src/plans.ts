import type { ListTenantsOptions } from './config'
import { InvalidTenantConfigError, isTenantError } from './errors'
import { copyJson, deepFreeze, isDeeplyFrozen } from './json'
import {
  type PlanConfig,
  type PlanConfigInput,
  type PolicyConfig,
  type QuotaConfig,
  type QuotaLimit,
  quotaWindows,
  type TenantConfig,
} from './schemas'
import { isValidTenantId, MAX_TENANT_ID_LENGTH } from './tenant-id'

/** Options of {@link PlanStore.listPlans}: the same offset or keyset pagination as tenants. */
export type ListPlansOptions = ListTenantsOptions

/** One page of plans, ordered by id ascending (binary string order). */
export interface ListPlansResult {
  items: PlanConfig[]
  /** Pass as `after` to get the next page; absent on the last page. */
  next?: string
}

/**
 * Where plans live. Every store (`InMemoryPlanStore`, `DrizzlePlanStore`) implements this and
 * passes `testPlanStore` from `@tenant/core/testing`. Like tenant configs, every plan a store
 * returns is deeply frozen and may be shared by every caller.
 */
export interface PlanStore {
  /** The stored plan. Throws `PlanNotFoundError` when absent, `InvalidTenantConfigError` (path `planId`) for a bad id. */
  getPlan(planId: string): Promise<PlanConfig>
  /**
   * Creates or replaces a plan (upsert). Validates with `planConfigInputSchema`; on bad input
   * throws `InvalidTenantConfigError` and stores nothing. Keeps `createdAt` on replace. The
   * plan's tenants see the change at their next read: nothing is written to them.
   */
  setPlan(input: PlanConfigInput): Promise<PlanConfig>
  /** Removes a plan. Throws `PlanNotFoundError` when absent, `PlanInUseError` while a tenant references it. */
  deletePlan(planId: string): Promise<void>
  /** One page of plans in id order. */
  listPlans(options?: ListPlansOptions): Promise<ListPlansResult>
  /**
   * Runs `task` while `planId` cannot be deleted. Holds are shared (holds of one plan run side by
   * side) and never wait: while `task` runs, a `deletePlan` of the plan fails at once with
   * `PlanInUseError` (409); while a delete is under way, `holdPlan` fails at once with
   * `TenantBackendError` (503, retryable) without running `task`. Nothing queues, so a task or a
   * delete that never settles hangs no other call (it only keeps that one plan undeletable, or
   * unholdable). `AdminService` puts a tenant on a plan inside it (checks that the plan exists,
   * then writes the tenant), and holds the plan a tenant leaves until an undo of the change could
   * put it back, so that a delete racing the write either sees the tenant or the hold (409), or
   * removes the plan first (the write is refused). Stores whose database refuses a tenant on a
   * missing plan by itself (a foreign key, as `DrizzlePlanStore`) leave it out;
   * `InMemoryPlanStore` has it.
   */
  holdPlan?<T>(planId: string, task: () => Promise<T>): Promise<T>
}

/**
 * Returns `id` unchanged when it is a valid plan id (1 to 255 characters of `[A-Za-z0-9._-]`, the
 * alphabet of tenant ids), otherwise throws `InvalidTenantConfigError` with one issue at path
 * `planId`.
 *
 * @example
 * ```ts
 * validatePlanId('pro-2026') // 'pro-2026'
 * validatePlanId('pro 2026') // throws InvalidTenantConfigError
 * ```
 */
export function validatePlanId(id: unknown): string {
  if (isValidTenantId(id)) return id
  throw new InvalidTenantConfigError([
    {
      path: ['planId'],
      message: `must be 1 to ${MAX_TENANT_ID_LENGTH} characters of letters, digits, ".", "_" and "-"`,
      code: 'invalid_value',
    },
  ])
}

// One entry per tenant config object: the plan object it was last combined with and the result.
// Both are frozen, so the pair's result never changes; a tenant or plan that is written again is
// a new object, which misses and computes the new result. The WeakMap lets entries go with the
// tenant config.
const effective = new WeakMap<TenantConfig, { plan: PlanConfig; config: TenantConfig }>()

/**
 * The config a tenant's requests are decided by: its own config over its plan's. A pure function
 * of the pair:
 *
 * - **quota**: the plan's limits per window; a window entry in the tenant's own quota overrides the
 *   dimensions it sets for that window (a dimension it omits is inherited, `0` overrides to
 *   unlimited), and a window only the tenant has is added. Limits come in window order. A subject
 *   pattern (`quota.subjects`) the tenant lists replaces the plan's pattern of the same `match`;
 *   the plan's other patterns are inherited.
 * - **rateLimit**: the tenant's when it has one, else the plan's.
 * - **concurrency**: the tenant's when it has one, else the plan's.
 * - **policy**: per allow-list, the tenant's when non-empty, else the plan's.
 * - **id, status, plan, metadata, timestamps**: the tenant's.
 *
 * `plan` null returns `tenant` itself, for a tenant on no plan. The result is deeply frozen and,
 * when both inputs are (what the stores hand out), memoized by the identity of the pair: asking
 * again for the same two objects costs one WeakMap lookup. Throws `InvalidTenantConfigError` when
 * `plan` is not the plan the tenant names, `null` for a tenant on a plan included (its plan was
 * not found: the tenant's own config alone would drop the plan's limits and allow-lists).
 *
 * @example
 * ```ts
 * const plan = await plans.getPlan('pro') // quota: day 10_000 requests and 1M tokens
 * const tenant = await configs.getTenantConfig('acme') // plan: 'pro', quota: day 50_000 requests
 * effectiveTenantConfig(tenant, plan).quota // { limits: [{ window: 'day', requests: 50_000, tokens: 1_000_000 }] }
 * ```
 */
export function effectiveTenantConfig(tenant: TenantConfig, plan: PlanConfig | null): TenantConfig {
  if (plan === null && tenant.plan === null) return tenant
  const cached = plan === null ? undefined : effective.get(tenant)
  if (cached !== undefined && cached.plan === plan) return cached.config
  if (plan === null || tenant.plan !== plan.id) {
    throw new InvalidTenantConfigError([
      {
        path: ['plan'],
        message:
          plan === null
            ? `tenant "${tenant.id}" is on plan ${JSON.stringify(tenant.plan)}, and no plan was given (it was not found)`
            : `tenant "${tenant.id}" is on plan ${JSON.stringify(tenant.plan)}, not "${plan.id}"`,
        code: 'invalid_value',
      },
    ])
  }
  // The result shares parts with its inputs (a plan's quota object serves all its tenants), and
  // freezing it freezes them: an input its owner may still change is copied first, so the caller's
  // objects are never frozen in place. A config that is not frozen may be changed by its owner
  // later, so only frozen pairs are kept.
  const frozen = isDeeplyFrozen(tenant) && isDeeplyFrozen(plan)
  const own = frozen ? tenant : copyJson(tenant)
  const base = frozen ? plan : copyJson(plan)
  const config = deepFreeze<TenantConfig>({
    ...own,
    quota: mergeQuota(own.quota, base.quota),
    rateLimit: own.rateLimit ?? base.rateLimit,
    concurrency: own.concurrency ?? base.concurrency,
    policy: mergePolicy(own.policy, base.policy),
  })
  if (frozen) effective.set(tenant, { plan, config })
  return config
}

// Where the tenant sets nothing, the plan's object itself is the answer: every tenant of a plan
// without overrides then shares one quota object, and what the quota engines compile from it.
function mergeQuota(own: QuotaConfig, inherited: QuotaConfig): QuotaConfig {
  const limits = mergeLimits(own.limits, inherited.limits)
  const subjects = mergeSubjects(own.subjects, inherited.subjects)
  if (limits === inherited.limits && subjects === inherited.subjects) return inherited
  if (limits === own.limits && subjects === own.subjects) return own
  return subjects === undefined ? { limits } : { limits, subjects }
}

// A subject pattern the tenant lists replaces the plan's pattern of the same `match` whole (its
// limits are one unit, as the pattern's author wrote them); the plan's other patterns are inherited.
function mergeSubjects(
  own: QuotaConfig['subjects'],
  inherited: QuotaConfig['subjects'],
): QuotaConfig['subjects'] {
  if (own === undefined || own.length === 0) return inherited ?? own
  if (inherited === undefined || inherited.length === 0) return own
  const mine = new Set(own.map((s) => s.match))
  return [...own, ...inherited.filter((s) => !mine.has(s.match))]
}

function mergeLimits(own: QuotaLimit[], inherited: QuotaLimit[]): QuotaLimit[] {
  if (own.length === 0) return inherited
  if (inherited.length === 0) return own
  const limits: QuotaLimit[] = []
  for (const window of quotaWindows) {
    const mine = own.find((l) => l.window === window)
    const base = inherited.find((l) => l.window === window)
    if (mine === undefined || base === undefined) {
      const only = mine ?? base
      if (only !== undefined) limits.push(only)
      continue
    }
    const requests = mine.requests ?? base.requests
    const tokens = mine.tokens ?? base.tokens
    limits.push({
      window,
      ...(requests === undefined ? {} : { requests }),
      ...(tokens === undefined ? {} : { tokens }),
    })
  }
  return limits
}

function mergePolicy(own: PolicyConfig, inherited: PolicyConfig): PolicyConfig {
  const pick = (key: keyof PolicyConfig) => (own[key].length > 0 ? own[key] : inherited[key])
  const merged: PolicyConfig = {
    allowedModels: pick('allowedModels'),
    allowedTools: pick('allowedTools'),
    allowedMethods: pick('allowedMethods'),
    allowedPaths: pick('allowedPaths'),
  }
  const keys = Object.keys(merged) as (keyof PolicyConfig)[]
  if (keys.every((k) => merged[k] === inherited[k])) return inherited
  if (keys.every((k) => merged[k] === own[k])) return own
  return merged
}

/**
 * Returns a stored plan as the input that would store it again: the plan without its
 * store-stamped timestamps.
 *
 * @example
 * ```ts
 * const plan = await plans.getPlan('pro')
 * await otherStore.setPlan(toPlanConfigInput(plan)) // copy a plan to another store
 * ```
 */
export function toPlanConfigInput(plan: PlanConfig): PlanConfigInput {
  const { createdAt: _createdAt, updatedAt: _updatedAt, ...input } = plan
  return input
}

/**
 * The plan, or null when the store says it does not exist.
 *
 * @example
 * ```ts
 * const before = await getPlanOrNull(plans, 'pro') // null instead of PlanNotFoundError
 * ```
 */
export async function getPlanOrNull(
  plans: Pick<PlanStore, 'getPlan'>,
  planId: string,
): Promise<PlanConfig | null> {
  try {
    return await plans.getPlan(planId)
  } catch (error) {
    if (isTenantError(error) && error.code === 'plan_not_found') return null
    throw error
  }
}
