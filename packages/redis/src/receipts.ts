import type { AfterFailure, CommandGate } from './command-gate'
import { LuaScript } from './script'

/**
 * Default of the stores' `receiptTtlMs`: how long Redis keeps the receipt of an admission, in ms.
 * A command run twice within this time (a client re-sending it after its reply was lost with the
 * connection) charges once, and a void that reaches Redis within it takes the charge back. It
 * bounds memory: one small key per admission for this long.
 */
export const RECEIPT_TTL_MS = 15_000

/** Bounds of the `receiptTtlMs` option: a second to ten minutes. */
export const RECEIPT_TTL_RANGE_MS = { min: 1_000, max: 600_000 } as const

/**
 * How the consume scripts of one store are wrapped with receipts. Each field is Lua: `op` an
 * expression naming the call's operation ('consume' | 'void' | anything else, which runs
 * unchanged), `applied` an expression over `reply` true when the decision charged, `toRefund`
 * statements that turn `argv` (a copy of ARGV) into the arguments of the refund of `reply`.
 */
export interface ReceiptShape {
  /** The store's script (prelude and helpers first), whose top level reads KEYS and ARGV. */
  body: string
  /** The index in KEYS of the receipt key; absent (nil) for calls without one. */
  receiptKey: number
  op: string
  applied: string
  toRefund: string
  /**
   * For stores whose state `reset()` can clear (the quota scripts): a Lua expression listing the
   * state keys whose reset stamps an admission's receipt records, so that its void refunds only
   * the hashes not reset since the decision. The prelude must define `record_stamps` and
   * `decided_stamps` (see `QUOTA_COMMON_LUA`). Absent: receipts hold the reply alone.
   */
  stamped?: string
}

/**
 * A consume script with receipts, so that a decision is charged at most once and a decision its
 * caller was told failed can be taken back exactly:
 *
 * - `consume`: when the call's receipt already exists, the decision was made (the command runs a
 *   second time: a client re-sent it after losing its reply); the recorded reply is answered
 *   again and nothing is charged. A receipt that says `void` answers `{'void', 0}` and charges
 *   nothing. Otherwise the script decides, and an admission records its reply as the receipt.
 * - `void` (sent when the caller was told the call failed: a timeout, or an error after the
 *   command may have gone out): leaves `void` as the receipt, so the decision, if it has not run
 *   yet, never charges; if the receipt held an admission, runs the store's own refund of it in
 *   the same script. Answers `{'void', 1}` when it refunded, `{'void', 0}` otherwise. Running it
 *   twice refunds once.
 *
 * Replies are stored with cjson, their numbers (integers the scripts wrote) as exact decimal
 * text, so a replayed reply answers its numbers as text: the decoders read both. With
 * `shape.stamped` the receipt is `{"r": reply, "s": stamps}`; a bare reply (written before
 * stamps were recorded) is still read, and its refund falls back to the decision time.
 */
