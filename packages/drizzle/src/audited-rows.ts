// The machinery DrizzleConfigManager (tenants) and DrizzlePlanStore (plans) share: a cached read,
// upsert, delete and list over one table, and audited changes written atomically with their audit
// row in the way each driver allows. What differs between the two is a RowKind.
import {
  type AuditAction,
  type AuditRecord,
  type AuditRecordInput,
  auditTimestamp,
  type Clock,
  copyJson,
  InvalidTenantConfigError,
  invalidOption,
  KeyedLock,
  type ListTenantsOptions,
  promiseOf,
  resolveListTenantsOptions,
  TenantBackendError,
  validateAuditRecord,
} from '@tenant/core'
import { and, asc, eq, gt, notExists, type SQL, sql } from 'drizzle-orm'
import {
  ConfigCache,
  type ConfigCacheOptions,
  type ConfigCacheStats,
  resolveConfigCacheOptions,
} from './config-cache'
import { type AnyDb, type AtomicMode, type Dialect, toBackendError } from './driver'
import { encodeAudit as encodeAuditRow, formatAuditId } from './tenant-row'

type Row = Record<string, unknown>

/** What a stored tenant config and a stored plan have in common. */
interface Stored {
  id: string
  createdAt: number
  updatedAt: number
}

/** A change to apply: a tenant's or a plan's. */
interface AnyChange<C> {
  actor: string
  action: AuditAction
  requestId?: string
  apply(before: C | null): unknown
}

/** What tells a tenant store from a plan store. */
export interface RowKind<C extends Stored, Change extends AnyChange<C>> {
  kind: 'tenant' | 'plan'
  /** Names the queries in `TenantBackendError` messages ("tenant store query"). */
  what: string
  /** The table of the configs and the table of their audit records, for the dialect. */
  table: AnyDb
  auditTable: AnyDb
  validateId(id: unknown): string
  /** Validates caller input (throws `InvalidTenantConfigError`). */
  parse(input: unknown): Omit<C, 'createdAt' | 'updatedAt'>
  encode(config: C): Row
  decode(row: Row): C
  /** The config as the store returns it after writing it. */
  normalize(config: C): C
  notFound(id: string): Error
  /** The id of the subject a change is for (not yet validated). */
  changeId(change: Change): unknown
  /** The audit record of a change, keyed by `tenantId` or `planId`. */
  record(id: string, fields: Omit<AuditRecord, 'id' | 'tenantId' | 'planId'>): AuditRecordInput
  /** The tenant id to put on backend errors (tenants only). */
  tenantIdOf(id: string): string | undefined
  /**
   * What a failed constraint of the database on a write of `id` means (a foreign key: a tenant on
   * a plan that does not exist, a plan deleted from under its tenants), or undefined when the
   * error is something else.
   */
  constraintError(error: unknown, id: string): Error | undefined
  /** Plans: a delete is refused while this finds a row; `guard` is the same as a WHERE condition. */
  inUse?: {
    query(q: AnyDb, id: string): AnyDb
    guard(q: AnyDb, id: string): SQL
    error(id: string): Error
  }
}

/** Options every store of this package shares. */
export interface RowStoreOptions {
  cache?: ConfigCacheOptions | false
  clock: Clock
}

// With optimistic concurrency (db.batch drivers) each attempt that loses a race lets another
// writer through, so this bounds the number of changes to one row racing at the same moment.
const MAX_ATTEMPTS = 32

/** A concurrent writer changed the row between our read and our write: try again. */
class Conflict extends Error {}
/** The caller's `apply` (or validating its result) failed: nothing was written; rethrow as is. */
class Aborted {
  constructor(readonly error: unknown) {}
}

interface ChangePlan<C> {
  id: string
  before: C | null
  after: C | null
  /** The revision (concurrency token) read with `before`; null when the row did not exist. */
  revision: number | null
  record: AuditRecordInput
}

/** What an audited change wrote. */
export interface RowChangeResult<C> {
  before: C | null
  after: C | null
  audit: AuditRecord
}

/** Reads and writes of one kind of config row, with its cache. Internal. */
export class RowStore<C extends Stored, Change extends AnyChange<C>> {
  readonly #db: AnyDb
  readonly #dialect: Dialect
  readonly #mode: AtomicMode
  readonly #kind: RowKind<C, Change>
  readonly #clock: Clock
  readonly #cache: ConfigCache<C> | undefined
  readonly #locks = new KeyedLock()

