import type { NormalizedCost } from '../cost'
import type { QuotaAmounts, QuotaDecision, QuotaWindowUsage } from '../quota'
import type { QuotaWindow } from '../schemas'
import type { EffectiveLimit, QuotaDimension } from './limits'
import { MAX_QUOTA_COUNT, quotaDimensions } from './limits'

/**
 * A constructor of plain objects: its instances have `Object.prototype` as their prototype, so
 * JSON checks, `structuredClone` and deep equality see the same thing as an object literal.
 *
 * The objects of a decision are built this way, not as literals, because V8 tracks every literal's
 * allocation site: once a young-generation collection finds most objects of a site still alive (a
 * cold start whose first decisions are kept, a caller that holds them), V8 allocates every later
 * object of that site in the old generation, for the life of the process. Measured on Node 20: a
 * cold start that kept its first 4,000 decisions over a collection left InMemoryQuotaManager's
 * consume at 0.3M calls per second instead of 2.2M. Objects made by a constructor have no such
 * site. One constructor per kind of object, so each kind keeps one shape.
 */
function plainConstructor<T>(): new () => T {
  // A function declaration, not an arrow function or a class: only an ordinary function can be
  // called with `new` and have its `prototype` replaced.
  function Plain(): void {}
  Plain.prototype = Object.prototype
  return Plain as unknown as new () => T
}

const Amounts = plainConstructor<QuotaAmounts>()
const Used = plainConstructor<{ requests: number; tokens: number }>()
const WindowUsage = plainConstructor<QuotaWindowUsage>()
const Decision = plainConstructor<QuotaDecision>()

/** Why one window refuses a request in one dimension, and from when it would admit it. */
export interface QuotaDenial {
  window: QuotaWindow
  dimension: QuotaDimension
  /**
   * The earliest instant (ms since the epoch) at which this window admits the same request if no
   * other traffic arrives. For an impossible request, the policy value described in the README.
   */
  retryAt: number
  /** The request's cost alone exceeds the limit: waiting never admits it. */
  impossible: boolean
  /** Human-readable, names the window, the dimension and the numbers. */
  reason: string
}

/**
 * The reason text of a denial. Stable wording so logs can be grepped: an impossible request says
 * "can never be admitted", an exhausted window says "quota exhausted". `limit` undefined: a
 * sliding window's buckets would sum past {@link MAX_QUOTA_COUNT} in a limited dimension whose
 * weighted count still has room ("count is full"; only with limits close to that bound).
 *
 * @example
 * ```ts
 * denialReason('minute', 'tokens', 9_500, 10_000, 1_200)
 * // 'minute tokens quota exhausted: 9500 of 10000 used, the request needs 1200'
 * ```
 */
export function denialReason(
  window: QuotaWindow,
  dimension: QuotaDimension,
  used: number,
  limit: number | undefined,
  cost: number,
): string {
  if (limit === undefined) {
    return `${window} ${dimension} count is full: ${used} counted, the request needs ${cost}, and no count goes past ${MAX_QUOTA_COUNT}`
  }
  if (cost > limit) {
    return `request cost of ${cost} ${dimension} exceeds the ${window} limit of ${limit} ${dimension}: it can never be admitted`
  }
  return `${window} ${dimension} quota exhausted: ${used} of ${limit} used, the request needs ${cost}`
}

/**
 * The usage report of one window: `limit` and `remaining` carry only limited dimensions;
 * `remaining` is `limit - used` floored at 0.
 *
 * @example
 * ```ts
 * const [minute] = effectiveLimits({ limits: [{ window: 'minute', requests: 100 }] })
 * windowUsage(minute!, { requests: 40, tokens: 0 }, resetAt) // remaining: { requests: 60 }
 * ```
 */
export function windowUsage(
  limit: EffectiveLimit,
  used: { requests: number; tokens: number },
  resetAt: number,
): QuotaWindowUsage {
  // Spelled out per dimension rather than looped: this runs for every window of every decision.
  const limits = new Amounts()
  const remaining = new Amounts()
  if (limit.requests !== undefined) {
    limits.requests = limit.requests
    remaining.requests = Math.max(0, limit.requests - used.requests)
  }
  if (limit.tokens !== undefined) {
    limits.tokens = limit.tokens
    remaining.tokens = Math.max(0, limit.tokens - used.tokens)
  }
  const counted = new Used()
  counted.requests = used.requests
  counted.tokens = used.tokens
  const usage = new WindowUsage()
  usage.window = limit.window
  usage.limit = limits
  usage.used = counted
  usage.remaining = remaining
  usage.resetAt = resetAt
  return usage
}

/**
 * Whether `cost` fits into a window with `used` already counted, in each limited dimension.
 * Returns the dimensions that do not fit (an empty list admits). An unlimited dimension never
 * refuses: its count is only reported, and stores saturate it at {@link MAX_QUOTA_COUNT} instead
 * (so a client-chosen cost such as a token count header cannot lock a tenant out of a dimension
 * it has no limit on). A limit is at most `MAX_QUOTA_COUNT`, so a limited count never passes it.
 *
 * @example
 * ```ts
 * const [minute] = effectiveLimits({ limits: [{ window: 'minute', requests: 100, tokens: 10_000 }] })
 * overLimit(minute!, { requests: 99, tokens: 9_900 }, { requests: 1, tokens: 200 }) // ['tokens']
 * ```
 */
export function overLimit(
  limit: EffectiveLimit,
  used: NormalizedCost,
  cost: NormalizedCost,
): QuotaDimension[] {
  // A sum past MAX_QUOTA_COUNT rounds to at least 2^53, so the comparison stays exact.
  return quotaDimensions.filter((d) => {
    const allowance = limit[d]
    return allowance !== undefined && used[d] + cost[d] > allowance
  })
}

