import type {
  NormalizedCost,
  QuotaAdjustment,
  QuotaAlgorithm,
  QuotaConfig,
  QuotaCost,
  QuotaDecision,
  QuotaManager,
  QuotaProvider,
  QuotaSubjectOptions,
  QuotaUsage,
  QuotaWindowUsage,
} from '@tenant/core'
import {
  DEFAULT_SLIDING_PRECISION,
  effectiveLimits,
  fixedWindowAlgorithm,
  invalidOption,
  normalizeCost,
  normalizeDecidedAt,
  normalizeTokenDelta,
  slidingWindowAlgorithm,
  subjectOf,
  subjectQuota,
  validateTenantId,
} from '@tenant/core'
import type { ObjectClientOptions } from './object-client'
import { ObjectClient } from './object-client'
import type { Prefilter, PrefilterOptions } from './prefilter'
import { createPrefilter } from './prefilter'
import type { QuotaAlgorithmName, QuotaCall } from './protocol'
import { BASE_PROTOCOL_VERSION, PROTOCOL_VERSION } from './protocol'

/** Options of {@link DurableObjectQuotaManager}. */
export interface DurableObjectQuotaManagerOptions extends ObjectClientOptions {
  /**
   * `'fixed'`: windows aligned to the UTC calendar (like `InMemoryQuotaManager`); `'sliding'`:
   * sub-window buckets (like `SlidingWindowQuotaManager`). The two keep separate counts.
   * @default 'fixed'
   */
  algorithm?: QuotaAlgorithmName
  /**
   * Buckets per sliding window (see `SlidingWindowQuotaManager`); ignored for `'fixed'`.
   * @default 10
   */
  precision?: number
  /**
   * A coarse pre-filter through the Workers Rate Limiting binding, checked before the object on
   * `consume` only (never on `adjust` / `peek`). Approximate, per location: abuse shielding.
   * @default undefined (none)
   */
  prefilter?: PrefilterOptions
}

/**
 * Per-tenant quotas held by a Durable Object per tenant ({@link TenantQuotaObject}): one exact,
 * strongly consistent count for every Worker in every location, where an in-memory quota would
 * count per isolate and silently multiply the limits.
 *
 * Each `consume`, `adjust` and `peek` is one RPC to the tenant's object
 * (`namespace.idFromName(prefix + tenantId)`), which checks and charges in one step with core's
 * algorithms. The tenant's limits come from `provider` in the calling Worker and travel with the
 * call, so a changed limit applies from the next call of a Worker that sees it, to the usage
 * already counted. Bad input (`InvalidCostError`, `InvalidTenantIdError`, an invalid config) is
 * refused before any request to the object; a tenant without any limit never costs one. A
 * consume whose call fails is voided by its op id before the error is thrown, so the object takes
 * it back if it applied it (README, "When an answer is lost").
 *
 * @example
 * ```ts
 * // env.TENANT_QUOTA: the TenantQuotaObject binding (see the README for wrangler.toml)
 * const quotas = new DurableObjectQuotaManager(configManager, { namespace: env.TENANT_QUOTA })
 * const decision = await quotas.consume('acme', { tokens: 1_200 })
 * if (!decision.allowed) return new Response(decision.reason, { status: 429 })
 * ```
 */
export class DurableObjectQuotaManager implements QuotaManager {
  readonly #provider: QuotaProvider
  readonly #client: ObjectClient
  readonly #algorithm: QuotaAlgorithm<unknown>
  readonly #name: QuotaAlgorithmName
  readonly #precision: number
  readonly #prefilter: Prefilter | undefined

  constructor(provider: QuotaProvider, options: DurableObjectQuotaManagerOptions) {
    const owner = 'DurableObjectQuotaManager'
    this.#client = new ObjectClient(owner, provider, 'quotaConfig', options)
    const { algorithm = 'fixed', precision = DEFAULT_SLIDING_PRECISION } = options
    if (algorithm !== 'fixed' && algorithm !== 'sliding') {
      throw invalidOption(`${owner}.algorithm`, "must be 'fixed' or 'sliding'")
    }
    // Core validates precision here, at construction, not on the first request.
    this.#algorithm = algorithm === 'fixed' ? fixedWindowAlgorithm : slidingWindowAlgorithm(precision)
    this.#provider = provider
    this.#name = algorithm
    this.#precision = precision
    this.#prefilter = createPrefilter(owner, options.prefilter)
  }

  /** The window algorithm the objects run. */
  get algorithm(): QuotaAlgorithmName {
    return this.#name
  }

