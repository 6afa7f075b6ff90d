import type { NormalizedCost } from '../cost'
import { normalizeCost } from '../cost'
import type { QuotaCost, QuotaWindowUsage } from '../quota'
import type { QuotaConfig, QuotaWindow } from '../schemas'
import { quotaWindows } from '../schemas'
import { calendarWindow } from './calendar'
import type { EffectiveLimit } from './limits'
import { MAX_QUOTA_COUNT } from './limits'
import { currentWindow, limitsOf, windowStartingAt } from './memo'
import type { QuotaDenial } from './quota-decision'
import { denialReason, overLimit, quotaDecision, windowUsage } from './quota-decision'
import type { QuotaCharge, QuotaStep } from './types'

/**
 * The count of one calendar window. `start` says which window it counts: a counter whose `start`
 * is not the start of the current window is stale and reads as zero (no cleanup needed for
 * correctness, so a store may expire it whenever convenient).
 */
export interface FixedWindowCounter {
  /** Start of the counted calendar window, ms since the epoch. */
  start: number
  requests: number
  tokens: number
}

/**
 * A tenant's fixed-window state: at most one counter per window kind. Plain JSON: a Redis hash
 * (`minute:start`, `minute:requests`, ...), a Durable Object storage value, or a Map entry.
 */
export type FixedWindowState = { [W in QuotaWindow]?: FixedWindowCounter }

const ZERO: NormalizedCost = Object.freeze({ requests: 0, tokens: 0 })

function currentCount(counter: FixedWindowCounter | undefined, start: number): NormalizedCost {
  return counter !== undefined && counter.start === start ? counter : ZERO
}

interface Scan {
  limit: EffectiveLimit
  start: number
  end: number
  used: NormalizedCost
}

function scan(state: FixedWindowState | undefined, limits: readonly EffectiveLimit[], now: number): Scan[] {
  return limits.map((limit) => {
    const { start, end } = currentWindow(limit.window, now)
    return { limit, start, end, used: currentCount(state?.[limit.window], start) }
  })
}

function usages(scans: Scan[]): QuotaWindowUsage[] {
  return scans.map((s) => windowUsage(s.limit, s.used, s.end))
}

/**
 * The state after adding `requests` / `tokens` to every scanned window, each count kept within 0
 * and `MAX_QUOTA_COUNT` (only an unlimited dimension can reach the bound: a limited one was
 * checked against its limit, which is at most that). Counters of windows the config does not name are kept while their window
 * lasts (see {@link fixedWindowConsume}); stale ones are dropped.
 */
function nextState(
  previous: FixedWindowState | undefined,
  scans: Scan[],
  requests: number,
  tokens: number,
  now: number,
): FixedWindowState {
  const state: FixedWindowState = {}
  if (previous !== undefined) {
    for (const window of quotaWindows) {
      const counter = previous[window]
      if (counter === undefined || scans.some((s) => s.limit.window === window)) continue
      if (counter.start !== currentWindow(window, now).start) continue
      if (counter.requests !== 0 || counter.tokens !== 0) state[window] = counter
    }
  }
  for (const s of scans) {
    const next = {
      // A sum past MAX_QUOTA_COUNT rounds to at least 2^53, so the minimum is exactly the bound.
      requests: Math.min(MAX_QUOTA_COUNT, s.used.requests + requests),
      tokens: Math.min(MAX_QUOTA_COUNT, Math.max(0, s.used.tokens + tokens)),
    }
    s.used = next
    if (next.requests !== 0 || next.tokens !== 0) state[s.limit.window] = { start: s.start, ...next }
  }
  return state
}

