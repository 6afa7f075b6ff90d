import type { NormalizedCost } from '../cost'
import { normalizeCost } from '../cost'
import { describeValue } from '../describe-value'
import { InvalidTenantConfigError } from '../errors'
import type { QuotaCost, QuotaWindowUsage } from '../quota'
import type { QuotaConfig, QuotaWindow } from '../schemas'
import { quotaWindows } from '../schemas'
import { MINUTE_MS, slidingWindowMs } from './calendar'
import type { EffectiveLimit, QuotaDimension } from './limits'
import { MAX_QUOTA_COUNT, quotaDimensions } from './limits'
import { limitsOf } from './memo'
import type { QuotaDenial } from './quota-decision'
import { denialReason, quotaDecision, windowUsage } from './quota-decision'
import type { QuotaCharge, QuotaStep } from './types'

/**
 * One sub-window bucket: `[start, requests, tokens]`, `start` in ms since the epoch and a multiple
 * of the bucket length. A tuple of numbers so it maps onto a Redis hash field or a JSON value.
 */
export type SlidingBucket = [start: number, requests: number, tokens: number]

/**
 * A tenant's sliding-window state: per window kind, its non-empty buckets in ascending `start`
 * order. Buckets that no longer overlap the window are pruned on every write.
 */
export type SlidingWindowState = { [W in QuotaWindow]?: SlidingBucket[] }

/** Buckets per window when no `precision` is given. */
export const DEFAULT_SLIDING_PRECISION = 10
/** Largest accepted `precision`. */
export const MAX_SLIDING_PRECISION = 1000

/**
 * Validates a sliding-window `precision` (buckets per window): a whole number from 1 to 1000 that
 * divides 60,000, so that every bucket of every window kind is a whole number of milliseconds
 * (all window lengths are multiples of a minute) and the arithmetic stays exact.
 * Throws `InvalidTenantConfigError` otherwise; managers call it once, in their constructor.
 *
 * @example
 * ```ts
 * validatePrecision(12) // 12
 * validatePrecision(7) // throws InvalidTenantConfigError: 7 does not divide 60,000
 * ```
 */
export function validatePrecision(precision: unknown): number {
  if (
    typeof precision !== 'number' ||
    !Number.isInteger(precision) ||
    precision < 1 ||
    precision > MAX_SLIDING_PRECISION ||
    MINUTE_MS % precision !== 0
  ) {
    throw new InvalidTenantConfigError([
      {
        path: ['precision'],
        message: `must be a whole number from 1 to ${MAX_SLIDING_PRECISION} that divides 60000 (e.g. 6, 10, 12, 60), got ${describeValue(precision)}`,
        code: 'custom',
      },
    ])
  }
  return precision
}

const DIM_INDEX: Record<QuotaDimension, 1 | 2> = { requests: 1, tokens: 2 }

interface Geometry {
  /** Bucket length, ms. */
  bucket: number
  /** Buckets per window. */
  precision: number
}

function geometry(window: QuotaWindow, precision: number): Geometry {
  return { bucket: slidingWindowMs(window) / precision, precision }
}

/** The parts of a window's count at `t`: `count = newer + oldest * overlap / bucket`. */
interface CountParts {
  /** What the oldest bucket (the one the window's start falls into) holds. */
  oldest: number
  /** How many ms of the oldest bucket the window still covers, in (0, bucket]. */
  overlap: number
  /** What the newer buckets hold; they count in full. */
  newer: number
}

function countParts(buckets: readonly SlidingBucket[], t: number, g: Geometry, dim: 1 | 2): CountParts {
  const k = Math.floor(t / g.bucket)
  let oldest = 0
  let newer = 0
  for (const b of buckets) {
    const index = Math.floor(b[0] / g.bucket)
    if (index === k - g.precision) oldest += b[dim]
    else if (index > k - g.precision) newer += b[dim]
  }
  return { oldest, overlap: (k + 1) * g.bucket - t, newer }
}

