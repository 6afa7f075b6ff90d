import {
  type CacheStore,
  findNonJsonValue,
  invalidOption,
  isValidTenantId,
  storableTextProblem,
  TenantBackendError,
  tenantCachePrefixProblem,
  tenantOfCacheKey,
  validateCacheTtl,
} from '@tenant/core'
import { LUA_PRELUDE, MAX_TTL_MS, nowArg } from './lua'
import { optionError, wholeNumberOption } from './option-error'
import { type RedisStoreOptions, type ResolvedStoreOptions, resolveStoreOptions } from './options'
import { LuaScript } from './script'

/** Turns cache values into Redis strings and back. */
export interface CacheSerializer<V> {
  /** Turns a value into the string stored in Redis. */
  serialize(value: V): string
  /** Turns a stored string back into the value. */
  deserialize(text: string): V
}

/** Options of {@link RedisTenantCacheStore}. */
export interface RedisTenantCacheStoreOptions<V> extends RedisStoreOptions {
  /**
   * Start of every Redis key this store writes, inside the Cluster hash tag:
   * `{prefix:tenantId}:h` and `{prefix:tenantId}:x`. Two caches must not share one: give each
   * store its own.
   * @default 'tenant:cache'; with another `tenantCachePrefix`, 'tenant:cache:' and a hash of it
   */
  prefix?: string
  /**
   * The `prefix` of the `TenantCache` using this store. Keys of the form
   * `tenantCachePrefix + '{' + tenantId + '}:' + key` are grouped per tenant (one Cluster slot,
   * and `clear(tenantId)` deletes two Redis keys); any other key goes to a shared group. A
   * `TenantCache` with another prefix refuses the store when it is built (its tenants would share
   * one group); use one store, with its own `prefix`, per cache.
   * @default 'tenant:' (TenantCache's default)
   */
  tenantCachePrefix?: string
  /**
   * TTL of entries set without one. Every entry expires, and no expiry is later than 10 years
   * (`MAX_TTL_MS`): a longer TTL is cut to that.
   * @default 3600000 (one hour)
   */
  ttlMs?: number
  /**
   * The most entries one tenant's group (and the shared group) holds. A new key in a full group
   * evicts the entries that expire first, so one tenant's writes bound its own memory and no one
   * else's.
   * @default 10000
   */
  maxEntriesPerTenant?: number
  /**
   * The most bytes a value may take once serialized (UTF-8). A larger one is refused with
   * `InvalidTenantConfigError` before anything is sent. At most 512 MiB, Redis's own bound.
   * @default 1048576 (1 MiB)
   */
  maxValueBytes?: number
  /**
   * How values become Redis strings. The default is JSON, and refuses values that JSON would
   * change (`Date`, `Map`, `undefined` inside objects, ...) with a `TypeError`.
   * @default JSON
   */
  serializer?: CacheSerializer<V>
}

/** Default {@link RedisTenantCacheStoreOptions.ttlMs}: one hour. */
export const DEFAULT_CACHE_TTL_MS = 3_600_000

/**
 * The default `prefix` of a store for `tenantCachePrefix`. A store's groups are named by its
 * `prefix` and the tenant alone, so two caches on one prefix would share every tenant's group
 * (clearing a tenant in one would empty it in the other): a store for another `TenantCache` prefix
 * gets a default of its own, `tenant:cache:` and that prefix written in the store prefix's
 * characters, one to one (letters, digits, `:`, `.` and `-` as they are, `_` as `__`, any other
 * UTF-16 unit as `_` and four hex digits), so two TenantCache prefixes never share one. A
 * TenantCache prefix that does not fit in 128 characters so has no default: `undefined`.
 */
function defaultCachePrefix(tenantCachePrefix: string): string | undefined {
  if (tenantCachePrefix === 'tenant:') return 'tenant:cache'
  let encoded = 'tenant:cache:'
  for (let i = 0; i < tenantCachePrefix.length && encoded.length <= MAX_PREFIX_LENGTH; i++) {
    const char = tenantCachePrefix[i]!
    if (/[A-Za-z0-9:.-]/.test(char)) encoded += char
    else if (char === '_') encoded += '__'
    else encoded += `_${char.charCodeAt(0).toString(16).padStart(4, '0')}`
  }
  return encoded.length <= MAX_PREFIX_LENGTH ? encoded : undefined
}