/**
 * Checks `cost` against every limit of `config` in the calendar windows containing `now` and, only
 * if all have room for the full cost, charges all of them (all-or-nothing).
 *
 * On a denial the returned `state` is the input state unchanged, and `retryAfterMs` is the time
 * until the latest-ending refusing window ends: the counter falls to zero exactly then and never
 * before, so the same request is admitted at `now + retryAfterMs` and not 1 ms earlier. A request
 * whose cost exceeds a limit outright gets the same value (the end of that window, when it is as
 * empty as it can ever be) and a reason saying it can never be admitted.
 *
 * Only limited dimensions decide. An unlimited dimension never denies: its count is only
 * reported, and saturates at `MAX_QUOTA_COUNT` (the bound of exact arithmetic), so an absurd cost
 * in it (a client-chosen token count) is admitted and counted as far as the bound, never locking
 * the tenant out. A limit is at most that bound, so a limited count never reaches past it.
 *
 * A config change never resets usage: the counter of a window that `config` does not name (one a
 * newer or older version of the tenant's config has) is kept, unchanged, until its calendar
 * window ends, so it counts again if that window comes back and two instances holding different
 * versions of the config cannot erase each other's counts. `fixedWindowExpiresAt` covers it.
 *
 * An admission also returns `charged`: what it added to each window's counter (the cost, less in
 * a dimension that saturated), which a store keeps to take it back exactly ({@link fixedWindowRefund}).
 *
 * Throws `InvalidCostError` for a bad cost, `InvalidTenantConfigError` for a bad config.
 *
 * @example
 * ```ts
 * const { decision, state } = fixedWindowConsume(undefined, { limits: [{ window: 'minute', requests: 2 }] }, {}, now)
 * ```
 */
export function fixedWindowConsume(
  state: FixedWindowState | undefined,
  config: QuotaConfig,
  cost: QuotaCost | undefined,
  now: number,
): QuotaStep<FixedWindowState> {
  const charge = normalizeCost(cost)
  const scans = scan(state, limitsOf(config), now)
  const denials: QuotaDenial[] = []
  for (const s of scans) {
    for (const dimension of overLimit(s.limit, s.used, charge)) {
      const allowance = s.limit[dimension]
      denials.push({
        window: s.limit.window,
        dimension,
        retryAt: s.end,
        impossible: allowance !== undefined && charge[dimension] > allowance,
        reason: denialReason(s.limit.window, dimension, s.used[dimension], allowance, charge[dimension]),
      })
    }
  }
  if (denials.length > 0) return { decision: quotaDecision(now, usages(scans), denials), state: state ?? {} }
  const before = scans.map((s) => s.used)
  const next = nextState(state, scans, charge.requests, charge.tokens, now)
  // What each counter took: the cost, less where an unlimited dimension saturated (both counts are
  // whole numbers within MAX_QUOTA_COUNT, so the difference is exact).
  const charged: { [W in QuotaWindow]?: NormalizedCost } = {}
  scans.forEach((s, i) => {
    const was = before[i]!
    charged[s.limit.window] = { requests: s.used.requests - was.requests, tokens: s.used.tokens - was.tokens }
  })
  return { decision: quotaDecision(now, usages(scans), []), state: next, charged }
}

/**
 * Adds `tokens` (negative: refunds) to the current window of every limit of `config`. Never
 * denies; a refund stops at zero, a charge at `MAX_QUOTA_COUNT`. Keeps the counters of windows
 * `config` does not name, like {@link fixedWindowConsume}. Returns the usage after the change.
 *
 * A refund given `decidedAt` (the time of the admission it is for) comes out of the windows that
 * admission charged: a window whose counter has started afresh since (a new minute) keeps its
 * count ({@link fixedWindowRefund} of the tokens alone).
 *
 * @example
 * ```ts
 * const config = { limits: [{ window: 'minute' as const, requests: 100, tokens: 10_000 }] }
 * const { state } = fixedWindowConsume(undefined, config, { tokens: 500 }, now)
 * const { usage, state: next } = fixedWindowAdjust(state, config, 300, now) // the call used 800 tokens
 * // usage[0].used: { requests: 1, tokens: 800 }
 * ```
 */
export function fixedWindowAdjust(
  state: FixedWindowState | undefined,
  config: QuotaConfig,
  tokens: number,
  now: number,
  decidedAt?: number,
): { usage: QuotaWindowUsage[]; state: FixedWindowState } {
  if (tokens < 0 && decidedAt !== undefined) {
    const refunded = fixedWindowRefund(state, config, { requests: 0, tokens: -tokens }, decidedAt)
    return { usage: fixedWindowPeek(refunded, config, now), state: refunded }
  }
  const scans = scan(state, limitsOf(config), now)
  const next = nextState(state, scans, 0, tokens, now)
  return { usage: usages(scans), state: next }
}