  constructor(
    db: AnyDb,
    info: { dialect: Dialect; mode: AtomicMode },
    kind: RowKind<C, Change>,
    options: RowStoreOptions,
  ) {
    this.#db = db
    this.#dialect = info.dialect
    this.#mode = info.mode
    this.#kind = kind
    this.#clock = options.clock
    if (
      options.cache !== undefined &&
      options.cache !== false &&
      (typeof options.cache !== 'object' || options.cache === null)
    ) {
      throw invalidOption('cache', 'must be an options object or false')
    }
    this.#cache =
      options.cache === false
        ? undefined
        : new ConfigCache<C>(resolveConfigCacheOptions(options.cache), this.#clock, kind.notFound)
  }

  get dialect(): Dialect {
    return this.#dialect
  }

  get cacheStats(): ConfigCacheStats | undefined {
    return this.#cache ? { ...this.#cache.stats } : undefined
  }

  invalidate(id?: string): void {
    this.#cache?.invalidate(id)
  }

  get(id: string): Promise<C> {
    return promiseOf(() => this.getNow(id))
  }

  /**
   * `get` as a value on a fresh cache hit, a promise otherwise (core's `tenantConfigNow`); throws
   * the not-found error on a fresh negative hit.
   */
  getNow(id: string): C | Promise<C> {
    // The cache-hit path: no id check (an id with an entry was checked before the entry was
    // stored), no promise and no async frame; the tenancy chain reads every request's config here.
    const fresh = this.#cache?.fresh(id)
    if (fresh === undefined) return this.#lookup(id)
    if (fresh.config === null) throw this.#kind.notFound(id)
    return fresh.config
  }

  async #lookup(id: string): Promise<C> {
    this.#kind.validateId(id)
    // get() found no fresh entry a moment ago (nothing ran in between).
    if (this.#cache) return this.#cache.miss(id, () => this.#find(id))
    const config = await this.#find(id)
    if (config === null) throw this.#kind.notFound(id)
    return config
  }

  /** Creates or replaces a row with one `INSERT ... ON CONFLICT DO UPDATE`; keeps `createdAt`. */
  async set(input: unknown): Promise<C> {
    const parsed = this.#kind.parse(input)
    const now = this.#now()
    const { table } = this.#kind
    const values = this.#kind.encode({ ...parsed, createdAt: now, updatedAt: now } as C)
    const { id: _id, createdAt: _createdAt, ...changes } = values
    const revision = this.#nextRevision()
    let rows: Row[]
    try {
      rows = await this.#run(parsed.id, () =>
        this.#db
          .insert(table)
          .values({ ...values, revision })
          .onConflictDoUpdate({ target: table.id, set: { ...changes, revision } })
          .returning(),
      )
    } finally {
      // Also when the write failed: it may have committed with only its reply lost, and the entry
      // (a suspension, a delete) must not outlive it.
      this.#cache?.invalidate(parsed.id)
    }
    return this.#kind.decode(rows[0]!)
  }

