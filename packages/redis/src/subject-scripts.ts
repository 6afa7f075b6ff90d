import { LUA_PRELUDE } from './lua'
import {
  CALENDAR_LUA,
  FIXED_WINDOW_BODY,
  MARKER_LUA,
  QUOTA_COMMON_LUA,
  RESET_MARK_LUA,
  SLIDING_WINDOW_BODY,
} from './quota-scripts'
import { receiptScript } from './receipts'
import { LuaScript } from './script'

/**
 * A decision naming a subject (`QuotaCost.subject`) in one script, so it stays one round trip:
 * the window script's body runs as a function twice, once on the tenant's hash and once on the
 * subject's, with the same decision time. `consume` first runs both as `check` and writes only
 * when both would admit (all-or-nothing across the two hashes, atomically, as Redis runs a script
 * alone); `adjust` and `refund` change both; `peek` (sent with no tenant arguments) reads the
 * subject's hash alone.
 *
 * KEYS: the tenant's hash, the subject's hash, the tenant's subject index (a sorted set of subject
 * -> when its hash expires), and for a consume or void its receipt (see `receiptScript`) and the
 * reset markers of the two hashes (see `MARKER_LUA`: `<tenant hash>:reset` and
 * `<tenant hash>:reset:<subject>`, then the subject's marker under the previous version's name,
 * whose stamps the receipt records; declared for servers that check which keys a script touches).
 * All share the tenant's hash tag, so one Cluster slot.
 *
 * A string in the subject's own key is a marker the previous version left there for another
 * subject (the one named without this one's `:reset` ending); every call moves it out first
 * (`drop_legacy`), so the subject's hash is usable again.
 *
 * ARGV: now ('' = Redis TIME), op ('consume' | 'adjust' | 'refund' | 'peek'), the subject id, the most
 * subjects the index keeps, the count `nt` of the tenant's arguments, then the tenant's arguments
 * (the window script's ARGV after the op: cost, then limits; `nt = 0` when the tenant has no
 * limits) and the subject's (the rest).
 *
 * Reply: `{tenantReply, subjectReply}`, each the window script's reply for its hash (the state
 * before the change, and 1 when it wrote).
 *
 * The index keeps the subjects that hold state, so a tenant reset deletes them too. A new subject
 * beyond the bound evicts (deletes) the one whose hash expires first, as a reset does: with a new
 * reset stamp, so a void of an admission on it refunds nothing from the counts of a later subject
 * of that name. Expired entries leave the index on the next write. The index lives as long as its
 * latest subject.
 */
function subjectScript(helpers: string, body: string): LuaScript {
  return receiptScript(`${LUA_PRELUDE}${helpers}${RESET_MARK_LUA}`, {
    receiptKey: 4,
    op: 'ARGV[2]',
    applied: 'reply[1][2] == 1 and reply[2][2] == 1',
    // Both halves decided at the same time, the tenant's reply's first value.
    // Each half's reply also says what the admission added to its hash (see refund_prior).
    toRefund:
      "argv[1], argv[2] = fmt(tonumber(reply[1][1])), 'refund'; refund_prior[KEYS[1]], refund_prior[KEYS[2]] = reply[1], reply[2]",
    // Each half's refund checks its own hash: a subject reset alone keeps the tenant's refund.
    stamped: '{ KEYS[1], KEYS[2] }',
    body: `
local function part(KEYS, ARGV)
${body}
end
local now = now_ms(ARGV[1])
local op = ARGV[2]
local subject = ARGV[3]
local max_subjects = tonumber(ARGV[4])
local nt = tonumber(ARGV[5])
drop_legacy(KEYS[2], now)
local function args(first, last, o)
  local a = { fmt(now), o }
  for i = first, last do a[#a + 1] = ARGV[i] end
  return a
end
local function run_tenant(o)
  if nt == 0 then return { now, 1 } end
  return part({ KEYS[1] }, args(6, 5 + nt, o))
end
local function run_subject(o)
  return part({ KEYS[2] }, args(6 + nt, #ARGV, o))
end
-- Files the subject under its hash's expiry; a new one past the bound evicts the earliest.
local function index()
  local ttl = redis.call('PTTL', KEYS[2])
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', fmt(now))
  if ttl < 0 then
    redis.call('ZREM', KEYS[3], subject)
  else
    if not redis.call('ZSCORE', KEYS[3], subject) then
      local base = string.sub(KEYS[2], 1, #KEYS[2] - #subject)
      while redis.call('ZCARD', KEYS[3]) >= max_subjects do
        local popped = redis.call('ZPOPMIN', KEYS[3])
        if #popped == 0 then break end
        reset_hash(base .. popped[1], now)
      end
    end
    redis.call('ZADD', KEYS[3], fmt(now + ttl), subject)
  end
  local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
  if last[2] then redis.call('PEXPIRE', KEYS[3], fmt(math.max(1, tonumber(last[2]) - now))) end
end
if op == 'consume' then
  local t = run_tenant('check')
  local s = run_subject('check')
  if t[2] == 1 and s[2] == 1 then
    t = run_tenant('consume')
    s = run_subject('consume')
    index()
  else
    t[2], s[2] = 0, 0
  end
  return { t, s }
end
local t = run_tenant(op)
local s = run_subject(op)
-- A refund (a void, a late reply's refund) that empties the subject's hash takes it out of the
-- index too: left there, it would hold one of the places until its old expiry, and a new subject
-- would evict a live one in its stead.
if op == 'adjust' or op == 'refund' then index() end
return { t, s }
`,
  })
}

/** The subject script over fixed windows. */
export const FIXED_SUBJECT_SCRIPT = subjectScript(`${CALENDAR_LUA}${QUOTA_COMMON_LUA}`, FIXED_WINDOW_BODY)

/** The subject script over sliding windows. */
export const SLIDING_SUBJECT_SCRIPT = subjectScript(QUOTA_COMMON_LUA, SLIDING_WINDOW_BODY)

/**
 * Deletes a tenant's hash, its subjects' hashes and their index (`QuotaManager.reset`), leaving a
 * new reset stamp for each hash (see `RESET_MARK_LUA`). KEYS: the tenant's hash, the index; ARGV:
 * now ('' = Redis TIME). A subject's key is the tenant's key as the script got it, so with the
 * prefix a client puts before every key (ioredis `keyPrefix`), followed by `:subject:<id>`.
 */
export const RESET_WITH_SUBJECTS_SCRIPT = new LuaScript(`${LUA_PRELUDE}${MARKER_LUA}${RESET_MARK_LUA}
local now = now_ms(ARGV[1])
reset_hash(KEYS[1], now)
local members = redis.call('ZRANGE', KEYS[2], 0, -1)
for i = 1, #members do reset_hash(KEYS[1] .. ':subject:' .. members[i], now) end
redis.call('DEL', KEYS[2])
return #members
`)

/**
 * Deletes one subject's hash (leaving a new reset stamp) and its index entry. KEYS: the subject's
 * hash, the index; ARGV: now ('' = Redis TIME), the subject.
 */
export const RESET_SUBJECT_SCRIPT = new LuaScript(`${LUA_PRELUDE}${MARKER_LUA}${RESET_MARK_LUA}
redis.call('ZREM', KEYS[2], ARGV[2])
return reset_hash(KEYS[1], now_ms(ARGV[1]))
`)
