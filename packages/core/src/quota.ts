import type { QuotaWindow } from './schemas'

/** The cost of one request: whole numbers >= 0. `requests` defaults to 1, `tokens` to 0. */
export interface QuotaCost {
  requests?: number
  tokens?: number
}

/** A per-dimension amount; a dimension that is unlimited is absent. */
export interface QuotaAmounts {
  requests?: number
  tokens?: number
}

/** The state of one of a tenant's limits. */
export interface QuotaWindowUsage {
  window: QuotaWindow
  /** The configured allowance; unlimited dimensions are absent. */
  limit: QuotaAmounts
  /** What has been counted in the current window (both dimensions, always present). */
  used: { requests: number; tokens: number }
  /** `limit - used`, floored at 0; unlimited dimensions are absent. */
  remaining: QuotaAmounts
  /**
   * When the window gives room back, ms since the epoch. Fixed windows: the window's end. Sliding
   * windows: for a window with nothing left in a limited dimension, the first instant it admits
   * one more unit there (what a client must wait); otherwise when everything counted now has aged
   * out. The RateLimit field's `t` is read from it.
   */
  resetAt: number
}

/**
 * The answer to {@link QuotaManager.consume}. A denial is a value, not an exception.
 * `remaining` / `limit` are those of the most constraining limited window per dimension.
 */
export interface QuotaDecision {
  allowed: boolean
  remaining: QuotaAmounts
  limit: QuotaAmounts
  /** When the most constraining window resets, ms since the epoch. */
  resetAt: number
  /** 0 when allowed; otherwise the earliest wait after which this same request would be admitted. */
  retryAfterMs: number
  /** Why it was denied (which window and dimension); absent when allowed. */
  reason?: string
  /** Every limit's state after this decision (unchanged on a denial). */
  windows: QuotaWindowUsage[]
}

/** Current usage of a tenant, from {@link QuotaManager.peek} or {@link QuotaManager.adjust}. */
export interface QuotaUsage {
  tenantId: string
  windows: QuotaWindowUsage[]
}

/**
 * Per-tenant quota accounting over calendar windows. Implementations: `InMemoryQuotaManager`,
 * `SlidingWindowQuotaManager`, `RedisQuotaManager`, `DurableObjectQuotaManager`; all pass
 * `testQuotaManager` from `@tenant/core/testing`.
 */
export interface QuotaManager {
  /**
   * Admits the request only if every limit has room for its full cost, then charges all of them.
   * A denied request charges nothing. Throws `InvalidCostError` for a bad cost,
   * `TenantNotFoundError` for an unknown tenant, `TenantBackendError` when the store fails.
   */
  consume(tenantId: string, cost?: QuotaCost): Promise<QuotaDecision>
  /**
   * Charges (positive) or refunds (negative) `tokens` in the current windows, after the upstream
   * said what a request really used. Refunds stop at zero. Never denies.
   */
  adjust(tenantId: string, delta: { tokens: number }): Promise<QuotaUsage>
  /** Current usage without consuming anything. */
  peek(tenantId: string): Promise<QuotaUsage>
  /**
   * Forgets all of the tenant's usage in every window, as if it had sent nothing (an operator's
   * reset, audited by `AdminService.resetUsage`). Other tenants are untouched. Idempotent.
   * Throws `InvalidTenantIdError` for a bad id and `TenantBackendError` when the store fails.
   * Optional so that stand-ins and older stores still type-check; every store of the toolkit has
   * it, and the `testQuotaManager` conformance suite requires it.
   */
  reset?(tenantId: string): Promise<void>
}