  async delete(id: string): Promise<void> {
    this.#kind.validateId(id)
    const { table, inUse } = this.#kind
    const where = inUse ? and(eq(table.id, id), inUse.guard(this.#db, id)) : eq(table.id, id)
    let rows: unknown[]
    try {
      rows = await this.#run(id, () => this.#db.delete(table).where(where).returning({ id: table.id }))
    } finally {
      // As in set(): a delete whose reply was lost may have committed.
      this.#cache?.invalidate(id)
    }
    if (rows.length > 0) return
    // Nothing deleted: the row is absent, or the guard held it back.
    if (inUse && (await this.#find(id)) !== null) throw inUse.error(id)
    throw this.#kind.notFound(id)
  }

  /** One page in id order (byte order on every dialect). Not cached. */
  async list(options?: ListTenantsOptions): Promise<{ items: C[]; next?: string }> {
    const resolved = resolveListTenantsOptions(options)
    const { table } = this.#kind
    // One row more than asked tells whether there is a next page without a count query.
    const rows = await this.#run(undefined, () => {
      const query = this.#db.select().from(table)
      const filtered = resolved.mode === 'keyset' ? query.where(gt(table.id, resolved.after)) : query
      const page = filtered.orderBy(asc(table.id)).limit(resolved.limit + 1)
      return resolved.mode === 'offset' && resolved.offset > 0 ? page.offset(resolved.offset) : page
    })
    const items = rows.slice(0, resolved.limit).map((row) => this.#kind.decode(row))
    const last = items[items.length - 1]
    return rows.length > resolved.limit && last ? { items, next: last.id } : { items }
  }

  /**
   * Applies a change and writes its audit record atomically (see `DrizzleConfigManager.applyChange`
   * for how each driver does it). `apply` may run more than once under races.
   */
  async applyChange(change: Change): Promise<RowChangeResult<C>> {
    const id = this.#kind.validateId(this.#kind.changeId(change))
    // One change of an id at a time in this process: racing each other, the Kth of K concurrent
    // changes needed K attempts, and 33 at once left some failed after MAX_ATTEMPTS. Other
    // processes still race, and the attempts below settle that.
    return this.#locks.run(
      id,
      () => this.#change(id, change),
      (reason) =>
        new TenantBackendError(`${this.#kind.kind} "${id}" is not changed: ${reason}`, this.#tenantId(id)),
    )
  }

  async #change(id: string, change: Change): Promise<RowChangeResult<C>> {
    for (let attempt = 1; ; attempt++) {
      let result: RowChangeResult<C> | undefined
      try {
        result = await this.#attempt(id, change)
      } catch (error) {
        if (error instanceof Aborted) throw error.error
        // A failed write may have committed with only its reply lost: its entry must not outlive it.
        this.#cache?.invalidate(id)
        // PostgreSQL rolled the transaction back whole (see isRetryableTransactionFailure).
        if (!(error instanceof Conflict) && !isRetryableTransactionFailure(error))
          throw this.#error(error, id)
      }
      if (result) {
        this.#cache?.invalidate(id)
        return result
      }
      if (attempt >= MAX_ATTEMPTS) {
        throw new TenantBackendError(
          `${this.#kind.kind} "${id}" changed concurrently ${attempt} times in a row; the change was not applied`,
          this.#tenantId(id),
        )
      }
    }
  }

  async #find(id: string): Promise<C | null> {
    const { table } = this.#kind
    const rows = await this.#run(id, () => this.#db.select().from(table).where(eq(table.id, id)).limit(1))
    return rows[0] === undefined ? null : this.#kind.decode(rows[0])
  }

  // Resolves undefined on a lost race (batch mode); throws Conflict inside transactions so that
  // they roll back.
  async #attempt(id: string, change: Change): Promise<RowChangeResult<C> | undefined> {
    const db = this.#db
    const { table, inUse } = this.#kind
    const select = (q: AnyDb) => q.select().from(table).where(eq(table.id, id)).limit(1)
    const refuseInUse = (found: unknown[]) => {
      if (found.length > 0) throw new Aborted(inUse!.error(id))
    }
    switch (this.#mode) {
      case 'sqlite-batch': {
        const plan = this.#plan(change, id, (await select(db))[0])
        // The batch's delete is guarded too: a tenant put on the plan after this read makes the
        // batch write nothing, and the next attempt sees the tenant here.
        if (plan.after === null && inUse) refuseInUse(await inUse.query(db, id))
        const [written, audited] = await db.batch([this.#write(db, plan), this.#guardedAudit(db, plan)])
        return written.length === 1 ? this.#result(plan, audited[0].id) : undefined
      }
      case 'pg':
        return db.transaction(async (tx: AnyDb) => {
          // FOR UPDATE also holds back a tenant insert that references this plan (it takes a KEY
          // SHARE lock on the plan row), so the in-use check stays true until the commit.
          const plan = this.#plan(change, id, (await select(tx).for('update'))[0])
          if (plan.after === null && inUse) refuseInUse(await inUse.query(tx, id))
          if ((await this.#write(tx, plan)).length !== 1) throw new Conflict()
          return this.#result(plan, (await this.#audit(tx, plan))[0].id)
        })
      case 'sqlite-sync':
        // Synchronous drivers: the whole body runs inside the transaction without yielding.
        return db.transaction(
          (tx: AnyDb) => {
            const plan = this.#plan(change, id, select(tx).all()[0])
            if (plan.after === null && inUse) refuseInUse(inUse.query(tx, id).all())
            if (this.#write(tx, plan).all().length !== 1) throw new Conflict()
            return this.#result(plan, this.#audit(tx, plan).all()[0].id)
          },
          { behavior: 'immediate' },
        )
      case 'sqlite-async':
        return db.transaction(
          async (tx: AnyDb) => {
            const plan = this.#plan(change, id, (await select(tx))[0])
            if (plan.after === null && inUse) refuseInUse(await inUse.query(tx, id))
            if ((await this.#write(tx, plan)).length !== 1) throw new Conflict()
            return this.#result(plan, (await this.#audit(tx, plan))[0].id)
          },
          { behavior: 'immediate' },
        )
    }
  }

  #plan(change: Change, id: string, row: Row | undefined): ChangePlan<C> {
    const kind = this.#kind
    const before = row === undefined ? null : kind.decode(row)
    const now = this.#now()
    let after: C | null
    try {
      // A copy, so that an `apply` that mutates its argument cannot alter the audit's `before`.
      const next = change.apply(before === null ? null : copyJson(before))
      if (next === null) {
        if (before === null) throw kind.notFound(id)
        after = null
      } else {
        const parsed = kind.parse(next)
        if (parsed.id !== id) {
          throw new InvalidTenantConfigError([
            {
              path: ['id'],
              message: `must be "${id}", the ${kind.kind} being changed`,
              code: 'invalid_value',
            },
          ])
        }
        after = kind.normalize({ ...parsed, createdAt: before?.createdAt ?? now, updatedAt: now } as C)
      }
    } catch (error) {
      throw new Aborted(error)
    }
    const record = kind.record(id, {
      actor: change.actor,
      action: change.action,
      before,
      after,
      at: now,
      ...(change.requestId === undefined ? {} : { requestId: change.requestId }),
    } as never)
    try {
      // The rules every audit log applies (an actor with U+0000 would otherwise reach Postgres and
      // come back as a 503): a change whose record no log would take is refused, nothing written.
      validateAuditRecord(record)
    } catch (error) {
      throw new Aborted(error)
    }
    return { id, before, after, revision: row === undefined ? null : Number(row.revision), record }
  }

  /** The conditional write of a plan; returns the affected ids (one, or none on a lost race). */
  #write(q: AnyDb, plan: ChangePlan<C>): AnyDb {
    const { table, inUse } = this.#kind
    const sameRow = (revision: number) => and(eq(table.id, plan.id), eq(table.revision, revision))
    if (plan.after === null) {
      const where = inUse ? and(sameRow(plan.revision!), inUse.guard(q, plan.id)) : sameRow(plan.revision!)
      return q.delete(table).where(where).returning({ id: table.id })
    }
    const values = this.#kind.encode(plan.after)
    const revision = this.#nextRevision()
    if (plan.revision === null) {
      return q
        .insert(table)
        .values({ ...values, revision })
        .onConflictDoNothing({ target: table.id })
        .returning({ id: table.id })
    }
    const { id: _id, createdAt: _createdAt, ...changes } = values
    return q
      .update(table)
      .set({ ...changes, revision })
      .where(sameRow(plan.revision))
      .returning({ id: table.id })
  }

  #audit(q: AnyDb, plan: ChangePlan<C>): AnyDb {
    const { auditTable } = this.#kind
    return q.insert(auditTable).values(this.#encodeAudit(plan.record)).returning({ id: auditTable.id })
  }

  // In a batch there is no way to branch on the write's outcome, so the insert carries the
  // condition itself: changes() is the row count of the statement before it in the same batch.
  // An INSERT ... SELECT builder (not raw SQL) so that D1 can bind its parameters; it lists every
  // column in table order (both audit tables have the same), and a NULL id takes the next
  // AUTOINCREMENT value.
  #guardedAudit(q: AnyDb, plan: ChangePlan<C>): AnyDb {
    const { auditTable } = this.#kind
    const v = this.#encodeAudit(plan.record)
    const subject = v.tenantId ?? v.planId
    return q
      .insert(auditTable)
      .select(
        sql`select null, ${subject}, ${v.actor}, ${v.action}, ${v.before}, ${v.after}, ${v.at}, ${v.requestId} where changes() = 1`,
      )
      .returning({ id: auditTable.id })
  }

  #encodeAudit(record: AuditRecordInput): Row {
    return encodeAuditRow(this.#dialect, record)
  }

  #result(plan: ChangePlan<C>, auditId: unknown): RowChangeResult<C> {
    return {
      before: plan.before,
      after: plan.after,
      audit: { ...plan.record, id: formatAuditId(auditId) } as AuditRecord,
    }
  }

  async #run(id: string | undefined, query: () => PromiseLike<Row[]>): Promise<Row[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await query()
      } catch (error) {
        // One statement PostgreSQL rolled back for a concurrent one: run it again.
        if (attempt < MAX_ATTEMPTS && isRetryableTransactionFailure(error)) continue
        throw id === undefined ? toBackendError(error, this.#kind.what, undefined) : this.#error(error, id)
      }
    }
  }

  #error(error: unknown, id: string): Error {
    return (
      this.#kind.constraintError(error, id) ??
      toBackendError(error, this.#kind.what, this.#kind.tenantIdOf(id))
    )
  }

  #tenantId(id: string): { tenantId?: string } {
    const tenantId = this.#kind.tenantIdOf(id)
    return tenantId === undefined ? {} : { tenantId }
  }

