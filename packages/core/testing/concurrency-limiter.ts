import type { ConcurrencyLimiter } from '@tenant/core'
import { describe, expect, it } from 'vitest'
import { randomTenantId, rejectionOf } from './quota-manager'

/** Builds the concurrency limiter under test; called once per test. */
export type ConcurrencyLimiterFactory = () => ConcurrencyLimiter | Promise<ConcurrencyLimiter>

/** Options of {@link concurrencyLimiterConformance}. */
export interface ConcurrencyLimiterSuiteOptions {
  /**
   * Per-test timeout in ms (networked stores: Redis, Durable Objects).
   * @default 5000
   */
  timeout?: number
  /**
   * Runs the lease-expiry case: `leaseTtlMs` is the TTL the factory's limiters were built with, and
   * `advance(ms)` moves the clock they read (a `ManualClock`, or the store's own test clock).
   * @default undefined (the case is skipped)
   */
  leaseExpiry?: { leaseTtlMs: number; advance(ms: number): void | Promise<void> }
}

/**
 * The conformance suite every `ConcurrencyLimiter` runs (in-memory, Redis, Durable Objects): the
 * cap is enforced, a release frees a slot, a second release is a no-op that never frees another
 * request's slot, tenants are independent, 200 concurrent acquires never exceed the cap, `reset`
 * frees every slot (and makes the old leases harmless), `inFlight` reads the count, and bad input
 * throws typed errors; with `leaseExpiry`, a lease not released within its TTL frees its slot.
 * Each test uses new random tenant ids.
 *
 * @example
 * ```ts
 * import { concurrencyLimiterConformance } from '@tenant/core/testing'
 * concurrencyLimiterConformance('RedisConcurrencyLimiter', () => new RedisConcurrencyLimiter({ redis }))
 * ```
 */
