import type { ExpiringEntry } from './algorithms/expiring-map'
import { ExpiringMap } from './algorithms/expiring-map'
import { checkManagerArgs } from './algorithms/memory-quota-manager'
import type { TokenBucketState } from './algorithms/token-bucket'
import { tokenBucketConsume, tokenBucketFullAt } from './algorithms/token-bucket'
import type { Clock } from './clock'
import type { RateLimitProvider } from './config'
import { costAmount } from './cost'
import { InvalidCostError } from './errors'
import { configSource, consumeNow, type FastRateLimiter, promiseOf } from './fast-path'
import { providedConfig } from './provided-config'
import type { RateLimitDecision, RateLimiter } from './rate-limit'
import type { RateLimitConfig } from './schemas'
import { validateTenantId } from './tenant-id'

/** Options of {@link TokenBucketRateLimiter}. */
export interface TokenBucketRateLimiterOptions {
  /**
   * Where the time comes from; refill and `retryAfterMs` are computed from it alone.
   * @default systemClock
   */
  clock?: Clock
}

/** A tenant's bucket and its expiry-heap field in one object. */
class Bucket implements ExpiringEntry, TokenBucketState {
  heapAt = 0
  constructor(
    readonly key: string,
    public tokens: number,
    public updatedAt: number,
    /** When the bucket is full again (ms): then it is the same as no bucket and can go. */
    public fullAt: number,
  ) {}
}

/**
 * Per-tenant token buckets in this process: `burst` tokens, refilled continuously at
 * `requestsPerSecond`; a request takes `cost` tokens (default 1) or is denied with
 * `retryAfterMs = deficit / rate`. A tenant whose `rateLimit` is `null` is always allowed.
 * A full bucket is the same as no bucket, so only tenants that spent tokens recently take memory,
 * and they leave once refilled (no timers: each call sweeps a bounded batch).
 *
 * @example
 * ```ts
 * await configs.setTenantConfig({ id: 'acme', rateLimit: { requestsPerSecond: 10, burst: 20 } })
 * const limiter = new TokenBucketRateLimiter(configs)
 * const decision = await limiter.consume('acme')
 * if (!decision.allowed) return new Response(null, { status: 429 })
 * ```
 */
export class TokenBucketRateLimiter implements RateLimiter, FastRateLimiter {
  readonly #provider: RateLimitProvider
  readonly #clock: Clock
  readonly #buckets = new ExpiringMap<Bucket>((bucket) => bucket.fullAt)

  constructor(provider: RateLimitProvider, options: TokenBucketRateLimiterOptions = {}) {
    this.#clock = checkManagerArgs(provider, 'rateLimitConfig', options.clock)
    this.#provider = provider
  }

  /** How many tenants have a bucket that is not full (the only ones that take memory). */
  get size(): number {
    return this.#buckets.size
  }

  /** The provider the limiter reads rate limits from (see `configSource`). */
  get [configSource](): object {
    return this.#provider
  }

  async reset(tenantId: string): Promise<void> {
    validateTenantId(tenantId)
    this.#buckets.delete(tenantId)
  }

  consume(tenantId: string, options?: { cost?: number }): Promise<RateLimitDecision> {
    return promiseOf(() => {
      if (options !== undefined && (typeof options !== 'object' || options === null)) {
        if (this.#buckets.get(tenantId) === undefined) validateTenantId(tenantId)
        throw new InvalidCostError('rate limit options must be an object like { cost }')
      }
      return this[consumeNow](tenantId, options?.cost, undefined)
    })
  }

  /**
   * `consume` as a value when the config needs no I/O (see `consumeNow` in core); `config` is the
   * tenant's rate limit as this limiter's provider answered it, for a caller that already read it.
   */
  [consumeNow](
    tenantId: string,
    cost: number | undefined,
    config: RateLimitConfig | null | undefined,
  ): RateLimitDecision | Promise<RateLimitDecision> {
    // The sweep runs first, so the bucket read next is one the sweep left in the map; that one read
    // serves both the id check (only valid ids are ever inserted, and Map keys compare by value, so
    // a held id needs no regex) and the take.
    const now = this.#clock.now()
    this.#buckets.sweep(now)
    let bucket = this.#buckets.get(tenantId)
    if (bucket === undefined) validateTenantId(tenantId)
    const amount = costAmount(cost, 'cost', 1)
    let limit = config
    if (limit === undefined) {
      const changes = this.#buckets.changes
      const read = providedConfig(this.#provider, tenantId, 'rateLimit')
      // After an await the time and the bucket are read again: the map may have changed meanwhile.
      if (read instanceof Promise) {
        return read.then((found) => {
          const at = this.#clock.now()
          this.#buckets.sweep(at)
          return this.#take(tenantId, amount, found, at, this.#buckets.get(tenantId))
        })
      }
      limit = read
      // A config store that called back into this limiter may have replaced or removed the bucket.
      if (this.#buckets.changes !== changes) bucket = this.#buckets.get(tenantId)
    }
    return this.#take(tenantId, amount, limit, now, bucket)
  }

  // No await from the config to the return: the check and the take are one step. `bucket` is the
  // tenant's bucket in the map at `now`, read after the sweep of `now`.
  #take(
    tenantId: string,
    cost: number,
    config: RateLimitConfig | null,
    now: number,
    bucket: Bucket | undefined,
  ): RateLimitDecision {
    const { decision, state } = tokenBucketConsume(bucket, config, cost, now)
    // Without a rate limit nothing is taken, and the bucket stays as it stands: a limit set again
    // applies to it, as any changed limit does (dropping it refilled the tenant's burst). It goes
    // at its full time, as before.
    if (!decision.allowed || config === null) return decision
    // A full bucket needs no state; a state implies a config.
    if (state === undefined) {
      this.#buckets.delete(tenantId)
    } else if (bucket === undefined) {
      const fullAt = tokenBucketFullAt(state, config!)
      this.#buckets.add(new Bucket(tenantId, state.tokens, state.updatedAt, fullAt), fullAt)
    } else {
      // Updated in place: the entry keeps its one heap slot; the map reads fullAt when it is due.
      bucket.tokens = state.tokens
      bucket.updatedAt = state.updatedAt
      bucket.fullAt = tokenBucketFullAt(state, config!)
    }
    return decision
  }
}
