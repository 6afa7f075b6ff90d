/** The answer to {@link RateLimiter.consume}. A denial is a value, not an exception. */
export interface RateLimitDecision {
  allowed: boolean
  /** The bucket size (burst); absent when the tenant has no rate limit. */
  limit?: number
  /** Whole tokens left after this decision; absent when the tenant has no rate limit. */
  remaining?: number
  /** When the bucket would be full again, ms since the epoch. */
  resetAt: number
  /** 0 when allowed; otherwise deficit / rate, in ms. */
  retryAfterMs: number
  reason?: string
}

/**
 * Per-tenant request rate limiting (token bucket: `requestsPerSecond` refill, `burst` capacity).
 * Implementations: `TokenBucketRateLimiter`, `RedisRateLimiter`, `DurableObjectRateLimiter`; all
 * pass `testRateLimiter` from `@tenant/core/testing`.
 */
export interface RateLimiter {
  /**
   * Takes `cost` tokens (default 1, whole number >= 0) from the tenant's bucket if it has them.
   * A tenant without a rate limit is always allowed.
   */
  consume(tenantId: string, options?: { cost?: number }): Promise<RateLimitDecision>
  /**
   * Forgets the tenant's bucket, as if it had sent nothing (a full bucket). `AdminService` calls
   * it before a tenant is created, so that a new tenant under the id of a deleted one does not
   * inherit that customer's spent burst. Other tenants are untouched. Idempotent. Throws
   * `InvalidTenantIdError` for a bad id and `TenantBackendError` when the store fails. Optional so
   * that stand-ins still type-check; every store of the toolkit has it, and the `testRateLimiter`
   * conformance suite requires it.
   */
  reset?(tenantId: string): Promise<void>
}
