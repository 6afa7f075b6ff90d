import type { QuotaCost, QuotaWindowUsage } from '../quota'
import type { QuotaConfig } from '../schemas'
import type { FixedWindowState } from './fixed-window'
import {
  fixedWindowAdjust,
  fixedWindowConsume,
  fixedWindowExpiresAt,
  fixedWindowPeek,
  fixedWindowRefund,
} from './fixed-window'
import type { SlidingWindowState } from './sliding-window'
import {
  DEFAULT_SLIDING_PRECISION,
  slidingWindowAdjust,
  slidingWindowConsume,
  slidingWindowExpiresAt,
  slidingWindowPeek,
  slidingWindowRefund,
  validatePrecision,
} from './sliding-window'
import type { QuotaCharge, QuotaStep } from './types'

/**
 * One quota algorithm as a set of pure functions over its plain state `S`. A store keeps `S`
 * per tenant (a Map entry, a Durable Object value, a Redis hash mirrored in Lua) and calls these;
 * the in-memory managers are exactly that.
 */
export interface QuotaAlgorithm<S> {
  readonly name: 'fixed' | 'sliding'
  /** Checks and, when every limit admits, charges; the state is unchanged on a denial. */
  consume(state: S | undefined, config: QuotaConfig, cost: QuotaCost | undefined, now: number): QuotaStep<S>
  /**
   * Charges or refunds tokens in the current windows; never denies. A refund given `decidedAt`
   * (its admission's time) leaves the windows (fixed) or buckets (sliding) charged since alone.
   */
  adjust(
    state: S | undefined,
    config: QuotaConfig,
    tokens: number,
    now: number,
    decidedAt?: number,
  ): { usage: QuotaWindowUsage[]; state: S }
  /** Usage without a change. */
  peek(state: S | undefined, config: QuotaConfig, now: number): QuotaWindowUsage[]
  /** From when the state counts nothing and may be dropped; `0` for an empty state. */
  expiresAt(state: S | undefined): number
  /**
   * Takes back an admission `consume` made at `decidedAt` with `config` and `cost`, from the
   * windows (fixed) or buckets (sliding) it charged, if the state still has them; never below
   * zero. `charged` is the admission step's `charged` (what it added to each window: less than
   * the cost where an unlimited count saturated); without it each window loses `cost`. For a
   * store whose caller was told an admitted call failed (its answer was lost).
   */
  refund(
    state: S | undefined,
    config: QuotaConfig,
    cost: QuotaCost | undefined,
    decidedAt: number,
    charged?: QuotaCharge,
  ): S
}

/** Calendar-aligned fixed windows (see `fixedWindowConsume`). */
export const fixedWindowAlgorithm: QuotaAlgorithm<FixedWindowState> = Object.freeze({
  name: 'fixed' as const,
  consume: fixedWindowConsume,
  adjust: fixedWindowAdjust,
  peek: fixedWindowPeek,
  expiresAt: fixedWindowExpiresAt,
  refund: fixedWindowRefund,
})

/**
 * Sliding windows of `precision` buckets each (see `slidingWindowConsume`). Validates `precision`
 * once (throws `InvalidTenantConfigError`).
 *
 * @example
 * ```ts
 * const sliding = slidingWindowAlgorithm(12)
 * const { decision, state } = sliding.consume(saved, config, { tokens: 40 }, now)
 * ```
 */
export function slidingWindowAlgorithm(
  precision: number = DEFAULT_SLIDING_PRECISION,
): QuotaAlgorithm<SlidingWindowState> {
  const p = validatePrecision(precision)
  return Object.freeze({
    name: 'sliding' as const,
    consume: (state, config, cost, now) => slidingWindowConsume(state, config, cost, now, p),
    adjust: (state, config, tokens, now, decidedAt) =>
      slidingWindowAdjust(state, config, tokens, now, p, decidedAt),
    peek: (state, config, now) => slidingWindowPeek(state, config, now, p),
    expiresAt: (state) => slidingWindowExpiresAt(state, p),
    refund: (state, config, cost, decidedAt, charged) =>
      slidingWindowRefund(state, config, cost, decidedAt, p, charged),
  } satisfies QuotaAlgorithm<SlidingWindowState>)
}
