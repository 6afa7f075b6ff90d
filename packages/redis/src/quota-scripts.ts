import { MAX_QUOTA_COUNT, quotaWindows, slidingWindowMs } from '@tenant/core'
import { LUA_PRELUDE } from './lua'
import { RECEIPT_TTL_RANGE_MS, receiptScript } from './receipts'
import { LuaScript } from './script'

/**
 * The Lua side of `RedisQuotaManager`. Redis cannot run TypeScript, so each script mirrors, line
 * by line, the part of core's algorithms (`packages/core/src/algorithms/`) that must happen
 * atomically: which windows are current, whether every limit admits the cost, and the charge.
 * Everything else (the decision, remaining amounts, the exact retry time, reasons) is computed
 * by core's own functions in TypeScript from the state the script read and the `now` it used,
 * so there is one implementation of it. The manager checks that both agree on the admission.
 *
 * Every script replies the decision time, 1 when it wrote (admitted / adjusted), then the
 * tenant's state as it was before: the sliding script as `field1, value1, ...` of its hash, the
 * fixed script as the current counts of each configured window (see there).
 *
 * ARGV: now ('' = Redis TIME), op ('consume' | 'adjust' | 'peek' | 'refund' | 'check': consume's
 * admission check alone, replying 1 when it would admit and writing nothing), requests cost (or
 * the token delta of adjust), tokens cost (or, for adjust, the decision time of the admission a
 * refund is for, '' for none: core's `QuotaAdjustment.decidedAt`), then per effective limit
 * (core's `effectiveLimits`, shortest window first) its window, requests allowance and tokens
 * allowance (0 = unlimited) and, for sliding windows, the bucket length in ms.
 *
 * `refund` takes back an admission whose reply came too late for its caller (who was told the
 * call failed): ARGV[1] is then the decision time that admission's reply carried, and the cost
 * and limits are the ones it was sent with, so the script finds exactly the windows (fixed) or
 * buckets (sliding) the charge went into. Each loses the cost, never going below zero; a window
 * or bucket that no longer holds the charge (a new window started since) is left alone. A refund
 * never sets a TTL: it only lowers counts of an existing key, whose TTL already covers them.
 */

/**
 * `calendarWindow` of core's `algorithms/calendar.ts` (Hinnant's civil-date arithmetic). A script
 * creates its local functions on every call, so the civil-date helpers, which only month windows
 * need, are created only when a month window is computed.
 */
export const CALENDAR_LUA = `
local MINUTE_MS, HOUR_MS, DAY_MS = 60000, 3600000, 86400000
local function calendar_window(window, now)
  local len
  if window == 'minute' then len = MINUTE_MS
  elseif window == 'hour' then len = HOUR_MS
  elseif window == 'day' then len = DAY_MS
  else
    local function days_from_civil(year, month, day)
      local y = year
      if month <= 2 then y = year - 1 end
      local era = math.floor(y / 400)
      local yoe = y - era * 400
      local mp = month + 9
      if month > 2 then mp = month - 3 end
      local doy = math.floor((153 * mp + 2) / 5) + day - 1
      local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
      return era * 146097 + doe - 719468
    end
    local function civil_from_days(days)
      local z = days + 719468
      local era = math.floor(z / 146097)
      local doe = z - era * 146097
      local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
      local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
      local mp = math.floor((5 * doy + 2) / 153)
      local day = doy - math.floor((153 * mp + 2) / 5) + 1
      local month = mp - 9
      if mp < 10 then month = mp + 3 end
      local year = yoe + era * 400
      if month <= 2 then year = year + 1 end
      return year, month, day
    end
    local days = math.floor(now / DAY_MS)
    local year, month, day = civil_from_days(days)
    local next_days
    if month == 12 then next_days = days_from_civil(year + 1, 1, 1) else next_days = days_from_civil(year, month + 1, 1) end
    return (days - day + 1) * DAY_MS, next_days * DAY_MS
  end
  local start = math.floor(now / len) * len
  return start, start + len
end
`

/** Reads the state, answers `peek` with it; the rest of the sliding script decides and writes. */
const READ_LUA = `
local now = now_ms(ARGV[1])
local op = ARGV[2]
local raw = redis.call('HGETALL', KEYS[1])
local reply = {fmt(now), 0}
for i = 1, #raw do reply[#reply + 1] = raw[i] end
if op == 'peek' then return reply end
local stored = {}
for i = 1, #raw, 2 do stored[raw[i]] = raw[i + 1] end
`