/**
 * Usage of every limit of `config` at `now`, without changing anything.
 *
 * @example
 * ```ts
 * const usage = fixedWindowPeek(state, config, now)
 * // [{ window: 'minute', used: { requests: 1, tokens: 800 }, remaining: { requests: 99, tokens: 9200 }, ... }]
 * ```
 */
export function fixedWindowPeek(
  state: FixedWindowState | undefined,
  config: QuotaConfig,
  now: number,
): QuotaWindowUsage[] {
  return usages(scan(state, limitsOf(config), now))
}

/**
 * Takes back an admission that {@link fixedWindowConsume} made at `decidedAt` with `config` and
 * `cost`, for a store told that the admission's caller never got its answer (it was lost after
 * the charge). Each window of `config` whose counter still counts the calendar window containing
 * `decidedAt` loses what the admission added to it, never going below zero; a counter of a later
 * window (a new window started since) is left alone, so a refund never takes from a charge it did
 * not make. Counters of windows `config` does not name are kept as they are; a counter refunded to
 * zero is dropped.
 *
 * What the admission added is `charged`, the `charged` of its step: the cost, or less in an
 * unlimited dimension whose count saturated at `MAX_QUOTA_COUNT` (taking the full cost back there
 * would take away usage that was counted before it). A window `charged` does not name loses
 * nothing. Without `charged`, every window loses `cost`, which is exact for any admission that did
 * not saturate.
 *
 * The store must refund each admission at most once, and only from the state it charged (not
 * from one written after a reset): this function cannot tell.
 *
 * Throws `InvalidCostError` for a bad cost, `InvalidTenantConfigError` for a bad config.
 *
 * @example
 * ```ts
 * const decidedAt = now
 * const { state, charged } = fixedWindowConsume(saved, config, { tokens: 40 }, decidedAt)
 * // ... the answer was lost on its way to the caller, who was told the call failed:
 * const undone = fixedWindowRefund(state, config, { tokens: 40 }, decidedAt, charged) // saved's counts again
 * ```
 */
export function fixedWindowRefund(
  state: FixedWindowState | undefined,
  config: QuotaConfig,
  cost: QuotaCost | undefined,
  decidedAt: number,
  charged?: QuotaCharge,
): FixedWindowState {
  const charge = normalizeCost(cost)
  const limits = limitsOf(config)
  const next: FixedWindowState = { ...state }
  for (const limit of limits) {
    const counter = next[limit.window]
    // calendarWindow, not the cached currentWindow: decidedAt may be a past window, and asking
    // about it must not evict the window every consume asks about.
    if (counter === undefined || counter.start !== calendarWindow(limit.window, decidedAt).start) continue
    const added = charged === undefined ? charge : (charged[limit.window] ?? ZERO)
    const requests = Math.max(0, counter.requests - added.requests)
    const tokens = Math.max(0, counter.tokens - added.tokens)
    if (requests === 0 && tokens === 0) delete next[limit.window]
    else next[limit.window] = { start: counter.start, requests, tokens }
  }
  return next
}

/**
 * The instant from which `state` counts nothing any more (the end of the latest window it has a
 * non-zero counter for), so a store can drop it then: a Map sweep, a Redis `PEXPIREAT`, a Durable
 * Object alarm. `0` for a state that counts nothing.
 *
 * @example
 * ```ts
 * // keep the state until it counts nothing, e.g. as a TTL
 * const ttlMs = fixedWindowExpiresAt(state) - now // at 12:00:30 with only a minute count: 30000
 * ```
 */
export function fixedWindowExpiresAt(state: FixedWindowState | undefined): number {
  let expiresAt = 0
  if (state === undefined) return expiresAt
  for (const window of quotaWindows) {
    const counter = state[window]
    if (counter === undefined || (counter.requests === 0 && counter.tokens === 0)) continue
    expiresAt = Math.max(expiresAt, windowStartingAt(window, counter.start).end)
  }
  return expiresAt
}
