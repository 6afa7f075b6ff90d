import { z } from 'zod'
import type { AuditAction, AuditedTenantStore, AuditListOptions, AuditLog, AuditRecord } from './audit'
import type { ConfigManager, ListTenantsOptions, ListTenantsResult } from './config'
import { InvalidTenantConfigError, TenantAlreadyExistsError, TenantNotFoundError } from './errors'
import type { QuotaManager, QuotaUsage } from './quota'
import {
  type PolicyConfig,
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
 * (it comes from the path; when given it must match) and so is `status` (omitted keeps the current
 * status, so an update never silently re-activates a suspended tenant). Quota, rate limit, policy
 * and metadata are replaced, with the create defaults for omitted ones.
 */
export const tenantUpdateInputSchema = tenantConfigInputSchema.omit({ id: true, status: true }).extend({
  id: tenantIdSchema.optional(),
  status: z.enum(tenantStatuses).optional(),
})

/** What {@link AdminService.update} accepts. */
export type TenantUpdateInput = z.input<typeof tenantUpdateInputSchema>

/** Who is making an admin change, recorded in the audit log. */
export interface AdminContext {
  /** The authenticated admin (a user id, a service name). 1 to 255 characters. */
  actor: string
  /** Correlates the audit record with the HTTP request and logs. At most 255 characters. */
  requestId?: string
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
   * Answers {@link AdminService.usage} with `peek()`. Without it, `usage` is unavailable (a 501
   * from the admin routes).
   * @default undefined
   */
  quotas?: Pick<QuotaManager, 'peek'>
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
  readonly #quotas: Pick<QuotaManager, 'peek'> | undefined

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
    this.#store = options.store
    this.#auditLog = options.auditLog
    this.#quotas = options.quotas
  }

  /** True when a quota manager was given, so {@link AdminService.usage} can answer. */
  get hasUsage(): boolean {
    return this.#quotas !== undefined
  }

  /** A tenant's config. Throws `TenantNotFoundError` or `InvalidTenantIdError`. */
  async get(tenantId: string): Promise<TenantConfig> {
    return this.#store.getTenantConfig(validateTenantId(tenantId))
  }

  /** One page of tenants in id order, offset (`{ limit, offset }`) or keyset (`{ limit, after }`). */
  async list(options?: ListTenantsOptions): Promise<ListTenantsResult> {
    return this.#store.listTenants(options)
  }

  /** Creates a tenant. Throws `TenantAlreadyExistsError` (409) when the id is taken. */
  async create(input: TenantConfigInput, context: AdminContext): Promise<TenantConfig> {
    const parsed = parseOrThrow(tenantConfigInputSchema, input)
    return this.#change(parsed.id, 'tenant.create', context, (before) => {
      if (before !== null) throw new TenantAlreadyExistsError(parsed.id)
      return parsed
    })
  }

  /**
   * Replaces a tenant's quota, rate limit, policy and metadata (see {@link tenantUpdateInputSchema});
   * `status` changes only when given. Throws `TenantNotFoundError` for an unknown tenant.
   */
  async update(tenantId: string, input: TenantUpdateInput, context: AdminContext): Promise<TenantConfig> {
    const id = validateTenantId(tenantId)
    const { id: bodyId, status, ...rest } = parseOrThrow(tenantUpdateInputSchema, input)
    if (bodyId !== undefined && bodyId !== id) {
      throw new InvalidTenantConfigError([
        { path: ['id'], message: `does not match the tenant being updated ("${id}")`, code: 'invalid_value' },
      ])
    }
    return this.#change(id, 'tenant.update', context, (before) => ({
      ...rest,
      id,
      status: status ?? existing(id, before).status,
    }))
  }

  /** Deletes a tenant. Throws `TenantNotFoundError` for an unknown tenant. */
  async delete(tenantId: string, context: AdminContext): Promise<void> {
    const id = validateTenantId(tenantId)
    await this.#apply(id, 'tenant.delete', context, (before) => {
      existing(id, before)
      return null
    })
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
   * {@link AdminService.hasUsage}).
   */
  async usage(tenantId: string): Promise<QuotaUsage> {
    const id = validateTenantId(tenantId)
    if (this.#quotas === undefined) {
      throw invalidOption(
        'AdminService.quotas',
        'usage needs a quota manager (pass `quotas` to the constructor)',
      )
    }
    await this.#store.getTenantConfig(id)
    return this.#quotas.peek(id)
  }

  /**
   * A tenant's audit history, newest first, paginated with `before` (the previous page's `next`).
   * Works for deleted tenants too: their history outlives them.
   */
  async audit(
    tenantId: string,
    options?: AuditListOptions,
  ): Promise<{ items: AuditRecord[]; next?: string }> {
    return this.#auditLog.list(validateTenantId(tenantId), options)
  }

  async #setStatus(tenantId: string, status: TenantStatus, action: AuditAction, context: AdminContext) {
    const id = validateTenantId(tenantId)
    return this.#change(id, action, context, (before) => ({
      ...toTenantConfigInput(existing(id, before)),
      status,
    }))
  }

  async #change(
    tenantId: string,
    action: AuditAction,
    context: AdminContext,
    apply: (before: TenantConfig | null) => TenantConfigInput,
  ): Promise<TenantConfig> {
    // Only deletes produce a null `after`, and they go through #apply directly.
    return (await this.#apply(tenantId, action, context, apply)).after!
  }

  async #apply(
    tenantId: string,
    action: AuditAction,
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

function existing(tenantId: string, before: TenantConfig | null): TenantConfig {
  if (before === null) throw new TenantNotFoundError(tenantId)
  return before
}

// A missing actor is a wiring bug in the caller (the HTTP layer always supplies one); it is reported
// like every other bad argument, as invalid config naming the field, before anything is written.
function checkContext(context: AdminContext): void {
  const actor = context?.actor
  if (typeof actor !== 'string' || actor.length === 0 || actor.length > 255) {
    throw invalidOption('AdminService.context.actor', 'must be a string of 1 to 255 characters')
  }
  const requestId = context.requestId
  if (requestId !== undefined && (typeof requestId !== 'string' || requestId.length > 255)) {
    throw invalidOption('AdminService.context.requestId', 'must be a string of at most 255 characters')
  }
}
