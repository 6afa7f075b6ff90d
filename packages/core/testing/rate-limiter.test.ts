import { TokenBucketRateLimiter } from '../src/index'
import { testRateLimiter } from './rate-limiter'

testRateLimiter(
  'TokenBucketRateLimiter',
  ({ provider, clock }) => new TokenBucketRateLimiter(provider, { clock }),
)
