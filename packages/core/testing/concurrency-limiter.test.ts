import { InMemoryConcurrencyLimiter, ManualClock } from '../src/index'
import { concurrencyLimiterConformance } from './concurrency-limiter'

concurrencyLimiterConformance('InMemoryConcurrencyLimiter', () => new InMemoryConcurrencyLimiter())

// The lease expiry on a clock the test moves: one clock for every limiter the suite builds.
const clock = new ManualClock(Date.UTC(2026, 0, 1))
concurrencyLimiterConformance(
  'InMemoryConcurrencyLimiter with a 60 s lease',
  () => new InMemoryConcurrencyLimiter({ leaseTtlMs: 60_000, clock }),
  { leaseExpiry: { leaseTtlMs: 60_000, advance: (ms) => clock.advance(ms) } },
)
