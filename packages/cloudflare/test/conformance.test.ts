// Core's conformance suites, run through DurableObjectQuotaManager / DurableObjectRateLimiter and
// TenantQuotaObject on workerd: every call below crosses into the runtime and into the tenant's object.
import { ManualClock } from '@tenant/core'
import {
  concurrencyLimiterConformance,
  rejectionOf,
  testQuotaManager,
  testRateLimiter,
} from '@tenant/core/testing'
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

it(
  'DurableObjectConcurrencyLimiter releases a slot whose acquire answer was lost, instead of holding it for leaseTtlMs',
  async () => {
    const limiter = workerd().concurrencyLimiter({ leaseTtlMs: 600_000 })
    const id = `lost-${Math.random().toString(36).slice(2)}`
    await limiter.acquire(id, 2)
    await workerd().send({ kind: 'loseAnswer', tenantId: id })
    const error = await rejectionOf(limiter.acquire(id, 2))
    expect(error).toMatchObject({ code: 'tenant_backend_unavailable', status: 503 })
    // The object took the slot before the answer was lost; the limiter released it by its id.
    expect(await limiter.inFlight(id)).toBe(1)
    expect(await limiter.acquire(id, 2)).toMatchObject({ allowed: true, inFlight: 2 })
  },
  timeout,
)

it(
  'TenantQuotaObject takes no slot for an acquire that arrives after its own release',
  async () => {
    // The limiter releases an acquire whose call failed; that acquire may still reach the object
    // later, or arrive again after a normal release. Holding a slot then would keep it taken,
    // with nobody to give it back, for the lease's whole ttl.
    const id = `early-${Math.random().toString(36).slice(2)}`
    const call = (body: Record<string, unknown>) =>
      workerd().send({ kind: 'raw-concurrency', tenantId: id, call: body })
    const acquire = (leaseId: string) => call({ op: 'acquire', maxInFlight: 1, leaseTtlMs: 600_000, leaseId })
    expect(await call({ op: 'release', leaseId: 'lease-a' })).toMatchObject({
      ok: true,
      value: { inFlight: 0 },
    })
    expect(await acquire('lease-a')).toMatchObject({ ok: false })
    expect(await call({ op: 'inFlight' })).toMatchObject({ ok: true, value: { inFlight: 0 } })
    // A lease acquired, released, then acquired again by the same id: the repeat takes nothing.
    expect(await acquire('lease-b')).toMatchObject({ ok: true, value: { allowed: true, inFlight: 1 } })
    expect(await call({ op: 'release', leaseId: 'lease-b' })).toMatchObject({
      ok: true,
      value: { inFlight: 0 },
    })
    expect(await acquire('lease-b')).toMatchObject({ ok: false })
    expect(await acquire('lease-c')).toMatchObject({ ok: true, value: { allowed: true, inFlight: 1 } })
  },
  timeout,
)

it(
  'TenantQuotaObject answers an acquire run twice with the same lease id as the first, holding one slot',
  async () => {
    const id = `twice-${Math.random().toString(36).slice(2)}`
    const acquire = (leaseId: string) =>
      workerd().send({
        kind: 'raw-concurrency',
        tenantId: id,
        call: { op: 'acquire', maxInFlight: 1, leaseTtlMs: 60_000, leaseId },
      })
    expect(await acquire('lease-a')).toMatchObject({
      ok: true,
      value: { allowed: true, inFlight: 1, leaseId: 'lease-a' },
    })
    expect(await acquire('lease-a')).toMatchObject({
      ok: true,
      value: { allowed: true, inFlight: 1, leaseId: 'lease-a' },
    })
    expect(await acquire('lease-b')).toMatchObject({
      ok: true,
      value: { allowed: false, inFlight: 1 },
    })
  },
  timeout,
)