/**
 * `newer + oldest * overlap / bucket + cost <= limit`, rearranged so that the whole-number part
 * (`limit - cost - newer`) is exact and only the decaying term is a product: it then resolves
 * single milliseconds even for token counts in the trillions. Redis and Durable Object stores
 * must evaluate this same expression.
 */
function admitsAt(
  buckets: readonly SlidingBucket[],
  t: number,
  g: Geometry,
  dim: 1 | 2,
  cost: number,
  limit: number,
): boolean {
  const { oldest, overlap, newer } = countParts(buckets, t, g, dim)
  return oldest * overlap <= g.bucket * (limit - cost - newer)
}

/**
 * The earliest instant >= `now` at which the window admits `cost` in dimension `dim`, given no
 * other traffic. Requires `cost <= limit`.
 *
 * Between two bucket boundaries the count is `S + c_old * ((j + 1) * B - t) / B`, linear in `t`
 * (`S`: the buckets after the oldest, `c_old`: the oldest, `j`: the current bucket index), and it
 * is continuous and never rising across boundaries. So walk the boundaries until the count at the
 * end of a bucket fits, then solve the linear inequality in that bucket for the first whole ms.
 */
function slidingRetryAt(
  buckets: readonly SlidingBucket[],
  now: number,
  g: Geometry,
  dim: 1 | 2,
  cost: number,
  limit: number,
): number {
  const B = g.bucket
  const P = g.precision
  const k = Math.floor(now / B)
  const counts = new Map<number, number>()
  let newest = k
  for (const b of buckets) {
    const index = Math.floor(b[0] / B)
    counts.set(index, (counts.get(index) ?? 0) + b[dim])
    newest = Math.max(newest, index)
  }
  let newer = 0
  for (const [index, count] of counts) if (index > k - P) newer += count
  // Walk the bucket boundaries until the count at the end of bucket j leaves room; by the time
  // j = newest + P every bucket but the decaying oldest has left, so the walk always stops.
  let j = k
  let room = B * (limit - cost - newer)
  while (room < 0 && j < newest + P) {
    j++
    newer -= counts.get(j - P) ?? 0
    room = B * (limit - cost - newer)
  }
  const from = j === k ? now : j * B
  const oldest = counts.get(j - P) ?? 0
  let t = oldest > 0 ? Math.max(from, (j + 1) * B - Math.floor(Math.max(0, room) / oldest)) : from
  // The closed form is exact while the scaled numbers stay below 2^53; beyond that floating point
  // may put it a ms off, so settle on the very predicate the next consume will evaluate.
  for (let i = 0; i < 64 && !admitsAt(buckets, t, g, dim, cost, limit); i++) t++
  for (let i = 0; i < 64 && t - 1 >= now && admitsAt(buckets, t - 1, g, dim, cost, limit); i++) t--
  return t
}

interface Scan {
  limit: EffectiveLimit
  g: Geometry
  buckets: SlidingBucket[]
  used: NormalizedCost
  resetAt: number
}

/** Drops buckets that no longer overlap the window at `now` (or any later time) and empty ones. */
function prune(buckets: readonly SlidingBucket[] | undefined, now: number, g: Geometry): SlidingBucket[] {
  if (buckets === undefined) return []
  const oldStart = (Math.floor(now / g.bucket) - g.precision) * g.bucket
  return buckets.filter((b) => b[0] >= oldStart && (b[1] !== 0 || b[2] !== 0))
}

function measure(scan: Omit<Scan, 'used' | 'resetAt'>, now: number): Scan {
  const { buckets, g, limit } = scan
  const count = (dim: 1 | 2) => {
    const { oldest, overlap, newer } = countParts(buckets, now, g, dim)
    return newer + Math.ceil((oldest * overlap) / g.bucket)
  }
  const used = { requests: count(1), tokens: count(2) }
  return { ...scan, used, resetAt: slidingResetAt(buckets, now, g, limit, used) }
}

/**
 * A sliding window's `resetAt`: for a window that is full in a dimension (nothing left), the first
 * instant it admits one more unit there, the time a client must wait (what `Retry-After` says for
 * a one-request denial, and the RateLimit field's `t`); otherwise the instant everything counted
 * now has aged out (the newest bucket has left the window), when the window is whole again.
 */
