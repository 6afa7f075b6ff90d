/**
 * Lua shared by every script. `now_ms(arg)` is the decision time: the application's clock when
 * the store was given one (passed as a number), otherwise the Redis server's own `TIME`, so hosts
 * with skewed clocks agree. Redis >= 5 replicates script effects, not scripts, which is what makes
 * `TIME` in a writing script safe; the call below opts in on older servers.
 */
export const LUA_PRELUDE = `
if redis.replicate_commands then pcall(redis.replicate_commands) end
local function now_ms(arg)
  if arg ~= nil and arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`

/** The `now` argument of a script: the clock's time, or empty for Redis `TIME`. */
export function nowArg(clock: { now(): number } | undefined): string {
  return clock === undefined ? '' : String(Math.floor(clock.now()))
}