/**
 * Reset markers: where a quota hash's reset stamp lives (see {@link resetMarkerKey}, which must
 * agree). A tenant's hash `H` has its marker at `H:reset`; a subject's hash `H:subject:<id>` has
 * its marker at `H:reset:<id>`, a namespace of its own: subject ids may contain `:` and are chosen
 * by end users, so `<subject hash>:reset` would be the hash of the subject `<id>:reset`, and no key
 * that a subject id ends can ever be another key's marker. (Nothing else is derived from a subject's
 * hash key: receipts and the subject index are named after the tenant's hash.)
 *
 * The previous version named a subject's marker `<subject hash>:reset`. Such markers (strings; a
 * hash there is the state of subject `<id>:reset`) are read as part of the subject's stamp while
 * they live, so a reset made by the previous version still keeps a void here from refunding
 * across it; they are never written. One found in a subject's own key is moved into its subject's
 * marker as a new stamp (`drop_legacy`), so that key serves its subject again.
 */
export const MARKER_LUA = `
-- The marker of a quota hash, and for a subject's hash the previous version's name for it. The
-- hash tag ends at the last '}' (a client's keyPrefix may hold braces of its own, '{app}:') and a
-- subject id holds none, so no part of the prefix is read as a subject.
local function marker_of(key)
  local tenant, subject = string.match(key, '^(.*}:[^:]*):subject:([^}]+)$')
  if tenant then return tenant .. ':reset:' .. subject, key .. ':reset' end
  return key .. ':reset', nil
end
-- The stamp the previous version left at a subject's legacy marker name, if a marker is there.
local function legacy_stamp(legacy)
  if not legacy then return nil end
  -- One command: a missing key answers false, a subject's hash of that name an error table.
  local v = redis.pcall('GET', legacy)
  if type(v) == 'string' then return v end
  return nil
end
-- The latest time either marker of a hash holds (-inf for none).
local function stamp_time(key)
  local marker, legacy = marker_of(key)
  local at = tonumber(redis.call('GET', marker) or '') or -math.huge
  return math.max(at, tonumber(legacy_stamp(legacy) or '') or -math.huge)
end
-- Writes a new stamp into the marker of the hash key: its time, or one more than the latest stamp
-- either marker holds when that is not earlier. It lives at least ttl ms, and never less than the
-- longest a receipt can live (receiptTtlMs at most ${RECEIPT_TTL_RANGE_MS.max} ms, counted from its
-- write, which was before this stamp): a receipt that recorded the stamp before must always find
-- this one, or its void would refund from counts made since (whatever the application clock says).
local function new_stamp(key, now, ttl)
  local marker = marker_of(key)
  local stamp = now
  local last = stamp_time(key)
  if last >= stamp then stamp = last + 1 end
  local keep = math.max(ttl, ${RECEIPT_TTL_RANGE_MS.max}, redis.call('PTTL', marker))
  redis.call('SET', marker, fmt(stamp), 'PX', fmt(keep))
end
-- A subject's hash key that holds a string is a marker the previous version left for the subject
-- named without its ':reset' ending. It becomes a new stamp of that subject (a receipt recorded
-- before sees a reset since, so no void refunds across the one it stood for) and leaves the key.
local function drop_legacy(key, now)
  if string.sub(key, -6) ~= ':reset' or redis.call('TYPE', key).ok ~= 'string' then return end
  local owner = string.sub(key, 1, -7)
  if not string.match(owner, '^.*}:[^:]*:subject:[^}]+$') then return end
  new_stamp(owner, now, math.max(1, redis.call('PTTL', key)))
  redis.call('DEL', key)
end
`

/**
 * What the scripts share: the count bound, the window lengths, the reset stamps. A window kind
 * the config does not name is looked up here (its sliding length), and `MAX_QUOTA_COUNT` is
 * core's bound on every count.
 *
 * Reset stamps (in the hash's marker, see {@link MARKER_LUA}, written by `RESET_MARK_LUA`) tell a
 * refund whether the counts of a hash are still the ones the refunded admission charged. A
 * receipt records the stamps of its hashes with the admission (`record_stamps`, in the same script
 * as the decision, so they are exactly the ones it was decided under); its void puts them in
 * `decided_stamps` before running the refund, and `reset_since` then compares them with the current
 * ones. Every reset writes a new stamp, so this is exact: a reset in the decision's own millisecond
 * is told apart by order.
 */
