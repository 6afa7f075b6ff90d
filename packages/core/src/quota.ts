import type { QuotaWindow } from './schemas'

/** The cost of one request: whole numbers >= 0. `requests` defaults to 1, `tokens` to 0. */
export interface QuotaCost {
  requests?: number
  tokens?: number
  /**
   * The subject under the tenant the request is for (an API key, a user, a model): 1 to 255
   * characters of `[A-Za-z0-9._:/@+-]`. When the tenant's `quota.subjects` has a pattern for it,
   * the subject's windows are checked and charged together with the tenant's (all-or-nothing);
   * otherwise only the tenant's are. A bad id throws `InvalidSubjectError`.
   */
  subject?: string
}

/** Names one subject of a tenant in {@link QuotaManager.peek} / {@link QuotaManager.reset}. */
export interface QuotaSubjectOptions {
  /** The subject id; absent: the tenant itself. */
  subject?: string
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
  /** Set on a subject's window (see `QuotaCost.subject`); absent on the tenant's own windows. */
  subject?: string
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
  /**
   * Why it was denied (which window and dimension; a subject's window is prefixed with
   * `subject "<id>"`); absent when allowed.
   */
  reason?: string
  /** Every limit's state after this decision (unchanged on a denial). */
  windows: QuotaWindowUsage[]
  /**
   * When the store decided, ms since the epoch on the store's clock (Redis's for
   * `RedisQuotaManager`). Hand it to {@link QuotaManager.adjust} with a refund, so the refund
   * comes out of the windows this admission charged. Every store of the toolkit sets it; optional
   * so that stand-ins and stores of earlier releases still type-check.
   */
  decidedAt?: number
}

/** What {@link QuotaManager.adjust} changes. */
export interface QuotaAdjustment {
  /** Whole number: positive charges, negative refunds. */
  tokens: number
  /** The subject whose windows change too (see `QuotaCost.subject`). */
  subject?: string
  /**
   * The `decidedAt` of the admission a refund is for. With it, a refund comes out of the windows
   * that admission charged: a window started since (a new minute) is not touched. Without it, or
   * for a charge, the windows current when `adjust` runs change.
   */
  decidedAt?: number
}

/** Current usage of a tenant, from {@link QuotaManager.peek} or {@link QuotaManager.adjust}. */
export interface QuotaUsage {
  tenantId: string
  /** The subject the usage is of, when one was named. */
  subject?: string
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
   * A denied request charges nothing. With `cost.subject`, the subject's windows are checked and
   * charged together with the tenant's, all-or-nothing. Throws `InvalidSubjectError` for a bad
   * subject, `InvalidCostError` for a bad cost,
   * `TenantNotFoundError` for an unknown tenant, `TenantBackendError` when the store fails.
   */
  consume(tenantId: string, cost?: QuotaCost): Promise<QuotaDecision>
  /**
   * Charges (positive) or refunds (negative) `tokens` in the current windows, after the upstream
   * said what a request really used. Refunds stop at zero. Never denies. With `subject`, the
   * subject's windows change too and are listed after the tenant's. With `decidedAt` (the
   * admission's {@link QuotaDecision.decidedAt}), a refund leaves the windows started since that
   * admission alone: a stream admitted in one minute and settled in the next is refunded from the
   * minute it was charged in (and from the hour, day and month, which it has not left). Throws
   * `InvalidCostError` for tokens that are no whole number or a `decidedAt` that is no finite
   * number.
   */
  adjust(tenantId: string, delta: QuotaAdjustment): Promise<QuotaUsage>
  /**
   * Current usage without consuming anything. With `options.subject`: that subject's windows
   * only (none when no pattern of the tenant's quota matches it).
   */
  peek(tenantId: string, options?: QuotaSubjectOptions): Promise<QuotaUsage>
  /**
   * Forgets all of the tenant's usage in every window, as if it had sent nothing (an operator's
   * reset, audited by `AdminService.resetUsage`), its subjects' included. With `options.subject`,
   * only that subject's usage. Other tenants are untouched. Idempotent.
   * Throws `InvalidTenantIdError` for a bad id and `TenantBackendError` when the store fails.
   * Optional so that stand-ins and older stores still type-check; every store of the toolkit has
   * it, and the `testQuotaManager` conformance suite requires it.
   */
  reset?(tenantId: string, options?: QuotaSubjectOptions): Promise<void>
}
