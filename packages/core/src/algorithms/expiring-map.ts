/**
 * What {@link ExpiringMap} needs of an entry. The entry is the caller's own per-key object (a
 * tenant's counters, its token bucket) with these fields added, so one object per key holds both
 * the state and its place in the expiry heap.
 */
export interface ExpiringEntry {
  readonly key: string
  /**
   * Owned by the map: the time the entry is filed under in the heap, in the unit of the caller's
   * times (see {@link SecondsSinceBase} for one that keeps it a small integer).
   */
  heapAt: number
}

/** Most expired entries one {@link ExpiringMap.sweep} call removes: bounds the latency of a call. */
export const SWEEP_BUDGET = 1024

// Below this many heap slots the array is too small to be worth copying.
const COMPACT_MIN = 1024

// Times are clamped to [-FAR, FAR] so that they stay small integers on every V8 build (31 bits with
// pointer compression): one larger value would turn the field into a boxed number in every entry.
// FAR (34 years) means "not in this process's lifetime": such an expiry is never due.
const FAR = 2 ** 30 - 1

/**
 * A time unit for {@link ExpiringMap} that keeps `heapAt` (and expiries) small integers: whole
 * seconds since a base (the first expiry converted). V8 stores a small integer in the object
 * itself, where a time in ms would be a separate 16-byte boxed number per field.
 *
 * Expiries round up and `now` rounds down, so an entry is forgotten at most a second after its
 * expiry, never before it; an expiry on a whole second (every calendar window's end) keeps its
 * exact instant.
 */
export class SecondsSinceBase {
  /** ms since the epoch of second 0, a whole second; set by the first expiry converted. */
  #base = Number.NaN