export const QUOTA_COMMON_LUA = `${MARKER_LUA}
local MAX_COUNT = ${MAX_QUOTA_COUNT}
local WINDOW_MS = { ${quotaWindows.map((w) => `${w} = ${slidingWindowMs(w)}`).join(', ')} }
-- Hash key -> its reset stamp when the admission a void refunds was decided ('' for none).
local decided_stamps = {}
-- Hash key -> the reply the admission a void refunds got for it (the hash's state before the
-- admission, which says what the admission added: the cost, or less where an unlimited count
-- saturated at MAX_COUNT). Absent: a refund takes the cost.
local refund_prior = {}
-- A hash a script emptied (an adjust or a refund down to zero) is gone: what is stored there next
-- is new state, as after a reset, so it gets a new stamp too and no void of an earlier admission
-- refunds from it (the Durable Object treats a state it deleted the same way).
local function stamp_if_emptied(key, now)
  if redis.call('EXISTS', key) == 0 then new_stamp(key, now, 0) end
end
-- A hash's stamp ('' for none). For a subject with a marker the previous version wrote, that one's
-- stamp alone while there is no marker of this version (a receipt of the previous version recorded
-- just that), and both once there is: any reset by either version changes it.
local function reset_stamp(key)
  local marker, legacy = marker_of(key)
  local stamp = redis.call('GET', marker)
  local old = legacy_stamp(legacy)
  if not old then return stamp or '' end
  if not stamp then return old end
  return stamp .. '/' .. old
end
-- A refund is of an admission decided at t. Without a recorded stamp (a late reply's refund with
-- receipts off, or a receipt the previous version wrote before stamps) only t is known: a stamp at
-- or after it counts as a reset since, which keeps the charge of an admission decided in a reset's
-- own millisecond rather than risk taking from counts it never made.
local function reset_since(key, t)
  local decided = decided_stamps[key]
  if decided then return reset_stamp(key) ~= decided end
  return stamp_time(key) >= t
end
-- Makes a marker outlive the receipts that record it: written afresh after expiring, it would
-- start again from the reset time and might repeat a recorded stamp.
local function keep_marker(marker, ttl)
  local left = redis.call('PTTL', marker)
  if left >= 0 and left < tonumber(ttl) then redis.call('PEXPIRE', marker, ttl) end
end
-- The stamps a receipt records with an admission; ttl: how long the receipt lives.
local function record_stamps(keys, ttl)
  local stamps = {}
  for i, key in ipairs(keys) do
    local marker, legacy = marker_of(key)
    local stamp = redis.call('GET', marker)
    local old = legacy_stamp(legacy)
    if stamp then keep_marker(marker, ttl) end
    if old then keep_marker(legacy, ttl) end
    if not old then stamps[i] = stamp or ''
    elseif not stamp then stamps[i] = old
    else stamps[i] = stamp .. '/' .. old end
  end
  return stamps
end
`

/**
 * Fixed windows: one hash per tenant, field = window, value = `start,requests,tokens`
 * (core's `FixedWindowCounter`). A counter whose start is not the current window's reads as 0.
 *
 * Unlike the other scripts it replies only what core needs to decide: `{now, applied, requests1,
 * tokens1, requests2, tokens2, ...}`, the counts of each configured window's *current* calendar
 * window before the change, in ARGV order, as exact decimal text (the stored text itself): RESP
 * integers near 2^53 are misread by some clients. A stale counter is a 0 either way, so the
 * client rebuilds core's state from these and the window starts of `now`; a short reply is what
 * keeps the client's decoding cheap.
 *
 * No count passes `MAX_COUNT` (core's `MAX_QUOTA_COUNT`): a limit is at most that, and an unlimited
 * dimension never refuses but saturates there (core's `overLimit` and `nextState`), as adjust does.
 *
 * Fields of windows the caller's config does not name (left by an older or newer config of the
 * tenant, possibly in use by another instance right now) are kept until their calendar window
 * ends, as core's `fixedWindowConsume` keeps them: a config change never resets usage.
 *
 * Two ways to write an admission, chosen per call:
 * - fast path, the steady state: every configured window already has a counter for its current
 *   calendar window, and every other field (if any) still counts in its own current window. Each
 *   configured counter is overwritten in place by one HSET; other fields are left alone, and
 *   the key's TTL stays as it is, because it was set by the slow write that created these very
 *   counters (configured fields are only ever created there) to the end of the latest window the
 *   hash holds, and a counter keeps its start.
 * - slow path, whenever a window starts afresh (first request, a new minute, a changed config)
 *   or on adjust: the configured windows are rewritten (those that count nothing removed), every
 *   other field is kept if it still counts in its own current window and removed otherwise, and
 *   the TTL is set to the end of the latest window kept.
 * Both write the same counts, so the next decision reads the same state either way.
 */
