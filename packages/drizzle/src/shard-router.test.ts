import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { isTenantError } from '@tenant/core'
import { describe, expect, it } from 'vitest'
import { hashString, MAX_SHARD_PINS, murmur3, TenantShardRouter } from './shard-router'

const run = promisify(execFile)
const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..')

const TENANT_COUNT = 100_000
const tenants = Array.from({ length: TENANT_COUNT }, (_, i) => `tenant-${i}`)
const ids = (n: number) => Array.from({ length: n }, (_, i) => `shard-${i}`)
const router = (shardIds: string[], pins: Record<string, string> = {}) =>
  new TenantShardRouter({ shards: shardIds.map((id) => ({ id, shard: { name: id } })), pins })

describe('murmur3', () => {
  it('matches the reference MurmurHash3 x86_32 vectors', () => {
    const utf8 = new TextEncoder()
    expect(murmur3(new Uint8Array(0), 0)).toBe(0)
    expect(murmur3(new Uint8Array(0), 1)).toBe(0x514e28b7)
    expect(murmur3(new Uint8Array(0), 0xffffffff)).toBe(0x81f16f39)
    expect(murmur3(new Uint8Array([0, 0, 0, 0]), 0)).toBe(0x2362f9de)
    expect(murmur3(utf8.encode('test'), 0)).toBe(0xba6bd213)
    expect(hashString('Hello, world!')).toBe(0xc0363e43)
    expect(hashString('The quick brown fox jumps over the lazy dog')).toBe(0x2e4ff723)
    expect(hashString('aaa', 0x9747b28c)).toBe(0x283e0130)
    // Multi-byte UTF-8 is hashed as bytes, not UTF-16 code units.
    expect(hashString('é')).toBe(murmur3(new Uint8Array([0xc3, 0xa9])))
  })
})

