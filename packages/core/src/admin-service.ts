import { z } from 'zod'
import { subjectOf } from './algorithms/subjects'
import {
  type AuditedPlanStore,
  type AuditedTenantStore,
  type AuditListOptions,
  type AuditLog,
  type AuditPage,
  auditTimestamp,
  type PlanAuditAction,
  type PlanAuditRecord,
  type TenantAuditAction,
  type TenantAuditRecord,
  type TenantAuditRecordInput,
} from './audit'
import { type Clock, systemClock } from './clock'
import type { ConcurrencyLimiter } from './concurrency'
import {
  type ConfigManager,
  getTenantConfigOrNull,
  type ListTenantsOptions,
  type ListTenantsResult,
} from './config'
import {
  InvalidTenantConfigError,
  isTenantError,
  PlanAlreadyExistsError,
  PlanNotFoundError,
  TenantAlreadyExistsError,
  TenantBackendError,
  TenantNotFoundError,
} from './errors'
import { storableTextProblem } from './json'
import { KeyedLock } from './keyed-lock'
import { type ListPlansOptions, type ListPlansResult, type PlanStore, validatePlanId } from './plans'
import type { QuotaManager, QuotaSubjectOptions, QuotaUsage } from './quota'
import type { RateLimiter } from './rate-limit'
import {
  type PlanConfig,
  type PlanConfigInput,
  type PolicyConfig,
  planConfigInputSchema,
  planIdSchema,
  policyConfigSchema,
  type QuotaConfig,
  quotaConfigSchema,
  type TenantConfig,
  type TenantConfigInput,
  type TenantStatus,
  tenantConfigInputSchema,
  tenantIdSchema,
  tenantStatuses,
} from './schemas'
import { validateTenantId } from './tenant-id'
import { invalidOption, parseOrThrow } from './validate'

/**
 * Schema of a full update (`PUT /tenants/:id`): the same fields as a create, but `id` is optional
 * (it comes from the path; when given it must match) and so are `status` and `plan` (omitted keeps
 * the current one, so an update never silently re-activates a suspended tenant or takes a tenant
 * off its plan; `plan: null` does that on purpose). Quota, rate limit, policy and metadata are
 * replaced, with the create defaults for omitted ones.
 */
export const tenantUpdateInputSchema = tenantConfigInputSchema
  .omit({ id: true, status: true, plan: true })
  .extend({
    id: tenantIdSchema.optional(),
    status: z.enum(tenantStatuses).optional(),
    plan: planIdSchema.nullable().optional(),
  })

/** What {@link AdminService.update} accepts. */
export type TenantUpdateInput = z.input<typeof tenantUpdateInputSchema>

/**
 * Schema of a full plan update (`PUT /plans/:id`): the same fields as a create with `id` optional
 * (it comes from the path; when given it must match). Quota, rate limit, policy and metadata are
 * replaced, with the create defaults for omitted ones.
 */
export const planUpdateInputSchema = planConfigInputSchema.omit({ id: true }).extend({
  id: planIdSchema.optional(),
})

/** What {@link AdminService.updatePlan} accepts. */
export type PlanUpdateInput = z.input<typeof planUpdateInputSchema>

/** Who is making an admin change, recorded in the audit log. */
export interface AdminContext {
  /** The authenticated admin (a user id, a service name). 1 to 255 characters. */
  actor: string
  /** Correlates the audit record with the HTTP request and logs. At most 255 characters. */
  requestId?: string
}

/** A tenant's requests in flight, as {@link AdminService.inFlight} reports them. */
export interface TenantInFlight {
  tenantId: string
  /** Requests holding a slot now. */
  inFlight: number
  /** The tenant's own `concurrency.maxInFlight`; `null` when it sets none. */
  maxInFlight: number | null
}