// The longest store prefix (see validatePrefix).
const MAX_PREFIX_LENGTH = 128

/** Default {@link RedisTenantCacheStoreOptions.maxValueBytes}: 1 MiB. */
export const DEFAULT_CACHE_VALUE_BYTES = 1_048_576

// Redis refuses strings longer than this.
const MAX_CACHE_VALUE_BYTES = 512 * 1_048_576

const utf8 = new TextEncoder()

/** Default {@link RedisTenantCacheStoreOptions.maxEntriesPerTenant}. */
export const DEFAULT_CACHE_ENTRIES_PER_TENANT = 10_000

// The most entries one write evicts from a group over its bound (more only after the bound was
// lowered): each write's work stays bounded, and unpack() below Lua's limit.
const EVICT_BATCH = 500

// How many expired entries each write removes from its group. A group written steadily holds
// (about) its live entries; one that stops being written keeps its expired ones until its
// longest-lived entry ends, at most maxEntriesPerTenant of them.
const PRUNE_BATCH = 64

const GROUP_LUA = `
local function is_live(x, f, now)
  local exp = redis.call('ZSCORE', x, f)
  return exp and tonumber(exp) >= now
end
local function clear_group(h, x, prefix, now)
  local n = #prefix
  local live, batch = 0, {}
  local function flush()
    if #batch > 0 then
      redis.call('HDEL', h, unpack(batch))
      redis.call('ZREM', x, unpack(batch))
      batch = {}
    end
  end
  for _, f in ipairs(redis.call('HKEYS', h)) do
    if string.sub(f, 1, n) == prefix then
      if is_live(x, f, now) then live = live + 1 end
      batch[#batch + 1] = f
      if #batch >= 500 then flush() end
    end
  end
  flush()
  return live
end
`

// KEYS: hash (key -> payload), zset (key -> expiry ms). An entry is live through its expiry ms.
const GET = new LuaScript(`${LUA_PRELUDE}${GROUP_LUA}
if not is_live(KEYS[2], ARGV[2], now_ms(ARGV[1])) then return false end
return redis.call('HGET', KEYS[1], ARGV[2])
`)

// ARGV: now, key, payload, ttl ms, the group's most entries.
const SET = new LuaScript(`${LUA_PRELUDE}
local now = now_ms(ARGV[1])
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. fmt(now), 'LIMIT', 0, ${PRUNE_BATCH})
if #expired > 0 then
  redis.call('HDEL', KEYS[1], unpack(expired))
  redis.call('ZREM', KEYS[2], unpack(expired))
end
-- A new key in a full group evicts the entries that expire first (expired ones went above).
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 then
  local over = math.min(redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5]) + 1, ${EVICT_BATCH})
  if over > 0 then
    local popped = redis.call('ZPOPMIN', KEYS[2], over)
    local names = {}
    for i = 1, #popped, 2 do names[#names + 1] = popped[i] end
    redis.call('HDEL', KEYS[1], unpack(names))
  end
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[2], fmt(now + math.min(tonumber(ARGV[4]), ${MAX_TTL_MS})), ARGV[2])
-- The group lives as long as its longest-lived entry, on the clock the entries are judged by:
-- on an application clock pexpire() adds the margin for how that clock moves against the
-- server's, and a group's lifetime is never shortened, so a write from a host whose clock runs
-- ahead cannot drop entries another host wrote that are still live on its own clock.
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
local ttl = math.max(1, tonumber(last[2]) - now + 1)
pexpire(KEYS[1], ttl, true)
pexpire(KEYS[2], ttl, true)
return 1
`)

const DELETE = new LuaScript(`${LUA_PRELUDE}${GROUP_LUA}
local live = is_live(KEYS[2], ARGV[2], now_ms(ARGV[1]))
redis.call('HDEL', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[2])
if live then return 1 end
return 0
`)

// ARGV[3] = '1' when every key of the group starts with the prefix: drop the group whole.
const CLEAR = new LuaScript(`${LUA_PRELUDE}${GROUP_LUA}
local now = now_ms(ARGV[1])
if ARGV[3] == '1' then
  local live = redis.call('ZCOUNT', KEYS[2], fmt(now), '+inf')
  redis.call('DEL', KEYS[1], KEYS[2])
  return live
end
return clear_group(KEYS[1], KEYS[2], ARGV[2], now)
`)

