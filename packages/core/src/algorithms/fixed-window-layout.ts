// How InMemoryQuotaManager keeps fixed-window counts: flatter than `FixedWindowState`, and charged
// in place. Internal to core: the algorithm's contract is `fixedWindowConsume` and its plain state.
import type { NormalizedCost } from '../cost'
import type { QuotaDecision, QuotaWindowUsage } from '../quota'
import type { QuotaWindow } from '../schemas'
import { quotaWindows } from '../schemas'
import { MINUTE_MS } from './calendar'
import type { ExpiringEntry } from './expiring-map'
import type { FixedWindowCounter, FixedWindowState } from './fixed-window'
import type { EffectiveLimit } from './limits'
import { MAX_QUOTA_COUNT } from './limits'
import { currentWindow, windowStartingAt } from './memo'
import type { MemoryLayout } from './memory-quota-manager'
import { fixedWindowAlgorithm } from './quota-algorithm'
import { quotaDecision, windowUsage } from './quota-decision'

/**
 * One window's count. `minute` is the window's start in minutes since the epoch (every calendar
 * window starts on a whole minute): a small integer that V8 keeps in the object, where the start
 * in ms would be a separate boxed number. The counts of a tenant form a list in window order.
 */
class WindowCount {
  window: QuotaWindow | undefined = undefined
  minute = 0
  requests = 0
  tokens = 0
  next: WindowCount | undefined = undefined
}

/**
 * A tenant's entry: its first count inline and the expiry-heap fields, so a tenant with one limit
 * is a single object. `window === undefined`: no counts at all.
 */
class FixedTenant extends WindowCount implements ExpiringEntry {
  heapAt = 0
  constructor(readonly key: string) {
    super()
  }
}

const NO_DENIALS: [] = []

// A window start in whole minutes. Math.floor, not a bare division: V8 returns a small integer from
// it, where a division of a large ms value yields a heap number that would box the field.
function minuteOf(start: number): number {
  return Math.floor(start / MINUTE_MS)
}

function read(entry: FixedTenant | undefined): FixedWindowState | undefined {
  if (entry === undefined) return undefined
  const state: FixedWindowState = {}
  for (let count: WindowCount | undefined = entry; count?.window !== undefined; count = count.next) {
    const counter: FixedWindowCounter = {
      start: count.minute * MINUTE_MS,
      requests: count.requests,
      tokens: count.tokens,
    }
    state[count.window] = counter
  }
  return state
}

function write(entry: FixedTenant, state: FixedWindowState): void {
  let last: WindowCount | undefined
  for (const window of quotaWindows) {
    const counter = state[window]
    if (counter === undefined) continue
    // Reuses the entry's count objects where it has them.
    let count: WindowCount = entry
    if (last !== undefined) {
      if (last.next === undefined) last.next = new WindowCount()
      count = last.next
    }
    count.window = window
    count.minute = minuteOf(counter.start)
    count.requests = counter.requests
    count.tokens = counter.tokens
    last = count
  }
  if (last === undefined) {
    entry.window = undefined
    entry.next = undefined
  } else {
    last.next = undefined
  }
}

function expiresAt(entry: FixedTenant): number {
  let at = 0
  for (let count: WindowCount | undefined = entry; count?.window !== undefined; count = count.next) {
    if (count.requests === 0 && count.tokens === 0) continue
    at = Math.max(at, windowStartingAt(count.window, count.minute * MINUTE_MS).end)
  }
  return at
}

// Whether a count (of a window the config does not name) still counts in its current window: a
// stale one is dropped by fixedWindowConsume, so its presence sends the call there.
function isCurrent(count: WindowCount, now: number): boolean {
  return count.minute * MINUTE_MS === currentWindow(count.window!, now).start
}

