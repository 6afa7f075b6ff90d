import { type Clock, systemClock } from './clock'
import type { ConcurrencyDecision, ConcurrencyLease, ConcurrencyLimiter } from './concurrency'
import { validateMaxInFlight } from './concurrency'
import { TenantBackendError } from './errors'
import { validateTenantId } from './tenant-id'
import { assertMethods, invalidOption } from './validate'

/** Options of {@link InMemoryConcurrencyLimiter}. */
export interface InMemoryConcurrencyLimiterOptions {
  /**
   * Most tenants with requests in flight at once. A tenant with none takes no memory; past this
   * many, `acquire` for a further tenant fails with `TenantBackendError` (503) rather than grow.
   * @default 100000
   */
  maxTenants?: number
  /**
   * How long a slot stays taken without being released, in ms, as in the Redis and Durable Object
   * limiters: the backstop for a lease nobody releases (a response body dropped unread by code
   * outside the chain, a handler that never settles). Longer than your longest request (a long
   * stream included): a lease that outlives it frees its slot while the request still runs.
   * Expiry is checked on `clock` when the tenant's slots are counted (`acquire`, `inFlight`); no
   * timer runs.
   * @default 600000 (10 minutes)
   */
  leaseTtlMs?: number
  /**
   * Where the time for `leaseTtlMs` comes from.
   * @default systemClock
   */
  clock?: Clock
}

const DEFAULT_LEASE_TTL_MS = 600_000

/**
 * Per-tenant in-flight counters in this process: for a single instance, tests, and as the
 * reference the Redis and Durable Object limiters are compared to. Each tenant's entry maps its
 * held lease ids to their expiry, removed when the last one is released (or has expired), so
 * memory follows the requests in flight, not the tenants ever seen. A released (reset, expired)
 * lease id is simply absent, which is what makes a second release a no-op. A lease not released
 * within `leaseTtlMs` frees its slot, as in the shared limiters.
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
  // Per tenant, its held lease ids with their expiry (ms since the epoch), in the order taken.
  readonly #held = new Map<string, Map<number, number>>()
  readonly #maxTenants: number
  readonly #leaseTtlMs: number
  readonly #clock: Clock
  #next = 0
  // No lease expires before this (the earliest expiry the last sweep left, or of a lease taken
  // since): a full limiter refuses a new tenant without another pass over every tenant until then.
  #sweepAfter = 0

  constructor(options: InMemoryConcurrencyLimiterOptions = {}) {
    const max = options.maxTenants ?? 100_000
    if (!Number.isInteger(max) || max < 1)
      throw invalidOption('InMemoryConcurrencyLimiter.maxTenants', 'must be a whole number >= 1')
    const ttl = options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS
    if (!Number.isSafeInteger(ttl) || ttl < 1)
      throw invalidOption('InMemoryConcurrencyLimiter.leaseTtlMs', 'must be a whole number >= 1')
    if (options.clock !== undefined) assertMethods(options.clock, 'InMemoryConcurrencyLimiter.clock', ['now'])
    this.#maxTenants = max
    this.#leaseTtlMs = ttl
    this.#clock = options.clock ?? systemClock
  }

  acquire(tenantId: string, maxInFlight: number): Promise<ConcurrencyDecision> {
    try {
      validateTenantId(tenantId)
      validateMaxInFlight(maxInFlight)
    } catch (error) {
      return Promise.reject(error)
    }
    const now = this.#clock.now()
    let held = this.#held.get(tenantId)
    if (held !== undefined) expire(held, now)
    else {
      // Full: tenants whose every lease has expired make room before a new tenant is refused.
      if (this.#held.size >= this.#maxTenants && now >= this.#sweepAfter) this.#sweep(now)
      if (this.#held.size >= this.#maxTenants) {
        return Promise.reject(
          new TenantBackendError(`more than ${this.#maxTenants} tenants have requests in flight`, {
            tenantId,
          }),
        )
      }
      held = new Map()
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
    const expiresAt = now + this.#leaseTtlMs
    held.set(id, expiresAt)
    // A sweep that emptied the limiter left no bound (+Infinity): without this, no later sweep ran.
    if (expiresAt < this.#sweepAfter) this.#sweepAfter = expiresAt
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
    const held = this.#held.get(tenantId)
    if (held === undefined) return Promise.resolve(0)
    expire(held, this.#clock.now())
    if (held.size === 0) this.#held.delete(tenantId)
    return Promise.resolve(held.size)
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

  // Drops the expired leases of every tenant, and the tenants left with none. Leases taken later
  // expire later still, so the earliest expiry left bounds when the next sweep can free anything.
  #sweep(now: number): void {
    let earliest = Number.POSITIVE_INFINITY
    for (const [tenantId, held] of this.#held) {
      expire(held, now)
      if (held.size === 0) this.#held.delete(tenantId)
      else {
        const first = held.values().next().value!
        if (first < earliest) earliest = first
      }
    }
    this.#sweepAfter = earliest
  }

  #lease(tenantId: string, id: number): ConcurrencyLease {
    const held = this.#held
    return {
      id: String(id),
      release(): Promise<void> {
        const leases = held.get(tenantId)
        // Absent after an earlier release, a reset or its expiry: nothing of anyone else's is touched.
        if (leases?.delete(id) && leases.size === 0) held.delete(tenantId)
        return Promise.resolve()
      },
    }
  }
}

/**
 * Drops the leases of `held` that expired by `now`. One limiter gives every lease the same TTL, so
 * they expire in the order they were taken: the scan stops at the first one still held, and an
 * acquire costs no more than the leases it drops. (A clock set back by `d` breaks that order: a
 * lease taken after it can then stay counted up to `d` past its expiry, behind an earlier one.)
 */
function expire(held: Map<number, number>, now: number): void {
  for (const [id, expiresAt] of held) {
    if (expiresAt > now) return
    held.delete(id)
  }
}
