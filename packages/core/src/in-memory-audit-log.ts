import { z } from 'zod'
import {
  type AuditListOptions,
  type AuditLog,
  type AuditPage,
  type AuditRecord,
  type AuditRecordInput,
  isPlanAuditRecord,
  type PlanAuditRecord,
  type TenantAuditRecord,
  validateAuditRecord,
} from './audit'
import { DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT } from './config'
import { InvalidTenantConfigError } from './errors'
import { copyJson, deepFreeze } from './json'
import { validatePlanId } from './plans'
import { validateTenantId } from './tenant-id'
import { invalidOption } from './validate'

/** Options of {@link InMemoryAuditLog}. */
export interface InMemoryAuditLogOptions {
  /**
   * Most records kept, across all tenants and plans. When full, the oldest record is dropped for each new one,
   * so memory stays bounded however long the process runs.
   * @default 10000
   */
  max?: number
}

const auditListOptionsSchema = z.strictObject({
  limit: z
    .number()
    .int('must be a whole number')
    .min(1, 'must be >= 1')
    .max(MAX_LIST_LIMIT, `must be <= ${MAX_LIST_LIMIT}`)
    .optional(),
  before: z.string().min(1, 'must not be empty').max(255, 'must be the `next` of a previous page').optional(),
})

/** {@link AuditListOptions} with defaults applied and checked. */
export interface ResolvedAuditListOptions {
  limit: number
  before: string | undefined
}

/**
 * Applies the defaults of {@link AuditListOptions} and checks them: `limit` a whole number from 1
 * to 1000 (default 50), `before` a non-empty string of at most 255 characters that matches the
 * store's `cursor` format when one is given. Every `AuditLog` store uses it so that all stores
 * accept and refuse the same options. Throws {@link InvalidTenantConfigError} listing the bad options.
 *
 * @example
 * ```ts
 * const { limit, before } = resolveAuditListOptions(options, /^\d{16}$/)
 * ```
 */
export function resolveAuditListOptions(
  options: AuditListOptions = {},
  cursor?: RegExp,
): ResolvedAuditListOptions {
  const result = auditListOptionsSchema.safeParse(options)
  if (!result.success) throw new InvalidTenantConfigError(result.error.issues)
  const { limit = DEFAULT_LIST_LIMIT, before } = result.data
  if (before !== undefined && cursor !== undefined && !cursor.test(before)) {
    throw new InvalidTenantConfigError([
      { path: ['before'], message: 'must be the `next` of a previous page', code: 'invalid_value' },
    ])
  }
  return { limit, before }
}

// Ids are a zero-padded sequence so that string order is insertion order, which keeps cursors
// comparable without parsing and matches how a database store would order them.
const ID_WIDTH = 16
const ID_PATTERN = /^\d{16}$/

/**
 * An {@link AuditLog} kept in memory, for tests and small single-process apps. Bounded by `max`
 * (oldest records dropped first). Records are copied and frozen on append, so neither the caller
 * nor a reader can rewrite history.
 *
 * @example
 * ```ts
 * const auditLog = new InMemoryAuditLog({ max: 1000 })
 * const store = auditedStore(new InMemoryConfigManager(), auditLog)
 * const admin = new AdminService({ store, auditLog })
 * const { items, next } = await auditLog.list('acme', { limit: 20 })
 * ```
 */
export class InMemoryAuditLog implements AuditLog {
  readonly #max: number
  // Per subject ("t:" + tenant id or "p:" + plan id, so a tenant and a plan with the same id keep
  // apart histories), oldest first; `#order` remembers which subject owns each record globally so
  // the oldest record overall can be dropped in O(1) amortised.
  readonly #bySubject = new Map<string, AuditRecord[]>()
  readonly #order: string[] = []
  #orderHead = 0
  #seq = 0

  constructor(options: InMemoryAuditLogOptions = {}) {
    const max = options.max ?? 10_000
    if (!Number.isInteger(max) || max < 1) {
      throw invalidOption('InMemoryAuditLog.max', `must be a whole number >= 1, got ${String(max)}`)
    }
    this.#max = max
  }

  /** Number of records currently held (at most `max`). */
  get size(): number {
    return this.#order.length - this.#orderHead
  }

  /**
   * Checks `record` ({@link validateAuditRecord}: `InvalidTenantConfigError` naming the bad field,
   * `InvalidTenantIdError` for a bad tenant id), then stores a frozen copy with the next id.
   */
  async append(record: AuditRecordInput): Promise<AuditRecord> {
    const checked = validateAuditRecord(record)
    const key = isPlanAuditRecord(checked) ? `p:${checked.planId}` : `t:${checked.tenantId}`
    this.#seq += 1
    const stored = deepFreeze(copyJson({ ...checked, id: String(this.#seq).padStart(ID_WIDTH, '0') }))
    let list = this.#bySubject.get(key)
    if (list === undefined) {
      list = []
      this.#bySubject.set(key, list)
    }
    list.push(stored)
    this.#order.push(key)
    while (this.size > this.#max) this.#dropOldest()
    return stored
  }

  async list(tenantId: string, options?: AuditListOptions): Promise<AuditPage<TenantAuditRecord>> {
    return this.#page(`t:${validateTenantId(tenantId)}`, options) as AuditPage<TenantAuditRecord>
  }

  async listPlan(planId: string, options?: AuditListOptions): Promise<AuditPage<PlanAuditRecord>> {
    return this.#page(`p:${validatePlanId(planId)}`, options) as AuditPage<PlanAuditRecord>
  }

  #page(key: string, options: AuditListOptions | undefined): AuditPage {
    const { limit, before } = resolveAuditListOptions(options, ID_PATTERN)
    const list = this.#bySubject.get(key) ?? []
    // Newest first: start just below the cursor and walk back.
    let end = list.length
    if (before !== undefined) end = lowerBound(list, before)
    const items: AuditRecord[] = []
    for (let i = end - 1; i >= 0 && items.length < limit; i--) items.push(list[i]!)
    const last = items[items.length - 1]
    const hasMore = last !== undefined && end - items.length > 0
    return hasMore ? { items, next: last.id } : { items }
  }

  #dropOldest(): void {
    const key = this.#order[this.#orderHead]!
    this.#orderHead += 1
    // Compact the queue once the consumed head dominates, keeping memory proportional to `max`.
    if (this.#orderHead > 1024 && this.#orderHead * 2 > this.#order.length) {
      this.#order.splice(0, this.#orderHead)
      this.#orderHead = 0
    }
    const list = this.#bySubject.get(key)!
    list.shift()
    if (list.length === 0) this.#bySubject.delete(key)
  }
}

/** Index of the first record whose id is >= `id` (ids ascend within a subject's list). */
function lowerBound(list: readonly AuditRecord[], id: string): number {
  let lo = 0
  let hi = list.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (list[mid]!.id < id) lo = mid + 1
    else hi = mid
  }
  return lo
}