export function receiptScript(prelude: string, shape: ReceiptShape): LuaScript {
  // Short field names: Redis holds one receipt per admission of the last receiptTtlMs.
  const withStamps =
    shape.stamped === undefined ? '' : `record = { r = record, s = record_stamps(${shape.stamped}, ttl) }`
  // A bare reply leaves decided_stamps empty: its refund goes by the decision time.
  const restoreStamps =
    shape.stamped === undefined
      ? ''
      : `if reply.r then
    local keys, stamps = ${shape.stamped}, reply.s or {}
    for i, key in ipairs(keys) do decided_stamps[key] = stamps[i] end
    reply = reply.r
  end`
  return new LuaScript(`${prelude}
-- A reply with its numbers as exact decimal text, for cjson, which writes numbers with 14
-- significant digits (the time of an application clock can have more).
local function exact(t)
  local copy = {}
  for i, v in ipairs(t) do
    if type(v) == 'number' then copy[i] = fmt(v)
    elseif type(v) == 'table' then copy[i] = exact(v)
    else copy[i] = v end
  end
  return copy
end
local function decide(KEYS, ARGV)
${shape.body}
end
local receipt = KEYS[${shape.receiptKey}]
local op = ${shape.op}
if receipt == nil or (op ~= 'consume' and op ~= 'void') then return decide(KEYS, ARGV) end
-- The receipt's key names how long it lives (see ReceiptIds): read from its end, which the store
-- wrote, never from an ':op:<digits>:' that the prefix at its start may hold.
local ttl = string.match(receipt, ':op:(%d+):%w+$') or '${RECEIPT_TTL_MS}'
local prior = redis.call('GET', receipt)
if op == 'void' then
  redis.call('SET', receipt, 'void', 'PX', ttl)
  if not prior or prior == 'void' then return { 'void', 0 } end
  local reply = cjson.decode(prior)
  ${restoreStamps}
  local argv = {}
  for i = 1, #ARGV do argv[i] = ARGV[i] end
  ${shape.toRefund}
  decide(KEYS, argv)
  return { 'void', 1 }
end
if prior then
  if prior == 'void' then return { 'void', 0 } end
  local recorded = cjson.decode(prior)
  return recorded.r or recorded
end
local reply = decide(KEYS, ARGV)
if ${shape.applied} then
  local record = exact(reply)
  ${withStamps}
  redis.call('SET', receipt, cjson.encode(record), 'PX', ttl)
end
return reply
`)
}

/** True for a void's reply that says it took an admission back. */
export function voidRefunded(reply: unknown): boolean {
  return Array.isArray(reply) && reply[0] === 'void' && Number(reply[1]) === 1
}

function randomHex(bytes: number): string {
  const buffer = globalThis.crypto.getRandomValues(new Uint8Array(bytes))
  return Array.from(buffer, (b) => b.toString(16).padStart(2, '0')).join('')
}

/**
 * Receipt keys: the key of the state they belong to (so the same Cluster slot), `:op:`, how long
 * the receipt lives in ms (the script reads it from there, anchored at the key's end: a store
 * prefix may itself hold `:op:<digits>:`), and an id unique across processes: 64 random bits per
 * store instance and a counter, letters and digits only. Named after the tenant's state key,
 * never a subject's, so no subject id can name one.
 */
export class ReceiptIds {
  readonly #prefix: string
  #next = 0

  constructor(readonly ttlMs: number = RECEIPT_TTL_MS) {
    this.#prefix = `:op:${ttlMs}:${randomHex(8)}`
  }

  /** A new receipt key for a call on `stateKey`. */
  next(stateKey: string): string {
    return `${stateKey}${this.#prefix}${(this.#next++).toString(36)}`
  }
}

/** Default bound on {@link OwedCommands}: commands beyond it are given up, oldest first. */
export const MAX_OWED_COMMANDS = 10_000

const FIRST_RETRY_MS = 50
const MAX_RETRY_MS = 2_000

interface Owed {
  send: () => Promise<unknown>
  what: string
  tenantId: string
  /** performance.now() after which it is given up. */
  until: number
  done: (reply: unknown) => void
}

/**
 * Commands a store owes Redis after a call failed on its caller (a void, a lease release), sent
 * through the store's gate until one lands. When Redis cannot be reached they wait and are tried
 * again, all together, after a pause that doubles from 50 ms to 2 s, for at most `windowMs`
 * (after that the receipt they act on is gone). At most {@link MAX_OWED_COMMANDS} wait; beyond
 * that the oldest are given up.
 */
export class OwedCommands {
  readonly #gate: CommandGate
  #waiting: Owed[] = []
  #sending = 0
  #retryMs = 0
  #timer: ReturnType<typeof setTimeout> | undefined
  #idle: (() => void) | undefined
  /** Owed commands given up (bound reached, or Redis unreachable for `windowMs`). */
  givenUp = 0

  readonly #now: () => number
  readonly #windowMs: number

