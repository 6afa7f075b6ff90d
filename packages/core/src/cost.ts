import { describeValue } from './describe-value'
import { InvalidCostError } from './errors'
import type { QuotaCost } from './quota'

/** A validated request cost: both dimensions present, whole numbers >= 0. */
export interface NormalizedCost {
  requests: number
  tokens: number
}

/**
 * Validates one cost amount: a safe whole number >= 0, or `undefined` for `fallback`.
 * Throws {@link InvalidCostError} for anything else (negative, fractional, NaN, Infinity, a string),
 * so a bad cost can never turn into a credit.
 *
 * @example
 * ```ts
 * costAmount(undefined, 'cost', 1) // 1
 * costAmount(-1, 'cost', 1) // throws InvalidCostError
 * ```
 */
export function costAmount(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidCostError(`${name} must be a whole number >= 0, got ${describeValue(value)}`)
  }
  // `+ 0` turns -0 into 0 so that no store ever serialises "-0".
  return value + 0
}

/**
 * Validates a quota cost and fills in the defaults: `requests` 1, `tokens` 0.
 * Throws {@link InvalidCostError} for a negative, fractional or non-numeric amount, or a cost that
 * is not an object.
 *
 * @example
 * ```ts
 * normalizeCost() // { requests: 1, tokens: 0 }
 * normalizeCost({ tokens: 250 }) // { requests: 1, tokens: 250 }
 * normalizeCost({ tokens: -5 }) // throws InvalidCostError
 * ```
 */
export function normalizeCost(cost?: QuotaCost): NormalizedCost {
  if (cost === undefined) return { requests: 1, tokens: 0 }
  if (typeof cost !== 'object' || cost === null || Array.isArray(cost)) {
    throw new InvalidCostError(`cost must be an object like { requests, tokens }, got ${describeValue(cost)}`)
  }
  return {
    requests: costAmount(cost.requests, 'cost.requests', 1),
    tokens: costAmount(cost.tokens, 'cost.tokens', 0),
  }
}

/**
 * Validates the token delta of `QuotaManager.adjust`: a safe whole number, negative for a refund.
 * Throws {@link InvalidCostError} otherwise (a missing `tokens` included).
 *
 * @example
 * ```ts
 * normalizeTokenDelta({ tokens: -120 }) // -120 (a refund)
 * normalizeTokenDelta({ tokens: 1.5 }) // throws InvalidCostError
 * ```
 */
export function normalizeTokenDelta(delta: { tokens: number }): number {
  if (typeof delta !== 'object' || delta === null) {
    throw new InvalidCostError(`adjust expects { tokens }, got ${describeValue(delta)}`)
  }
  const tokens: unknown = delta.tokens
  if (typeof tokens !== 'number' || !Number.isSafeInteger(tokens)) {
    throw new InvalidCostError(
      `adjust tokens must be a whole number (negative to refund), got ${describeValue(tokens)}`,
    )
  }
  return tokens + 0
}

/**
 * Validates the `decidedAt` of `QuotaManager.adjust` (see `QuotaAdjustment`): absent, or a finite
 * number (ms since the epoch on the store's clock, as a decision's `decidedAt` is: a `Clock` may
 * answer fractions of a ms). Call it after {@link normalizeTokenDelta}, which checks that `delta`
 * is an object. Throws {@link InvalidCostError} otherwise.
 *
 * @example
 * ```ts
 * normalizeDecidedAt({ tokens: -120, decidedAt: decision.decidedAt }) // decision.decidedAt
 * normalizeDecidedAt({ tokens: -120, decidedAt: '1700000000000' }) // throws InvalidCostError
 * ```
 */
export function normalizeDecidedAt(delta: { decidedAt?: number }): number | undefined {
  const at: unknown = delta.decidedAt
  if (at === undefined) return undefined
  if (typeof at !== 'number' || !Number.isFinite(at)) {
    throw new InvalidCostError(
      `adjust decidedAt must be a decision's decidedAt (ms since the epoch), got ${describeValue(at)}`,
    )
  }
  return at + 0
}