export const FIXED_WINDOW_BODY = `
local now = now_ms(ARGV[1])
local op = ARGV[2]
-- Window j's name, requests and tokens allowances are ARGV[3j + 2], ARGV[3j + 3], ARGV[3j + 4].
local n = (#ARGV - 4) / 3
local windows = {}
for j = 1, n do windows[j] = ARGV[3 * j + 2] end
-- Only the configured windows: anything else in the hash reads as 0 to core as well.
local raw = redis.call('HMGET', KEYS[1], unpack(windows))
-- reply[2j + 1], reply[2j + 2]: window j's requests and tokens (text). cur[6j - 5 .. 6j]: its
-- start, end, the stored start and tokens text of a current counter (false otherwise), and its
-- requests and tokens as numbers. Two flat tables rather than one per window: this runs on every
-- decision, and every Lua table is an allocation Redis pays for.
local reply = {now, 0}
local cur = {}
-- Whether every window has a counter for its current calendar window (the fast path's condition).
local all_current = true
for j = 1, n do
  local start, window_end = calendar_window(windows[j], now)
  local used_r, used_t, text_s, text_r, text_t = 0, 0, false, '0', false
  -- HMGET gives false for a missing field.
  local s, r, t = string.match(raw[j] or '', '^(%-?%d+),(%d+),(%d+)$')
  if s and tonumber(s) == start then
    used_r, used_t, text_s, text_r, text_t = tonumber(r), tonumber(t), s, r, t
  else
    all_current = false
  end
  reply[2 * j + 1], reply[2 * j + 2] = text_r, text_t or '0'
  local c = 6 * j
  cur[c - 5], cur[c - 4], cur[c - 3], cur[c - 2], cur[c - 1], cur[c] = start, window_end, text_s, text_t, used_r, used_t
end
if op == 'peek' then return reply end
local cost_r, cost_t = tonumber(ARGV[3]), tonumber(ARGV[4])
if op == 'refund' then
  -- now is the refunded admission's decision time: a counter that still starts where that
  -- window did holds the charge, unless the hash was reset since. In place, like the fast path; a
  -- counter that reaches zero goes, as the slow path would leave it out.
  if reset_since(KEYS[1], now) then return reply end
  -- What the admission added to window j: its counts before (the reply it got, in the same window
  -- order) plus the cost, cut at MAX_COUNT as the charge was, less those counts.
  local prior = refund_prior[KEYS[1]]
  local emptied = false
  for j = 1, n do
    local c = 6 * j
    if cur[c - 3] then
      local take_r, take_t = cost_r, cost_t
      if prior then
        take_r = math.min(cost_r, MAX_COUNT - (tonumber(prior[2 * j + 1]) or 0))
        take_t = math.min(cost_t, MAX_COUNT - (tonumber(prior[2 * j + 2]) or 0))
      end
      local r = math.max(0, cur[c - 1] - take_r)
      local t = math.max(0, cur[c] - take_t)
      if r == 0 and t == 0 then
        redis.call('HDEL', KEYS[1], windows[j])
        emptied = true
      else
        redis.call('HSET', KEYS[1], windows[j], cur[c - 3] .. ',' .. fmt(r) .. ',' .. fmt(t))
      end
    end
  end
  if emptied then stamp_if_emptied(KEYS[1], now) end
  reply[2] = 1
  return reply
end
if op == 'consume' or op == 'check' then
  for j = 1, n do
    -- 0 = unlimited, which never refuses (core's overLimit): its count saturates at MAX_COUNT.
    local limit_r, limit_t = tonumber(ARGV[3 * j + 3]), tonumber(ARGV[3 * j + 4])
    local c = 6 * j
    if (limit_r ~= 0 and cur[c - 1] + cost_r > limit_r) or (limit_t ~= 0 and cur[c] + cost_t > limit_t) then
      return reply
    end
  end
  -- 'check' (the subject script's first pass): would admit, writes nothing.
  if op == 'check' then
    reply[2] = 1
    return reply
  end
  -- Fields of windows the config does not name may stay as they are only while they count in
  -- their own current window: a stale one makes this a slow write, which drops it.
  if all_current and redis.call('HLEN', KEYS[1]) ~= n then
    local configured = {}
    for j = 1, n do configured[windows[j]] = true end
    local fields = redis.call('HGETALL', KEYS[1])
    for i = 1, #fields, 2 do
      local name = fields[i]
      if not configured[name] then
        local s = string.match(fields[i + 1], '^(%-?%d+),')
        if not (s and WINDOW_MS[name] and tonumber(s) == calendar_window(name, now)) then all_current = false end
      end
    end
  end
  if all_current then
    -- Number formatting is a large part of this path, so what the cost leaves as it was (the
    -- start, the tokens of a request without tokens) keeps its stored text. A sum past MAX_COUNT
    -- (only in an unlimited dimension) rounds to at least 2^53, so math.min gives the bound exactly.
    for j = 1, n do
      local c = 6 * j
      local t = cur[c - 2]
      if cost_t ~= 0 then t = fmt(math.min(MAX_COUNT, cur[c] + cost_t)) end
      redis.call('HSET', KEYS[1], windows[j], cur[c - 3] .. ',' .. fmt(math.min(MAX_COUNT, cur[c - 1] + cost_r)) .. ',' .. t)
    end
    reply[2] = 1
    return reply
  end
end
-- The slow path. Fields the config does not name stay while they count in their own current
-- window; the configured windows hold their new counts (none when zero); the key lives until the
-- latest of them ends (core's fixedWindowExpiresAt).
local expires_at = 0
local configured = {}
for j = 1, n do configured[windows[j]] = true end
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local name = fields[i]
  if not configured[name] then
    local keep = false
    local s, r, t = string.match(fields[i + 1], '^(%-?%d+),(%d+),(%d+)$')
    if s and WINDOW_MS[name] and (tonumber(r) ~= 0 or tonumber(t) ~= 0) then
      local start, window_end = calendar_window(name, now)
      if tonumber(s) == start then
        keep = true
        expires_at = math.max(expires_at, window_end)
      end
    end
    if not keep then redis.call('HDEL', KEYS[1], name) end
  end
end
-- (adjust: ARGV[3] is the token delta; a refund stops at zero, a charge at MAX_COUNT, where an
-- admission's unlimited dimension stops too. A refund given its admission's time, ARGV[4], leaves
-- a window that has started since alone: core's fixedWindowAdjust.)
local decided_at = op == 'adjust' and cost_r < 0 and tonumber(ARGV[4])
for j = 1, n do
  local c = 6 * j
  local r, t = cur[c - 1], cur[c]
  if op == 'consume' then
    r, t = math.min(MAX_COUNT, r + cost_r), math.min(MAX_COUNT, t + cost_t)
  elseif not decided_at or calendar_window(windows[j], decided_at) == cur[c - 5] then
    t = math.min(MAX_COUNT, math.max(0, t + cost_r))
  end
  if r ~= 0 or t ~= 0 then
    redis.call('HSET', KEYS[1], windows[j], fmt(cur[c - 5]) .. ',' .. fmt(r) .. ',' .. fmt(t))
    expires_at = math.max(expires_at, cur[c - 4])
  else
    redis.call('HDEL', KEYS[1], windows[j])
  end
end
if expires_at > now then pexpire(KEYS[1], expires_at - now) end
-- Nothing kept (expires_at is the end of what was): a hash that held fields is gone.
if expires_at == 0 and #fields > 0 then stamp_if_emptied(KEYS[1], now) end
reply[2] = 1
return reply
`