// One SCAN step over this store's own groups, for prefixes that span tenants. KEYS[1] is where
// this store's keys start (\`{<store prefix>:\`), given as a key so that it reaches the script as
// every key does: with the prefix the client puts before keys (ioredis \`keyPrefix\`), which the
// pattern must start with too. Its glob characters are escaped; the caller's prefix is compared
// literally. ARGV: now, the caller's prefix, the SCAN cursor, the SCAN count.
const CLEAR_SPAN = new LuaScript(`${LUA_PRELUDE}${GROUP_LUA}
if string.find(redis.call('INFO', 'cluster'), 'cluster_enabled:1', 1, true) then
  return redis.error_reply('ERR a deletePrefix spanning several tenants needs a non-cluster Redis')
end
local now = now_ms(ARGV[1])
local start = KEYS[1]
local pattern = string.gsub(start, '[%*%?%[%]\\\\]', '\\\\%0') .. '*'
local step = redis.call('SCAN', ARGV[3], 'MATCH', pattern, 'COUNT', ARGV[4])
local live = 0
for _, key in ipairs(step[2]) do
  if string.sub(key, 1, #start) == start and string.sub(key, -3) == '}:h' then
    local group = string.sub(key, #start + 1, -4)
    -- Another store whose prefix extends ours has a ':' here; it is not ours to touch.
    if string.find(group, '^[%w%._%-]*$') then
      live = live + clear_group(key, string.sub(key, 1, -2) .. 'x', ARGV[2], now)
    end
  end
end
return {step[1], live}
`)

/** One group a `deletePrefix` clears: all of it, or the keys starting with the prefix. */
interface GroupScope {
  group: string
  whole: boolean
}

/**
 * Refuses a key or prefix that Redis would not keep as written, for callers that use the store
 * directly (`TenantCache` refuses them first): the clients encode strings as UTF-8, so every
 * unpaired surrogate becomes U+FFFD and `'k\uD800'`, `'k\uDC00'` and `'k\uFFFD'` would be one
 * field. U+0000 is refused too, so that a key works on every store, Postgres included.
 */
function checkText(what: 'key' | 'prefix', text: unknown): void {
  if (typeof text !== 'string') {
    throw invalidOption(`RedisTenantCacheStore.${what}`, `must be a string, got ${typeof text}`)
  }
  const problem = storableTextProblem(text)
  if (problem !== undefined) throw invalidOption(`RedisTenantCacheStore.${what}`, problem)
}

const jsonSerializer: CacheSerializer<unknown> = {
  serialize(value) {
    const bad = findNonJsonValue(value)
    if (bad) throw new TypeError(`cache value at ${bad.path.join('.') || '(root)'}: ${bad.message}`)
    return JSON.stringify(value)
  },
  deserialize: (text) => JSON.parse(text),
}

/**
 * A {@link CacheStore} on Redis, shared by every instance: the store behind a distributed
 * `TenantCache`.
 *
 * Layout: the entries of one tenant live in two keys under one Cluster hash tag,
 * `{prefix:tenantId}:h` (key -> value) and `{prefix:tenantId}:x` (key -> expiry), so
 * `TenantCache.clear(tenantId)` is one atomic `DEL` of two keys: no `SCAN`, no `KEYS`, and no
 * pattern a tenant id could widen. Expiry is per entry; each write prunes up to 64 expired entries
 * and sets the group's own TTL to its longest-lived entry. A group holds at most
 * `maxEntriesPerTenant` entries (a new key evicts those that expire first), so a group's memory
 * is bounded even when expired entries outnumber what later writes prune.
 *
 * Keys and prefixes must be strings without U+0000 or unpaired surrogates (core's
 * `storableTextProblem`); others are refused with `InvalidTenantConfigError`, because UTF-8 would
 * turn different strings into one field.
 *
 * @example
 * ```ts
 * import { Redis } from 'ioredis'
 * import { TenantCache } from '@tenant/core'
 * const cache = new TenantCache(new RedisTenantCacheStore({ redis: new Redis(url), ttlMs: 60_000 }))
 * await cache.set('acme', 'user:42', { name: 'Ada' })
 * await cache.clear('acme')
 * ```
 */
