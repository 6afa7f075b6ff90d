// Core's conformance suites, run through DurableObjectQuotaManager / DurableObjectRateLimiter and
// TenantQuotaObject on workerd: every call below crosses into the runtime and into the tenant's object.
import { ManualClock } from '@tenant/core'
import { concurrencyLimiterConformance, testQuotaManager, testRateLimiter } from '@tenant/core/testing'
import { expect, it } from 'vitest'
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

concurrencyLimiterConformance('DurableObjectConcurrencyLimiter', () => workerd().concurrencyLimiter(), {
  timeout,
})

it(
  'DurableObjectConcurrencyLimiter gives back the slots of a dead Worker once their leases expire',
  async () => {
    const clock = new ManualClock(Date.UTC(2030, 0, 1))
    const limiter = workerd().concurrencyLimiter({ clock, leaseTtlMs: 1_000 })
    const id = `crash-${Math.random().toString(36).slice(2)}`
    await limiter.acquire(id, 2)
    clock.advance(500)
    await limiter.acquire(id, 2)
    expect((await limiter.acquire(id, 2)).allowed).toBe(false)
    clock.advance(500)
    expect(await limiter.inFlight(id)).toBe(1)
    expect(await limiter.acquire(id, 2)).toMatchObject({ allowed: true, inFlight: 2 })
  },
  timeout,
)
