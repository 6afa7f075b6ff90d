// TenantQuotaObject on workerd (through Miniflare, like the package's tests in test/): the parts
// whose input is a caller-chosen string that the object looks up in its own state.
import { randomTenantId } from '@tenant/core/testing'
import { describe, expect, it } from 'vitest'
import { useWorkerd } from '../test/workerd'

const workerd = useWorkerd()
const timeout = 30_000

// Names an object literal inherits: an `in` or index lookup on a plain object finds every one.
const INHERITED_NAMES = [
  'toString',
  '__proto__',
  'constructor',
  'valueOf',
  'hasOwnProperty',
  'isPrototypeOf',
  '__defineGetter__',
]

const release = (tenantId: string, leaseId: string) =>
  workerd().send({ kind: 'concurrency', op: 'release', tenantId, leaseId })

describe('TenantQuotaObject concurrency leases', () => {
  it(
    'a release naming an inherited property (toString, __proto__, ...) frees nothing and writes nothing',
    async () => {
      const limiter = workerd().concurrencyLimiter()
      const id = randomTenantId('proto')
      const held = await limiter.acquire(id, 2)
      expect(held).toMatchObject({ allowed: true, inFlight: 1 })
      const before = await workerd().inspect(id)
      for (const leaseId of INHERITED_NAMES) await release(id, leaseId)
      await release(id, 'not-a-lease')
      const after = await workerd().inspect(id)
      expect(after.writes).toBe(before.writes)
      expect(after.deletes).toBe(before.deletes)
      expect(after.keys).toEqual(before.keys)
      expect(await limiter.inFlight(id)).toBe(1)
      // The one real lease still counts: a second acquire fills the cap, a third is refused.
      expect(await limiter.acquire(id, 2)).toMatchObject({ allowed: true, inFlight: 2 })
      expect(await limiter.acquire(id, 2)).toMatchObject({ allowed: false, inFlight: 2 })
      await held.lease!.release()
      expect(await limiter.inFlight(id)).toBe(1)
    },
    timeout,
  )

  it(
    'a release naming an inherited property on a tenant holding nothing leaves it at zero',
    async () => {
      const limiter = workerd().concurrencyLimiter()
      const id = randomTenantId('proto')
      for (const leaseId of INHERITED_NAMES) await release(id, leaseId)
      expect(await limiter.inFlight(id)).toBe(0)
      expect(await workerd().inspect(id)).toMatchObject({ writes: 0, keys: [] })
      // A cap of one still admits exactly one: no phantom slot was created or freed.
      expect(await limiter.acquire(id, 1)).toMatchObject({ allowed: true, inFlight: 1 })
      expect((await limiter.acquire(id, 1)).allowed).toBe(false)
    },
    timeout,
  )

  it(
    'a real release still frees its slot and writes once',
    async () => {
      const limiter = workerd().concurrencyLimiter()
      const id = randomTenantId('lease')
      const first = await limiter.acquire(id, 3)
      await limiter.acquire(id, 3)
      const before = await workerd().inspect(id)
      await first.lease!.release()
      expect((await workerd().inspect(id)).writes).toBe(before.writes + 1)
      expect(await limiter.inFlight(id)).toBe(1)
      await release(id, first.lease!.id)
      expect((await workerd().inspect(id)).writes).toBe(before.writes + 1)
      expect(await limiter.inFlight(id)).toBe(1)
    },
    timeout,
  )
})
