// How SlidingWindowQuotaManager keeps sliding-window buckets: flatter than `SlidingWindowState`, and
// charged in place. Internal to core: the algorithm's contract is `slidingWindowConsume` and its
// plain state.
import type { NormalizedCost } from '../cost'
import type { QuotaDecision, QuotaWindowUsage } from '../quota'
import type { QuotaWindow } from '../schemas'
import { quotaWindows } from '../schemas'
import { slidingWindowMs } from './calendar'
import type { ExpiringEntry } from './expiring-map'
import type { EffectiveLimit } from './limits'
import { MAX_QUOTA_COUNT } from './limits'
import type { MemoryLayout } from './memory-quota-manager'
import { slidingWindowAlgorithm } from './quota-algorithm'
import { quotaDecision, windowUsage } from './quota-decision'
import type { SlidingBucket, SlidingWindowState } from './sliding-window'
import { flatSlidingResetAt, validatePrecision } from './sliding-window'

/**
 * One window's buckets. `buckets` is the window's `SlidingBucket` list flattened,
 * `[start, requests, tokens, start, requests, tokens, ...]` in ascending `start` order: one array
 * of unboxed doubles, where the plain form is an array per bucket. The windows of a tenant form a
 * list in window order.
 */
class WindowBuckets {
  window: QuotaWindow | undefined = undefined
  buckets: number[] = []
  next: WindowBuckets | undefined = undefined
}

/**
 * A tenant's entry: its first window inline and the expiry-heap fields, so a tenant with one limit
 * is one object and one array. `window === undefined`: no buckets at all.
 */
class SlidingTenant extends WindowBuckets implements ExpiringEntry {
  heapAt = 0
  constructor(readonly key: string) {
    super()
  }
}

const NO_DENIALS: [] = []

/** The oldest bucket, its overlap and the newer buckets of one window, in both dimensions. */
interface Parts {
  oldestRequests: number
  oldestTokens: number
  newerRequests: number
  newerTokens: number
}

/**
 * What `countParts` in sliding-window.ts sums, for both dimensions in one pass: the same buckets
 * added in the same order, so the sums are the same doubles even past 2^53. Buckets before
 * `oldStart` are the ones `prune` drops; the caller has made sure none is after the current one.
 */
function partsOf(buckets: readonly number[], oldStart: number, parts: Parts): void {
  let oldestRequests = 0
  let oldestTokens = 0
  let newerRequests = 0
  let newerTokens = 0
  for (let i = 0; i < buckets.length; i += 3) {
    const start = buckets[i]!
    if (start === oldStart) {
      oldestRequests += buckets[i + 1]!
      oldestTokens += buckets[i + 2]!
    } else if (start > oldStart) {
      newerRequests += buckets[i + 1]!
      newerTokens += buckets[i + 2]!
    }
  }
  parts.oldestRequests = oldestRequests
  parts.oldestTokens = oldestTokens
  parts.newerRequests = newerRequests
  parts.newerTokens = newerTokens
}

/**
 * Drops the buckets before `oldStart` (they lead the list) and adds `cost` to the bucket starting
 * at `current`, which is the last one or a new last one. A new bucket takes the slots of dropped
 * ones where there are any, so a busy tenant's array stops growing once its window is full, and
 * otherwise a copy one bucket longer: `push` would leave up to 16 spare slots per array, and a new
 * bucket starts at most once per bucket length.
 */
function chargeBuckets(node: WindowBuckets, oldStart: number, current: number, cost: NormalizedCost): void {
  const buckets = node.buckets
  const length = buckets.length
  let stale = 0
  while (stale < length && buckets[stale]! < oldStart) stale += 3
  let n = length
  if (stale > 0) {
    for (let i = stale; i < length; i++) buckets[i - stale] = buckets[i]!
    n -= stale
  }
  if (n > 0 && buckets[n - 3] === current) {
    buckets[n - 2]! += cost.requests
    buckets[n - 1]! += cost.tokens
  } else if (n < length) {
    buckets[n] = current
    buckets[n + 1] = cost.requests
    buckets[n + 2] = cost.tokens
    n += 3
  } else {
    node.buckets = buckets.concat(current, cost.requests, cost.tokens)
    return
  }
  if (n !== length) buckets.length = n
}

