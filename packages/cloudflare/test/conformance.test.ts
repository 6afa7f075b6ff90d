// Core's conformance suites, run through DurableObjectQuotaManager / DurableObjectRateLimiter and
// TenantQuotaObject on workerd: every call below crosses into the runtime and into the tenant's object.
import { testQuotaManager, testRateLimiter } from '@tenant/core/testing'
import { useWorkerd } from './workerd'

const workerd = useWorkerd()

const timeout = 30_000

testQuotaManager(
  'DurableObjectQuotaManager (fixed)',
  ({ provider, clock }) => workerd().quotaManager(provider, { clock }),
  { algorithm: 'fixed', timeout },
)

testQuotaManager(
  'DurableObjectQuotaManager (sliding)',
  ({ provider, clock }) => workerd().quotaManager(provider, { clock, algorithm: 'sliding' }),
  { algorithm: 'sliding', timeout },
)

testRateLimiter(
  'DurableObjectRateLimiter',
  ({ provider, clock }) => workerd().rateLimiter(provider, { clock }),
  { timeout },
)
