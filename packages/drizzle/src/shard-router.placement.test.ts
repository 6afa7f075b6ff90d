// Placement is a function of the shard ids, weights and pins alone: not of the form they come in
// (an object parsed from JSON, a Map, a list in any order), nor of ids that name Object.prototype
// members. Adding then removing a shard puts every tenant back.
import { describe, expect, it } from 'vitest'
import { TenantShardRouter } from './shard-router'

const tenants = Array.from({ length: 3000 }, (_, i) => `t-${i}`)
const protoIds = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__']

describe('TenantShardRouter placement does not depend on how shards and pins are given', () => {
  it('places every tenant the same for Map, object, array and reversed array shards', () => {
    const names = ['eu-1', 'eu-2', '__proto__', 'constructor', '10', '2']
    const obj = JSON.parse(`{${names.map((n) => `"${n}":"${n}-db"`).join(',')}}`) as Record<string, string>
    const a = new TenantShardRouter({ shards: obj })
    const b = new TenantShardRouter({ shards: new Map(names.map((n) => [n, `${n}-db`])) })
    const c = new TenantShardRouter({ shards: names.map((id) => ({ id, shard: `${id}-db` })) })
    const d = new TenantShardRouter({ shards: [...names].reverse().map((id) => ({ id, shard: `${id}-db` })) })
    expect(a.shardIds.sort()).toEqual([...names].sort())
    for (const t of [...tenants, ...protoIds]) {
      const s = c.shardIdFor(t)
      expect(a.shardIdFor(t)).toBe(s)
      expect(b.shardIdFor(t)).toBe(s)
      expect(d.shardIdFor(t)).toBe(s)
      expect(a.shardFor(t)).toBe(`${s}-db`)
      expect(b.shardFor(t)).toBe(`${s}-db`)
    }
  })

  it('honours pins of prototype-named tenants from JSON, a Map and pairs alike', () => {
    const shards = { a: 'A', b: 'B', c: 'C' }
    const pinsJson = JSON.parse(`{${protoIds.map((t) => `"${t}":"c"`).join(',')}}`) as Record<string, string>
    for (const pins of [
      pinsJson,
      new Map(protoIds.map((t) => [t, 'c'] as const)),
      protoIds.map((t) => [t, 'c'] as const),
    ]) {
      const r = new TenantShardRouter({ shards, pins })
      for (const t of protoIds) {
        expect(r.placementFor(t)).toEqual({ tenantId: t, shardId: 'c', source: 'pinned' })
      }
      // A tenant that is not pinned never reads a pin off Object.prototype.
      expect(r.placementFor('acme').source).toBe('hashed')
      expect(r.pins.length).toBe(protoIds.length)
    }
  })

  it('moves only onto an added shard and only off a removed one, and keeps pins', () => {
    const base = new TenantShardRouter({
      shards: ['s1', 's2', 's3'].map((id) => ({ id, shard: id })),
      pins: { 't-5': 's1' },
    })
    const grown = new TenantShardRouter({
      shards: ['s1', 's2', 's3', 's4'].map((id) => ({ id, shard: id })),
      pins: { 't-5': 's1' },
    })
    for (const m of base.planMoves(tenants, grown)) expect(m.to).toBe('s4')
    expect(grown.shardIdFor('t-5')).toBe('s1')
    const live = new TenantShardRouter({ shards: ['s1', 's2', 's3'].map((id) => ({ id, shard: id })) })
    live.addShard({ id: 's4', shard: 's4' })
    live.removeShard('s4')
    for (const t of tenants) expect(live.shardIdFor(t)).toBe(base.hashedShardIdFor(t))
  })

  it('gives the same placement for weight 1 given explicitly and by default', () => {
    const a = new TenantShardRouter({
      shards: [
        { id: 'x', shard: 1 },
        { id: 'y', shard: 2, weight: 3 },
      ],
    })
    const b = new TenantShardRouter({
      shards: [
        { id: 'y', shard: 2, weight: 3 },
        { id: 'x', shard: 1, weight: 1 },
      ],
    })
    for (const t of tenants) expect(a.shardIdFor(t)).toBe(b.shardIdFor(t))
  })
})
