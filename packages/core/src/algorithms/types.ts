import type { NormalizedCost } from '../cost'
import type { QuotaDecision } from '../quota'
import type { QuotaWindow } from '../schemas'

/**
 * What an admission added to each window of its config: to the counter (fixed) or the bucket
 * (sliding) of its decision time. The cost, except in an unlimited dimension whose count saturated
 * at `MAX_QUOTA_COUNT`, which took only what kept it within the bound. A store that may take the
 * admission back keeps this for the refund (`fixedWindowRefund`, `slidingWindowRefund`), so that the
 * refund removes what the admission added and no more.
 */
export type QuotaCharge = { readonly [W in QuotaWindow]?: NormalizedCost }

/** What a quota algorithm returns: the decision and the state to store (unchanged on a denial). */
export interface QuotaStep<S> {
  decision: QuotaDecision
  state: S
  /** On an admission: what it added to each window (see {@link QuotaCharge}). */
  charged?: QuotaCharge
}