/**
 * `fixedWindowConsume` for an admission, in place: the same check, the same counts after it and
 * the same decision. Taken only when the entry holds a count for every limit (a tenant's steady
 * state; counts of other windows are left as they are, as `fixedWindowConsume` keeps them) and the
 * cost is not zero; anything else (a denial, a window the config added, a window emptied by a
 * refund, a zero cost, which `fixedWindowConsume` answers without keeping a rolled-over empty
 * count, a count of another window that went stale) returns `undefined` without changing the
 * entry, and the manager runs `fixedWindowConsume`.
 */
function charge(
  entry: FixedTenant,
  limits: readonly EffectiveLimit[],
  cost: NormalizedCost,
  now: number,
): QuotaDecision | undefined {
  if (cost.requests === 0 && cost.tokens === 0) return undefined
  // First pass: check only, so a denial changes nothing. Counts of windows the config does not
  // name (kept until their window ends, see fixedWindowConsume) are skipped: both lists are in
  // window order, so a limit without a count runs off the end of the list.
  let count: WindowCount | undefined = entry.window === undefined ? undefined : entry
  // Indexed, not for-of: the limits are a frozen array, which for-of walks through the generic
  // iterator (measured: the loop header alone was the hottest line of a consume).
  for (let i = 0; i < limits.length; i++) {
    const limit = limits[i]!
    while (count !== undefined && count.window !== limit.window) {
      if (!isCurrent(count, now)) return undefined
      count = count.next
    }
    if (count === undefined) return undefined
    const current = count.minute * MINUTE_MS === currentWindow(limit.window, now).start
    const requests = current ? count.requests : 0
    const tokens = current ? count.tokens : 0
    // overLimit in quota-decision.ts: only limited dimensions refuse.
    if (limit.requests !== undefined && requests + cost.requests > limit.requests) return undefined
    if (limit.tokens !== undefined && tokens + cost.tokens > limit.tokens) return undefined
    count = count.next
  }
  for (; count?.window !== undefined; count = count.next) if (!isCurrent(count, now)) return undefined

  // Second pass: charge (the first pass found one count per limit). One limit, the common case,
  // gets a one-element literal; more get `map`, which sizes the array exactly, where a pushed-to
  // `[]` starts at 16 slots.
  if (limits.length === 1) {
    let only: WindowCount = entry
    while (only.window !== limits[0]!.window) only = only.next!
    return quotaDecision(now, [chargeCount(only, limits[0]!, cost, now)], NO_DENIALS)
  }
  let next: WindowCount | undefined = entry
  const windows = limits.map((limit): QuotaWindowUsage => {
    while (next!.window !== limit.window) next = next!.next
    const count = next!
    next = count.next
    return chargeCount(count, limit, cost, now)
  })
  return quotaDecision(now, windows, NO_DENIALS)
}

// Charges `cost` to `count`, the count of `limit`'s window, restarting it if its window has passed,
// and answers the window's usage after the charge.
function chargeCount(
  count: WindowCount,
  limit: EffectiveLimit,
  cost: NormalizedCost,
  now: number,
): QuotaWindowUsage {
  const bounds = currentWindow(limit.window, now)
  const minute = minuteOf(bounds.start)
  if (count.minute !== minute) {
    count.minute = minute
    count.requests = 0
    count.tokens = 0
  }
  // fixedWindowConsume's nextState: an unlimited dimension saturates at MAX_QUOTA_COUNT (a limited
  // one is within its limit, so the minimum changes nothing there).
  count.requests = Math.min(MAX_QUOTA_COUNT, count.requests + cost.requests)
  count.tokens = Math.min(MAX_QUOTA_COUNT, count.tokens + cost.tokens)
  return windowUsage(limit, count, bounds.end)
}

/** InMemoryQuotaManager's layout of `fixedWindowAlgorithm` state. */
export const fixedWindowLayout: MemoryLayout<FixedWindowState, FixedTenant> = Object.freeze({
  algorithm: fixedWindowAlgorithm,
  create: (key: string, state: FixedWindowState) => {
    const entry = new FixedTenant(key)
    write(entry, state)
    return entry
  },
  read,
  write,
  expiresAt,
  charge,
})
