export * from './calendar'
export * from './fixed-window'
export * from './limits'
export * from './quota-algorithm'
export * from './quota-decision'
// Named, so that what the in-memory layout needs from it (flatSlidingResetAt) stays internal.
export {
  DEFAULT_SLIDING_PRECISION,
  MAX_SLIDING_PRECISION,
  type SlidingBucket,
  type SlidingWindowState,
  slidingWindowAdjust,
  slidingWindowConsume,
  slidingWindowExpiresAt,
  slidingWindowPeek,
  slidingWindowRefund,
  validatePrecision,
} from './sliding-window'
export * from './subjects'
export * from './token-bucket'
export * from './types'
