interface Slot<V> {
  key: string
  value: V
  /** When the value stops mattering (a store may forget it from then on). */
  expiresAt: number
  /** The time this slot is filed under in the heap; <= expiresAt unless expiresAt moved earlier. */
  heapAt: number
  dead: boolean
}

/** Most expired entries one {@link ExpiringMap.sweep} call removes: bounds the latency of a call. */
export const SWEEP_BUDGET = 1024

// Below this many heap slots the array is too small to be worth copying.
const COMPACT_MIN = 1024

/**
 * A Map whose entries carry an expiry and are forgotten after it, without timers: every call of
 * {@link sweep} pops the entries that are due from a min-heap ordered by expiry, at most
 * `budget` per call. Memory is therefore bounded by the entries not yet expired plus a backlog that
 * every call shrinks by up to `budget` while it can grow by at most one.
 *
 * Each live key has exactly one heap slot. Moving an expiry later does not touch the heap: when the
 * old time comes the slot is filed again under the new one (lazy rescheduling), so a busy tenant
 * costs one heap operation per expiry period, not one per request.
 *
 * Internal to the in-memory managers; values are whatever state the algorithm keeps.
 */
export class ExpiringMap<V> {
  readonly #slots = new Map<string, Slot<V>>()
  #heap: Slot<V>[] = []
  /** Longest the heap has been since it was last compacted (see `#compact`). */
  #peak = 0
  readonly #budget: number

  constructor(budget: number = SWEEP_BUDGET) {
    this.#budget = budget
  }

  /** Live entries (including expired ones the sweep has not reached yet). */
  get size(): number {
    return this.#slots.size
  }

  /** The value stored for `key`, expired or not (the algorithms read stale state as empty). */
  get(key: string): V | undefined {
    return this.#slots.get(key)?.value
  }

  /** Stores `value` for `key`, to be forgotten from `expiresAt` on. */
  set(key: string, value: V, expiresAt: number): void {
    const slot = this.#slots.get(key)
    if (slot !== undefined) {
      slot.value = value
      slot.expiresAt = expiresAt
      return
    }
    const fresh: Slot<V> = { key, value, expiresAt, heapAt: expiresAt, dead: false }
    this.#slots.set(key, fresh)
    this.#push(fresh)
  }

  /** Forgets `key` now. Its heap slot is discarded when its time comes. */
  delete(key: string): void {
    const slot = this.#slots.get(key)
    if (slot === undefined) return
    slot.dead = true
    this.#slots.delete(key)
  }

  /** Forgets up to the budget of entries whose expiry is `<= now`. */
  sweep(now: number): void {
    const heap = this.#heap
    for (let n = 0; n < this.#budget && heap.length > 0 && heap[0]!.heapAt <= now; n++) {
      const slot = this.#pop()
      if (slot.dead) continue
      if (slot.expiresAt <= now) {
        this.#slots.delete(slot.key)
      } else {
        slot.heapAt = slot.expiresAt
        this.#push(slot)
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

  #push(slot: Slot<V>): void {
    const heap = this.#heap
    heap.push(slot)
    if (heap.length > this.#peak) this.#peak = heap.length
    let i = heap.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (heap[parent]!.heapAt <= slot.heapAt) break
      heap[i] = heap[parent]!
      i = parent
    }
    heap[i] = slot
  }

  #pop(): Slot<V> {
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