function read(entry: SlidingTenant | undefined): SlidingWindowState | undefined {
  if (entry === undefined) return undefined
  const state: SlidingWindowState = {}
  for (let node: WindowBuckets | undefined = entry; node?.window !== undefined; node = node.next) {
    const flat = node.buckets
    if (flat.length === 0) continue
    const list: SlidingBucket[] = []
    for (let i = 0; i < flat.length; i += 3) list.push([flat[i]!, flat[i + 1]!, flat[i + 2]!])
    state[node.window] = list
  }
  return state
}

function flatten(list: readonly SlidingBucket[]): number[] {
  const flat: number[] = []
  for (const [start, requests, tokens] of list) flat.push(start, requests, tokens)
  // A copy is exactly as long as the list: `push` leaves spare slots.
  return flat.slice()
}

function write(entry: SlidingTenant, state: SlidingWindowState): void {
  let last: WindowBuckets | undefined
  for (const window of quotaWindows) {
    const list = state[window]
    if (list === undefined || list.length === 0) continue
    // Reuses the entry's window objects where it has them.
    let node: WindowBuckets = entry
    if (last !== undefined) {
      if (last.next === undefined) last.next = new WindowBuckets()
      node = last.next
    }
    node.window = window
    node.buckets = flatten(list)
    last = node
  }
  if (last === undefined) {
    entry.window = undefined
    entry.buckets = []
    entry.next = undefined
  } else {
    last.next = undefined
  }
}

/**
 * SlidingWindowQuotaManager's layout of `slidingWindowAlgorithm(precision)` state, with the
 * in-place admission path. Validates `precision` (throws `InvalidTenantConfigError`).
 *
 * @example
 * ```ts
 * new MemoryQuotaManager(provider, clock, slidingWindowLayout(10))
 * ```
 */