export function concurrencyLimiterConformance(
  name: string,
  factory: ConcurrencyLimiterFactory,
  options: ConcurrencyLimiterSuiteOptions = {},
): void {
  const timeout = options.timeout ?? 5_000

  describe(`${name} (ConcurrencyLimiter conformance)`, () => {
    it(
      'admits up to maxInFlight, then denies with the count and the limit',
      async () => {
        const limiter = await factory()
        const id = randomTenantId('cc')
        const counts: number[] = []
        for (let i = 0; i < 3; i++) {
          const decision = await limiter.acquire(id, 3)
          expect(decision).toMatchObject({ allowed: true, limit: 3 })
          expect(decision.lease).toBeDefined()
          counts.push(decision.inFlight)
        }
        expect(counts).toEqual([1, 2, 3])
        const denial = await limiter.acquire(id, 3)
        expect(denial).toMatchObject({ allowed: false, inFlight: 3, limit: 3 })
        expect(denial.lease).toBeUndefined()
        expect(denial.reason).toMatch(/in flight/)
        // A lower cap than the slots held (a plan change) denies too; a higher one admits.
        expect((await limiter.acquire(id, 2)).allowed).toBe(false)
        expect(await limiter.acquire(id, 4)).toMatchObject({ allowed: true, inFlight: 4 })
      },
      timeout,
    )

    it(
      'a release frees exactly one slot',
      async () => {
        const limiter = await factory()
        const id = randomTenantId('cc')
        const first = await limiter.acquire(id, 2)
        await limiter.acquire(id, 2)
        expect((await limiter.acquire(id, 2)).allowed).toBe(false)
        await first.lease!.release()
        expect(await limiter.inFlight(id)).toBe(1)
        expect(await limiter.acquire(id, 2)).toMatchObject({ allowed: true, inFlight: 2 })
        expect((await limiter.acquire(id, 2)).allowed).toBe(false)
      },
      timeout,
    )

    it(
      'a second release is a no-op: it never frees a slot another request holds',
      async () => {
        const limiter = await factory()
        const id = randomTenantId('cc')
        const a = await limiter.acquire(id, 2)
        const b = await limiter.acquire(id, 2)
        await a.lease!.release()
        await a.lease!.release()
        expect(await limiter.inFlight(id)).toBe(1)
        const c = await limiter.acquire(id, 2)
        expect(c.allowed).toBe(true)
        // Releasing `a` again while b and c hold the two slots must leave both held.
        await Promise.all([a.lease!.release(), a.lease!.release()])
        expect(await limiter.inFlight(id)).toBe(2)
        expect((await limiter.acquire(id, 2)).allowed).toBe(false)
        expect(a.lease!.id).not.toBe(b.lease!.id)
        expect(c.lease!.id).not.toBe(b.lease!.id)
      },
      timeout,
    )

    it(
      'tenants are independent',
      async () => {
        const limiter = await factory()
        const one = randomTenantId('cc')
        const two = randomTenantId('cc')
        const held = await limiter.acquire(one, 1)
        expect((await limiter.acquire(one, 1)).allowed).toBe(false)
        expect(await limiter.acquire(two, 1)).toMatchObject({ allowed: true, inFlight: 1 })
        expect(await limiter.inFlight(two)).toBe(1)
        await held.lease!.release()
        expect(await limiter.inFlight(one)).toBe(0)
        expect(await limiter.inFlight(two)).toBe(1)
      },
      timeout,
    )

    it(
      '200 concurrent acquires never admit more than the cap',
      async () => {
        const limiter = await factory()
        const id = randomTenantId('cc')
        const decisions = await Promise.all(Array.from({ length: 200 }, () => limiter.acquire(id, 7)))
        const admitted = decisions.filter((d) => d.allowed)
        expect(admitted).toHaveLength(7)
        expect(new Set(admitted.map((d) => d.lease!.id)).size).toBe(7)
        for (const d of decisions) expect(d.inFlight).toBeLessThanOrEqual(7)
        expect(await limiter.inFlight(id)).toBe(7)
        await Promise.all(admitted.map((d) => d.lease!.release()))
        expect(await limiter.inFlight(id)).toBe(0)
      },
      timeout * 2,
    )

    it(
      'reset frees every slot, and leases from before it release nothing',
      async () => {
        const limiter = await factory()
        const id = randomTenantId('cc')
        const old = await limiter.acquire(id, 2)
        await limiter.acquire(id, 2)
        await limiter.reset(id)
        expect(await limiter.inFlight(id)).toBe(0)
        const fresh = await limiter.acquire(id, 2)
        await limiter.acquire(id, 2)
        await old.lease!.release()
        expect(await limiter.inFlight(id)).toBe(2)
        await fresh.lease!.release()
        expect(await limiter.inFlight(id)).toBe(1)
        // A tenant with nothing in flight resets to the same nothing.
        await limiter.reset(randomTenantId('cc'))
      },
      timeout,
    )

    it(
      'inFlight reads the count without taking a slot',
      async () => {
        const limiter = await factory()
        const id = randomTenantId('cc')
        expect(await limiter.inFlight(id)).toBe(0)
        await limiter.acquire(id, 5)
        await limiter.acquire(id, 5)
        expect(await limiter.inFlight(id)).toBe(2)
        expect(await limiter.inFlight(id)).toBe(2)
      },
      timeout,
    )

    const expiry = options.leaseExpiry
    // Only where the clock can be moved: without it the case is not registered at all.
    if (expiry !== undefined)
      it(
        'a lease not released within leaseTtlMs frees its slot, and releasing it later frees nothing',
        async () => {
          const { leaseTtlMs, advance } = expiry
          const limiter = await factory()
          const id = randomTenantId('cc')
          const lost = await limiter.acquire(id, 2)
          await advance(leaseTtlMs - 1)
          const young = await limiter.acquire(id, 2)
          // One ms before its expiry the lost lease still holds its slot.
          expect((await limiter.acquire(id, 2)).allowed).toBe(false)
          await advance(1)
          expect(await limiter.inFlight(id)).toBe(1)
          expect(await limiter.acquire(id, 2)).toMatchObject({ allowed: true, inFlight: 2 })
          // The expired lease's release frees nothing of the two now held.
          await lost.lease!.release()
          expect(await limiter.inFlight(id)).toBe(2)
          await young.lease!.release()
          expect(await limiter.inFlight(id)).toBe(1)
          // Expiry is measured from each acquire: the one taken last is still held a TTL later, less 1 ms.
          await advance(leaseTtlMs - 1)
          expect(await limiter.inFlight(id)).toBe(1)
          await advance(1)
          expect(await limiter.inFlight(id)).toBe(0)
        },
        timeout,
      )

    it(
      'refuses bad input with typed errors and takes nothing',
      async () => {
        const limiter = await factory()
        const id = randomTenantId('cc')
        for (const bad of [0, -1, 1.5, Number.NaN, 100_001, '3' as unknown as number, Object.create(null)]) {
          const error = await rejectionOf(limiter.acquire(id, bad))
          expect(error).toMatchObject({ code: 'tenant_invalid_config', status: 400 })
        }
        for (const badId of ['', 'a b', 'x'.repeat(256)]) {
          expect(await rejectionOf(limiter.acquire(badId, 1))).toMatchObject({ code: 'tenant_invalid_id' })
          expect(await rejectionOf(limiter.inFlight(badId))).toMatchObject({ code: 'tenant_invalid_id' })
          expect(await rejectionOf(limiter.reset(badId))).toMatchObject({ code: 'tenant_invalid_id' })
        }
        expect(await limiter.inFlight(id)).toBe(0)
      },
      timeout,
    )
  })
}
