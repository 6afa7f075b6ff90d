import { compareTenantIds, type ResolvedListTenantsOptions } from './list-tenants'

/**
 * A map from id to value with its ids kept sorted (binary order, {@link compareTenantIds}), so that
 * both pagination styles of `listTenants` / `listPlans` are a binary search and a slice, not a sort
 * per call. Internal to core's in-memory stores (not re-exported).
 */
export class SortedIdMap<V> {
  readonly #values = new Map<string, V>()
  readonly #ids: string[] = []

  get(id: string): V | undefined {
    return this.#values.get(id)
  }

  set(id: string, value: V): void {
    if (!this.#values.has(id)) this.#ids.splice(this.#lowerBound(id), 0, id)
    this.#values.set(id, value)
  }

  /** Removes `id`; false when it was not there. */
  delete(id: string): boolean {
    if (!this.#values.delete(id)) return false
    this.#ids.splice(this.#lowerBound(id), 1)
    return true
  }

  values(): IterableIterator<V> {
    return this.#values.values()
  }

  /** One page in id order; `next` is the page's last id when more follow. */
  page(resolved: ResolvedListTenantsOptions): { items: V[]; next?: string } {
    const start =
      resolved.mode === 'offset'
        ? resolved.offset
        : this.#upperBound(resolved.after, this.#lowerBound(resolved.after))
    const ids = this.#ids.slice(start, start + resolved.limit)
    const items = ids.map((id) => this.#values.get(id)!)
    const last = ids[ids.length - 1]
    return last !== undefined && start + ids.length < this.#ids.length ? { items, next: last } : { items }
  }

  /** Index of the first id >= `id`. */
  #lowerBound(id: string): number {
    let lo = 0
    let hi = this.#ids.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (compareTenantIds(this.#ids[mid]!, id) < 0) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** Index of the first id > `id`, given the index of the first id >= `id`. */
  #upperBound(id: string, lowerBound: number): number {
    return this.#ids[lowerBound] === id ? lowerBound + 1 : lowerBound
  }
}
