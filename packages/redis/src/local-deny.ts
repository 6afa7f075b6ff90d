import { wholeNumberOption } from './option-error'

/** Options of the in-process denial cache of {@link RedisQuotaManager}. */
export interface LocalDenyOptions {
  /**
   * How many tenants' denials to hold at most; the least recently denied are dropped first.
   * @default 10000
   */
  maxEntries?: number
  /**
   * The longest a denial is answered locally, in ms, however long Redis would keep refusing: after
   * it the next request asks Redis again (and a new denial is held again). This bounds what the
   * cache cannot see: a `reset()` (for example `AdminService.resetUsage`) made through another
   * instance, or a late-reply refund sent by another instance, is seen within this time. `0`
   * holds nothing past the moment of the denial.
   * @default 1000
   */
  maxHoldMs?: number
}

/** Default {@link LocalDenyOptions.maxEntries}. */
export const DEFAULT_LOCAL_DENY_ENTRIES = 10_000

/** Default {@link LocalDenyOptions.maxHoldMs}: one second. */
export const DEFAULT_LOCAL_DENY_HOLD_MS = 1_000

/** One remembered denial. */
export interface DenyEntry<D> {
  /** Until when (manager clock, ms) no request of at least `requests` can be admitted. */
  until: number
  /** When (manager clock, ms) the denied call was sent: the hold ends `maxHoldMs` after it at the latest. */
  since: number
  /**
   * The cost that was denied (requests, or a rate limiter's tokens taken). Only a request of this
   * cost, `tokens` included, is answered locally: the held decision, its reason and its retry time
   * are that request's, and another cost can be denied for another reason and retry at another
   * time (a larger one later, one with fewer tokens earlier).
   */
  requests: number
  /** The tokens of the denied quota request (0 for a rate limiter). */
  tokens: number
  /** The tenant's quota config when Redis answered; a different config voids the entry. */
  fingerprint: string
  /** The decision Redis gave. */
  decision: D
  /** When (manager clock, ms) the denied request as a whole would have been admitted. */
  retryAt: number
}

/**
 * A bounded map of tenants that Redis recently refused on the *requests* dimension, so a flood
 * from a tenant over its request quota does not cost a round trip per request.
 *
 * Soundness (it must never deny what Redis would admit for long): between a denial and `until`,
 * the only things that can free request capacity are a change of the tenant's limits (caught by
 * the config fingerprint), a `reset()` made through another instance (or someone deleting the
 * counters by hand), and another instance's late-reply refund. Consumes by other instances only
 * add usage, and `adjust()` refunds only touch tokens, so neither can make an earlier admission
 * possible. Token denials are never cached: another instance's refund could free tokens early.
 * What the cache cannot see is bounded in time: no entry is held longer than `maxHoldMs` (1 s by
 * default) after its call, so a reset elsewhere costs at most that much of false denials.
 *
 * The one refund that gives requests back is of an admission whose reply came after its caller
 * timed out. This process's own such refunds drop the tenant's entry ({@link refunded}), and a
 * denial whose call was made before one of them was sent is not remembered: Redis may have
 * decided it before the refund ran. Another instance's late-reply refund is not seen (README).
 */
export class LocalDenyCache<D> {
  readonly #max: number
  readonly #maxHold: number
  readonly #entries = new Map<string, DenyEntry<D>>()
  #refunds = 0

  constructor(options: LocalDenyOptions = {}) {
    this.#max = wholeNumberOption('localDeny.maxEntries', options.maxEntries, DEFAULT_LOCAL_DENY_ENTRIES, 1)
    this.#maxHold = wholeNumberOption('localDeny.maxHoldMs', options.maxHoldMs, DEFAULT_LOCAL_DENY_HOLD_MS, 0)
  }

  /** Number of tenants held (for tests and metrics). */
  get size(): number {
    return this.#entries.size
  }

  /**
   * The remembered denial of a request of this very cost, if any; drops stale entries on the way.
   * A request of another cost goes to Redis (see {@link DenyEntry.requests}).
   */
  match(
    tenantId: string,
    now: number,
    requests: number,
    tokens: number,
    fingerprint: string,
  ): DenyEntry<D> | undefined {
    const entry = this.#entries.get(tenantId)
    if (entry === undefined) return undefined
    if (now >= entry.until || entry.fingerprint !== fingerprint) {
      this.#entries.delete(tenantId)
      return undefined
    }
    return requests === entry.requests && tokens === entry.tokens ? entry : undefined
  }

  /** How many late-reply refunds this process has sent: read it when a call is made, pass it to {@link remember}. */
  get refunds(): number {
    return this.#refunds
  }

  /**
   * Remembers a denial, replacing the tenant's previous one, unless a refund was sent since the
   * call was made (`refundsBefore`, from {@link refunds}): the denial may not have counted it.
   * The hold ends at `until` or `maxHoldMs` after `since`, whichever comes first.
   */
  remember(tenantId: string, entry: DenyEntry<D>, refundsBefore: number): void {
    if (refundsBefore !== this.#refunds) return
    this.#entries.delete(tenantId)
    const until = Math.min(entry.until, entry.since + this.#maxHold)
    if (until <= entry.since) return
    this.#entries.set(tenantId, until === entry.until ? entry : { ...entry, until })
    if (this.#entries.size > this.#max) {
      const oldest = this.#entries.keys().next().value
      if (oldest !== undefined) this.#entries.delete(oldest)
    }
  }

  /**
   * This process charged the tenant (an admission, a positive `adjust`): the entry's retry time
   * was computed before that charge, which can push the real one later, so it goes.
   */
  charged(tenantId: string): void {
    this.#entries.delete(tenantId)
  }

  /** A refund of one of the tenant's admissions was sent: the room it makes voids the entry. */
  refunded(tenantId: string): void {
    this.#refunds++
    this.#entries.delete(tenantId)
  }
}
