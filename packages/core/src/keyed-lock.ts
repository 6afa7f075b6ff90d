/**
 * How many changes to one tenant (or plan) may wait behind the one in progress, per audited store
 * (or admin service, for creates) in this process. A change beyond it fails at once with
 * `TenantBackendError` (503 at the admin routes) rather than queue without bound behind a slow
 * store.
 */
export const MAX_QUEUED_CHANGES = 100

/** How many changes may wait in all, over every tenant (or plan) of one audited store. */
export const MAX_QUEUED_CHANGES_TOTAL = 10_000

/**
 * Runs tasks one at a time per key, with at most {@link MAX_QUEUED_CHANGES} waiting per key and
 * {@link MAX_QUEUED_CHANGES_TOTAL} in all. Entries are removed when a key's last task settles, so
 * the map only holds keys with work in flight. `run` rejects with `refusal(reason)` when the queue
 * is full. The audited stores of core and of @tenant/drizzle serialise their changes with it.
 *
 * @example
 * ```ts
 * const locks = new KeyedLock()
 * await locks.run('acme', () => store.change('acme'), (reason) => new TenantBackendError(reason))
 * ```
 */
export class KeyedLock {
  readonly #tails = new Map<string, { tail: Promise<unknown>; tasks: number }>()
  #waiting = 0

  run<T>(key: string, task: () => Promise<T>, refusal: (reason: string) => Error): Promise<T> {
    const entry = this.#tails.get(key)
    // The task in progress does not wait; every other one of the key does.
    if (entry !== undefined) {
      if (entry.tasks > MAX_QUEUED_CHANGES) {
        return Promise.reject(refusal(`${MAX_QUEUED_CHANGES} changes already wait for it`))
      }
      if (this.#waiting >= MAX_QUEUED_CHANGES_TOTAL) {
        return Promise.reject(refusal(`${MAX_QUEUED_CHANGES_TOTAL} changes already wait in this store`))
      }
      this.#waiting++
    }
    const waits = entry !== undefined
    const current = entry ?? { tail: Promise.resolve(), tasks: 0 }
    current.tasks++
    const start = () => {
      if (waits) this.#waiting--
      return task()
    }
    const result = current.tail.then(start, start)
    const tail = result.then(
      () => undefined,
      () => undefined,
    )
    current.tail = tail
    this.#tails.set(key, current)
    void tail.then(() => {
      current.tasks--
      if (current.tasks === 0 && this.#tails.get(key) === current) this.#tails.delete(key)
    })
    return result
  }
}
