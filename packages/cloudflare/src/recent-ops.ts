/**
 * How many op ids a {@link TenantQuotaObject} remembers (admissions and voids together); beyond
 * that the oldest is forgotten first. Bounds the object's memory: a few hundred bytes each (a
 * charge keeps the limits of the windows it charged, never the caller's whole config).
 */
export const MAX_RECENT_OPS = 4096

/** How long a {@link TenantQuotaObject} remembers an op id, in ms of the object's own time. */
export const RECENT_OP_TTL_MS = 60_000

/**
 * What an object remembers of one op id: an admission it can answer again and take back, or a
 * void (`admission` undefined), which makes a consume with that id charge nothing.
 */
export interface RecentOp<A> {
  /** When it was remembered (the object's time): it is forgotten `ttlMs` later. */
  readonly at: number
  /** The admission, until a void takes it back; then undefined (a tombstone). */
  admission: A | undefined
}

/**
 * The op ids a Durable Object saw last, in memory, bounded in number and in age, without timers:
 * each {@link remember} first forgets what is too old (a Map keeps insertion order, so the
 * oldest are in front) and, at the bound, the oldest. The object's time is passed in by the
 * caller, so the bounds are tested without waiting.
 */
export class RecentOps<A> {
  readonly #ops = new Map<string, RecentOp<A>>()
  readonly #max: number
  readonly #ttlMs: number

  constructor(max = MAX_RECENT_OPS, ttlMs = RECENT_OP_TTL_MS) {
    this.#max = max
    this.#ttlMs = ttlMs
  }

  /** The op `id` if it is remembered and not too old at `now`. */
  get(id: string, now: number): RecentOp<A> | undefined {
    const op = this.#ops.get(id)
    if (op === undefined || op.at + this.#ttlMs <= now) return undefined
    return op
  }

  /** Remembers `id` as an admission, or a void when `admission` is undefined. */
  remember(id: string, admission: A | undefined, now: number): void {
    this.#ops.delete(id)
    for (const [oldest, op] of this.#ops) {
      if (this.#ops.size < this.#max && op.at + this.#ttlMs > now) break
      this.#ops.delete(oldest)
    }
    this.#ops.set(id, { at: now, admission })
  }

  /** How many ids are remembered (some may be too old, until the next {@link remember}). */
  get size(): number {
    return this.#ops.size
  }
}