/**
 * What the quota scripts' receipts share (see `receiptScript`): ARGV[2] is the op, an admission
 * replies 1 second, and its refund runs the same script with op `refund` at the admission's
 * decision time (the reply's first value). KEYS[2] is a consume's or void's receipt, KEYS[3] the
 * hash's reset marker (`<KEYS[1]>:reset`), declared for servers that check which keys a script
 * touches; the receipt records its stamp.
 */
const QUOTA_RECEIPT = {
  receiptKey: 2,
  op: 'ARGV[2]',
  applied: 'reply[2] == 1',
  // The reply also says what the admission added (see refund_prior).
  toRefund: "argv[1], argv[2] = fmt(tonumber(reply[1])), 'refund'; refund_prior[KEYS[1]] = reply",
  stamped: '{ KEYS[1] }',
}

/**
 * The fixed-window script: {@link FIXED_WINDOW_BODY} with the prelude and calendar, and receipts
 * (KEYS[2], see `receiptScript`).
 */
export const FIXED_WINDOW_SCRIPT = receiptScript(`${LUA_PRELUDE}${CALENDAR_LUA}${QUOTA_COMMON_LUA}`, {
  ...QUOTA_RECEIPT,
  body: FIXED_WINDOW_BODY,
})

/**
 * Sliding windows (core's `sliding-window.ts`): one hash per tenant and precision, field =
 * window, value = its non-empty buckets in ascending start order, `start,requests,tokens;...`.
 */
