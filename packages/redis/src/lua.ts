/**
 * How much longer than needed state lives in Redis when the decision time comes from the
 * application's clock rather than Redis TIME (see `pexpire` below).
 */
export const APP_CLOCK_TTL_MARGIN_MS = 60_000

/**
 * The longest expiry any script sets: ten years. `PEXPIRE` refuses more than about 2.9e8 years,
 * and a token bucket of a very slow rate and a large burst can need more than that to fill up; a
 * failing `PEXPIRE` would fail the call after its write (scripts do not roll back) and leave the
 * key without a TTL. State that old is dropped instead.
 */
export const MAX_TTL_MS = 10 * 365 * 86_400_000

/**
 * Lua shared by every script (ARGV[1] is always the `now` argument). `now_ms(arg)` is the decision time: the application's clock when
 * the store was given one (passed as a number), otherwise the Redis server's own `TIME`, so hosts
 * with skewed clocks agree. Redis >= 5 replicates script effects, not scripts, which is what makes
 * `TIME` in a writing script safe; the call below opts in on older servers (Redis 7, the first to
 * have `REDIS_VERSION_NUM`, only replicates effects, and skipping the call saves every script a
 * little).
 */
export const LUA_PRELUDE = `
if redis.replicate_commands and not redis.REDIS_VERSION_NUM then pcall(redis.replicate_commands) end
local function now_ms(arg)
  if arg ~= nil and arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Integers as exact decimals: tostring() would round anything past 14 digits.
local function fmt(x) return string.format('%.0f', x) end
-- Expiry only bounds memory; it must never drop a count that still matters. On Redis time the
-- TTL is exact. On an application clock the server cannot know how that clock moves against its
-- own, so a margin covers the difference (a ManualClock in tests, a skewed host in production).
-- Capped at MAX_TTL_MS, so PEXPIRE never fails after a write.
local function pexpire(key, ms, at_least)
  if ARGV[1] ~= '' then ms = ms + ${APP_CLOCK_TTL_MARGIN_MS} end
  -- at_least: never shorten the key's life (the caller's clock may run ahead of another writer's).
  if at_least then ms = math.max(ms, redis.call('PTTL', key)) end
  redis.call('PEXPIRE', key, fmt(math.max(1, math.min(ms, ${MAX_TTL_MS}))))
end
`

/** The `now` argument of a script: the clock's time, or empty for Redis `TIME`. */
export function nowArg(clock: { now(): number } | undefined): string {
  return clock === undefined ? '' : String(Math.floor(clock.now()))
}
