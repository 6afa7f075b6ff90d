import type { RateLimitDecision, RateLimiter, RateLimitProvider } from '@tenant/core'
import {
  costAmount,
  InvalidCostError,
  InvalidTenantConfigError,
  rateLimitConfigSchema,
  tokenBucketConsume,
  validateTenantId,
} from '@tenant/core'
import type { ObjectClientOptions } from './object-client'
import { ObjectClient } from './object-client'
import type { Prefilter, PrefilterOptions } from './prefilter'
import { createPrefilter } from './prefilter'
import { BASE_PROTOCOL_VERSION } from './protocol'

/** Options of {@link DurableObjectRateLimiter}. */
export interface DurableObjectRateLimiterOptions extends ObjectClientOptions {
  /**
   * A coarse pre-filter through the Workers Rate Limiting binding, checked before the object.
   * Approximate, per location: abuse shielding.
   * @default undefined (none)
   */
  prefilter?: PrefilterOptions
}

/**
 * Per-tenant token buckets held by a Durable Object per tenant ({@link TenantQuotaObject}),
 * with the semantics of core's `TokenBucketRateLimiter` (`burst` capacity, continuous refill at
 * `requestsPerSecond`, exact `retryAfterMs`), but one bucket for every Worker in every location.
 * The Workers Rate Limiting binding, by contrast, counts per location, approximately, and only
 * over 10 s or 60 s.
 *
 * Each `consume` is one RPC to the tenant's object. The rate limit comes from `provider` in the
 * calling Worker and travels with the call; a tenant without one (`null`) is allowed without any
 * request to the object. A take whose call fails is voided by its op id before the error is
 * thrown, so the object gives its tokens back if it took them.
 *
 * @example
 * ```ts
 * const limiter = new DurableObjectRateLimiter(configManager, { namespace: env.TENANT_QUOTA })
 * const decision = await limiter.consume('acme')
 * if (!decision.allowed) return new Response(null, { status: 429 })
 * ```
 */
export class DurableObjectRateLimiter implements RateLimiter {
  readonly #provider: RateLimitProvider
  readonly #client: ObjectClient
  readonly #prefilter: Prefilter | undefined

  constructor(provider: RateLimitProvider, options: DurableObjectRateLimiterOptions) {
    const owner = 'DurableObjectRateLimiter'
    this.#client = new ObjectClient(owner, provider, 'rateLimitConfig', options)
    this.#provider = provider
    this.#prefilter = createPrefilter(owner, options.prefilter)
  }

  /** Forgets the tenant's bucket (a full one), as `RateLimiter.reset` says. */
  async reset(tenantId: string): Promise<void> {
    validateTenantId(tenantId)
    await this.#client.call(tenantId, (stub) => stub.resetRateLimit({ v: BASE_PROTOCOL_VERSION }))
  }

  async consume(tenantId: string, options?: { cost?: number }): Promise<RateLimitDecision> {
    validateTenantId(tenantId)
    if (options !== undefined && (typeof options !== 'object' || options === null)) {
      throw new InvalidCostError('rate limit options must be an object like { cost }')
    }
    const cost = costAmount(options?.cost, 'cost', 1)
    const denial = await this.#prefilter?.deny(tenantId, () => this.#client.localTime())
    if (denial !== undefined) return denial
    const config = await this.#provider.rateLimitConfig(tenantId)
    if (config === null) return tokenBucketConsume(undefined, null, cost, this.#client.localTime()).decision
    // A bad config would be written into the bucket (a NaN level refuses forever): refuse it here.
    const parsed = rateLimitConfigSchema.safeParse(config)
    if (!parsed.success) throw new InvalidTenantConfigError(parsed.error.issues, { tenantId })
    const now = this.#client.sentTime()
    // When the call fails, the object may have taken the tokens and only its answer been lost:
    // the take is voided (the tokens given back) before the error reaches the caller.
    const opId = crypto.randomUUID()
    return this.#client.call(
      tenantId,
      (stub) =>
        stub.rateLimit({
          v: BASE_PROTOCOL_VERSION,
          config: parsed.data,
          cost,
          opId,
          ...(now === undefined ? {} : { now }),
        }),
      () => this.#client.void(tenantId, 'rateLimit', opId),
    )
  }
}
