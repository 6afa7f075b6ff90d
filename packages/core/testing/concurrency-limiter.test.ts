import { InMemoryConcurrencyLimiter } from '../src/index'
import { concurrencyLimiterConformance } from './concurrency-limiter'

concurrencyLimiterConformance('InMemoryConcurrencyLimiter', () => new InMemoryConcurrencyLimiter())
