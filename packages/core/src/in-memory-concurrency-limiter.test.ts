import { describe, expect, it } from 'vitest'
import { ManualClock } from './clock'
import { InMemoryConcurrencyLimiter } from './in-memory-concurrency-limiter'

const START = Date.UTC(2026, 0, 1)

describe('InMemoryConcurrencyLimiter lease expiry', () => {
  it('frees a lease nobody released after 10 minutes by default, measured on its clock', async () => {
    const clock = new ManualClock(START)
    const limiter = new InMemoryConcurrencyLimiter({ clock })
    await limiter.acquire('acme', 1)
    clock.advance(600_000 - 1)
    expect((await limiter.acquire('acme', 1)).allowed).toBe(false)
    clock.advance(1)
    expect(await limiter.acquire('acme', 1)).toMatchObject({ allowed: true, inFlight: 1 })
  })

  it('drops a tenant whose leases all expired, and lets a new tenant in at maxTenants in its place', async () => {
    const clock = new ManualClock(START)
    const limiter = new InMemoryConcurrencyLimiter({ clock, maxTenants: 2, leaseTtlMs: 1_000 })
    await limiter.acquire('a', 1)
    clock.advance(500)
    const b = await limiter.acquire('b', 1)
    await expect(limiter.acquire('c', 1)).rejects.toMatchObject({ code: 'tenant_backend_unavailable' })
    clock.advance(500)
    // a's lease expired: c takes its place; b's still holds.
    expect(await limiter.acquire('c', 1)).toMatchObject({ allowed: true, inFlight: 1 })
    await expect(limiter.acquire('d', 1)).rejects.toMatchObject({ code: 'tenant_backend_unavailable' })
    await b.lease!.release()
    expect(await limiter.acquire('d', 1)).toMatchObject({ allowed: true })
    expect(await limiter.inFlight('a')).toBe(0)
  })

  it('sweeps again after a sweep that emptied it: leaked leases of later tenants expire too', async () => {
    // Before, the sweep that emptied the map left no bound, and no sweep ever ran again: once two
    // more tenants leaked a lease, every new tenant got 503 for good.
    const clock = new ManualClock(START)
    const limiter = new InMemoryConcurrencyLimiter({ clock, maxTenants: 2, leaseTtlMs: 1_000 })
    await limiter.acquire('a', 1)
    await limiter.acquire('b', 1)
    clock.advance(1_000)
    expect((await limiter.acquire('c', 1)).allowed).toBe(true)
    expect((await limiter.acquire('d', 1)).allowed).toBe(true)
    clock.advance(1_000)
    expect(await limiter.acquire('e', 1)).toMatchObject({ allowed: true, inFlight: 1 })
  })

  it('counts only the leases still held when the clock has moved on', async () => {
    const clock = new ManualClock(START)
    const limiter = new InMemoryConcurrencyLimiter({ clock, leaseTtlMs: 100 })
    for (let i = 0; i < 3; i++) {
      await limiter.acquire('acme', 5)
      clock.advance(40)
    }
    // Taken at 0, 40 and 80 ms; at 120 ms the first has expired.
    expect(await limiter.inFlight('acme')).toBe(2)
    clock.advance(60)
    expect(await limiter.inFlight('acme')).toBe(0)
  })

  it('validates leaseTtlMs and clock when built', () => {
    for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '60000']) {
      expect(() => new InMemoryConcurrencyLimiter({ leaseTtlMs: bad as number })).toThrow(
        expect.objectContaining({
          code: 'tenant_invalid_config',
          message: expect.stringMatching(/leaseTtlMs/),
        }),
      )
    }
    expect(() => new InMemoryConcurrencyLimiter({ clock: {} as ManualClock })).toThrow(
      expect.objectContaining({ code: 'tenant_invalid_config', message: expect.stringMatching(/clock/) }),
    )
  })
})
