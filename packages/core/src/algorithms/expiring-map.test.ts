import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ExpiringMap } from './expiring-map'

describe('ExpiringMap', () => {
  it('forgets entries once their expiry has passed, on sweep only', () => {
    const map = new ExpiringMap<number>()
    map.set('a', 1, 100)
    map.set('b', 2, 200)
    map.sweep(99)
    expect(map.size).toBe(2)
    map.sweep(100)
    expect(map.get('a')).toBeUndefined()
    expect(map.get('b')).toBe(2)
    map.sweep(1_000)
    expect(map.size).toBe(0)
  })

  it('reschedules an entry whose expiry moved later, and drops one that moved earlier when due', () => {
    const map = new ExpiringMap<string>()
    map.set('a', 'x', 100)
    map.set('a', 'y', 500)
    map.sweep(100)
    expect(map.get('a')).toBe('y')
    map.sweep(499)
    expect(map.size).toBe(1)
    map.sweep(500)
    expect(map.size).toBe(0)
    map.set('b', 'z', 300)
    map.set('b', 'z', 50)
    map.sweep(299)
    expect(map.size).toBe(1)
    map.sweep(300)
    expect(map.size).toBe(0)
  })

  it('deletes at once and ignores the stale heap slot later, even when the key comes back', () => {
    const map = new ExpiringMap<number>()
    map.set('a', 1, 100)
    map.delete('a')
    map.delete('missing')
    expect(map.size).toBe(0)
    map.set('a', 2, 1_000)
    map.sweep(500)
    expect(map.get('a')).toBe(2)
  })

  it('removes at most the budget per sweep', () => {
    const map = new ExpiringMap<number>(10)
    for (let i = 0; i < 35; i++) map.set(`k${i}`, i, i)
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
          const map = new ExpiringMap<number>(10_000)
          for (const [key, expiresAt] of entries) map.set(String(key), expiresAt, expiresAt)
          map.sweep(now)
          for (const [key, expiresAt] of entries)
            expect(map.get(String(key))).toBe(expiresAt > now ? expiresAt : undefined)
          expect(map.size).toBe(entries.filter(([, e]) => e > now).length)
        },
      ),
    )
  })

  it('never forgets an entry before its latest expiry, however often it moves (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(20), fc.nat(1_000), fc.nat(50)), { maxLength: 300 }), (steps) => {
        const map = new ExpiringMap<number>(7)
        const latest = new Map<string, number>()
        let now = 0
        for (const [key, expiresAt, advance] of steps) {
          now += advance
          map.sweep(now)
          for (const [k, e] of latest) if (e > now) expect(map.get(k)).toBe(e)
          map.set(String(key), now + expiresAt, now + expiresAt)
          latest.set(String(key), now + expiresAt)
        }
      }),
    )
  })
})