function slidingResetAt(
  buckets: readonly SlidingBucket[],
  now: number,
  g: Geometry,
  limit: EffectiveLimit,
  used: NormalizedCost,
): number {
  let full = -1
  if (limit.requests !== undefined && used.requests >= limit.requests) {
    full = slidingRetryAt(buckets, now, g, 1, 1, limit.requests)
  }
  if (limit.tokens !== undefined && used.tokens >= limit.tokens) {
    full = Math.max(full, slidingRetryAt(buckets, now, g, 2, 1, limit.tokens))
  }
  if (full >= 0) return full
  const newest = buckets.at(-1)
  return newest ? newest[0] + (g.precision + 1) * g.bucket : now
}

/**
 * {@link slidingResetAt} for one window's buckets in the flat form the in-memory layout keeps
 * (`[start, requests, tokens, ...]`). Internal to core.
 */
export function flatSlidingResetAt(
  flat: readonly number[],
  now: number,
  limit: EffectiveLimit,
  precision: number,
  used: NormalizedCost,
): number {
  const buckets: SlidingBucket[] = []
  for (let i = 0; i < flat.length; i += 3) buckets.push([flat[i]!, flat[i + 1]!, flat[i + 2]!])
  const g = geometry(limit.window, precision)
  return slidingResetAt(prune(buckets, now, g), now, g, limit, used)
}

function scan(
  state: SlidingWindowState | undefined,
  config: QuotaConfig,
  now: number,
  precision: number,
): Scan[] {
  validatePrecision(precision)
  return limitsOf(config).map((limit) => {
    const g = geometry(limit.window, precision)
    return measure({ limit, g, buckets: prune(state?.[limit.window], now, g) }, now)
  })
}

/**
 * The state of the scanned windows, plus the buckets of windows the config does not name, kept
 * (pruned) until they have left their window: a config change never resets usage (see
 * {@link slidingWindowConsume}).
 */
function toState(
  scans: Scan[],
  previous: SlidingWindowState | undefined,
  now: number,
  precision: number,
): SlidingWindowState {
  const state: SlidingWindowState = {}
  if (previous !== undefined) {
    for (const window of quotaWindows) {
      const buckets = previous[window]
      if (buckets === undefined || scans.some((s) => s.limit.window === window)) continue
      const kept = prune(buckets, now, geometry(window, precision))
      if (kept.length > 0) state[window] = kept
    }
  }
  for (const s of scans) if (s.buckets.length > 0) state[s.limit.window] = s.buckets
  return state
}

/** The sum of a dimension over every bucket that can still count (a pruned list), unweighted. */
function rawCount(buckets: readonly SlidingBucket[], dim: 1 | 2): number {
  let total = 0
  for (const b of buckets) total += b[dim]
  return total
}

/**
 * `-1` when adding `cost` keeps the unweighted sum of the window's buckets within
 * `MAX_QUOTA_COUNT`; otherwise the first instant at which enough of the oldest buckets have left
 * the window (been pruned) for it to fit. The unweighted sum bounds every bucket and every count,
 * so the arithmetic stays exact. Limited dimensions only (see {@link slidingWindowConsume}).
 */
function capRetryAt(
  buckets: readonly SlidingBucket[],
  now: number,
  g: Geometry,
  dim: 1 | 2,
  cost: number,
): number {
  const total = rawCount(buckets, dim)
  if (total + cost <= MAX_QUOTA_COUNT) return -1
  let left = total
  for (const b of buckets) {
    left -= b[dim]
    // A bucket is pruned from (its index + precision + 1) * bucket on.
    if (left + cost <= MAX_QUOTA_COUNT)
      return Math.max(now, (Math.floor(b[0] / g.bucket) + g.precision + 1) * g.bucket)
  }
  return (Math.floor(now / g.bucket) + g.precision + 1) * g.bucket
}

/**
 * What a window can take of `cost`: all of it, except that a dimension stops where the window's
 * buckets would sum past `MAX_QUOTA_COUNT`. Only an unlimited dimension can be cut (a limited one
 * was refused before it could pass the bound, see `capRetryAt`).
 */
