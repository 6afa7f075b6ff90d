import { auditTimestamp } from './audit'
import { type Clock, systemClock } from './clock'
import type { ConfigManager, ListTenantsOptions, ListTenantsResult } from './config'
import { TenantNotFoundError } from './errors'
import { type FastConfigStore, tenantConfigNow } from './fast-path'
import { copyJson, deepFreeze } from './json'
import { resolveListTenantsOptions } from './list-tenants'
import type {
  ConcurrencyConfig,
  PolicyConfig,
  QuotaConfig,
  RateLimitConfig,
  TenantConfig,
  TenantConfigInput,
} from './schemas'
import { SortedIdMap } from './sorted-id-map'
import { validateTenantId } from './tenant-id'
import { assertMethods, parseTenantConfigInput } from './validate'

/** Options of {@link InMemoryConfigManager}. */
export interface InMemoryConfigManagerOptions {
  /**
   * Stamps `createdAt` / `updatedAt`.
   * @default systemClock
   */
  clock?: Clock
}

/**
 * A {@link ConfigManager} (and quota, policy and rate-limit provider) that keeps tenants in
 * memory: for tests, single-process apps, and as the reference every other store is compared to.
 *
 * A config is copied once on the way in and then deeply frozen: every read hands out that same
 * frozen object (no copy per call), so neither the caller that stored it nor a caller that read
 * it can change the store behind its back. It grows only with
 * `setTenantConfig` calls, never with request traffic (unknown ids allocate nothing).
 *
 * @example
 * ```ts
 * const configs = new InMemoryConfigManager()
 * await configs.setTenantConfig({ id: 'acme', quota: { limits: [{ window: 'day', requests: 1000 }] } })
 * const quotas = new InMemoryQuotaManager(configs)
 * const policy = new ConfigPolicyEvaluator(configs)
 * ```
 */
export class InMemoryConfigManager implements ConfigManager, FastConfigStore {
  readonly #clock: Clock
  readonly #configs = new SortedIdMap<TenantConfig>()

  constructor(options: InMemoryConfigManagerOptions = {}) {
    if (options.clock !== undefined) assertMethods(options.clock, 'clock', ['now'])
    this.#clock = options.clock ?? systemClock
  }

  getTenantConfig(tenantId: string): Promise<TenantConfig> {
    const config = this.#configs.get(tenantId)
    return config !== undefined ? Promise.resolve(config) : this.#missing(tenantId)
  }

  /** `getTenantConfig` as a value (see `tenantConfigNow` in core); throws for an unknown tenant. */
  [tenantConfigNow](tenantId: string): TenantConfig {
    const config = this.#configs.get(tenantId)
    if (config !== undefined) return config
    validateTenantId(tenantId)
    throw new TenantNotFoundError(tenantId)
  }

  async setTenantConfig(input: TenantConfigInput): Promise<TenantConfig> {
    // Parsing copies the structure, but metadata values are passed through by reference.
    const parsed = copyJson(parseTenantConfigInput(input))
    // The whole-ms stamp of the other stores: a clock giving no valid time refuses the write.
    const now = auditTimestamp(this.#clock)
    const existing = this.#configs.get(parsed.id)
    const config = deepFreeze<TenantConfig>({
      ...parsed,
      createdAt: existing?.createdAt ?? now,
      updatedAt: now,
    })
    this.#configs.set(parsed.id, config)
    return config
  }

  async deleteTenantConfig(tenantId: string): Promise<void> {
    if (!this.#configs.delete(validateTenantId(tenantId))) throw new TenantNotFoundError(tenantId)
  }

  async listTenants(options?: ListTenantsOptions): Promise<ListTenantsResult> {
    return this.#configs.page(resolveListTenantsOptions(options))
  }

  quotaConfig(tenantId: string): Promise<QuotaConfig> {
    const config = this.#configs.get(tenantId)
    return config !== undefined ? Promise.resolve(config.quota) : this.#missing(tenantId)
  }

  policyConfig(tenantId: string): Promise<PolicyConfig> {
    const config = this.#configs.get(tenantId)
    return config !== undefined ? Promise.resolve(config.policy) : this.#missing(tenantId)
  }

  rateLimitConfig(tenantId: string): Promise<RateLimitConfig | null> {
    const config = this.#configs.get(tenantId)
    return config !== undefined ? Promise.resolve(config.rateLimit) : this.#missing(tenantId)
  }

  concurrencyConfig(tenantId: string): Promise<ConcurrencyConfig | null> {
    const config = this.#configs.get(tenantId)
    return config !== undefined ? Promise.resolve(config.concurrency) : this.#missing(tenantId)
  }

  // The reads are the path of every request stage: a stored id was validated when it was stored,
  // so a hit is one Map lookup and an already resolved promise (no async frame, no id regex). A
  // miss rejects as any read of an absent tenant does.
  async #missing(tenantId: string): Promise<never> {
    validateTenantId(tenantId)
    throw new TenantNotFoundError(tenantId)
  }
}