  /** An expiry (ms since the epoch) in seconds since the base, rounded up. */
  expiry(ms: number): number {
    if (Number.isNaN(this.#base)) this.#base = Math.floor(ms / 1000) * 1000
    const seconds = Math.ceil((ms - this.#base) / 1000)
    if (seconds >= FAR) return FAR
    // Clamping up only delays forgetting; `+ 0` turns -0 into 0, which is a small integer.
    return seconds > -FAR ? seconds + 0 : -FAR
  }

  /** The current time (ms since the epoch) in seconds since the base, rounded down. */
  now(ms: number): number {
    // Before any expiry there is nothing to sweep: any value will do.
    if (Number.isNaN(this.#base)) return -FAR
    return Math.min(FAR - 1, Math.floor((ms - this.#base) / 1000))
  }
}

/**
 * A Map whose entries carry an expiry and are forgotten after it, without timers: every call of
 * {@link sweep} pops the entries that are due from a min-heap ordered by expiry, at most
 * `budget` per call. Memory is therefore bounded by the entries not yet expired plus a backlog that
 * every call shrinks by up to `budget` while it can grow by at most one.
 *
 * The map does not store expiries: it asks `expiresAt(entry)` when an entry's heap time comes, and
 * files it again under the answer if that is later (lazy rescheduling). So a caller that changes an
 * entry in place tells the map nothing, and a busy tenant costs one heap operation per expiry
 * period, not one per request. An expiry that moved earlier is noticed at the old heap time.
 *
 * Internal to the in-memory managers.
 */
export class ExpiringMap<E extends ExpiringEntry> {
  readonly #entries = new Map<string, E>()
  #heap: E[] = []
  /** Longest the heap has been since it was last compacted (see `#compact`). */
  #peak = 0
  /** Heap slots of deleted entries, not yet popped (see `delete`). */
  #dead = 0
  /** Entries added or removed so far (see `changes`). */
  #changes = 0
  readonly #budget: number
  readonly #expiresAt: (entry: E, now: number) => number

  /**
   * @param expiresAt From when an entry stops mattering (the map may forget it from then on), in
   * the unit of `add` and `sweep`; asked only when the entry's heap time comes, with the `now` of
   * that sweep. An answer after `now` files the entry again under it.
   */
  constructor(expiresAt: (entry: E, now: number) => number, budget: number = SWEEP_BUDGET) {
    this.#expiresAt = expiresAt
    this.#budget = budget
  }

  /** Live entries (including expired ones the sweep has not reached yet). */
  get size(): number {
    return this.#entries.size
  }

  /**
   * The earliest time an entry is filed under (`Infinity` when none): no entry is due before it.
   * It may be a deleted entry's or one filed earlier than its expiry, so it can come early.
   */
  get nextAt(): number {
    return this.#heap.length === 0 ? Number.POSITIVE_INFINITY : this.#heap[0]!.heapAt
  }

  /**
   * How many entries have been added or removed so far. A caller that holds an entry across a call
   * it does not control (a user's config store, which may call back into the manager) compares
   * this before and after to know whether the entry it holds may no longer be the map's.
   */
  get changes(): number {
    return this.#changes
  }

  /** Heap slots held: one per live entry, plus those of deleted entries not yet discarded. */
  get slots(): number {
    return this.#heap.length
  }

  /** The entry stored for `key`, expired or not (the algorithms read stale state as empty). */
  get(key: string): E | undefined {
    return this.#entries.get(key)
  }

  /** Stores `entry` under `entry.key`, to be looked at again at `expiresAt`. The key must be absent. */
  add(entry: E, expiresAt: number): void {
    entry.heapAt = expiresAt
    this.#entries.set(entry.key, entry)
    this.#changes++
    this.#push(entry)
  }

  /**
   * Forgets `key` now. Its heap slot is discarded when its time comes, or sooner: once deleted
   * entries fill more slots than live ones, the heap is rebuilt from the live ones. Without that,
   * a key deleted and added again and again (an admin resetting a tenant in a loop) would keep
   * every old entry alive until its expiry, a month away for a month's window.
   */
  delete(key: string): void {
    if (!this.#entries.delete(key)) return
    this.#changes++
    this.#dead++
    if (this.#dead >= COMPACT_MIN && this.#dead * 2 > this.#heap.length) this.#rebuild()
  }

  /** Every live entry (including expired ones the sweep has not reached yet). */
  values(): IterableIterator<E> {
    return this.#entries.values()
  }

  /**
   * Forgets the entry that expires first and returns it; `undefined` when the map is empty. What
   * a caller at its size bound drops to make room. An entry changed in place may expire later
   * than it is filed: one found so is filed again under its expiry at `now` (as a sweep would)
   * before the next is looked at, so a live entry is not dropped for one filed late.
   */
  evictEarliest(now: number): E | undefined {
    while (this.#heap.length > 0) {
      const entry = this.#pop()
      if (this.#entries.get(entry.key) !== entry) {
        this.#dead--
        continue
      }
      const expiresAt = this.#expiresAt(entry, now)
      if (expiresAt > entry.heapAt) {
        entry.heapAt = expiresAt
        this.#push(entry)
        continue
      }
      this.#entries.delete(entry.key)
      this.#changes++
      this.#compact()
      return entry
    }
    return undefined
  }

  /** Forgets up to the budget of entries whose expiry is `<= now`. */
  sweep(now: number): void {
    const heap = this.#heap
    for (let n = 0; n < this.#budget && heap.length > 0 && heap[0]!.heapAt <= now; n++) {
      const entry = this.#pop()
      // A deleted (or deleted and re-added) key: this slot is no longer its entry's.
      if (this.#entries.get(entry.key) !== entry) {
        this.#dead--
        continue
      }
      const expiresAt = this.#expiresAt(entry, now)
      if (expiresAt <= now) {
        this.#entries.delete(entry.key)
        this.#changes++
      } else {
        entry.heapAt = expiresAt
        this.#push(entry)
      }
    }
    this.#compact()
  }

  // V8 never shrinks an array's backing store on pop(): after a burst of a million tenants the
  // heap array would keep its 8 MB once they all expired. Copying it when it has fallen to a
  // quarter of its peak returns that memory; each copy is paid for by the pops before it.
  #compact(): void {
    if (this.#peak >= COMPACT_MIN && this.#heap.length * 4 <= this.#peak) {
      this.#heap = this.#heap.slice()
      this.#peak = this.#heap.length
    }
  }

  // The heap of the live entries alone: sorted by heap time, which is a valid min-heap. Runs once
  // deleted entries fill more than half the heap, so its cost is paid for by those deletes.
  #rebuild(): void {
    const live = this.#heap.filter((entry) => this.#entries.get(entry.key) === entry)
    live.sort((a, b) => a.heapAt - b.heapAt)
    this.#heap = live
    this.#peak = live.length
    this.#dead = 0
  }

  #push(entry: E): void {
    const heap = this.#heap
    heap.push(entry)
    if (heap.length > this.#peak) this.#peak = heap.length
    let i = heap.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (heap[parent]!.heapAt <= entry.heapAt) break
      heap[i] = heap[parent]!
      i = parent
    }
    heap[i] = entry
  }

  #pop(): E {
    const heap = this.#heap
    const top = heap[0]!
    const last = heap.pop()!
    if (heap.length > 0) {
      let i = 0
      for (;;) {
        const left = 2 * i + 1
        if (left >= heap.length) break
        const right = left + 1
        const child = right < heap.length && heap[right]!.heapAt < heap[left]!.heapAt ? right : left
        if (heap[child]!.heapAt >= last.heapAt) break
        heap[i] = heap[child]!
        i = child
      }
      heap[i] = last
    }
    return top
  }
}
