import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { ExpiringEntry } from './expiring-map'
import { ExpiringMap, SecondsSinceBase } from './expiring-map'

/** A test entry: the key and a value to check that the right object is held. */
class Entry implements ExpiringEntry {
  heapAt = 0
  constructor(
    readonly key: string,
    public value: number,
    public expiresAt: number,
  ) {}
}

const expiry = (entry: Entry) => entry.expiresAt

/** Adds `key` or moves its expiry, as the managers do. */
function put(map: ExpiringMap<Entry>, key: string, value: number, expiresAt: number): void {
  const entry = map.get(key)
  if (entry === undefined) {
    map.add(new Entry(key, value, expiresAt), expiresAt)
  } else {
    entry.value = value
    entry.expiresAt = expiresAt
  }
}
const held = (map: ExpiringMap<Entry>, key: string) => map.get(key)?.value

describe('ExpiringMap', () => {
  it('forgets entries once their expiry has passed, on sweep only', () => {
    const map = new ExpiringMap<Entry>(expiry)
    put(map, 'a', 1, 100)
    put(map, 'b', 2, 200)
    map.sweep(100 - 1)
    expect(map.size).toBe(2)
    map.sweep(100)
    expect(map.get('a')).toBeUndefined()
    expect(held(map, 'b')).toBe(2)
    map.sweep(1_000)
    expect(map.size).toBe(0)
  })

  it('reschedules an entry whose expiry moved later, and drops one that moved earlier when due', () => {
    const map = new ExpiringMap<Entry>(expiry)
    put(map, 'a', 1, 100)
    put(map, 'a', 2, 500)
    map.sweep(100)
    expect(held(map, 'a')).toBe(2)
    map.sweep(500 - 1)
    expect(map.size).toBe(1)
    map.sweep(500)
    expect(map.size).toBe(0)
    put(map, 'b', 3, 300)
    put(map, 'b', 3, 50)
    map.sweep(300 - 1)
    expect(map.size).toBe(1)
    map.sweep(300)
    expect(map.size).toBe(0)
  })

  it('deletes at once and ignores the stale heap slot later, even when the key comes back', () => {
    const map = new ExpiringMap<Entry>(expiry)
    put(map, 'a', 1, 100)
    map.delete('a')
    map.delete('missing')
    expect(map.size).toBe(0)
    put(map, 'a', 2, 1_000)
    map.sweep(500)
    expect(held(map, 'a')).toBe(2)
  })

  it('keeps the slots of deleted entries bounded by the live ones, however often a key comes back', () => {
    // A tenant reset in a loop: each reset deletes its entry, each request adds it back, and the
    // old slots' time (a month away) never comes in the meantime.
    const map = new ExpiringMap<Entry>(expiry)
    put(map, 'other', 0, 1e9)
    for (let i = 0; i < 100_000; i++) {
      map.delete('acme')
      put(map, 'acme', i, 1e9)
      expect(map.slots).toBeLessThanOrEqual(2 * 2 + 2 * 1024)
    }
    expect(map.size).toBe(2)
    expect(held(map, 'acme')).toBe(99_999)
    expect(held(map, 'other')).toBe(0)
    // The entries still expire, and the heap empties.
    map.sweep(1e9)
    expect(map.size).toBe(0)
    expect(map.slots).toBe(0)
  })

  it('agrees with a plain map under random adds, deletes, moves and sweeps, with bounded slots (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('put', 'delete', 'sweep'), fc.nat(30), fc.nat(2_000)), {
          maxLength: 3_000,
        }),
        (steps) => {
          const map = new ExpiringMap<Entry>(expiry, 5)
          const model = new Map<string, number>()
          let now = 0
          for (const [op, key, at] of steps) {
            const k = String(key)
            if (op === 'put') {
              put(map, k, now + at, now + at)
              // put() moves an existing entry's expiry to what it is given, earlier or later.
              model.set(k, now + at)
            } else if (op === 'delete') {
              map.delete(k)
              model.delete(k)
            } else {
              now += at % 50
              map.sweep(now)
            }
            // Never forgets a live entry early; holds nothing the model does not.
            for (const [mk, e] of model) if (e > now) expect(held(map, mk)).toBe(e)
            for (const entry of map.values()) expect(model.has(entry.key)).toBe(true)
            expect(map.slots).toBeLessThanOrEqual(2 * map.size + 2 * 1024)
          }
        },
      ),
      { numRuns: 50 },
    )
  })

  it('removes at most the budget per sweep', () => {
    const map = new ExpiringMap<Entry>(expiry, 10)
    for (let i = 0; i < 35; i++) put(map, `k${i}`, i, i)
    map.sweep(1_000)
    expect(map.size).toBe(25)
    map.sweep(1_000)
    map.sweep(1_000)
    map.sweep(1_000)
    expect(map.size).toBe(0)
  })

  it('removes exactly the expired entries, in any insertion order (property)', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(fc.nat(300), fc.nat(1_000)), { selector: (e) => e[0], maxLength: 200 }),
        fc.nat(1_000),
        (entries, now) => {
          const map = new ExpiringMap<Entry>(expiry, 10_000)
          for (const [key, expiresAt] of entries) put(map, String(key), expiresAt, expiresAt)
          map.sweep(now)
          for (const [key, expiresAt] of entries)
            expect(held(map, String(key))).toBe(expiresAt > now ? expiresAt : undefined)
          expect(map.size).toBe(entries.filter(([, e]) => e > now).length)
        },
      ),
    )
  })

  it('never forgets an entry before its latest expiry, however often it moves (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(20), fc.nat(1_000), fc.nat(50)), { maxLength: 300 }), (steps) => {
        const map = new ExpiringMap<Entry>(expiry, 7)
        const latest = new Map<string, number>()
        let now = 0
        for (const [key, expiresAt, advance] of steps) {
          now += advance
          map.sweep(now)
          for (const [k, e] of latest) if (e > now) expect(held(map, k)).toBe(e)
          put(map, String(key), now + expiresAt, now + expiresAt)
          latest.set(String(key), now + expiresAt)
        }
      }),
    )
  })
})