/** Options of {@link AdminService}. */
export interface AdminServiceOptions {
  /**
   * Where tenants live and how changes are written with their audit record: a
   * `DrizzleConfigManager` (one transaction) or `auditedStore(configManager, auditLog)`.
   */
  store: ConfigManager & AuditedTenantStore
  /** Where audit history is read from; the same log the store writes to. */
  auditLog: AuditLog
  /**
   * Answers {@link AdminService.usage} with `peek()`, and {@link AdminService.resetUsage} with
   * `reset()` when it has one. Without it, both are unavailable (a 501 from the admin routes).
   * @default undefined
   */
  quotas?: Pick<QuotaManager, 'peek' | 'reset'>
  /**
   * Answers {@link AdminService.inFlight} and {@link AdminService.resetInFlight}: the limiter the
   * concurrency stage uses. Without it, both are unavailable (a 501 from the admin routes).
   * @default undefined
   */
  concurrency?: Pick<ConcurrencyLimiter, 'inFlight' | 'reset'>
  /**
   * The limiter the rate-limit stage uses, reset (with `reset()`) before a tenant is created, as
   * `quotas` and `concurrency` are: its buckets are keyed by tenant id alone, so without it a
   * tenant created under the id of a deleted one starts with that customer's spent burst.
   * @default undefined
   */
  rateLimiter?: Pick<RateLimiter, 'reset'>
  /**
   * Clears what your application keeps per tenant id (rows of its own tables, `TenantCache`
   * entries) before a tenant is created under an id, after the quota, slot and bucket resets: a
   * customer given the id of a deleted one must not find that customer's data. Runs before the
   * tenant exists, only when the id is free; a throw fails the create with nothing written.
   * @default undefined
   * @example
   * ```ts
   * freshStart: async (tenantId) => {
   *   await scoped(db, tenantId).delete(documents)
   *   await cache.clear(tenantId)
   * }
   * ```
   */
  freshStart?: (tenantId: string) => Promise<void>
  /**
   * Stamps the audit records the service writes itself (usage resets; config changes are stamped
   * by the store).
   * @default systemClock
   */
  clock?: Clock
  /**
   * Where plans live and how a plan change is written with its audit record: a `DrizzlePlanStore`
   * (one transaction) or `auditedPlanStore(planStore, auditLog)`. Without it, the plan methods
   * throw `InvalidTenantConfigError` (path `AdminService.plans`; the admin routes answer 501), and
   * a tenant may not name a plan. With it, `auditLog` must have `listPlan`.
   * @default undefined
   */
  plans?: PlanStore & AuditedPlanStore
}

/**
 * Returns a stored config as the input that would store it again: the config without its
 * store-stamped timestamps.
 *
 * @example
 * ```ts
 * const config = await configs.getTenantConfig('acme')
 * await otherStore.setTenantConfig(toTenantConfigInput(config)) // copy a tenant to another store
 * ```
 */
export function toTenantConfigInput(config: TenantConfig): TenantConfigInput {
  const { createdAt: _createdAt, updatedAt: _updatedAt, ...input } = config
  return input
}

/**
 * The admin plane of the toolkit: tenant CRUD, quota and policy updates, suspend and activate,
 * usage and audit history. Input is validated with the zod schemas (bad input throws
 * `InvalidTenantConfigError` listing every issue, and writes nothing); every change goes through
 * `store.applyChange`, so it is written together with its audit record, or not at all.
 *
 * @example
 * ```ts
 * const configs = new InMemoryConfigManager()
 * const auditLog = new InMemoryAuditLog()
 * const admin = new AdminService({ store: auditedStore(configs, auditLog), auditLog })
 * await admin.create({ id: 'acme', quota: { limits: [{ window: 'day', requests: 10_000 }] } }, { actor: 'alice' })
 * await admin.suspend('acme', { actor: 'alice', requestId: 'req-42' })
 * const { items } = await admin.audit('acme') // newest first: suspend, create
 * ```
 */
export class AdminService {
  readonly #store: ConfigManager & AuditedTenantStore
  readonly #auditLog: AuditLog
  readonly #quotas: Pick<QuotaManager, 'peek' | 'reset'> | undefined
  readonly #rateLimiter: Pick<RateLimiter, 'reset'> | undefined
  readonly #appFreshStart: ((tenantId: string) => Promise<void>) | undefined
  readonly #clock: Clock
  readonly #plans: (PlanStore & AuditedPlanStore) | undefined
  readonly #concurrency: Pick<ConcurrencyLimiter, 'inFlight' | 'reset'> | undefined
  readonly #creates = new KeyedLock()

