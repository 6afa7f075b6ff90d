import { TenantError, validateTenantId } from '@tenant/core'

// Pure TypeScript on purpose: no Drizzle, no Node APIs, no floating point in the hash path, so
// Node, Bun, Deno and Workers compute the same shard for the same tenant bit for bit.

/** Largest number of pinned tenants a router accepts (the directory is explicit, but bounded). */
export const MAX_SHARD_PINS = 100_000
/** Largest `weight` of one shard (each unit costs one hash per lookup). */
export const MAX_SHARD_WEIGHT = 64

const UTF8 = new TextEncoder()

/**
 * MurmurHash3 (x86, 32-bit) of `bytes` with `seed`, written with `Math.imul` and unsigned shifts
 * so every JavaScript engine returns the same unsigned 32-bit integer.
 *
 * @example
 * ```ts
 * murmur3(new TextEncoder().encode('acme'), 0) // 0x... same on Node, Bun, Deno and Workers
 * ```
 */
export function murmur3(bytes: Uint8Array, seed = 0): number {
  const c1 = 0xcc9e2d51
  const c2 = 0x1b873593
  let h = seed >>> 0
  const len = bytes.length
  const blocks = len & ~3
  for (let i = 0; i < blocks; i += 4) {
    let k = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24)
    k = Math.imul(k, c1)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, c2)
    h ^= k
    h = (h << 13) | (h >>> 19)
    h = (Math.imul(h, 5) + 0xe6546b64) | 0
  }
  let k = 0
  switch (len & 3) {
    // biome-ignore lint/suspicious/noFallthroughSwitchClause: the tail bytes accumulate on purpose
    case 3:
      k ^= bytes[blocks + 2]! << 16
    // biome-ignore lint/suspicious/noFallthroughSwitchClause: see above
    case 2:
      k ^= bytes[blocks + 1]! << 8
    case 1:
      k ^= bytes[blocks]!
      k = Math.imul(k, c1)
      k = (k << 15) | (k >>> 17)
      k = Math.imul(k, c2)
      h ^= k
  }
  h ^= len
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/**
 * MurmurHash3 (x86, 32-bit) of the UTF-8 bytes of `text`.
 *
 * @example
 * ```ts
 * hashString('acme') === hashString('acme') // on every runtime
 * ```
 */
export function hashString(text: string, seed = 0): number {
  return murmur3(UTF8.encode(text), seed)
}

/** One shard of a {@link TenantShardRouter}. */
export interface ShardDefinition<S> {
  /** Stable name of the shard; it is hashed, so renaming a shard moves its tenants. */
  id: string
  /** Whatever the application queries: a Drizzle database, a connection string, a client. */
  shard: S
  /**
   * Relative capacity, a whole number from 1 to 64: a shard of weight 2 gets about twice the
   * tenants of a shard of weight 1.
   * @default 1
   */
  weight?: number
}

/** Options of {@link TenantShardRouter}. */
export interface TenantShardRouterOptions<S> {
  /**
   * The shards, at least one. Ids must be unique and non-empty, and no weight unit may share its
   * seed with another (unit n > 0 of shard `x` is seeded by `x#n`, so `db#1` next to `db` of
   * weight 2 is refused with `tenant_invalid_config`).
   */
  shards: Iterable<ShardDefinition<S>> | ReadonlyMap<string, S> | Record<string, S>
  /**
   * The directory: tenants placed on a named shard regardless of the hash (for example a large
   * tenant moved to its own shard). Every pin must name a configured shard.
   * @default {}
   */
  pins?: Iterable<readonly [tenantId: string, shardId: string]> | Record<string, string>
}

/** Where {@link TenantShardRouter.queryTenant} ran: the tenant, the shard id and why it was chosen. */
export interface ShardPlacement {
  tenantId: string
  shardId: string
  /** `pinned` when the directory decided, `hashed` otherwise. */
  source: 'pinned' | 'hashed'
}

/** A tenant whose shard differs between two routers; see {@link TenantShardRouter.planMoves}. */
export interface ShardMove {
  tenantId: string
  from: string
  to: string
}

interface ShardEntry<S> {
  id: string
  shard: S
  /** One seed per unit of weight, precomputed from the shard id. */
  seeds: Uint32Array
}

function configError(message: string): TenantError {
  return new TenantError('tenant_invalid_config', `shard router: ${message}`)
}