export class RedisTenantCacheStore<V = unknown> implements CacheStore<V> {
  readonly #options: ResolvedStoreOptions
  readonly #tenantCachePrefix: string
  /** The `TenantCache` prefix whose keys are grouped per tenant; other caches refuse the store. */
  get tenantCachePrefix(): string {
    return this.#tenantCachePrefix
  }
  readonly #ttlMs: number
  readonly #maxEntries: string
  readonly #maxValueBytes: number
  readonly #serializer: CacheSerializer<V>

  constructor(options: RedisTenantCacheStoreOptions<V>) {
    const tenantCachePrefix =
      typeof options === 'object' && options !== null ? options.tenantCachePrefix : undefined
    if (tenantCachePrefix !== undefined && typeof tenantCachePrefix !== 'string') {
      throw optionError('tenantCachePrefix', 'must be a string')
    }
    // As TenantCache checks its prefix: with a '{' or '}' the group of a key would be misread.
    const problem = tenantCachePrefix === undefined ? undefined : tenantCachePrefixProblem(tenantCachePrefix)
    if (problem !== undefined) throw optionError('tenantCachePrefix', problem)
    this.#tenantCachePrefix = tenantCachePrefix ?? 'tenant:'
    const ownPrefix = defaultCachePrefix(this.#tenantCachePrefix)
    if (ownPrefix === undefined && (options as { prefix?: unknown }).prefix === undefined) {
      throw optionError(
        'prefix',
        'is needed: the tenantCachePrefix is too long to name a default prefix of its own (128 characters of [A-Za-z0-9:._-])',
      )
    }
    this.#options = resolveStoreOptions('RedisTenantCacheStore', options, ownPrefix ?? 'tenant:cache')
    this.#maxValueBytes = wholeNumberOption(
      'maxValueBytes',
      options.maxValueBytes,
      DEFAULT_CACHE_VALUE_BYTES,
      1,
      MAX_CACHE_VALUE_BYTES,
    )
    this.#ttlMs = validateCacheTtl(options.ttlMs) ?? DEFAULT_CACHE_TTL_MS
    this.#maxEntries = String(
      wholeNumberOption(
        'maxEntriesPerTenant',
        options.maxEntriesPerTenant,
        DEFAULT_CACHE_ENTRIES_PER_TENANT,
        1,
      ),
    )
    this.#serializer = options.serializer ?? (jsonSerializer as CacheSerializer<V>)
  }

  /** The value, or `undefined` when absent or expired. */
  async get(key: string): Promise<V | undefined> {
    checkText('key', key)
    const text = await this.#run(GET, this.#groupKeys(this.#groupOf(key)), [this.#now(), key], 'cache get')
    if (text === null || text === undefined) return undefined
    try {
      return this.#serializer.deserialize(String(text))
    } catch (cause) {
      // Written by another serializer, or by hand: the store's error, typed like the others.
      const tenantId = this.#groupOf(key)
      throw new TenantBackendError(`redis: the cached value of "${key.slice(0, 80)}" cannot be read`, {
        cause,
        ...(tenantId === '' ? {} : { tenantId }),
      })
    }
  }

  /** Stores `value` for `ttlMs` (default: the store's `ttlMs`); `undefined` deletes the key. */
  async set(key: string, value: V, options?: { ttlMs?: number }): Promise<void> {
    checkText('key', key)
    const ttlMs = validateCacheTtl(options?.ttlMs) ?? this.#ttlMs
    if (value === undefined) {
      await this.delete(key)
      return
    }
    const payload = this.#serializer.serialize(value)
    // Refused before it is sent: a write this large could time out and still be stored.
    const bytes = payload.length * 3 <= this.#maxValueBytes ? 0 : utf8.encode(payload).length
    if (bytes > this.#maxValueBytes) {
      throw invalidOption(
        'RedisTenantCacheStore.value',
        `must serialize to at most ${this.#maxValueBytes} bytes (maxValueBytes), got ${bytes}`,
      )
    }
    const keys = this.#groupKeys(this.#groupOf(key))
    await this.#run(SET, keys, [this.#now(), key, payload, String(ttlMs), this.#maxEntries], 'cache set')
  }

  /** Removes `key`; resolves true when a live entry was removed. */
  async delete(key: string): Promise<boolean> {
    checkText('key', key)
    const keys = this.#groupKeys(this.#groupOf(key))
    return Number(await this.#run(DELETE, keys, [this.#now(), key], 'cache delete')) === 1
  }

  /**
   * Removes every key starting with `prefix`, compared literally; resolves the number of live
   * entries removed. One tenant's prefix is one script (two for `p{t}`, which also starts keys of
   * the shared group); a prefix spanning tenants walks the store's groups (not on Cluster, where
   * it throws `TenantBackendError`).
   */
  async deletePrefix(prefix: string): Promise<number> {
    checkText('prefix', prefix)
    const scope = this.#scopeOf(prefix)
    if (scope.kind === 'groups') {
      // One script per group: each touches only its own hash tag, so this works on Cluster too.
      let removed = 0
      for (const { group, whole } of scope.groups) {
        const args = [this.#now(), prefix, whole ? '1' : '0']
        removed += Number(await this.#run(CLEAR, this.#groupKeys(group), args, 'cache deletePrefix'))
      }
      return removed
    }
    let cursor = '0'
    let removed = 0
    do {
      const args = [this.#now(), prefix, cursor, '1000']
      const start = [`{${this.#options.prefix}:`]
      const step = (await this.#run(CLEAR_SPAN, start, args, 'cache deletePrefix')) as [unknown, unknown]
      cursor = String(step[0])
      removed += Number(step[1])
    } while (cursor !== '0')
    return removed
  }

  /** The tenant whose group holds `key`, or '' for the shared group. */
  #groupOf(key: string): string {
    return tenantOfCacheKey(this.#tenantCachePrefix, key) ?? ''
  }

  /**
   * Which groups can hold keys starting with `prefix`: a few named groups (each cleared whole
   * when every key in it starts with the prefix, else compared key by key), or possibly all of
   * them (a prefix that stops inside, or before, a tenant id).
   */
  #scopeOf(prefix: string): { kind: 'groups'; groups: readonly GroupScope[] } | { kind: 'span' } {
    const p = this.#tenantCachePrefix
    const shared = { kind: 'groups', groups: [{ group: '', whole: false }] } as const
    if (!prefix.startsWith(p)) return p.startsWith(prefix) ? { kind: 'span' } : shared
    const rest = prefix.slice(p.length)
    if (rest === '') return { kind: 'span' }
    if (rest[0] !== '{') return shared
    const end = rest.indexOf('}')
    if (end < 0) {
      // A partial tenant id matches every tenant starting with it (and the shared group); one that
      // no tenant id can start with only the shared group.
      return /^[A-Za-z0-9._-]{0,255}$/.test(rest.slice(1)) ? { kind: 'span' } : shared
    }
    const tenant = rest.slice(1, end)
    if (!isValidTenantId(tenant)) return shared
    const after = rest.slice(end + 1)
    // `p{t}:` is exactly tenant t's group: every key of the form `p{t}:...` is grouped there.
    if (after === ':') return { kind: 'groups', groups: [{ group: tenant, whole: true }] }
    // `p{t}` also starts keys that are not tenant t's (`p{t}x`, `p{t}}:z`): tenantOfCacheKey needs
    // a ':' after the '}', so those sit in the shared group, which must be searched as well.
    if (after === '') {
      return {
        kind: 'groups',
        groups: [
          { group: tenant, whole: true },
          { group: '', whole: false },
        ],
      }
    }
    // `p{t}x...` is no tenant key, so only the shared group can hold it.
    return after[0] === ':' ? { kind: 'groups', groups: [{ group: tenant, whole: false }] } : shared
  }

  #groupKeys(group: string): string[] {
    const tag = `{${this.#options.prefix}:${group}}`
    return [`${tag}:h`, `${tag}:x`]
  }

  #now(): string {
    return nowArg(this.#options.clock)
  }

  #run(script: LuaScript, keys: string[], args: string[], what: string): Promise<unknown> {
    const { redis, gate } = this.#options
    return gate.run(() => script.run(redis, keys, args), what)
  }
}
