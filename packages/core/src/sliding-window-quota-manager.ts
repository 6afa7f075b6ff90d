import { MemoryQuotaManager } from './algorithms/memory-quota-manager'
import type { SlidingWindowState } from './algorithms/sliding-window'
import { DEFAULT_SLIDING_PRECISION } from './algorithms/sliding-window'
import { slidingWindowLayout } from './algorithms/sliding-window-layout'
import type { Clock } from './clock'
import type { QuotaProvider } from './config'

/** Options of {@link SlidingWindowQuotaManager}. */
export interface SlidingWindowQuotaManagerOptions {
  /**
   * Where the time comes from; windows and `retryAfterMs` are computed from it alone.
   * @default systemClock
   */
  clock?: Clock
  /**
   * Buckets per window: a whole number from 1 to 1000 that divides 60,000. More buckets follow the
   * true sliding count more closely (the error is at most the oldest bucket's share) at the cost of
   * more state per tenant. With 10: 6 s buckets for a minute, 6 min for an hour, 2.4 h for a day,
   * 3 days for a month (a rolling 30 days).
   * @default 10
   */
  precision?: number
}

/**
 * Per-tenant quotas in this process over sliding windows (minute, hour, day, and a rolling 30-day
 * "month"). Each window is `precision` buckets; its count is the newer buckets in full plus the
 * oldest weighted by how much of it the window still covers, so capacity comes back gradually
 * instead of all at once at a calendar boundary. A request is admitted only if `count + cost`
 * fits every limit; then all are charged. Same concurrency and memory guarantees as
 * {@link InMemoryQuotaManager}.
 *
 * @example
 * ```ts
 * const quotas = new SlidingWindowQuotaManager(configs, { precision: 12 })
 * const decision = await quotas.consume('acme', { tokens: 800 })
 * ```
 */
export class SlidingWindowQuotaManager extends MemoryQuotaManager<SlidingWindowState> {
  /** Buckets per window, as validated. */
  readonly precision: number

  constructor(provider: QuotaProvider, options: SlidingWindowQuotaManagerOptions = {}) {
    // Only a missing precision means the default: null and the like are rejected by the layout.
    const precision = options.precision === undefined ? DEFAULT_SLIDING_PRECISION : options.precision
    super(provider, options.clock, slidingWindowLayout(precision))
    this.precision = precision
  }
}