  constructor(options: AdminServiceOptions) {
    if (
      typeof options?.store?.applyChange !== 'function' ||
      typeof options.store.getTenantConfig !== 'function'
    ) {
      throw invalidOption(
        'AdminService.store',
        'must be a ConfigManager with applyChange (see auditedStore())',
      )
    }
    if (typeof options.auditLog?.list !== 'function') {
      throw invalidOption('AdminService.auditLog', 'must be an AuditLog')
    }
    if (options.quotas !== undefined && typeof options.quotas.peek !== 'function') {
      throw invalidOption('AdminService.quotas', 'must have a peek() method')
    }
    if (options.clock !== undefined && typeof options.clock?.now !== 'function') {
      throw invalidOption('AdminService.clock', 'must have a now() method')
    }
    this.#clock = options.clock ?? systemClock
    if (options.plans !== undefined) {
      if (
        typeof options.plans?.applyPlanChange !== 'function' ||
        typeof options.plans.getPlan !== 'function' ||
        typeof options.plans.listPlans !== 'function'
      ) {
        throw invalidOption(
          'AdminService.plans',
          'must be a PlanStore with applyPlanChange (see auditedPlanStore())',
        )
      }
      if (typeof options.auditLog.listPlan !== 'function') {
        throw invalidOption('AdminService.auditLog', 'must have listPlan() to keep the history of plans')
      }
    }
    if (
      options.concurrency !== undefined &&
      (typeof options.concurrency?.inFlight !== 'function' || typeof options.concurrency.reset !== 'function')
    ) {
      throw invalidOption('AdminService.concurrency', 'must have inFlight() and reset() methods')
    }
    if (options.rateLimiter !== undefined && typeof options.rateLimiter?.reset !== 'function') {
      throw invalidOption('AdminService.rateLimiter', 'must have a reset() method')
    }
    if (options.freshStart !== undefined && typeof options.freshStart !== 'function') {
      throw invalidOption('AdminService.freshStart', 'must be a function (tenantId) => Promise<void>')
    }
    this.#appFreshStart = options.freshStart
    this.#concurrency = options.concurrency
    this.#rateLimiter = options.rateLimiter
    this.#store = options.store
    this.#auditLog = options.auditLog
    this.#quotas = options.quotas
    this.#plans = options.plans
  }

  /** True when a quota manager was given, so {@link AdminService.usage} can answer. */
  get hasUsage(): boolean {
    return this.#quotas !== undefined
  }

  /** True when the quota manager can reset usage, so {@link AdminService.resetUsage} can answer. */
  get canResetUsage(): boolean {
    return typeof this.#quotas?.reset === 'function'
  }

  /** True when a concurrency limiter was given, so {@link AdminService.inFlight} can answer. */
  get hasConcurrency(): boolean {
    return this.#concurrency !== undefined
  }

  /** True when a plan store was given, so the plan methods can answer. */
  get hasPlans(): boolean {
    return this.#plans !== undefined
  }

  /** A tenant's config. Throws `TenantNotFoundError` or `InvalidTenantIdError`. */
  async get(tenantId: string): Promise<TenantConfig> {
    return this.#store.getTenantConfig(validateTenantId(tenantId))
  }

  /** One page of tenants in id order, offset (`{ limit, offset }`) or keyset (`{ limit, after }`). */
  async list(options?: ListTenantsOptions): Promise<ListTenantsResult> {
    return this.#store.listTenants(options)
  }