  // The same whole-ms stamp as every audit record of the toolkit (core's auditTimestamp), also
  // used for createdAt / updatedAt so that a change's row and its record agree.
  #now(): number {
    return auditTimestamp(this.#clock)
  }

  // The revision is the concurrency token of the optimistic (db.batch) path, which writes only if
  // the row still holds the revision it read. A counter restarts with the row: a tenant deleted and
  // created again would be back at a revision an in-flight change read from the deleted one, and
  // that change would overwrite the new tenant (ABA). A random value drawn on every write,
  // inserts included, does not depend on the row's history, so it needs no memory of deleted rows
  // (no extra table): a stale change wins only if 53 random bits repeat (1 in 9e15). Postgres
  // keeps the row locked between the read and the write, so there the token only needs to fit
  // its `integer` column (31 bits).
  #nextRevision(): number {
    const [high, low] = crypto.getRandomValues(new Uint32Array(2)) as unknown as [number, number]
    const revision = this.#dialect === 'pg' ? low & 0x7fff_ffff : (high & 0x1f_ffff) * 2 ** 32 + low
    return revision === 0 ? 1 : revision
  }
}

/**
 * True when `error` (or one of its causes: Drizzle wraps driver errors) is a foreign-key violation:
 * Postgres' SQLSTATE 23503, SQLite's "FOREIGN KEY constraint failed" (libSQL, D1, bun:sqlite).
 */