export const SLIDING_WINDOW_BODY = `${READ_LUA}
local P = tonumber(ARGV[5])
local function parse(text)
  local buckets = {}
  for s, r, t in string.gmatch(text or '', '(%-?%d+),(%d+),(%d+)') do
    buckets[#buckets + 1] = { tonumber(s), tonumber(r), tonumber(t) }
  end
  return buckets
end
local function non_empty(buckets)
  local out = {}
  for _, b in ipairs(buckets) do if b[2] ~= 0 or b[3] ~= 0 then out[#out + 1] = b end end
  return out
end
-- The hash value of a window: its buckets as 'start,requests,tokens;...'.
local function encode(buckets)
  local parts = {}
  for j, b in ipairs(buckets) do parts[j] = fmt(b[1]) .. ',' .. fmt(b[2]) .. ',' .. fmt(b[3]) end
  return table.concat(parts, ';')
end
-- prune: drops buckets that can never count again, and empty ones.
local function prune(buckets, B)
  local old_start = (math.floor(now / B) - P) * B
  local out = {}
  for _, b in ipairs(buckets) do
    if b[1] >= old_start and (b[2] ~= 0 or b[3] ~= 0) then out[#out + 1] = b end
  end
  return out
end
-- countParts: what the oldest bucket (the one the window's start falls into) holds, how many ms
-- of it the window still covers, and what the newer buckets hold.
local function count_parts(buckets, t, B, dim)
  local k = math.floor(t / B)
  local oldest, newer = 0, 0
  for _, b in ipairs(buckets) do
    local index = math.floor(b[1] / B)
    if index == k - P then oldest = oldest + b[dim]
    elseif index > k - P then newer = newer + b[dim] end
  end
  return oldest, (k + 1) * B - t, newer
end
-- admitsAt: newer + oldest * overlap / B + cost <= limit, in core's exact arrangement.
local function admits(buckets, B, dim, cost, limit)
  local oldest, overlap, newer = count_parts(buckets, now, B, dim)
  return oldest * overlap <= B * (limit - cost - newer)
end
-- addToCurrent: adds to the bucket containing now, keeping the list sorted.
local function add_to_current(buckets, B, add_r, add_t)
  local start = math.floor(now / B) * B
  local out = {}
  local done = false
  for _, b in ipairs(buckets) do
    if not done and b[1] >= start then
      if b[1] == start then
        out[#out + 1] = { start, b[2] + add_r, b[3] + add_t }
        done = true
      else
        out[#out + 1] = { start, add_r, add_t }
        out[#out + 1] = b
        done = true
      end
    else
      out[#out + 1] = b
    end
  end
  if not done then out[#out + 1] = { start, add_r, add_t } end
  return non_empty(out)
end
-- rawCount: the unweighted sum of a dimension over the buckets that can still count.
local function raw_sum(buckets, dim)
  local total = 0
  for _, b in ipairs(buckets) do total = total + b[dim] end
  return total
end
-- refund_at: takes tokens out of the bucket containing t alone (the one an admission decided at t
-- charged), down to zero: core's slidingWindowAdjust given decidedAt.
local function refund_at(buckets, B, t, amount)
  local start = math.floor(t / B) * B
  for _, b in ipairs(buckets) do
    if b[1] == start then b[3] = math.max(0, b[3] - amount) end
  end
  return non_empty(buckets)
end
-- refund: takes tokens out newest bucket first, down to zero.
local function refund(buckets, amount)
  local left = amount
  local out = {}
  for i = 1, #buckets do out[i] = { buckets[i][1], buckets[i][2], buckets[i][3] } end
  for i = #out, 1, -1 do
    if left <= 0 then break end
    local take = math.min(out[i][3], left)
    out[i][3] = out[i][3] - take
    left = left - take
  end
  return non_empty(out)
end
local scans = {}
for i = 6, #ARGV, 4 do
  local B = tonumber(ARGV[i + 3])
  scans[#scans + 1] = { window = ARGV[i], B = B, limit_r = tonumber(ARGV[i + 1]), limit_t = tonumber(ARGV[i + 2]),
    buckets = prune(parse(stored[ARGV[i]]), B) }
end
if op == 'refund' then
  -- now is the refunded admission's decision time, so the bucket containing it is the one
  -- add_to_current charged. Only the windows that still hold that bucket change, in place: the
  -- key's TTL already outlives them. Nothing, if the hash was reset since that time.
  if reset_since(KEYS[1], now) then return reply end
  local cost_r, cost_t = tonumber(ARGV[3]), tonumber(ARGV[4])
  -- The hash as the admission found it (the reply it got: field, value, ...), to add up what it
  -- added to each window as consume did (the cost, cut where the buckets' sum met MAX_COUNT).
  local prior = refund_prior[KEYS[1]]
  local before = {}
  if prior then
    for i = 3, #prior - 1, 2 do before[prior[i]] = prior[i + 1] end
  end
  local emptied = false
  for _, s in ipairs(scans) do
    local start = math.floor(now / s.B) * s.B
    local take_r, take_t = cost_r, cost_t
    if prior then
      local was = prune(parse(before[s.window]), s.B)
      take_r = math.min(cost_r, math.max(0, MAX_COUNT - raw_sum(was, 2)))
      take_t = math.min(cost_t, math.max(0, MAX_COUNT - raw_sum(was, 3)))
    end
    for _, b in ipairs(s.buckets) do
      if b[1] == start then
        b[2], b[3] = math.max(0, b[2] - take_r), math.max(0, b[3] - take_t)
        local left = non_empty(s.buckets)
        if #left == 0 then
          redis.call('HDEL', KEYS[1], s.window)
          emptied = true
        else
          redis.call('HSET', KEYS[1], s.window, encode(left))
        end
        break
      end
    end
  end
  if emptied then stamp_if_emptied(KEYS[1], now) end
  reply[2] = 1
  return reply
end
if op == 'consume' or op == 'check' then
  local cost_r, cost_t = tonumber(ARGV[3]), tonumber(ARGV[4])
  for _, s in ipairs(scans) do
    -- Only limited dimensions refuse: the weighted count, and (capRetryAt) the buckets' sum
    -- passing MAX_COUNT. An unlimited one saturates below.
    if (s.limit_r > 0 and (not admits(s.buckets, s.B, 2, cost_r, s.limit_r) or raw_sum(s.buckets, 2) + cost_r > MAX_COUNT))
      or (s.limit_t > 0 and (not admits(s.buckets, s.B, 3, cost_t, s.limit_t) or raw_sum(s.buckets, 3) + cost_t > MAX_COUNT)) then
      return reply
    end
  end
  -- 'check' (the subject script's first pass): would admit, writes nothing.
  if op == 'check' then
    reply[2] = 1
    return reply
  end
  for _, s in ipairs(scans) do
    -- core's saturated(): a window takes what keeps its buckets within MAX_COUNT (all of a limited
    -- dimension's cost, which was checked above).
    local add_r = math.min(cost_r, math.max(0, MAX_COUNT - raw_sum(s.buckets, 2)))
    local add_t = math.min(cost_t, math.max(0, MAX_COUNT - raw_sum(s.buckets, 3)))
    s.buckets = add_to_current(s.buckets, s.B, add_r, add_t)
  end
else
  local delta = tonumber(ARGV[3])
  -- The refunded admission's decision time ('' for none).
  local decided_at = tonumber(ARGV[4])
  for _, s in ipairs(scans) do
    if delta >= 0 then
      -- A charge stops where the buckets would sum past MAX_COUNT.
      s.buckets = add_to_current(s.buckets, s.B, 0, math.min(delta, math.max(0, MAX_COUNT - raw_sum(s.buckets, 3))))
    elseif decided_at then s.buckets = refund_at(s.buckets, s.B, decided_at, -delta)
    else s.buckets = refund(s.buckets, -delta) end
  end
end
-- The new state lives until its newest bucket has left its window (slidingWindowExpiresAt).
-- Windows the config does not name keep their buckets, pruned, until those have left their own
-- window (core's slidingWindowConsume: a config change never resets usage); anything else goes.
local expires_at = 0
local configured = {}
for _, s in ipairs(scans) do configured[s.window] = true end
for i = 1, #raw, 2 do
  local name = raw[i]
  if not configured[name] then
    local kept = {}
    if WINDOW_MS[name] then kept = prune(parse(raw[i + 1]), WINDOW_MS[name] / P) end
    if #kept > 0 then
      redis.call('HSET', KEYS[1], name, encode(kept))
      expires_at = math.max(expires_at, kept[#kept][1] + (P + 1) * (WINDOW_MS[name] / P))
    else
      redis.call('HDEL', KEYS[1], name)
    end
  end
end
for _, s in ipairs(scans) do
  local n = #s.buckets
  if n > 0 then
    redis.call('HSET', KEYS[1], s.window, encode(s.buckets))
    expires_at = math.max(expires_at, s.buckets[n][1] + (P + 1) * s.B)
  else
    redis.call('HDEL', KEYS[1], s.window)
  end
end
if expires_at > now then pexpire(KEYS[1], expires_at - now) end
-- Nothing kept: a hash that held fields is gone.
if expires_at == 0 and #raw > 0 then stamp_if_emptied(KEYS[1], now) end
reply[2] = 1
return reply
`