function saturated(buckets: readonly SlidingBucket[], cost: NormalizedCost): NormalizedCost {
  const requests = Math.min(cost.requests, Math.max(0, MAX_QUOTA_COUNT - rawCount(buckets, 1)))
  const tokens = Math.min(cost.tokens, Math.max(0, MAX_QUOTA_COUNT - rawCount(buckets, 2)))
  return requests === cost.requests && tokens === cost.tokens ? cost : { requests, tokens }
}

/** Adds `add` to the bucket containing `now`, keeping the list sorted. Returns a new list. */
function addToCurrent(
  buckets: SlidingBucket[],
  now: number,
  g: Geometry,
  add: NormalizedCost,
): SlidingBucket[] {
  const start = Math.floor(now / g.bucket) * g.bucket
  const out = buckets.slice()
  const at = out.findIndex((b) => b[0] >= start)
  const existing = at === -1 ? undefined : out[at]
  if (existing !== undefined && existing[0] === start) {
    out[at] = [start, existing[1] + add.requests, existing[2] + add.tokens]
  } else {
    out.splice(at === -1 ? out.length : at, 0, [start, add.requests, add.tokens])
  }
  return out.filter((b) => b[1] !== 0 || b[2] !== 0)
}

/**
 * Checks `cost` against every limit of `config` over sliding windows ending at `now`, and charges
 * all of them only if all admit it (all-or-nothing). Each window is split into `precision`
 * buckets; its count is the newer buckets in full plus the oldest bucket weighted by the share of
 * it the window still covers. A window admits when `count + cost <= limit` in every limited
 * dimension, so the request's own cost is part of the check.
 *
 * On a denial the returned `state` is the input state (pruned of buckets that can never count
 * again) and `retryAfterMs` is exact: the first whole ms at which the oldest buckets' linear decay
 * makes room for the full cost in every window (see `slidingRetryAt`). A request whose cost
 * exceeds a limit outright gets the time until every bucket that could count now (the current one
 * included) has left that window, `(k + precision + 1) * bucketMs - now`, and a reason saying it
 * can never be admitted.
 *
 * Only limited dimensions decide. An unlimited dimension never denies: its count is only
 * reported, and a window's buckets take of it only what keeps their unweighted sum within
 * `MAX_QUOTA_COUNT` (they saturate there), so an absurd cost in it (a client-chosen token count)
 * never locks the tenant out. In a limited dimension, a cost that would take that sum past the
 * bound is denied (charging nothing) until enough of the oldest buckets have left the window; with
 * a limit below the bound minus the cost this never happens, as the weighted count is checked too.
 *
 * A config change never resets usage: the buckets of a window that `config` does not name are
 * kept, pruned, until they have left that window, so they count again if the window comes back
 * (see `fixedWindowConsume`). `slidingWindowExpiresAt` covers them.
 *
 * An admission also returns `charged`: what it added to each window's current bucket (the cost,
 * less in a dimension that saturated), which a store keeps to take it back exactly
 * ({@link slidingWindowRefund}).
 *
 * Throws `InvalidCostError` for a bad cost, `InvalidTenantConfigError` for a bad config.
 *
 * @example
 * ```ts
 * const { decision, state } = slidingWindowConsume(saved, config, { tokens: 300 }, clock.now(), 10)
 * ```
 */