export function isForeignKeyViolation(error: unknown): boolean {
  return someCause(
    error,
    ({ code, message }) =>
      code === '23503' || (typeof message === 'string' && /FOREIGN KEY constraint failed/i.test(message)),
  )
}

/**
 * PostgreSQL's `serialization_failure` (40001) and `deadlock_detected` (40P01): the transaction (or
 * statement) was rolled back whole because of a concurrent one, and running it again is the
 * answer PostgreSQL documents. Ordinary races raise them where the database or role runs at
 * REPEATABLE READ or SERIALIZABLE by default (`default_transaction_isolation`).
 */
export function isRetryableTransactionFailure(error: unknown): boolean {
  return someCause(error, ({ code }) => code === '40001' || code === '40P01')
}

// Whether `error` or one of its causes (Drizzle wraps the driver's error) passes `test`.
function someCause(error: unknown, test: (error: { code?: unknown; message?: unknown }) => boolean): boolean {
  let current: unknown = error
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth++) {
    if (test(current as { code?: unknown; message?: unknown })) return true
    current = (current as { cause?: unknown }).cause
  }
  return false
}

/** The `not exists (select 1 from tenants where plan = id)` guard of a plan delete. */
export function noTenantOn(q: AnyDb, tenants: AnyDb, planId: string): SQL {
  return notExists(q.select({ one: sql`1` }).from(tenants).where(eq(tenants.plan, planId)))
}