/** The sliding-window script: {@link SLIDING_WINDOW_BODY} with the prelude, and receipts (KEYS[2]). */
export const SLIDING_WINDOW_SCRIPT = receiptScript(`${LUA_PRELUDE}${QUOTA_COMMON_LUA}`, {
  ...QUOTA_RECEIPT,
  body: SLIDING_WINDOW_BODY,
})

/** For tests: the calendar arithmetic alone, `{start, end}` of `ARGV[1]`'s window at `ARGV[2]`. */
export const CALENDAR_PROBE_SCRIPT = new LuaScript(`${CALENDAR_LUA}
local start, window_end = calendar_window(ARGV[1], tonumber(ARGV[2]))
return { string.format('%.0f', start), string.format('%.0f', window_end) }
`)

/**
 * Deletes a quota hash and leaves a new reset stamp in its marker (see {@link MARKER_LUA}) for as
 * long as the hash would have lived, and at least as long as any receipt written before the reset
 * can live: a refund of an admission decided under another stamp finds it and takes nothing from
 * the counts made after the reset (`reset_since`). Written whether or not the hash exists (it may
 * have been emptied or have expired since an admission whose receipt is still alive). Lua for the
 * reset scripts and the subject index's evictions (after {@link MARKER_LUA}); `now` is the reset
 * time.
 *
 * The stamp is the reset time, or one more than the stamp before it when that is not earlier
 * (two resets in one millisecond, a clock that went back): each reset of a hash writes a larger
 * stamp than the last. Receipts need only that it changes; keeping it a time at or after the
 * reset is for the decision-time fallback of `reset_since`, and for the previous version's
 * scripts, which compare a tenant's stamp with decision times and may still run beside these
 * during an upgrade.
 */