export function slidingWindowConsume(
  state: SlidingWindowState | undefined,
  config: QuotaConfig,
  cost: QuotaCost | undefined,
  now: number,
  precision: number = DEFAULT_SLIDING_PRECISION,
): QuotaStep<SlidingWindowState> {
  const charge = normalizeCost(cost)
  const scans = scan(state, config, now, precision)
  const denials: QuotaDenial[] = []
  for (const s of scans) {
    for (const dimension of quotaDimensions) {
      const allowance = s.limit[dimension]
      // Unlimited: never denies; the charge below saturates it.
      if (allowance === undefined) continue
      const dim = DIM_INDEX[dimension]
      const cost = charge[dimension]
      const capAt = capRetryAt(s.buckets, now, s.g, dim, cost)
      const fits = admitsAt(s.buckets, now, s.g, dim, cost, allowance)
      if (fits && capAt < 0) continue
      const impossible = cost > allowance
      const limitAt = fits ? -1 : slidingRetryAt(s.buckets, now, s.g, dim, cost, allowance)
      denials.push({
        window: s.limit.window,
        dimension,
        retryAt: impossible
          ? (Math.floor(now / s.g.bucket) + precision + 1) * s.g.bucket
          : Math.max(limitAt, capAt),
        impossible,
        reason: denialReason(
          s.limit.window,
          dimension,
          s.used[dimension],
          fits ? undefined : allowance,
          cost,
        ),
      })
    }
  }
  if (denials.length > 0) {
    return {
      decision: quotaDecision(now, usage(scans), denials),
      state: toState(scans, state, now, precision),
    }
  }
  const added: { [W in QuotaWindow]?: NormalizedCost } = {}
  const after = scans.map((s) => {
    const add = saturated(s.buckets, charge)
    added[s.limit.window] = add
    return measure({ ...s, buckets: addToCurrent(s.buckets, now, s.g, add) }, now)
  })
  return {
    decision: quotaDecision(now, usage(after), []),
    state: toState(after, state, now, precision),
    charged: added,
  }
}

function usage(scans: Scan[]): QuotaWindowUsage[] {
  return scans.map((s) => windowUsage(s.limit, s.used, s.resetAt))
}

/** Takes up to `amount` tokens out of the buckets, newest first (what was charged last goes first). */
function refund(buckets: SlidingBucket[], amount: number): SlidingBucket[] {
  let left = amount
  const out = buckets.slice()
  for (let i = out.length - 1; i >= 0 && left > 0; i--) {
    const b = out[i]!
    const take = Math.min(b[2], left)
    out[i] = [b[0], b[1], b[2] - take]
    left -= take
  }
  return out.filter((b) => b[1] !== 0 || b[2] !== 0)
}

/**
 * Adds `tokens` to the current bucket of every window of `config`; a negative `tokens` refunds,
 * newest bucket first, down to zero. Never denies: a charge stops where the window's buckets
 * would sum past `MAX_QUOTA_COUNT`. Keeps the buckets of windows `config` does not name, like
 * {@link slidingWindowConsume}. Returns the usage after the change.
 *
 * A refund given `decidedAt` (the time of the admission it is for) comes out of the bucket that
 * admission charged, in each window that still holds it ({@link slidingWindowRefund} of the
 * tokens alone): tokens charged since are not taken.
 *
 * @example
 * ```ts
 * const { usage, state: next } = slidingWindowAdjust(state, config, -200, now) // refund 200 tokens
 * ```
 */
export function slidingWindowAdjust(
  state: SlidingWindowState | undefined,
  config: QuotaConfig,
  tokens: number,
  now: number,
  precision: number = DEFAULT_SLIDING_PRECISION,
  decidedAt?: number,
): { usage: QuotaWindowUsage[]; state: SlidingWindowState } {
  if (tokens < 0 && decidedAt !== undefined) {
    const refunded = slidingWindowRefund(
      state,
      config,
      { requests: 0, tokens: -tokens },
      decidedAt,
      precision,
    )
    return { usage: slidingWindowPeek(refunded, config, now, precision), state: refunded }
  }
  const scans = scan(state, config, now, precision).map((s) => {
    // A charge stops where the window's buckets would pass MAX_QUOTA_COUNT (see capRetryAt).
    const add = Math.min(tokens, Math.max(0, MAX_QUOTA_COUNT - rawCount(s.buckets, 2)))
    const buckets =
      tokens >= 0
        ? addToCurrent(s.buckets, now, s.g, { requests: 0, tokens: add })
        : refund(s.buckets, -tokens)
    return measure({ ...s, buckets }, now)
  })
  return { usage: usage(scans), state: toState(scans, state, now, precision) }
}

