import type { QuotaDecision } from '../quota'

/** What a quota algorithm returns: the decision and the state to store (unchanged on a denial). */
export interface QuotaStep<S> {
  decision: QuotaDecision
  state: S
}