// The window with the least room left in `dimension`; of equal ones, the one that holds it longer.
function mostConstrained(
  windows: readonly QuotaWindowUsage[],
  dimension: QuotaDimension,
): QuotaWindowUsage | undefined {
  let best: QuotaWindowUsage | undefined
  let bestRoom = 0
  for (const usage of windows) {
    const room = usage.remaining[dimension]
    if (room === undefined) continue
    if (best === undefined || room < bestRoom || (room === bestRoom && usage.resetAt > best.resetAt)) {
      best = usage
      bestRoom = room
    }
  }
  return best
}

// The smaller remaining share of a window's limited dimensions (NaN when none is limited). Of two
// equal shares the first found wins, so this picks the same window as comparing them one by one.
function remainingShare(usage: QuotaWindowUsage): number {
  const { limit, remaining } = usage
  const requests = limit.requests === undefined ? Number.NaN : remaining.requests! / limit.requests
  if (limit.tokens === undefined) return requests
  const tokens = remaining.tokens! / limit.tokens
  return Number.isNaN(requests) ? tokens : Math.min(requests, tokens)
}

/**
 * Assembles a {@link QuotaDecision} from every window's usage (after the charge when allowed,
 * before it when denied) and the denials found.
 *
 * - `remaining` / `limit`: per dimension, of the window with the least remaining (ties: the later reset).
 * - `resetAt`: allowed, the reset of the window with the smallest remaining fraction; denied, the
 *   reset of the window that holds the request back longest (never before the retry time);
 *   with no limited window at all, `now`.
 * - `retryAfterMs`: the latest `retryAt` of all denials minus `now` (every window must admit).
 *
 * @example
 * ```ts
 * const [minute] = effectiveLimits({ limits: [{ window: 'minute', requests: 100 }] })
 * const decision = quotaDecision(now, [windowUsage(minute!, { requests: 40, tokens: 0 }, resetAt)], [])
 * // { allowed: true, remaining: { requests: 60 }, limit: { requests: 100 }, retryAfterMs: 0, ... }
 * ```
 */
export function quotaDecision(
  now: number,
  windows: QuotaWindowUsage[],
  denials: QuotaDenial[],
): QuotaDecision {
  if (windows.length === 1 && denials.length === 0) return oneWindowAdmission(now, windows)
  // Comparisons on plain numbers and each dimension spelled out (constant property names), with no
  // objects built along the way: this runs once per decision.
  const remaining = new Amounts()
  const limit = new Amounts()
  const byRequests = mostConstrained(windows, 'requests')
  if (byRequests) {
    remaining.requests = byRequests.remaining.requests!
    limit.requests = byRequests.limit.requests!
  }
  const byTokens = mostConstrained(windows, 'tokens')
  if (byTokens) {
    remaining.tokens = byTokens.remaining.tokens!
    limit.tokens = byTokens.limit.tokens!
  }

  if (denials.length === 0) {
    // The smallest remaining share; of equal ones, the later reset.
    let resetAt = now
    let tightest = Number.POSITIVE_INFINITY
    let found = false
    for (const usage of windows) {
      const share = remainingShare(usage)
      if (Number.isNaN(share)) continue
      if (!found || share < tightest || (share === tightest && usage.resetAt > resetAt)) {
        tightest = share
        resetAt = usage.resetAt
        found = true
      }
    }
    const decision = new Decision()
    decision.allowed = true
    decision.remaining = remaining
    decision.limit = limit
    decision.resetAt = resetAt
    decision.retryAfterMs = 0
    decision.windows = windows
    decision.decidedAt = now
    return decision
  }

  let binding = denials[0]!
  for (const denial of denials) if (denial.retryAt > binding.retryAt) binding = denial
  const bindingReset = windows.find((w) => w.window === binding.window)?.resetAt ?? binding.retryAt
  // Impossible requests first: they are the news, an exhausted window is routine.
  const ordered = [...denials.filter((d) => d.impossible), ...denials.filter((d) => !d.impossible)]
  const decision = new Decision()
  decision.allowed = false
  decision.remaining = remaining
  decision.limit = limit
  decision.resetAt = Math.max(bindingReset, binding.retryAt)
  decision.retryAfterMs = Math.max(0, Math.ceil(binding.retryAt - now))
  decision.reason = ordered.map((d) => d.reason).join('; ')
  decision.windows = windows
  decision.decidedAt = now
  return decision
}

// quotaDecision's answer for an admission over a single window (a tenant with one limit, the
// common case), without the searches: that window is the most constrained one in each of its
// limited dimensions. The objects get their fields in the same order as in quotaDecision, so both
// paths build decisions of one shape.
function oneWindowAdmission(now: number, windows: QuotaWindowUsage[]): QuotaDecision {
  const usage = windows[0]!
  const remaining = new Amounts()
  const limit = new Amounts()
  if (usage.remaining.requests !== undefined) {
    remaining.requests = usage.remaining.requests
    limit.requests = usage.limit.requests!
  }
  if (usage.remaining.tokens !== undefined) {
    remaining.tokens = usage.remaining.tokens
    limit.tokens = usage.limit.tokens!
  }
  const decision = new Decision()
  decision.allowed = true
  decision.remaining = remaining
  decision.limit = limit
  decision.resetAt = Number.isNaN(remainingShare(usage)) ? now : usage.resetAt
  decision.retryAfterMs = 0
  decision.windows = windows
  decision.decidedAt = now
  return decision
}