  /**
   * Creates a tenant. Throws `TenantAlreadyExistsError` (409) when the id is taken, and
   * `InvalidTenantConfigError` (path `plan`) when it names a plan that does not exist.
   *
   * The id starts fresh: before the tenant is written (so before any request can be admitted
   * for it), its quota usage (`quotas.reset`, subjects included), its in-flight slots
   * (`concurrency.reset`) and its rate-limit bucket (`rateLimiter.reset`) are reset, when those
   * are configured. Quota, concurrency and rate-limit stores key their state by tenant id alone,
   * so without this a tenant created under the id of a deleted one would inherit that customer's
   * usage, slots and spent burst. Then `freshStart(id)` clears what the application keeps per
   * tenant id. The `tenant.create` record stands for the reset (no separate record). A failing
   * reset fails the create with nothing written.
   */
  async create(input: TenantConfigInput, context: AdminContext): Promise<TenantConfig> {
    const parsed = parseOrThrow(tenantConfigInputSchema, input)
    // Checked before the resets, which must not run for a call that would be refused anyway.
    checkContext(context)
    // Creates of one id run one after another in this process: a second create then finds the
    // first's tenant and is refused (409) before its reset could wipe the new tenant's usage.
    const refusal = (reason: string) =>
      new TenantBackendError(`tenant "${parsed.id}" is not created: ${reason}`, { tenantId: parsed.id })
    return this.#creates.run(
      parsed.id,
      () =>
        this.#onPlan(parsed.plan, async () => {
          await this.#freshStart(parsed.id, context)
          return this.#change(parsed.id, 'tenant.create', context, (before) => {
            if (before !== null) throw new TenantAlreadyExistsError(parsed.id)
            return parsed
          })
        }),
      refusal,
    )
  }

  /**
   * Replaces a tenant's quota, rate limit, policy and metadata (see {@link tenantUpdateInputSchema});
   * `status` and `plan` change only when given. Throws `TenantNotFoundError` for an unknown tenant
   * and `InvalidTenantConfigError` (path `plan`) for a plan that does not exist. With a plan store
   * that has `holdPlan`, both the tenant's current plan and the target are held for the change
   * (and its undo); `TenantBackendError` (503, retryable) when one of them is being deleted.
   */
  async update(tenantId: string, input: TenantUpdateInput, context: AdminContext): Promise<TenantConfig> {
    const id = validateTenantId(tenantId)
    const { id: bodyId, status, plan, ...rest } = parseOrThrow(tenantUpdateInputSchema, input)
    mustMatch(bodyId, id, 'tenant')
    // An omitted plan keeps the current one, which cannot be deleted while the tenant is on it.
    return this.#leavingPlan(id, plan ?? null, (held) =>
      this.#change(id, 'tenant.update', context, (before) => {
        const current = onHeldPlan(existing(id, before), held)
        return {
          ...rest,
          id,
          status: status ?? current.status,
          plan: plan === undefined ? current.plan : plan,
        }
      }),
    )
  }

  /**
   * Deletes a tenant. Throws `TenantNotFoundError` for an unknown tenant. Its plan is held as in
   * {@link AdminService.update}, so an undone delete never re-creates it on a deleted plan. Its
   * quota usage and in-flight slots are left as they are (requests still running end normally);
   * a later {@link AdminService.create} of the same id resets them.
   */
  async delete(tenantId: string, context: AdminContext): Promise<void> {
    const id = validateTenantId(tenantId)
    await this.#leavingPlan(id, null, (held) =>
      this.#apply(id, 'tenant.delete', context, (before) => {
        onHeldPlan(existing(id, before), held)
        return null
      }),
    )
  }

  /** Replaces a tenant's quota; everything else is kept. */
  async updateQuota(tenantId: string, quota: z.input<typeof quotaConfigSchema>, context: AdminContext) {
    const id = validateTenantId(tenantId)
    const parsed: QuotaConfig = parseOrThrow(quotaConfigSchema, quota)
    return this.#change(id, 'tenant.quota.update', context, (before) => ({
      ...toTenantConfigInput(existing(id, before)),
      quota: parsed,
    }))
  }

  /** Replaces a tenant's policy; everything else is kept. */
  async updatePolicy(
    tenantId: string,
    policy: z.input<typeof policyConfigSchema>,
    context: AdminContext,
  ): Promise<TenantConfig> {
    const id = validateTenantId(tenantId)
    const parsed: PolicyConfig = parseOrThrow(policyConfigSchema, policy)
    return this.#change(id, 'tenant.policy.update', context, (before) => ({
      ...toTenantConfigInput(existing(id, before)),
      policy: parsed,
    }))
  }

  /**
   * Suspends a tenant: the resolver refuses it with `tenant_suspended` from then on. Suspending a
   * suspended tenant changes nothing but is still recorded (the audit log keeps every admin act).
   */
  async suspend(tenantId: string, context: AdminContext): Promise<TenantConfig> {
    return this.#setStatus(tenantId, 'suspended', 'tenant.suspend', context)
  }

  /** Re-activates a suspended tenant. Recorded even when it was already active. */
  async activate(tenantId: string, context: AdminContext): Promise<TenantConfig> {
    return this.#setStatus(tenantId, 'active', 'tenant.activate', context)
  }

  /**
   * Current usage per quota limit, from the quota manager's `peek()` (consumes nothing).
   * Throws `TenantNotFoundError` for an unknown tenant, and `InvalidTenantConfigError` (path
   * `AdminService.quotas`) when the service was created without `quotas` (check
   * {@link AdminService.hasUsage}). With `options.subject`, that subject's windows only
   * (`InvalidSubjectError` for a bad id).
   */
  async usage(tenantId: string, options?: QuotaSubjectOptions): Promise<QuotaUsage> {
    const id = validateTenantId(tenantId)
    if (this.#quotas === undefined) {
      throw invalidOption(
        'AdminService.quotas',
        'usage needs a quota manager (pass `quotas` to the constructor)',
      )
    }
    const subject = subjectOf(options)
    await this.#store.getTenantConfig(id)
    return subject === undefined ? this.#quotas.peek(id) : this.#quotas.peek(id, { subject })
  }

  /**
   * Forgets all of a tenant's quota usage (every window), then records who did it (action
   * `tenant.usage.reset`, the config as both snapshots) and returns the usage after. The reset is
   * in the quota store and the record in the audit log, so they cannot be one transaction: the
   * record is built and checked first (a clock that gives no valid time refuses the call before
   * anything is reset), then the reset runs, then the record is appended. If the append fails the
   * call fails (503) with the usage already reset; retrying is safe (a reset is idempotent) and
   * writes the record. Throws `TenantNotFoundError` for an unknown tenant and
   * `InvalidTenantConfigError` (path `AdminService.quotas`) without a quota manager that can reset
   * (check {@link AdminService.canResetUsage}).
   */
  async resetUsage(tenantId: string, context: AdminContext): Promise<QuotaUsage> {
    const id = validateTenantId(tenantId)
    checkContext(context)
    const quotas = this.#quotas
    if (quotas?.reset === undefined) {
      throw invalidOption('AdminService.quotas', 'resetting usage needs a quota manager with reset()')
    }
    const config = await this.#liveTenant(id, context)
    const record = this.#resetRecord(config, 'tenant.usage.reset', context)
    await quotas.reset(id)
    await this.#auditLog.append(await this.#recordOfReset(record, context))
    return quotas.peek(id)
  }

  /**
   * How many of the tenant's requests are in flight now, and its own cap (`null`: none set on the
   * tenant itself; a plan may still give it one). Throws `TenantNotFoundError` for an unknown
   * tenant and `InvalidTenantConfigError` (path `AdminService.concurrency`) without a limiter
   * (check {@link AdminService.hasConcurrency}).
   */
  async inFlight(tenantId: string): Promise<TenantInFlight> {
    const id = validateTenantId(tenantId)
    const limiter = this.#requireConcurrency()
    const config = await this.#store.getTenantConfig(id)
    return {
      tenantId: id,
      inFlight: await limiter.inFlight(id),
      maxInFlight: config.concurrency?.maxInFlight ?? null,
    }
  }

  /**
   * Frees every concurrency slot of the tenant (after a crash left slots taken), then records who
   * did it (action `tenant.concurrency.reset`, the config as both snapshots) and returns the count
   * after. Requests still running keep running; their later releases free nothing. Like
   * {@link AdminService.resetUsage}, the record is built and checked before the reset, and the
   * call is safe to retry if appending it fails.
   */
  async resetInFlight(tenantId: string, context: AdminContext): Promise<TenantInFlight> {
    const id = validateTenantId(tenantId)
    checkContext(context)
    const limiter = this.#requireConcurrency()
    const config = await this.#liveTenant(id, context)
    const record = this.#resetRecord(config, 'tenant.concurrency.reset', context)
    await limiter.reset(id)
    await this.#auditLog.append(await this.#recordOfReset(record, context))
    return {
      tenantId: id,
      inFlight: await limiter.inFlight(id),
      maxInFlight: config.concurrency?.maxInFlight ?? null,
    }
  }

  /**
   * The record of a reset that has run: `record` (built before it, so that a clock giving no
   * valid time refused the call before anything was reset), or, when the id was deleted and
   * created again for another tenant while the reset ran, a record of the tenant it reached. Read
   * as a change reads it (a cached read would bring back the tenant before the re-create); the
   * reset is done and must be recorded, so when the read (or the clock) fails the record built
   * before stands.
   */
  async #recordOfReset(
    record: TenantAuditRecordInput,
    context: AdminContext,
  ): Promise<TenantAuditRecordInput> {
    try {
      const now = await this.#lookUp(record.tenantId, context)
      if (now === null || now.createdAt === record.before?.createdAt) return record
      return this.#resetRecord(now, record.action, context)
    } catch {
      return record
    }
  }

  // The record of a reset, complete before the reset runs: the reset cannot be undone, so nothing
  // that would make the append refuse the record (a bad clock reading) may be found after it.
  // `config` came from the store and `context` was checked, so `at` is all that is left to check.
  #resetRecord(
    config: TenantConfig,
    action: TenantAuditAction,
    context: AdminContext,
  ): TenantAuditRecordInput {
    return {
      tenantId: config.id,
      actor: context.actor,
      action,
      before: config,
      after: config,
      at: auditTimestamp(this.#clock),
      ...(context.requestId === undefined ? {} : { requestId: context.requestId }),
    }
  }

  #requireConcurrency(): Pick<ConcurrencyLimiter, 'inFlight' | 'reset'> {
    if (this.#concurrency === undefined) {
      throw invalidOption(
        'AdminService.concurrency',
        'in-flight counts need a concurrency limiter (pass `concurrency` to the constructor)',
      )
    }
    return this.#concurrency
  }

  /**
   * A tenant's audit history, newest first, paginated with `before` (the previous page's `next`).
   * Works for deleted tenants too: their history outlives them.
   */
  async audit(tenantId: string, options?: AuditListOptions): Promise<AuditPage<TenantAuditRecord>> {
    return this.#auditLog.list(validateTenantId(tenantId), options)
  }

  /** A plan. Throws `PlanNotFoundError`, or `InvalidTenantConfigError` for a bad id. */
  async getPlan(planId: string): Promise<PlanConfig> {
    return this.#planStore().getPlan(validatePlanId(planId))
  }

  /** One page of plans in id order, offset (`{ limit, offset }`) or keyset (`{ limit, after }`). */
  async listPlans(options?: ListPlansOptions): Promise<ListPlansResult> {
    return this.#planStore().listPlans(options)
  }

  /** Creates a plan. Throws `PlanAlreadyExistsError` (409) when the id is taken. */
  async createPlan(input: PlanConfigInput, context: AdminContext): Promise<PlanConfig> {
    const parsed = parseOrThrow(planConfigInputSchema, input)
    return this.#changePlan(parsed.id, 'plan.create', context, (before) => {
      if (before !== null) throw new PlanAlreadyExistsError(parsed.id)
      return parsed
    })
  }

  /**
   * Replaces a plan's quota, rate limit, policy and metadata (see {@link planUpdateInputSchema}).
   * Its tenants are decided by the new plan from their next read on; none of them is rewritten.
   * Throws `PlanNotFoundError` for an unknown plan.
   */
  async updatePlan(planId: string, input: PlanUpdateInput, context: AdminContext): Promise<PlanConfig> {
    const id = validatePlanId(planId)
    const { id: bodyId, ...rest } = parseOrThrow(planUpdateInputSchema, input)
    mustMatch(bodyId, id, 'plan')
    return this.#changePlan(id, 'plan.update', context, (before) => {
      if (before === null) throw new PlanNotFoundError(id)
      return { ...rest, id }
    })
  }

  /**
   * Deletes a plan. Throws `PlanNotFoundError` for an unknown plan and `PlanInUseError` (409) while
   * tenants are on it. Its history stays readable.
   */
  async deletePlan(planId: string, context: AdminContext): Promise<void> {
    const id = validatePlanId(planId)
    await this.#applyPlan(id, 'plan.delete', context, (before) => {
      if (before === null) throw new PlanNotFoundError(id)
      return null
    })
  }

  /** A plan's audit history, newest first, paginated with `before`. Works for deleted plans too. */
  async planAudit(planId: string, options?: AuditListOptions): Promise<AuditPage<PlanAuditRecord>> {
    const id = validatePlanId(planId)
    this.#planStore()
    return this.#auditLog.listPlan!(id, options)
  }

  #planStore(): PlanStore & AuditedPlanStore {
    if (this.#plans === undefined) {
      throw invalidOption('AdminService.plans', 'plans need a plan store (pass `plans` to the constructor)')
    }
    return this.#plans
  }

  // Runs `write` (which puts a tenant on `planId`) once the plan is known to exist, holding the
  // plan (PlanStore.holdPlan) from the check to the end of the write when the store can, so that a
  // racing deletePlan either sees the tenant or removes the plan before the check. Stores without
  // holdPlan refuse a missing plan in the write itself (a foreign key).
  async #onPlan<T>(planId: string | null, write: () => Promise<T>): Promise<T> {
    if (planId === null) return write()
    const plans = this.#plans
    const checked = async () => {
      await this.#checkPlan(planId)
      return write()
    }
    return typeof plans?.holdPlan === 'function' ? plans.holdPlan(planId, checked) : checked()
  }

  // Runs `write` for a change that may take the tenant off its current plan (a delete, a move or
  // `plan: null`) while holding that plan too, not only the target: if the audit append fails,
  // auditedStore's undo puts the tenant back on the plan it left, and a deletePlan in between
  // would leave it on a missing plan (every request a 503). With the plan held, that delete is
  // refused (PlanInUseError) until the undo is done. The current plan is read before the hold, so
  // `write` gets it and its `apply` checks (onHeldPlan) that the tenant is still on it; if another
  // change moved the tenant in between, nothing is written and the read is retried. Stores without
  // holdPlan refuse a missing plan in the write and the undo themselves (a foreign key), so they
  // hold nothing and `held` is undefined.
  async #leavingPlan<T>(
    tenantId: string,
    target: string | null,
    write: (held: string | null | undefined) => Promise<T>,
  ): Promise<T> {
    const plans = this.#plans
    if (typeof plans?.holdPlan !== 'function') {
      // An unknown tenant is 404 before its target plan is checked (a missing plan is a 400).
      if (target !== null && (await this.#find(tenantId)) === null) throw new TenantNotFoundError(tenantId)
      return this.#onPlan(target, () => write(undefined))
    }
    for (let attempt = 1; ; attempt++) {
      const current = await this.#find(tenantId)
      if (current === null && target !== null) throw new TenantNotFoundError(tenantId)
      const held = current?.plan ?? null
      const run = () => write(held)
      try {
        return await this.#onPlan(target, () =>
          held === null || held === target ? run() : plans.holdPlan!(held, run),
        )
      } catch (error) {
        if (!(error instanceof PlanChanged)) throw error
        if (attempt >= PLAN_READ_ATTEMPTS) {
          throw new TenantBackendError(
            `tenant "${tenantId}" kept changing plan while it was being changed; nothing was written, retry`,
            { tenantId },
          )
        }
      }
    }
  }

  // The tenant a reset acts on and records, read as a change reads it: a cached read could answer
  // for a tenant another process deleted (the reset would be recorded after its delete) or
  // re-created (the record would describe the old one).
  async #liveTenant(tenantId: string, context: AdminContext): Promise<TenantConfig> {
    const tenant = await this.#lookUp(tenantId, context)
    if (tenant === null) throw new TenantNotFoundError(tenantId)
    return tenant
  }

  #find(tenantId: string): Promise<TenantConfig | null> {
    return getTenantConfigOrNull(this.#store, tenantId)
  }

  // Resets what an earlier tenant of this id left in the quota, concurrency and rate-limit
  // stores, before the tenant exists. The id is looked up first so that a create refused as a
  // duplicate (409) resets nothing of the live tenant. Creates of one id are serialised in this
  // process (see create); two processes creating the same id at once can still both pass the
  // look-up, and the loser's reset then wipes the winner's first moments of usage.
  async #freshStart(tenantId: string, context: AdminContext): Promise<void> {
    const quotas = this.#quotas
    const resetsUsage = typeof quotas?.reset === 'function'
    const app = this.#appFreshStart
    if (!resetsUsage && this.#concurrency === undefined && this.#rateLimiter === undefined && !app) return
    if ((await this.#lookUp(tenantId, context)) !== null) {
      throw new TenantAlreadyExistsError(tenantId)
    }
    if (resetsUsage) await quotas!.reset!(tenantId)
    await this.#concurrency?.reset(tenantId)
    await this.#rateLimiter?.reset?.(tenantId)
    await app?.(tenantId)
  }

  /**
   * The tenant as the store's change path reads it, through a change that writes nothing (its
   * `apply` aborts with what it was given): after a change of the id in flight there, such as a
   * delete whose audit append may yet fail and undo it (`auditedStore` runs one change of an id at
   * a time), and past any cache, such as a miss that another process's `DrizzleConfigManager`
   * cached before the id was created elsewhere (`applyChange` reads the row in its transaction).
   * A plain read (`getTenantConfig`) would see neither, and the resets would wipe a live tenant.
   */
  async #lookUp(tenantId: string, context: AdminContext): Promise<TenantConfig | null> {
    try {
      await this.#apply(tenantId, 'tenant.create', context, (before) => {
        throw new LookedUp(before)
      })
    } catch (error) {
      if (error instanceof LookedUp) return error.tenant
      throw error
    }
    throw new TenantBackendError(`the store changed tenant "${tenantId}" without reading it first`, {
      tenantId,
    })
  }

  // A tenant may only name a plan that exists: one that does not would fail every read of the
  // tenant through withPlans (fail closed), so it is refused here as bad input instead.
  async #checkPlan(planId: string): Promise<void> {
    const problem = (message: string) =>
      new InvalidTenantConfigError([{ path: ['plan'], message, code: 'invalid_value' }])
    if (this.#plans === undefined) throw problem('this admin service manages no plans')
    try {
      await this.#plans.getPlan(planId)
    } catch (error) {
      if (isTenantError(error) && error.code === 'plan_not_found') {
        throw problem(`plan "${planId}" does not exist`)
      }
      throw error
    }
  }

  async #changePlan(
    planId: string,
    action: PlanAuditAction,
    context: AdminContext,
    apply: (before: PlanConfig | null) => PlanConfigInput,
  ): Promise<PlanConfig> {
    return (await this.#applyPlan(planId, action, context, apply)).after!
  }

  async #applyPlan(
    planId: string,
    action: PlanAuditAction,
    context: AdminContext,
    apply: (before: PlanConfig | null) => PlanConfigInput | null,
  ) {
    const plans = this.#planStore()
    checkContext(context)
    return plans.applyPlanChange({
      planId,
      action,
      actor: context.actor,
      ...(context.requestId === undefined ? {} : { requestId: context.requestId }),
      apply,
    })
  }

  async #setStatus(tenantId: string, status: TenantStatus, action: TenantAuditAction, context: AdminContext) {
    const id = validateTenantId(tenantId)
    return this.#change(id, action, context, (before) => ({
      ...toTenantConfigInput(existing(id, before)),
      status,
    }))
  }

  async #change(
    tenantId: string,
    action: TenantAuditAction,
    context: AdminContext,
    apply: (before: TenantConfig | null) => TenantConfigInput,
  ): Promise<TenantConfig> {
    // Only deletes produce a null `after`, and they go through #apply directly.
    return (await this.#apply(tenantId, action, context, apply)).after!
  }

  async #apply(
    tenantId: string,
    action: TenantAuditAction,
    context: AdminContext,
    apply: (before: TenantConfig | null) => TenantConfigInput | null,
  ) {
    checkContext(context)
    return this.#store.applyChange({
      tenantId,
      action,
      actor: context.actor,
      ...(context.requestId === undefined ? {} : { requestId: context.requestId }),
      apply,
    })
  }
}

