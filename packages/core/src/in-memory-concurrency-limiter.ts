import type { ConcurrencyDecision, ConcurrencyLease, ConcurrencyLimiter } from './concurrency'
import { validateMaxInFlight } from './concurrency'
import { TenantBackendError } from './errors'
import { validateTenantId } from './tenant-id'
import { invalidOption } from './validate'

/** Options of {@link InMemoryConcurrencyLimiter}. */
export interface InMemoryConcurrencyLimiterOptions {
  /**
   * Most tenants with requests in flight at once. A tenant with none takes no memory; past this
   * many, `acquire` for a further tenant fails with `TenantBackendError` (503) rather than grow.
   * @default 100000
   */
  maxTenants?: number
}

/**
 * Per-tenant in-flight counters in this process: for a single instance, tests, and as the
 * reference the Redis and Durable Object limiters are compared to. Each tenant's entry is the set
 * of its held lease ids, removed when the last one is released, so memory follows the requests in
 * flight, not the tenants ever seen. A released (or reset) lease id is simply absent from the set,
 * which is what makes a second release a no-op.
 *
 * @example
 * ```ts
 * const limiter = new InMemoryConcurrencyLimiter()
 * const decision = await limiter.acquire('acme', 4)
 * if (!decision.allowed) return new Response(null, { status: 429 })
 * try {
 *   return await handle(request)
 * } finally {
 *   await decision.lease!.release()
 * }
 * ```
 */
export class InMemoryConcurrencyLimiter implements ConcurrencyLimiter {
  readonly #held = new Map<string, Set<number>>()
  readonly #maxTenants: number
  #next = 0

  constructor(options: InMemoryConcurrencyLimiterOptions = {}) {
    const max = options.maxTenants ?? 100_000
    if (!Number.isInteger(max) || max < 1)
      throw invalidOption('InMemoryConcurrencyLimiter.maxTenants', 'must be a whole number >= 1')
    this.#maxTenants = max
  }

  acquire(tenantId: string, maxInFlight: number): Promise<ConcurrencyDecision> {
    try {
      validateTenantId(tenantId)
      validateMaxInFlight(maxInFlight)
    } catch (error) {
      return Promise.reject(error)
    }
    let held = this.#held.get(tenantId)
    if (held === undefined) {
      if (this.#held.size >= this.#maxTenants) {
        return Promise.reject(
          new TenantBackendError(`more than ${this.#maxTenants} tenants have requests in flight`, {
            tenantId,
          }),
        )
      }
      held = new Set()
      this.#held.set(tenantId, held)
    }
    if (held.size >= maxInFlight) {
      return Promise.resolve({
        allowed: false,
        inFlight: held.size,
        limit: maxInFlight,
        reason: `${held.size} requests in flight, the limit is ${maxInFlight}`,
      })
    }
    const id = this.#next++
    held.add(id)
    return Promise.resolve({
      allowed: true,
      inFlight: held.size,
      limit: maxInFlight,
      lease: this.#lease(tenantId, id),
    })
  }

  inFlight(tenantId: string): Promise<number> {
    try {
      validateTenantId(tenantId)
    } catch (error) {
      return Promise.reject(error)
    }
    return Promise.resolve(this.#held.get(tenantId)?.size ?? 0)
  }

  reset(tenantId: string): Promise<void> {
    try {
      validateTenantId(tenantId)
    } catch (error) {
      return Promise.reject(error)
    }
    this.#held.delete(tenantId)
    return Promise.resolve()
  }

  #lease(tenantId: string, id: number): ConcurrencyLease {
    const held = this.#held
    return {
      id: String(id),
      release(): Promise<void> {
        const set = held.get(tenantId)
        // Absent after an earlier release or a reset: nothing of anyone else's is touched.
        if (set?.delete(id) && set.size === 0) held.delete(tenantId)
        return Promise.resolve()
      },
    }
  }
}