  /**
   * `windowMs`: how long a command is tried (the receipts' TTL); `now`: the time that is measured
   * with, in ms (performance.now() by default).
   */
  constructor(gate: CommandGate, windowMs = RECEIPT_TTL_MS, now: () => number = () => performance.now()) {
    this.#gate = gate
    this.#windowMs = windowMs
    this.#now = now
  }

  /** Owes `send()`; `done` gets its reply once it lands. */
  add(tenantId: string, what: string, send: () => Promise<unknown>, done: (reply: unknown) => void): void {
    if (this.#waiting.length + this.#sending === 0) {
      // The gate's drain() waits for everything owed.
      this.#gate.track(new Promise<void>((resolve) => (this.#idle = resolve)))
    }
    this.#wait({ send, what, tenantId, until: this.#now() + this.#windowMs, done })
    // Sent at once unless a retry is due (a timer) or sends are on their way (their end schedules
    // the rest); after a failure it waits for the retry with the others.
    if (this.#timer === undefined && (this.#retryMs === 0 || this.#sending === 0)) this.#flush()
  }

  // Those on their way are bounded by the gate (maxInFlight, maxQueue); those waiting here by this.
  #wait(owed: Owed): void {
    if (this.#waiting.length >= MAX_OWED_COMMANDS) {
      this.#waiting.shift()
      this.givenUp++
    }
    this.#waiting.push(owed)
  }

  /** How many commands are owed (waiting or on their way). */
  get owed(): number {
    return this.#waiting.length + this.#sending
  }

  #flush(): void {
    this.#timer = undefined
    const now = this.#now()
    const batch = this.#waiting
    this.#waiting = []
    for (const owed of batch) {
      if (owed.until <= now) {
        this.givenUp++
        continue
      }
      this.#sending++
      this.#gate.run(owed.send, owed.what, owed.tenantId).then(
        (reply) => {
          this.#sending--
          this.#retryMs = 0
          owed.done(reply)
          this.#settle()
        },
        () => {
          this.#sending--
          this.#wait(owed)
          this.#retryMs = Math.min(MAX_RETRY_MS, Math.max(FIRST_RETRY_MS, this.#retryMs * 2))
          this.#settle()
        },
      )
    }
    this.#settle()
  }

  #settle(): void {
    if (this.#waiting.length > 0) {
      if (this.#sending === 0 && this.#timer === undefined) {
        this.#timer = setTimeout(() => this.#flush(), this.#retryMs)
        // drain() waits for it; a process that ends without draining need not.
        ;(this.#timer as { unref?: () => void }).unref?.()
      }
      return
    }
    if (this.#sending !== 0) return
    // Idle: what failed before (and was given up) says nothing about the next command.
    this.#retryMs = 0
    if (this.#idle !== undefined) {
      const idle = this.#idle
      this.#idle = undefined
      idle()
    }
  }
}

/**
 * What a store does about a decision whose caller was told it failed (a timeout, or an error once
 * it was sent), which may have run all the same:
 * - with receipts, its void, owed until it lands (see {@link receiptScript}); `refunded` is
 *   called when the void took an admission back;
 * - without, a reply that comes after its caller timed out is refunded by `refundLate` (which
 *   answers undefined when that reply charged nothing); a reply lost with its connection is not.
 */
export function afterFailure(
  store: { gate: CommandGate; owed: OwedCommands; receipts: ReceiptIds | undefined },
  tenantId: string,
  what: string,
  calls: {
    void: () => Promise<unknown>
    refundLate: (reply: unknown) => Promise<unknown> | undefined
  },
  refunded: () => void,
): AfterFailure<unknown> {
  if (store.receipts !== undefined) {
    const landed = (reply: unknown) => {
      if (voidRefunded(reply)) refunded()
    }
    return { failed: () => store.owed.add(tenantId, `${what} void`, calls.void, landed) }
  }
  return {
    late: (reply) => {
      let refund: Promise<unknown> | undefined
      try {
        refund = calls.refundLate(reply)
      } catch {
        return // not a reply the script sends: nothing it could have charged is known
      }
      if (refund === undefined) return
      store.gate.track(refund)
      refunded()
    },
  }
}