function mustMatch(bodyId: string | undefined, id: string, kind: 'tenant' | 'plan'): void {
  if (bodyId !== undefined && bodyId !== id) {
    throw new InvalidTenantConfigError([
      { path: ['id'], message: `does not match the ${kind} being updated ("${id}")`, code: 'invalid_value' },
    ])
  }
}

// How many times a change re-reads a tenant whose plan changed between the read and the write.
// Each retry follows another change of that tenant that was written, so only a stream of
// concurrent moves of one tenant exhausts it; then the call fails (503) with nothing written.
const PLAN_READ_ATTEMPTS = 3

// Thrown from the `apply` of AdminService's look-up: aborts the change with what the store read.
class LookedUp extends Error {
  constructor(readonly tenant: TenantConfig | null) {
    super('look-up only')
  }
}

// Thrown from an `apply` when the tenant is no longer on the plan that was held for it: aborts
// the change before anything is written, so that AdminService can retry with the right hold.
class PlanChanged extends Error {}

// The tenant, when it is still on the plan held for the change (`held` undefined: nothing held).
function onHeldPlan(tenant: TenantConfig, held: string | null | undefined): TenantConfig {
  if (held !== undefined && tenant.plan !== held) throw new PlanChanged()
  return tenant
}

function existing(tenantId: string, before: TenantConfig | null): TenantConfig {
  if (before === null) throw new TenantNotFoundError(tenantId)
  return before
}

// A missing actor is a wiring bug in the caller (the HTTP layer always supplies one); it is reported
// like every other bad argument, as invalid config naming the field, before anything is written.
// Both are stored in the audit log, so they must also be text every store keeps (storableTextProblem).
function checkContext(context: AdminContext): void {
  const actor = context?.actor
  if (typeof actor !== 'string' || actor.length === 0 || actor.length > 255) {
    throw invalidOption('AdminService.context.actor', 'must be a string of 1 to 255 characters')
  }
  const actorProblem = storableTextProblem(actor)
  if (actorProblem !== undefined) throw invalidOption('AdminService.context.actor', actorProblem)
  const requestId = context.requestId
  if (requestId !== undefined && (typeof requestId !== 'string' || requestId.length > 255)) {
    throw invalidOption('AdminService.context.requestId', 'must be a string of at most 255 characters')
  }
  const requestIdProblem = requestId === undefined ? undefined : storableTextProblem(requestId)
  if (requestIdProblem !== undefined) throw invalidOption('AdminService.context.requestId', requestIdProblem)
}