/**
 * Maps tenants to shards by rendezvous (highest-random-weight) hashing, a consistent hashing
 * scheme: each tenant goes to the shard with the highest `murmur3(tenantId, seed(shard))`. Adding
 * a shard moves only the tenants that now score highest on it (about 1/(N+1) of them, all onto the
 * new shard); removing a shard moves only its own tenants. Pinned tenants skip the hash.
 *
 * Shards can be anything (Drizzle databases, connection strings, clients); the router never opens
 * or closes them.
 *
 * @example
 * ```ts
 * const router = new TenantShardRouter({
 *   shards: { 'eu-1': dbEu1, 'eu-2': dbEu2 },
 *   pins: { 'big-customer': 'eu-2' },
 * })
 * const notes = await router.queryTenant('acme', (db) => scoped(db, 'acme').select().from(notesTable))
 * ```
 */
export class TenantShardRouter<S> {
  readonly #shards = new Map<string, ShardEntry<S>>()
  readonly #pins = new Map<string, string>()
  // Every weight unit's seed, with its shard and unit, to refuse a shard whose seed is taken.
  readonly #seedOwners = new Map<number, [shardId: string, unit: number]>()

  constructor(options: TenantShardRouterOptions<S>) {
    if (typeof options !== 'object' || options === null) throw configError('options must be an object')
    const { shards, pins } = options as { shards: unknown; pins: unknown }
    // Not a string (iterable, and Object.entries would make one shard per character), not null.
    if (typeof shards !== 'object' || shards === null) {
      throw configError('shards must be an object of { id: shard }, a Map, or a list of { id, shard }')
    }
    const defs =
      shards instanceof Map
        ? [...shards].map(([id, shard]) => ({ id, shard }))
        : isIterable(shards)
          ? [...shards]
          : Object.entries(shards).map(([id, shard]) => ({ id, shard }))
    if (defs.length === 0) throw configError('at least one shard is required')
    for (const def of defs as ShardDefinition<S>[]) this.addShard(def)
    if (pins === undefined) return
    if (typeof pins !== 'object' || pins === null) {
      throw configError(
        'pins must be an object of { tenantId: shardId }, a Map, or a list of [tenantId, shardId]',
      )
    }
    for (const pair of isIterable(pins) ? pins : Object.entries(pins)) {
      if (!Array.isArray(pair) || pair.length !== 2) {
        throw configError('each pin must be a [tenantId, shardId] pair')
      }
      this.pin(pair[0], pair[1])
    }
  }