describe('SecondsSinceBase', () => {
  const t0 = Date.UTC(2030, 0, 1, 12, 0, 0, 400)

  it('rounds expiries up and now down, so an entry is never due before its expiry', () => {
    const seconds = new SecondsSinceBase()
    const base = seconds.expiry(t0) // the base is t0's whole second
    expect(base).toBe(1)
    expect(seconds.expiry(t0 + 600)).toBe(1)
    expect(seconds.now(t0 + 599)).toBe(0)
    expect(seconds.now(t0 + 600)).toBe(1)
    // A whole-second expiry (a window's end) is due at exactly that instant.
    expect(seconds.expiry(t0 + 59_600)).toBe(60)
    expect(seconds.now(t0 + 59_599)).toBe(59)
    expect(seconds.now(t0 + 59_600)).toBe(60)
  })

  it('stays a small integer for times long past, decades ahead and just before the base', () => {
    const seconds = new SecondsSinceBase()
    seconds.expiry(t0)
    const values = [
      seconds.expiry(0),
      seconds.expiry(t0 + 100 * 365 * 86_400_000),
      seconds.expiry(t0 - 401),
      seconds.now(t0 + 100 * 365 * 86_400_000),
    ]
    for (const v of values)
      expect(Number.isSafeInteger(v) && Math.abs(v) < 2 ** 30 && !Object.is(v, -0)).toBe(true)
    // Decades ahead is never due; long past is due at once.
    expect(values[3]!).toBeLessThan(values[1]!)
    expect(values[0]!).toBeLessThanOrEqual(seconds.now(t0))
    expect(values[2]).toBe(0)
  })

  it('never makes an entry due before its expiry in ms (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -1e9, max: 1e12 }),
        fc.integer({ min: -1e9, max: 1e12 }),
        (expiry, now) => {
          const seconds = new SecondsSinceBase()
          seconds.expiry(t0)
          if (seconds.expiry(t0 + expiry) <= seconds.now(t0 + now)) expect(expiry).toBeLessThanOrEqual(now)
        },
      ),
    )
  })
})

describe('ExpiringMap.evictEarliest', () => {
  it('forgets the live entry filed earliest, skipping deleted slots', () => {
    const map = new ExpiringMap<Entry>(expiry)
    put(map, 'a', 1, 100)
    put(map, 'b', 2, 50)
    put(map, 'c', 3, 200)
    map.delete('b')
    expect(map.evictEarliest(0)?.key).toBe('a')
    expect(map.size).toBe(1)
    expect([...map.values()].map((e) => e.key)).toEqual(['c'])
    expect(map.evictEarliest(0)?.key).toBe('c')
    expect(map.evictEarliest(0)).toBeUndefined()
  })

  it('forgets the entry that expires first, not one filed early whose expiry moved later in place', () => {
    const map = new ExpiringMap<Entry>(expiry)
    put(map, 'a', 1, 100)
    put(map, 'b', 2, 150)
    // Changed in place: still filed at 100, expires at 300.
    put(map, 'a', 1, 300)
    expect(map.evictEarliest(50)?.key).toBe('b')
    expect([...map.values()].map((e) => e.key)).toEqual(['a'])
    expect(map.evictEarliest(50)?.key).toBe('a')
  })
})
