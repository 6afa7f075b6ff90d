import { describe, expect, it } from 'vitest'
import { MAX_RECENT_OPS, RECENT_OP_TTL_MS, RecentOps } from './recent-ops'

describe('RecentOps', () => {
  it('remembers an admission or a void for ttlMs of the time it is given, and no longer', () => {
    const ops = new RecentOps<string>(10, 1000)
    ops.remember('a', 'admitted', 0)
    ops.remember('b', undefined, 500)
    expect(ops.get('a', 999)).toEqual({ at: 0, admission: 'admitted' })
    expect(ops.get('b', 999)).toEqual({ at: 500, admission: undefined })
    expect(ops.get('a', 1000)).toBeUndefined()
    expect(ops.get('b', 1499)).toBeDefined()
    expect(ops.get('c', 0)).toBeUndefined()
    // What is too old goes when the next id is remembered: memory does not wait for a lookup.
    ops.remember('c', 'admitted', 1200)
    expect(ops.size).toBe(2)
  })

  it('keeps at most max ids, forgetting the oldest first', () => {
    const ops = new RecentOps<number>(3, 1000)
    for (let i = 0; i < 5; i++) ops.remember(`op-${i}`, i, i)
    expect(ops.size).toBe(3)
    expect(ops.get('op-1', 5)).toBeUndefined()
    expect(ops.get('op-2', 5)).toMatchObject({ admission: 2 })
    expect(ops.get('op-4', 5)).toMatchObject({ admission: 4 })
    // Remembering an id again moves it to the back, as the newest.
    ops.remember('op-2', undefined, 6)
    ops.remember('op-5', 5, 7)
    expect(ops.get('op-3', 7)).toBeUndefined()
    expect(ops.get('op-2', 7)).toEqual({ at: 6, admission: undefined })
  })

  it('defaults to 4096 ids for 60 s', () => {
    expect(MAX_RECENT_OPS).toBe(4096)
    expect(RECENT_OP_TTL_MS).toBe(60_000)
    const ops = new RecentOps<number>()
    for (let i = 0; i < MAX_RECENT_OPS + 10; i++) ops.remember(String(i), i, 0)
    expect(ops.size).toBe(MAX_RECENT_OPS)
  })
})
