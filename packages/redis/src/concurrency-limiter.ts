import {
  type ConcurrencyDecision,
  type ConcurrencyLease,
  type ConcurrencyLimiter,
  validateMaxInFlight,
} from '@tenant/core'
import { tenantTag } from './keys'
import { LUA_PRELUDE, nowArg } from './lua'
import { wholeNumberOption } from './option-error'
import { type RedisStoreOptions, type ResolvedStoreOptions, resolveStoreOptions } from './options'
import { unexpectedReply } from './quota-state'
import { LuaScript } from './script'

/** Default `leaseTtlMs` of {@link RedisConcurrencyLimiter}: 10 minutes. */
export const DEFAULT_LEASE_TTL_MS = 600_000

/**
 * Takes a slot: the tenant's leases are a ZSET of lease ids scored by their expiry. Expired leases
 * (their process crashed or lost its connection before releasing) are dropped first, then the
 * lease is added if fewer than the cap remain (run again with the same lease id, it admits without
 * adding: the call is idempotent); the set expires with its latest lease, whichever
 * limiter took it. ARGV: now, lease id, maxInFlight, leaseTtlMs.
 * Reply: {admitted 0/1, leases held after}.
 */
export const ACQUIRE_SCRIPT = new LuaScript(`${LUA_PRELUDE}
local now = now_ms(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', fmt(now))
local held = redis.call('ZCARD', KEYS[1])
-- This lease is already held: the same call run twice (a client re-sends a command whose reply a
-- dropped connection lost). It was admitted the first time; counting it against itself would deny
-- the caller and leave its first lease holding a slot nobody releases.
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then return {1, held} end
if held >= tonumber(ARGV[3]) then return {0, held} end
local ttl = tonumber(ARGV[4])
redis.call('ZADD', KEYS[1], fmt(now + ttl), ARGV[2])
-- The set lives as long as its longest lease: limiters sharing the tenant's slots may have
-- different TTLs, and a short one must not expire the others' leases.
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
pexpire(KEYS[1], tonumber(last[2]) - now)
return {1, held + 1}
`)

/** Frees one lease: ZREM of its id, so releasing twice (or after a reset) removes nothing else. ARGV: now, lease id. */
export const RELEASE_SCRIPT = new LuaScript(`${LUA_PRELUDE}
return redis.call('ZREM', KEYS[1], ARGV[2])
`)

/** The leases that have not expired. ARGV: now. */
export const IN_FLIGHT_SCRIPT = new LuaScript(`${LUA_PRELUDE}
local now = now_ms(ARGV[1])
return redis.call('ZCOUNT', KEYS[1], '(' .. fmt(now), '+inf')
`)

/** Drops every lease of the tenant. ARGV: now. */
export const RESET_SCRIPT = new LuaScript(`${LUA_PRELUDE}
return redis.call('DEL', KEYS[1])
`)

/** Options of {@link RedisConcurrencyLimiter}. */
export interface RedisConcurrencyLimiterOptions extends RedisStoreOptions {
  /**
   * Start of every key, inside the Cluster hash tag: `{prefix:tenantId}:c`.
   * @default 'tenant:concurrency'
   */
  prefix?: string
  /**
   * How long a slot stays taken without being released, in ms: the slots of a process that
   * crashed come back after this. Longer than your longest request (a long stream included): a
   * lease that outlives it frees its slot while the request still runs.
   * @default 600000 (10 minutes)
   */
  leaseTtlMs?: number
}

const noop = () => {}

function newLeaseId(): string {
  // Unique across every process sharing the Redis: a lease only ever removes itself.
  return globalThis.crypto.randomUUID()
}

function decodeAcquire(reply: unknown): { admitted: boolean; held: number } {
  if (!Array.isArray(reply) || reply.length !== 2) throw unexpectedReply()
  const held = Number(reply[1])
  if (!Number.isSafeInteger(held)) throw unexpectedReply()
  return { admitted: Number(reply[0]) === 1, held }
}

/**
 * A {@link ConcurrencyLimiter} shared by every instance through Redis: each tenant's slots are a
 * sorted set of lease ids scored by their expiry, taken with one `EVALSHA` per acquire (atomic:
 * concurrent acquires from any number of processes never exceed the cap) and freed with one per
 * release. Leases expire after `leaseTtlMs`, so the slots of a crashed process come back. Shares
 * the package's timeout, queue and fail-mode options; an acquire whose answer came after its
 * caller timed out releases its lease at once.
 *
 * @example
 * ```ts
 * const limiter = new RedisConcurrencyLimiter({ redis, leaseTtlMs: 120_000 })
 * app.use(tenancy({ configManager: configs, concurrency: limiter }))
 * ```
 */
