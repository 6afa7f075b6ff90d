import { describeValue } from './describe-value'
import { InvalidTenantConfigError } from './errors'
import { MAX_IN_FLIGHT } from './schemas'

/**
 * One held slot of a tenant's concurrency cap, from an admitting {@link ConcurrencyLimiter.acquire}.
 * Release it exactly when the request is over (its response body ended, the client went away, a
 * later stage refused it, the handler threw).
 */
export interface ConcurrencyLease {
  /** The slot's id, unique in its limiter: what `release()` frees and nothing else. */
  readonly id: string
  /**
   * Frees this slot. Idempotent: a second call (or a call after `reset()`) is a no-op, so a double
   * release can never free a slot another request holds. Never rejects for a slot already gone.
   */
  release(): Promise<void>
}

/** The answer to {@link ConcurrencyLimiter.acquire}. A denial is a value, not an exception. */
export interface ConcurrencyDecision {
  /** True when the request got a slot (then `lease` is set). */
  allowed: boolean
  /** Requests of the tenant in flight after this decision (this one included when allowed). */
  inFlight: number
  /** The cap the decision was made against (`maxInFlight`). */
  limit: number
  /** The slot to release when the request is over; present exactly when `allowed`. */
  lease?: ConcurrencyLease
  /** Why a denial denied. */
  reason?: string
}

/**
 * Per-tenant cap on requests in flight at once. Unlike the rate limiter and the quota managers it
 * reads no config: the caller (the `tenantConcurrency()` stage) passes the cap it read from the
 * tenant's `concurrency.maxInFlight`, so one limiter serves every source of caps. Implementations:
 * `InMemoryConcurrencyLimiter`, `RedisConcurrencyLimiter`, `DurableObjectConcurrencyLimiter`; all
 * pass `concurrencyLimiterConformance` from `@tenant/core/testing`.
 */
export interface ConcurrencyLimiter {
  /**
   * Takes one of the tenant's `maxInFlight` slots if one is free. Throws `InvalidTenantIdError`
   * for a bad id and `InvalidTenantConfigError` for a cap that is not a whole number in
   * 1..100000; denial is a value.
   */
  acquire(tenantId: string, maxInFlight: number): Promise<ConcurrencyDecision>
  /** How many of the tenant's slots are held now (0 for a tenant never seen). */
  inFlight(tenantId: string): Promise<number>
  /**
   * Frees every slot of the tenant (an operator's repair after a crash). Leases handed out before
   * stay harmless: releasing one later is a no-op.
   */
  reset(tenantId: string): Promise<void>
}

/**
 * Returns `maxInFlight` when it is a whole number in 1..100000 (the range of
 * `concurrencyConfigSchema`), otherwise throws `InvalidTenantConfigError` with one issue at path
 * `maxInFlight`. Every limiter checks its argument with this, so all reject the same input.
 *
 * @example
 * ```ts
 * validateMaxInFlight(4) // 4
 * validateMaxInFlight(0) // throws InvalidTenantConfigError
 * ```
 */
export function validateMaxInFlight(maxInFlight: unknown): number {
  if (
    Number.isInteger(maxInFlight) &&
    (maxInFlight as number) >= 1 &&
    (maxInFlight as number) <= MAX_IN_FLIGHT
  )
    return maxInFlight as number
  throw new InvalidTenantConfigError([
    {
      path: ['maxInFlight'],
      message: `must be a whole number from 1 to ${MAX_IN_FLIGHT}, got ${describeValue(maxInFlight)}`,
      code: 'invalid_value',
    },
  ])
}