/**
 * Takes back an admission that {@link slidingWindowConsume} made at `decidedAt` with `config`,
 * `cost` and `precision`, for a store told that the admission's caller never got its answer (it
 * was lost after the charge). In each window of `config`, the bucket containing `decidedAt` (the
 * one the admission charged) loses what the admission added to it, never going below zero; a
 * window that no longer has that bucket (it has left the window) is left alone, and no other
 * bucket changes, so a refund never takes from a charge it did not make. Windows `config` does not
 * name are kept as they are; a bucket refunded to zero is dropped.
 *
 * What the admission added is `charged`, the `charged` of its step: the cost, or less in an
 * unlimited dimension whose buckets saturated at `MAX_QUOTA_COUNT` (see `fixedWindowRefund`). A
 * window `charged` does not name loses nothing. Without `charged`, every window loses `cost`.
 *
 * The store must refund each admission at most once, and only from the state it charged (not
 * from one written after a reset): this function cannot tell.
 *
 * Throws `InvalidCostError` for a bad cost, `InvalidTenantConfigError` for a bad config or
 * precision.
 *
 * @example
 * ```ts
 * const { state, charged } = slidingWindowConsume(saved, config, { tokens: 40 }, decidedAt, 10)
 * // ... the answer was lost on its way to the caller, who was told the call failed:
 * const undone = slidingWindowRefund(state, config, { tokens: 40 }, decidedAt, 10, charged)
 * ```
 */
export function slidingWindowRefund(
  state: SlidingWindowState | undefined,
  config: QuotaConfig,
  cost: QuotaCost | undefined,
  decidedAt: number,
  precision: number = DEFAULT_SLIDING_PRECISION,
  charged?: QuotaCharge,
): SlidingWindowState {
  validatePrecision(precision)
  const charge = normalizeCost(cost)
  const limits = limitsOf(config)
  const next: SlidingWindowState = { ...state }
  for (const limit of limits) {
    const buckets = next[limit.window]
    if (buckets === undefined) continue
    const g = geometry(limit.window, precision)
    const start = Math.floor(decidedAt / g.bucket) * g.bucket
    const at = buckets.findIndex((b) => b[0] === start)
    if (at === -1) continue
    const added = charged === undefined ? charge : (charged[limit.window] ?? NOTHING)
    const out = buckets.slice()
    const b = out[at]!
    out[at] = [start, Math.max(0, b[1] - added.requests), Math.max(0, b[2] - added.tokens)]
    const kept = out.filter((x) => x[1] !== 0 || x[2] !== 0)
    if (kept.length > 0) next[limit.window] = kept
    else delete next[limit.window]
  }
  return next
}

const NOTHING: NormalizedCost = Object.freeze({ requests: 0, tokens: 0 })

/**
 * Usage of every limit of `config` over the sliding windows ending at `now`; changes nothing.
 *
 * @example
 * ```ts
 * const usage = slidingWindowPeek(state, config, clock.now()) // weighted usage per window; nothing charged
 * ```
 */
export function slidingWindowPeek(
  state: SlidingWindowState | undefined,
  config: QuotaConfig,
  now: number,
  precision: number = DEFAULT_SLIDING_PRECISION,
): QuotaWindowUsage[] {
  return usage(scan(state, config, now, precision))
}

/**
 * The instant from which `state` counts nothing (its newest bucket has left its window), for
 * dropping it: a Map sweep, a Redis `PEXPIREAT`, a Durable Object alarm. `0` for an empty state.
 *
 * @example
 * ```ts
 * const ttlMs = slidingWindowExpiresAt(state, 10) - now // when every bucket has left its window
 * ```
 */
export function slidingWindowExpiresAt(
  state: SlidingWindowState | undefined,
  precision: number = DEFAULT_SLIDING_PRECISION,
): number {
  validatePrecision(precision)
  let expiresAt = 0
  if (state === undefined) return expiresAt
  for (const [window, buckets] of Object.entries(state) as [QuotaWindow, SlidingBucket[] | undefined][]) {
    const newest = buckets?.at(-1)
    if (newest === undefined) continue
    const g = geometry(window, precision)
    expiresAt = Math.max(expiresAt, newest[0] + (precision + 1) * g.bucket)
  }
  return expiresAt
}