export function slidingWindowLayout(precision: number): MemoryLayout<SlidingWindowState, SlidingTenant> {
  const P = validatePrecision(precision)
  const algorithm = slidingWindowAlgorithm(P)
  // Bucket lengths as `geometry` in sliding-window.ts computes them; whole ms since P divides 60,000.
  const minute = slidingWindowMs('minute') / P
  const hour = slidingWindowMs('hour') / P
  const day = slidingWindowMs('day') / P
  const month = slidingWindowMs('month') / P
  const bucketMs = (window: QuotaWindow): number => {
    switch (window) {
      case 'minute':
        return minute
      case 'hour':
        return hour
      case 'day':
        return day
      default:
        return month
    }
  }
  // One scratch object per layout: `charge` runs to completion before another call can use it.
  const parts: Parts = { oldestRequests: 0, oldestTokens: 0, newerRequests: 0, newerTokens: 0 }

  // slidingWindowExpiresAt: when the newest bucket of every window has left it.
  const expiresAt = (entry: SlidingTenant): number => {
    let at = 0
    for (let node: WindowBuckets | undefined = entry; node?.window !== undefined; node = node.next) {
      const flat = node.buckets
      if (flat.length === 0) continue
      const B = bucketMs(node.window)
      at = Math.max(at, flat[flat.length - 3]! + (P + 1) * B)
    }
    return at
  }

  // A window the config does not name, as slidingWindowConsume keeps it: its buckets pruned (they
  // lead the list). A node left empty reads as no window at all.
  const pruneKept = (node: WindowBuckets, now: number): void => {
    const B = bucketMs(node.window!)
    const oldStart = (Math.floor(now / B) - P) * B
    const buckets = node.buckets
    let stale = 0
    while (stale < buckets.length && buckets[stale]! < oldStart) stale += 3
    if (stale > 0) node.buckets = buckets.slice(stale)
  }

  /**
   * `slidingWindowConsume` for an admission, in place: the same check, the same buckets after it
   * and the same decision. Taken only when the entry holds buckets for every limit's window (those
   * of other windows are left as they are, as `slidingWindowConsume` keeps them), none after the
   * current bucket (a clock that went back), and the cost is not zero (which adds no bucket). Anything else, and every denial, returns `undefined` without
   * changing the entry, and the manager runs `slidingWindowConsume`.
   */
  const charge = (
    entry: SlidingTenant,
    limits: readonly EffectiveLimit[],
    cost: NormalizedCost,
    now: number,
  ): QuotaDecision | undefined => {
    if (cost.requests === 0 && cost.tokens === 0) return undefined
    // First pass: check only, so a denial changes nothing.
    // Windows the config does not name (kept until their buckets leave, see slidingWindowConsume)
    // are skipped: both lists are in window order, so a limit without buckets runs off the end.
    // `saturate`: an unlimited dimension of some window cannot take the whole cost.
    let saturate = false
    let node: WindowBuckets | undefined = entry.window === undefined ? undefined : entry
    // Indexed, not for-of: for-of walks a frozen array (the limits) through the generic iterator.
    for (let i = 0; i < limits.length; i++) {
      const limit = limits[i]!
      while (node !== undefined && node.window !== limit.window) node = node.next
      if (node === undefined) return undefined
      const buckets = node.buckets
      const B = bucketMs(limit.window)
      const k = Math.floor(now / B)
      if (buckets.length === 0 || buckets[buckets.length - 3]! > k * B) return undefined
      partsOf(buckets, (k - P) * B, parts)
      // admitsAt in sliding-window.ts, term for term.
      const overlap = (k + 1) * B - now
      if (
        limit.requests !== undefined &&
        !(parts.oldestRequests * overlap <= B * (limit.requests - cost.requests - parts.newerRequests))
      ) {
        return undefined
      }
      if (
        limit.tokens !== undefined &&
        !(parts.oldestTokens * overlap <= B * (limit.tokens - cost.tokens - parts.newerTokens))
      ) {
        return undefined
      }
      // The unweighted sum of the buckets that still count stays within MAX_QUOTA_COUNT: a limited
      // dimension that would pass it is refused (capRetryAt, left to slidingWindowConsume), an
      // unlimited one saturates (slidingWindowConsume's `saturated`, below).
      if (parts.oldestRequests + parts.newerRequests + cost.requests > MAX_QUOTA_COUNT) {
        if (limit.requests !== undefined) return undefined
        saturate = true
      }
      if (parts.oldestTokens + parts.newerTokens + cost.tokens > MAX_QUOTA_COUNT) {
        if (limit.tokens !== undefined) return undefined
        saturate = true
      }
      node = node.next
    }

    // Second pass: charge, then measure as `measure` does after `addToCurrent`.
    let next: WindowBuckets | undefined = entry
    const windows = limits.map((limit): QuotaWindowUsage => {
      while (next!.window !== limit.window) {
        pruneKept(next!, now)
        next = next!.next
      }
      const current = next!
      next = current.next
      const B = bucketMs(limit.window)
      const k = Math.floor(now / B)
      const oldStart = (k - P) * B
      let add = cost
      if (saturate) {
        // What this window can take of each dimension (only an unlimited one can be cut).
        partsOf(current.buckets, oldStart, parts)
        const roomRequests = MAX_QUOTA_COUNT - (parts.oldestRequests + parts.newerRequests)
        const roomTokens = MAX_QUOTA_COUNT - (parts.oldestTokens + parts.newerTokens)
        add = {
          requests: Math.min(cost.requests, Math.max(0, roomRequests)),
          tokens: Math.min(cost.tokens, Math.max(0, roomTokens)),
        }
      }
      // Nothing to add (full in the one dimension the cost has): addToCurrent adds no bucket then.
      if (add.requests === 0 && add.tokens === 0) pruneKept(current, now)
      else chargeBuckets(current, oldStart, k * B, add)
      const buckets = current.buckets
      partsOf(buckets, oldStart, parts)
      const overlap = (k + 1) * B - now
      const used = {
        requests: parts.newerRequests + Math.ceil((parts.oldestRequests * overlap) / B),
        tokens: parts.newerTokens + Math.ceil((parts.oldestTokens * overlap) / B),
      }
      // A window this charge filled waits for its next admission (rare: the reference computes it).
      const full =
        (limit.requests !== undefined && used.requests >= limit.requests) ||
        (limit.tokens !== undefined && used.tokens >= limit.tokens)
      const resetAt = full
        ? flatSlidingResetAt(buckets, now, limit, P, used)
        : buckets[buckets.length - 3]! + (P + 1) * B
      return windowUsage(limit, used, resetAt)
    })
    for (let rest = next as WindowBuckets | undefined; rest?.window !== undefined; rest = rest.next) {
      pruneKept(rest, now)
    }
    return quotaDecision(now, windows, NO_DENIALS)
  }

  return Object.freeze({
    algorithm,
    create: (key: string, state: SlidingWindowState) => {
      const entry = new SlidingTenant(key)
      write(entry, state)
      return entry
    },
    read,
    write,
    expiresAt,
    charge,
  })
}