  async consume(tenantId: string, cost?: QuotaCost): Promise<QuotaDecision> {
    validateTenantId(tenantId)
    const charge = normalizeCost(cost)
    const subject = subjectOf(cost)
    const denial = await this.#prefilter?.deny(tenantId, () => this.#client.localTime())
    if (denial !== undefined) return { ...denial, remaining: {}, limit: {}, windows: [] }
    const config = await this.#provider.quotaConfig(tenantId)
    const subjectConfig = subject === undefined ? undefined : subjectQuota(config, subject)
    if (subjectConfig !== undefined) {
      // Version 2: the object checks the tenant's and the subject's windows in one step.
      return this.#consume(tenantId, this.#base(config, subject, subjectConfig), charge)
    }
    // An unlimited tenant's decision depends on no state: answer here, without a request.
    if (effectiveLimits(config).length === 0) {
      return this.#algorithm.consume(undefined, config, charge, this.#client.localTime()).decision
    }
    return this.#consume(tenantId, this.#base(config), charge)
  }

  /**
   * One consume RPC with an op id. When the call fails, the object may have charged it and only
   * its answer been lost: its void is sent (and tried again, see `ObjectClient.owe`) before the
   * error reaches the caller, so the object takes the admission back, or charges nothing if the
   * consume reaches it later.
   */
  async #consume(
    tenantId: string,
    base: Omit<Extract<QuotaCall, { op: 'consume' }>, 'op' | 'cost' | 'opId'>,
    cost: NormalizedCost,
  ): Promise<QuotaDecision> {
    const opId = crypto.randomUUID()
    const call: QuotaCall = { ...base, op: 'consume', cost, opId }
    return (await this.#client.call(
      tenantId,
      (stub) => stub.quota(call),
      () => this.#client.void(tenantId, 'quota', opId),
    )) as QuotaDecision
  }

  async adjust(tenantId: string, delta: QuotaAdjustment): Promise<QuotaUsage> {
    validateTenantId(tenantId)
    const tokens = normalizeTokenDelta(delta)
    const decidedAt = normalizeDecidedAt(delta)
    const subject = subjectOf(delta)
    const config = await this.#provider.quotaConfig(tenantId)
    const subjectConfig = subject === undefined ? undefined : subjectQuota(config, subject)
    // Sent only when given: a call without it is one objects of every release understand.
    const at = decidedAt === undefined ? {} : { decidedAt }
    if (subjectConfig !== undefined) {
      const call: QuotaCall = { ...this.#base(config, subject, subjectConfig), op: 'adjust', tokens, ...at }
      return { tenantId, subject, windows: await this.#windows(tenantId, call) }
    }
    if (effectiveLimits(config).length === 0) return { tenantId, windows: [] }
    const call: QuotaCall = { ...this.#base(config), op: 'adjust', tokens, ...at }
    return { tenantId, windows: await this.#windows(tenantId, call) }
  }

  async peek(tenantId: string, options?: QuotaSubjectOptions): Promise<QuotaUsage> {
    validateTenantId(tenantId)
    const subject = subjectOf(options)
    const config = await this.#provider.quotaConfig(tenantId)
    if (subject !== undefined) {
      const subjectConfig = subjectQuota(config, subject)
      if (subjectConfig === undefined) return { tenantId, subject, windows: [] }
      const call: QuotaCall = { ...this.#base(config, subject, subjectConfig), op: 'peek' }
      return { tenantId, subject, windows: await this.#windows(tenantId, call) }
    }
    if (effectiveLimits(config).length === 0) return { tenantId, windows: [] }
    const call: QuotaCall = { ...this.#base(config), op: 'peek' }
    return { tenantId, windows: await this.#windows(tenantId, call) }
  }

  /**
   * Deletes the tenant's counters in its object, its subjects' included, or with
   * `options.subject` that subject's alone (one RPC).
   */
  async reset(tenantId: string, options?: QuotaSubjectOptions): Promise<void> {
    validateTenantId(tenantId)
    const subject = subjectOf(options)
    const { config: _, subjectConfig: __, ...base } = this.#base({ limits: [] }, subject)
    await this.#client.call(tenantId, (stub) => stub.quota({ ...base, op: 'reset' }))
  }

  async #windows(tenantId: string, call: QuotaCall): Promise<QuotaWindowUsage[]> {
    return (await this.#client.call(tenantId, (stub) => stub.quota(call))) as QuotaWindowUsage[]
  }

  // Version 1 unless the call names a subject, so plain calls still reach objects of older releases.
  #base(config: QuotaConfig, subject?: string, subjectConfig?: QuotaConfig) {
    const now = this.#client.sentTime()
    return {
      v: subject === undefined ? BASE_PROTOCOL_VERSION : PROTOCOL_VERSION,
      algorithm: this.#name,
      precision: this.#precision,
      config,
      ...(subject === undefined ? {} : { subject }),
      ...(subjectConfig === undefined ? {} : { subjectConfig }),
      ...(now === undefined ? {} : { now }),
    } as const
  }
}