export const RESET_MARK_LUA = `
local function reset_hash(key, now)
  drop_legacy(key, now)
  new_stamp(key, now, redis.call('PTTL', key))
  return redis.call('DEL', key)
end
`

/** Deletes one tenant's quota hash, leaving a new reset stamp. ARGV: now. */
export const RESET_SCRIPT = new LuaScript(`${LUA_PRELUDE}${MARKER_LUA}${RESET_MARK_LUA}
return reset_hash(KEYS[1], now_ms(ARGV[1]))`)

/**
 * The reset marker of a quota hash, as the scripts name it (`marker_of` in {@link MARKER_LUA}):
 * `<tenant hash>:reset` for the tenant's hash, `<tenant hash>:reset:<subject>` for a subject's.
 *
 * @example
 * ```ts
 * resetMarkerKey('{tenant:quota:acme}:f') // '{tenant:quota:acme}:f:reset'
 * resetMarkerKey('{tenant:quota:acme}:f', 'model:gpt') // '{tenant:quota:acme}:f:reset:model:gpt'
 * ```
 */
export function resetMarkerKey(tenantKey: string, subject?: string): string {
  return subject === undefined ? `${tenantKey}:reset` : `${tenantKey}:reset:${subject}`
}

/**
 * The markers a subject call on `tenantKey` and `subjectKey` reads: the tenant's, the subject's,
 * and last the previous version's name for the subject's (`marker_of` in {@link MARKER_LUA}).
 */
export function subjectResetMarkers(tenantKey: string, subjectKey: string, subject: string): string[] {
  return [resetMarkerKey(tenantKey), resetMarkerKey(tenantKey, subject), `${subjectKey}:reset`]
}