describe('TenantShardRouter', () => {
  it(`spreads ${TENANT_COUNT} tenants over 8 shards, each within 10% of the mean`, () => {
    const r = router(ids(8))
    const counts = new Map<string, number>()
    for (const t of tenants) counts.set(r.shardIdFor(t), (counts.get(r.shardIdFor(t)) ?? 0) + 1)
    expect(counts.size).toBe(8)
    const mean = TENANT_COUNT / 8
    for (const [, count] of counts) expect(Math.abs(count - mean) / mean).toBeLessThan(0.1)
  })

  it('adding a 9th shard moves at most 1/9 + 2% of tenants, all onto the new shard', () => {
    const before = router(ids(8))
    const after = router(ids(9))
    const moves = before.planMoves(tenants, after)
    expect(moves.length / TENANT_COUNT).toBeLessThanOrEqual(1 / 9 + 0.02)
    expect(moves.length / TENANT_COUNT).toBeGreaterThan(1 / 9 - 0.02)
    expect(new Set(moves.map((m) => m.to))).toEqual(new Set(['shard-8']))
    // addShard on a live router gives the same answers as building it with 9 shards.
    before.addShard({ id: 'shard-8', shard: { name: 'shard-8' } })
    expect(tenants.slice(0, 5000).every((t) => before.shardIdFor(t) === after.shardIdFor(t))).toBe(true)
  })

  it('removing a shard moves only its own tenants', () => {
    const full = router(ids(8))
    const reduced = router(ids(8))
    reduced.removeShard('shard-3')
    const moves = full.planMoves(tenants, reduced)
    expect(moves.length).toBeGreaterThan(0)
    expect(moves.every((m) => m.from === 'shard-3' && m.to !== 'shard-3')).toBe(true)
    const onRemoved = tenants.filter((t) => full.shardIdFor(t) === 'shard-3').length
    expect(moves.length).toBe(onRemoved)
  })

  it('does not depend on the order the shards were added in', () => {
    const a = router(ids(8))
    const b = router(ids(8).reverse())
    expect(tenants.slice(0, 10_000).every((t) => a.shardIdFor(t) === b.shardIdFor(t))).toBe(true)
  })

  it('pins win over the hash, and unpinning returns to the hash', () => {
    const r = router(ids(4), { 'tenant-1': 'shard-0' })
    const hashed = r.hashedShardIdFor('tenant-1')
    expect(r.placementFor('tenant-1')).toEqual({ tenantId: 'tenant-1', shardId: 'shard-0', source: 'pinned' })
    for (const shard of ids(4)) {
      r.pin('tenant-1', shard)
      expect(r.shardIdFor('tenant-1')).toBe(shard)
      expect(r.shardFor('tenant-1')).toEqual({ name: shard })
    }
    expect(r.pins).toEqual([['tenant-1', 'shard-3']])
    expect(r.unpin('tenant-1')).toBe(true)
    expect(r.unpin('tenant-1')).toBe(false)
    expect(r.placementFor('tenant-1')).toEqual({ tenantId: 'tenant-1', shardId: hashed, source: 'hashed' })
  })

  it('gives a weighted shard its share, and raising a weight only attracts tenants', () => {
    const even = new TenantShardRouter({ shards: ids(4).map((id) => ({ id, shard: id })) })
    const weighted = new TenantShardRouter({
      shards: ids(4).map((id) => ({ id, shard: id, weight: id === 'shard-0' ? 2 : 1 })),
    })
    const sample = tenants.slice(0, 50_000)
    const share = sample.filter((t) => weighted.shardIdFor(t) === 'shard-0').length / sample.length
    expect(share).toBeGreaterThan(0.37)
    expect(share).toBeLessThan(0.43) // 2/5
    expect(even.planMoves(sample, weighted).every((m) => m.to === 'shard-0')).toBe(true)
  })

  it('queryTenant runs fn with the shard, and never for a malformed tenant id', async () => {
    const r = router(ids(3), { acme: 'shard-2' })
    const seen = await r.queryTenant('acme', (shard, placement) => ({ shard, placement }))
    expect(seen).toEqual({
      shard: { name: 'shard-2' },
      placement: { tenantId: 'acme', shardId: 'shard-2', source: 'pinned' },
    })
    let called = false
    await expect(
      r.queryTenant('acme/../x', () => {
        called = true
      }),
    ).rejects.toThrowError(expect.objectContaining({ code: 'tenant_invalid_id' }))
    expect(called).toBe(false)
    expect(() => r.shardFor('')).toThrowError(expect.objectContaining({ code: 'tenant_invalid_id' }))
  })

  it('refuses a bad configuration when it is built or changed', () => {
    const bad: (() => unknown)[] = [
      () => new TenantShardRouter({ shards: [] }),
      () => new TenantShardRouter({ shards: {} }),
      () => router(['a', 'a']),
      () => router(['']),
      () => new TenantShardRouter({ shards: [{ id: 'a', shard: 1, weight: 0 }] }),
      () => new TenantShardRouter({ shards: [{ id: 'a', shard: 1, weight: 1.5 }] }),
      () => new TenantShardRouter({ shards: [{ id: 'a', shard: 1, weight: 65 }] }),
      () => router(['a'], { acme: 'nope' }),
      () => router(['a', 'b'], { acme: 'a' }).removeShard('a'),
      () => router(['a']).removeShard('a'),
      () => router(['a']).removeShard('b'),
      () => router(['a']).addShard({ id: 'a', shard: { name: 'a' } }),
      // Malformed options, each a 400 naming what is wrong (a string made one shard per character).
      () => new TenantShardRouter({ shards: 'eu-1' as never }),
      () => new TenantShardRouter({ shards: null as never }),
      () => new TenantShardRouter(undefined as never),
      () => new TenantShardRouter({ shards: [null as never] }),
      () => new TenantShardRouter({ shards: { a: 1 }, pins: null as never }),
      () => new TenantShardRouter({ shards: { a: 1 }, pins: [null as never] }),
      () => new TenantShardRouter({ shards: { a: 1 }, pins: 'acme' as never }),
    ]
    for (const fn of bad) {
      let error: unknown
      try {
        fn()
      } catch (e) {
        error = e
      }
      expect(isTenantError(error), String(fn)).toBe(true)
      expect((error as { code: string }).code).toBe('tenant_invalid_config')
    }
    // A Map of shards (and of pins) is read as the object form is.
    const fromMap = new TenantShardRouter({ shards: new Map([['a', 1]]), pins: new Map([['acme', 'a']]) })
    expect(fromMap.shardIds).toEqual(['a'])
    expect(fromMap.pins).toEqual([['acme', 'a']])
    expect(() => router(['a'], { 'bad id': 'a' })).toThrowError(
      expect.objectContaining({ code: 'tenant_invalid_id' }),
    )
  })

  it(`keeps the pin directory bounded at ${MAX_SHARD_PINS}`, () => {
    const r = router(['a', 'b'])
    for (let i = 0; i < MAX_SHARD_PINS; i++) r.pin(`t${i}`, 'a')
    expect(() => r.pin('one-more', 'b')).toThrowError(
      expect.objectContaining({ code: 'tenant_invalid_config' }),
    )
    r.pin('t0', 'b') // re-pinning an existing tenant is not a new entry
    expect(r.shardIdFor('t0')).toBe('b')
  })

  it('accepts shards as a record and pins as pairs', () => {
    const r = new TenantShardRouter({ shards: { eu: 'db-eu', us: 'db-us' }, pins: [['acme', 'us']] })
    expect(r.shardIds).toEqual(['eu', 'us'])
    expect(r.shardFor('acme')).toBe('db-us')
  })
})