export class RedisConcurrencyLimiter implements ConcurrencyLimiter {
  readonly #options: ResolvedStoreOptions
  readonly #leaseTtlMs: number

  constructor(options: RedisConcurrencyLimiterOptions) {
    this.#options = resolveStoreOptions('RedisConcurrencyLimiter', options, 'tenant:concurrency')
    this.#leaseTtlMs = wholeNumberOption('leaseTtlMs', options.leaseTtlMs, DEFAULT_LEASE_TTL_MS, 1)
  }

  async acquire(tenantId: string, maxInFlight: number): Promise<ConcurrencyDecision> {
    const key = this.#key(tenantId)
    validateMaxInFlight(maxInFlight)
    const { redis, gate, clock, owed } = this.#options
    const id = newLeaseId()
    const rest = [id, String(maxInFlight), String(this.#leaseTtlMs)]
    // The time is read when the command goes out: a call that waited to be sent decides at send time.
    const send = () => ACQUIRE_SCRIPT.run(redis, [key], [nowArg(clock), ...rest])
    const releaseLate = (late: unknown) => {
      try {
        if (!decodeAcquire(late).admitted) return
      } catch {
        return
      }
      gate.track(RELEASE_SCRIPT.run(redis, [key], [nowArg(clock), id]))
    }
    // An acquire whose caller was told it failed may have taken a slot all the same (its reply
    // lost with the connection): the release is owed until it lands. Removing a lease that was
    // never added is harmless, and one added later (a re-send) is released by `late`.
    const failed = () =>
      owed.add(
        tenantId,
        'concurrency release',
        () => RELEASE_SCRIPT.run(redis, [key], [nowArg(clock), id]),
        noop,
      )
    const { admitted, held } = decodeAcquire(
      await gate.run(send, 'concurrency acquire', tenantId, { late: releaseLate, failed }),
    )
    if (!admitted) {
      return {
        allowed: false,
        inFlight: held,
        limit: maxInFlight,
        reason: `${held} requests in flight, the limit is ${maxInFlight}`,
      }
    }
    return { allowed: true, inFlight: held, limit: maxInFlight, lease: this.#lease(tenantId, key, id) }
  }

  async inFlight(tenantId: string): Promise<number> {
    const key = this.#key(tenantId)
    const { redis, gate, clock } = this.#options
    const reply = await gate.run(
      () => IN_FLIGHT_SCRIPT.run(redis, [key], [nowArg(clock)]),
      'concurrency read',
      tenantId,
    )
    const count = Number(reply)
    if (!Number.isSafeInteger(count)) throw unexpectedReply()
    return count
  }

  async reset(tenantId: string): Promise<void> {
    const key = this.#key(tenantId)
    const { redis, gate, clock } = this.#options
    await gate.run(() => RESET_SCRIPT.run(redis, [key], [nowArg(clock)]), 'concurrency reset', tenantId)
  }

  /**
   * Resolves once every command this limiter sent has been answered and every late lease has been
   * released. Call it before closing the client.
   */
  drain(): Promise<void> {
    return this.#options.gate.drain()
  }

  #key(tenantId: string): string {
    return `${tenantTag(this.#options.prefix, tenantId)}:c`
  }

  #lease(tenantId: string, key: string, id: string): ConcurrencyLease {
    const { redis, gate, clock, owed } = this.#options
    const send = () => RELEASE_SCRIPT.run(redis, [key], [nowArg(clock), id])
    let released: Promise<void> | undefined
    return {
      id,
      release: () => {
        // Once per lease object; the ZREM itself is idempotent across objects and processes.
        // A release that failed (not sent: Redis away, the queue full; or sent and not answered)
        // is owed until it lands, as an acquire's is: otherwise a short outage as requests end
        // would hold their slots for leaseTtlMs. The caller still learns of the failure.
        released ??= gate.run(send, 'concurrency release', tenantId).then(
          () => undefined,
          (error: unknown) => {
            owed.add(tenantId, 'concurrency release', send, noop)
            throw error
          },
        )
        return released
      },
    }
  }
}