  /** The configured shard ids, in the order they were added. */
  get shardIds(): string[] {
    return [...this.#shards.keys()]
  }

  /** The pinned tenants as `[tenantId, shardId]` pairs. */
  get pins(): [string, string][] {
    return [...this.#pins.entries()]
  }

  /** The shard for `tenantId` (validated with `validateTenantId`). */
  shardFor(tenantId: string): S {
    return this.#entry(this.placementFor(tenantId).shardId).shard
  }

  /** The id of the shard for `tenantId`. */
  shardIdFor(tenantId: string): string {
    return this.placementFor(tenantId).shardId
  }

  /** The shard id for `tenantId` and whether a pin or the hash chose it. */
  placementFor(tenantId: string): ShardPlacement {
    validateTenantId(tenantId)
    const pinned = this.#pins.get(tenantId)
    if (pinned !== undefined) return { tenantId, shardId: pinned, source: 'pinned' }
    return { tenantId, shardId: this.hashedShardIdFor(tenantId), source: 'hashed' }
  }

  /** The shard the hash alone picks for `tenantId`, ignoring pins (useful to plan un-pinning). */
  hashedShardIdFor(tenantId: string): string {
    validateTenantId(tenantId)
    const bytes = UTF8.encode(tenantId)
    let bestId = ''
    let bestScore = -1
    for (const entry of this.#shards.values()) {
      for (const seed of entry.seeds) {
        const score = murmur3(bytes, seed)
        // Ties (rare with 32 bits) go to the smaller id so the answer never depends on insertion order.
        if (score > bestScore || (score === bestScore && entry.id < bestId)) {
          bestScore = score
          bestId = entry.id
        }
      }
    }
    return bestId
  }

  /**
   * Runs `fn` with the tenant's shard. The tenant id is validated first, so `fn` never runs for a
   * malformed id.
   *
   * @example
   * ```ts
   * await router.queryTenant(tenantId, (db, { shardId }) => scoped(db, tenantId).select().from(notes))
   * ```
   */
  async queryTenant<R>(
    tenantId: string,
    fn: (shard: S, placement: ShardPlacement) => R | Promise<R>,
  ): Promise<R> {
    const placement = this.placementFor(tenantId)
    return fn(this.#entry(placement.shardId).shard, placement)
  }

  /**
   * Adds a shard. Tenants that now hash to it move there; no other tenant moves. Throws a
   * `tenant_invalid_config` `TenantError` for an empty or duplicate id, a bad weight, or a weight
   * unit whose seed another unit already has (the router is left unchanged).
   */
  addShard(def: ShardDefinition<S>): void {
    if (typeof def !== 'object' || def === null) throw configError('a shard must be an object { id, shard }')
    if (typeof def.id !== 'string' || def.id.length === 0)
      throw configError('a shard id must be a non-empty string')
    if (this.#shards.has(def.id)) throw configError(`duplicate shard id "${def.id}"`)
    const weight = def.weight ?? 1
    if (!Number.isInteger(weight) || weight < 1 || weight > MAX_SHARD_WEIGHT) {
      throw configError(`weight of shard "${def.id}" must be a whole number from 1 to ${MAX_SHARD_WEIGHT}`)
    }
    const seeds = new Uint32Array(weight)
    // Weight unit 0 is seeded by the id alone, so changing a weight from 1 to 2 keeps every tenant
    // the shard already had and only attracts more.
    for (let i = 0; i < weight; i++) seeds[i] = hashString(i === 0 ? def.id : `${def.id}#${i}`)
    // Two units with one seed score every tenant the same, and the tie always goes to the smaller
    // id: the other unit never wins a tenant (a shard "db#1" next to "db" of weight 2 would get
    // none). Changing how seeds are derived would move the tenants of every existing router, so a
    // colliding shard is refused instead; no other router changes.
    const added = new Map<number, number>()
    seeds.forEach((seed, unit) => {
      const taken = this.#seedOwners.get(seed) ?? added.get(seed)
      if (taken !== undefined) {
        const [ownerId, ownerUnit] = typeof taken === 'number' ? [def.id, taken] : taken
        throw configError(
          `weight unit ${unit} of shard "${def.id}" has the same seed as weight unit ${ownerUnit} of shard ` +
            `"${ownerId}" (unit n > 0 of shard "x" is seeded by "x#n"), so one of them would never get a ` +
            'tenant; rename one of the shards',
        )
      }
      added.set(seed, unit)
    })
    for (const [seed, unit] of added) this.#seedOwners.set(seed, [def.id, unit])
    this.#shards.set(def.id, { id: def.id, shard: def.shard, seeds })
  }

  /**
   * Removes a shard; only its tenants move (each to its next-best shard). Refuses while tenants are
   * pinned to it or when it is the last shard.
   */
  removeShard(shardId: string): void {
    this.#entry(shardId)
    if (this.#shards.size === 1) throw configError('cannot remove the last shard')
    for (const [tenantId, pinned] of this.#pins) {
      if (pinned === shardId)
        throw configError(`tenant "${tenantId}" is pinned to shard "${shardId}"; unpin it first`)
    }
    for (const seed of this.#shards.get(shardId)!.seeds) this.#seedOwners.delete(seed)
    this.#shards.delete(shardId)
  }

  /** Pins `tenantId` to `shardId`, overriding the hash. */
  pin(tenantId: string, shardId: string): void {
    validateTenantId(tenantId)
    this.#entry(shardId)
    if (!this.#pins.has(tenantId) && this.#pins.size >= MAX_SHARD_PINS) {
      throw configError(`more than ${MAX_SHARD_PINS} pinned tenants; keep the directory for exceptions`)
    }
    this.#pins.set(tenantId, shardId)
  }

  /** Removes a pin; the tenant goes back to its hashed shard. Returns whether a pin existed. */
  unpin(tenantId: string): boolean {
    return this.#pins.delete(tenantId)
  }

  /**
   * The tenants of `tenantIds` whose shard differs in `next` (for example a copy of this router
   * with one more shard): the data you have to copy before switching.
   */
  planMoves(tenantIds: Iterable<string>, next: TenantShardRouter<unknown>): ShardMove[] {
    const moves: ShardMove[] = []
    for (const tenantId of tenantIds) {
      const from = this.shardIdFor(tenantId)
      const to = next.shardIdFor(tenantId)
      if (from !== to) moves.push({ tenantId, from, to })
    }
    return moves
  }

  #entry(shardId: string): ShardEntry<S> {
    const entry = this.#shards.get(shardId)
    if (entry === undefined) throw configError(`unknown shard "${shardId}"`)
    return entry
  }
}

function isIterable<T>(value: unknown): value is Iterable<T> {
  return typeof value === 'object' && value !== null && Symbol.iterator in value
}