describe('TenantShardRouter on other processes and runtimes', () => {
  const count = 20_000
  const shardList = ids(9).join(',')
  const pins = 'tenant-7=shard-0,tenant-42=shard-8'
  const expected = (() => {
    const r = router(ids(9), { 'tenant-7': 'shard-0', 'tenant-42': 'shard-8' })
    return Array.from({ length: count }, (_, i) => r.shardIdFor(`tenant-${i}`))
  })()
  const script = join(packageDir, 'test', 'shard-assignments.mjs')
  const runtimes: [string, string, string[]][] = [
    ['node', process.execPath, ['--conditions=@tenant/source', '--import', 'tsx', script]],
    ['bun', 'pnpm', ['exec', 'bun', '--conditions=@tenant/source', script]],
    ['deno', 'pnpm', ['exec', 'deno', 'run', '--conditions=@tenant/source', script]],
  ]
  it.each(runtimes)('%s in a separate process gives the same answers', async (runtime, command, args) => {
    const { stdout } = await run(command, [...args, String(count), shardList, pins], {
      cwd: packageDir,
      maxBuffer: 16 * 1024 * 1024,
      env: { ...process.env, NO_COLOR: '1' },
    })
    const result = JSON.parse(stdout.trim().split('\n').pop()!) as { runtime: string; out: string[] }
    expect(result.runtime).toBe(runtime)
    expect(result.out).toEqual(expected)
  })
})

describe('TenantShardRouter seed collisions', () => {
  const shard = (id: string, weight = 1) => ({ id, shard: id, weight })
  const refusal = (make: () => unknown) => {
    try {
      make()
    } catch (error) {
      return error
    }
    throw new Error('expected a refusal')
  }

  it("refuses a shard whose id is the seed of another shard's weight unit, in either order", () => {
    for (const shards of [
      [shard('db', 2), shard('db#1'), shard('other')],
      [shard('db#1'), shard('db', 2), shard('other')],
      [shard('a', 64), shard('a#63')],
    ]) {
      const error = refusal(() => new TenantShardRouter({ shards }))
      expect(isTenantError(error) && error.code).toBe('tenant_invalid_config')
      expect((error as Error).message).toMatch(/same seed as weight unit \d+ of shard/)
    }
    // db#1 is fine next to a db of weight 1 (no unit 1), and db#0 is never a seed.
    expect(
      new TenantShardRouter({ shards: [shard('db'), shard('db#1'), shard('db#0')] }).shardIds,
    ).toHaveLength(3)
  })

  it("leaves the router unchanged after refusing addShard, and frees a removed shard's seeds", () => {
    const r = new TenantShardRouter({ shards: [shard('db', 2), shard('other')] })
    const before = tenants.slice(0, 2000).map((t) => r.shardIdFor(t))
    expect(() => r.addShard(shard('db#1'))).toThrowError(
      expect.objectContaining({ code: 'tenant_invalid_config' }),
    )
    expect(r.shardIds).toEqual(['db', 'other'])
    expect(tenants.slice(0, 2000).map((t) => r.shardIdFor(t))).toEqual(before)
    r.removeShard('db')
    r.addShard(shard('db#1'))
    expect(r.shardIds).toEqual(['other', 'db#1'])
  })

  // Digests of the assignments of tenant-0 ... tenant-19999 computed before the collision check
  // existed: every router without a collision must keep answering exactly the same, since a
  // different answer means moving that tenant's data.
  it('keeps every assignment of routers without a collision exactly as before', () => {
    const digest = (r: TenantShardRouter<unknown>) =>
      createHash('sha256')
        .update(
          tenants
            .slice(0, 20_000)
            .map((t) => r.shardIdFor(t))
            .join('\n'),
        )
        .digest('hex')
    expect(digest(router(ids(9), { 'tenant-7': 'shard-0', 'tenant-42': 'shard-8' }))).toBe(
      'b942456671fde8e8b6c809c78cc94be5b919b9f3af79816f06df4c481257ad49',
    )
    expect(
      digest(
        new TenantShardRouter({
          shards: [shard('db', 2), shard('other'), shard('eu-1', 3), shard('db-2', 64)],
        }),
      ),
    ).toBe('21405d2a4595bde3dbed86125a0f42359aa8acdd82f7e348ce2e2ddcb2260548')
  })
})
