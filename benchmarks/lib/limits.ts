/**
 * What limits each target when it is missed, found by profiling (`node --cpu-prof`). Printed in
 * BENCHMARKS.md next to a missed target only.
 */
export const LIMITS = {
  consume: 'TODO',
  configLookup: 'TODO',
  chain: 'TODO',
  redis: 'TODO',
  memory: 'TODO',
}
