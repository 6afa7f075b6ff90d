import { ManualClock } from '@tenant/core'
import { describe, expect, it } from 'vitest'
import { inProcessApp, START } from '../../test/in-process'
import { DrizzleResourceStore, newResourceId, RESOURCE_ID_PATTERN } from './resource-store'

describe('newResourceId', () => {
  it('makes ids of the documented shape that sort in time order', () => {
    const ids = [0, 1, 1_000, START, START + 1, 2 ** 48 - 1].map((t) => newResourceId(t))
    for (const id of ids) expect(id).toMatch(RESOURCE_ID_PATTERN)
    expect([...ids].sort()).toEqual(ids)
  })

  it('makes ids of one millisecond in creation order, still unlike each other', () => {
    // A fresh random part in the same millisecond sorted before the last id half the time: a
    // client paging with `after` then never saw the newer resource.
    const ids = Array.from({ length: 1000 }, () => newResourceId(START + 7))
    expect(new Set(ids).size).toBe(1000)
    expect([...ids].sort()).toEqual(ids)
    for (const id of ids) expect(id).toMatch(RESOURCE_ID_PATTERN)
    // The next millisecond starts from a fresh random part, after all of them.
    const next = newResourceId(START + 8)
    expect(next > ids.at(-1)!).toBe(true)
    // The steps are random (1 to 2^40), not +1: an id does not tell the next one.
    const gaps = new Set(ids.slice(1).map((id, i) => decode(id) - decode(ids[i]!)))
    expect(gaps.size).toBeGreaterThan(990)
  })

  it('lists resources created in one millisecond in creation order, and after a cursor all that came later', async () => {
    const { db } = await inProcessApp()
    const s = new DrizzleResourceStore(db, { clock: new ManualClock(START) })
    const created = []
    for (let i = 0; i < 12; i++) created.push((await s.create(acme, { name: `n${i}`, data: {} })).name)
    expect((await s.list(acme, { limit: 100 })).items.map((r) => r.name)).toEqual(created)
    const first = await s.create(acme, { name: 'a', data: {} })
    const second = await s.create(acme, { name: 'b', data: {} })
    expect((await s.list(acme, { limit: 100, after: first.id })).items.map((r) => r.id)).toEqual([second.id])
  })
})

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz'
/** The 80-bit number of an id. */
function decode(id: string): bigint {
  let n = 0n
  for (const char of id.slice(-16)) n = n * 32n + BigInt(ALPHABET.indexOf(char))
  return n
}

const acme = { id: 'acme', createdAt: START }
const globex = { id: 'globex', createdAt: START }

describe('DrizzleResourceStore (libSQL)', () => {
  async function store() {
    const { db } = await inProcessApp()
    const clock = new ManualClock(START)
    return { clock, store: new DrizzleResourceStore(db, { clock }) }
  }

  it("never reads, changes or deletes another tenant's row", async () => {
    const { store: s } = await store()
    const mine = await s.create(acme, { name: 'mine', data: { n: 1 } })
    expect(await s.get(globex, mine.id)).toBeUndefined()
    expect(await s.update(globex, mine.id, { name: 'theirs', data: {} })).toBeUndefined()
    expect(await s.delete(globex, mine.id)).toBe(false)
    expect(await s.list(globex, { limit: 10 })).toEqual({ items: [] })
    expect(await s.get(acme, mine.id)).toEqual(mine)
  })

  it('keeps the rows of the tenants of one id apart: a later tenant of the id sees none of an earlier one', async () => {
    const { store: s } = await store()
    const earlier = { id: 'acme', createdAt: START - 60_000 }
    // Written by a request of the earlier tenant that was still running when the id was reused.
    const late = await s.create(earlier, { name: 'late write', data: {} })
    const mine = await s.create(acme, { name: 'mine', data: {} })
    expect(await s.list(acme, { limit: 10 })).toEqual({ items: [mine] })
    expect(await s.get(acme, late.id)).toBeUndefined()
    expect(await s.update(acme, late.id, { name: 'x', data: {} })).toBeUndefined()
    expect(await s.delete(acme, late.id)).toBe(false)
    expect(await s.get(earlier, mine.id)).toBeUndefined()
    // purge, before an id is given to a new customer, removes the rows of every tenant of the id.
    expect(await s.purge('acme')).toBe(2)
  })

  it('pages in creation order with a cursor', async () => {
    const { clock, store: s } = await store()
    const made = []
    for (let i = 0; i < 5; i++) {
      made.push(await s.create(acme, { name: `r${i}`, data: {} }))
      clock.advance(1)
    }
    const first = await s.list(acme, { limit: 2 })
    expect(first.items.map((r) => r.name)).toEqual(['r0', 'r1'])
    const second = await s.list(acme, { limit: 2, after: first.next! })
    expect(second.items.map((r) => r.name)).toEqual(['r2', 'r3'])
    const last = await s.list(acme, { limit: 2, after: second.next! })
    expect(last).toEqual({ items: [made[4]] })
  })

  it('stamps times from its clock', async () => {
    const { clock, store: s } = await store()
    const created = await s.create(acme, { name: 'x', data: {} })
    clock.advance(60_000)
    const updated = await s.update(acme, created.id, { name: 'y', data: { v: 2 } })
    expect(updated).toEqual({
      id: created.id,
      name: 'y',
      data: { v: 2 },
      createdAt: new Date(START).toISOString(),
      updatedAt: new Date(START + 60_000).toISOString(),
    })
  })

  it('lets an error of its own input through as it is, not as a backend failure (503)', async () => {
    // The routes refuse such data with a 400; a caller that skips them must not fake an outage.
    const { store: s } = await store()
    let data: unknown[] = []
    for (let i = 0; i < 20_000; i++) data = [data]
    const failure = await s.create(acme, { name: 'deep', data: { data } }).catch((error: unknown) => error)
    expect(failure).toBeInstanceOf(RangeError)
    expect(await s.list(acme, { limit: 1 })).toEqual({ items: [] })
  })

  it('refuses an invalid tenant id before touching the database', async () => {
    const { store: s } = await store()
    await expect(s.list({ id: 'not valid!', createdAt: START }, { limit: 1 })).rejects.toMatchObject({
      code: 'tenant_invalid_id',
    })
  })
})
