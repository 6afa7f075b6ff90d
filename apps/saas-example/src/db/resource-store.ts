import { type Clock, isTenantError, systemClock, TenantBackendError, type TenantRef } from '@tenant/core'
import { scoped, type TenantDatabase, type TenantDB, withTenantRls } from '@tenant/drizzle'
import { and, asc, eq, gt, is, sql } from 'drizzle-orm'
import type { LibSQLDatabase } from 'drizzle-orm/libsql'
import { PgDatabase } from 'drizzle-orm/pg-core'
import { resources as pgResources } from './pg-schema'
import { resources as sqliteResources } from './sqlite-schema'

/** A resource as the API returns it. */
export interface Resource {
  id: string
  name: string
  data: Record<string, unknown>
  /** ISO 8601, UTC. */
  createdAt: string
  /** ISO 8601, UTC. */
  updatedAt: string
}

/** What a client sends to create or replace a resource. */
export interface ResourceInput {
  name: string
  data: Record<string, unknown>
}

/** One page of a tenant's resources, in id (creation) order. */
export interface ResourcePage {
  items: Resource[]
  /** Pass as `after` for the next page; absent on the last page. */
  next?: string
}

/**
 * The app's data access, always for one tenant: every method takes the tenant first and can only
 * see or change that tenant's rows. A row belongs to the tenant of its id that wrote it: a request
 * of a deleted tenant that writes after its id was given to a new customer writes a row no one
 * sees (and `purge` removes), never one of the new customer's.
 */
export interface ResourceStore {
  list(tenant: TenantRef, page: { limit: number; after?: string }): Promise<ResourcePage>
  create(tenant: TenantRef, input: ResourceInput): Promise<Resource>
  /** The resource, or undefined when the tenant has none with this id (another tenant's included). */
  get(tenant: TenantRef, id: string): Promise<Resource | undefined>
  /** The replaced resource, or undefined when the tenant has none with this id. */
  update(tenant: TenantRef, id: string, input: ResourceInput): Promise<Resource | undefined>
  /** True when a resource was deleted, false when the tenant has none with this id. */
  delete(tenant: TenantRef, id: string): Promise<boolean>
  /**
   * Deletes every resource of the id, whichever tenant of it wrote them; resolves to how many. Run
   * before a tenant is created (AdminService's `freshStart`): a customer given the id of a deleted
   * one starts with no rows.
   */
  purge(tenantId: string): Promise<number>
  /** Resolves when the database answers a trivial query (the health check). */
  ping(): Promise<void>
}

/** Options of {@link DrizzleResourceStore}. */
export interface DrizzleResourceStoreOptions {
  /**
   * Stamps `createdAt` / `updatedAt` and orders new ids.
   * @default systemClock
   */
  clock?: Clock
}

// The queries are written once against the SQLite table: Drizzle's SQLite and Postgres builders
// have the same surface for what is used here, but their types do not unify. Both dialects run
// every query in the e2e suite.
type Table = typeof sqliteResources
type Db = LibSQLDatabase
type Row = typeof sqliteResources.$inferSelect

const ID_ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz' // Crockford base32, lower case

/**
 * A new resource id: `res_`, 10 characters of the clock's time and 16 of an 80-bit number (a
 * ULID in lower case). Ids sort in creation order, so keyset paging by id lists oldest first: an
 * id made in the same millisecond as the last one adds a random 1 to 2^40 to the last one's
 * number, so it sorts after it (a fresh random
 * number would put it before the last one half the time, and a client paging with `after` would
 * never see it). The random parts keep ids unguessable across tenants. In order within one
 * process: ids of one millisecond made by two processes sort at random.
 */
export function newResourceId(now: number): string {
  let time = Math.max(0, Math.floor(now))
  let number: bigint
  if (time === lastId.time) {
    number = lastId.number + 1n + randomBits(40)
    if (number >= ID_NUMBER_LIMIT) {
      // 2^80 numbers in one millisecond: the next one.
      time++
      number = randomBits(80)
    }
  } else {
    number = randomBits(80)
  }
  lastId = { time, number }
  let timePart = ''
  for (let i = 0, t = time; i < 10; i++, t = Math.floor(t / 32)) timePart = ID_ALPHABET[t % 32] + timePart
  let numberPart = ''
  for (let i = 0, n = number; i < 16; i++, n >>= 5n) numberPart = ID_ALPHABET[Number(n & 31n)] + numberPart
  return `res_${timePart}${numberPart}`
}

const ID_NUMBER_LIMIT = 1n << 80n
let lastId = { time: -1, number: 0n }

/** A random whole number of `bits` bits. */
function randomBits(bits: number): bigint {
  const bytes = crypto.getRandomValues(new Uint8Array(Math.ceil(bits / 8)))
  let value = 0n
  for (const byte of bytes) value = (value << 8n) | BigInt(byte)
  return value & ((1n << BigInt(bits)) - 1n)
}

/** The shape of ids made by {@link newResourceId}; anything else cannot exist, so it is a 404. */
export const RESOURCE_ID_PATTERN = /^res_[0-9a-hjkmnp-tv-z]{26}$/

function toResource(row: Row): Resource {
  return {
    id: row.id,
    name: row.name,
    data: row.data,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  }
}

/**
 * {@link ResourceStore} on the app's Drizzle database. Every query goes through `scoped(db,
 * tenantId)` from `@tenant/drizzle`, which adds `tenant_id = ?` to every WHERE and tags every
 * insert. On PostgreSQL each call also runs inside `withTenantRls`, so row-level security (the
 * policy of drizzle/pg) filters the same rows a second time: a query that somehow lost its filter
 * would still see only the tenant's rows.
 *
 * @example
 * ```ts
 * const store = new DrizzleResourceStore(drizzle({ connection: { url: 'file:data/app.db' } }))
 * const acme = await configs.getTenantConfig('acme') // what the chain puts in c.var.tenant
 * const created = await store.create(acme, { name: 'report', data: { pages: 3 } })
 * await store.get(globex, created.id) // undefined: another tenant's id
 * ```
 */
export class DrizzleResourceStore implements ResourceStore {
  readonly #db: TenantDatabase
  readonly #pg: boolean
  readonly #table: Table
  readonly #clock: Clock

  constructor(db: TenantDatabase, options: DrizzleResourceStoreOptions = {}) {
    this.#db = db
    this.#pg = is(db, PgDatabase)
    this.#table = (this.#pg ? pgResources : sqliteResources) as unknown as Table
    this.#clock = options.clock ?? systemClock
  }

  // The rows of this tenant of the id (scoped() adds the id itself to every query).
  #ownedBy(tenant: TenantRef) {
    return eq(this.#table.tenantCreatedAt, tenant.createdAt)
  }

  /** Runs `fn` with the tenant's scoped database (inside a tenant RLS transaction on Postgres). */
  async #run<T>(tenantId: string, what: string, fn: (tdb: TenantDB<Db>) => Promise<T>): Promise<T> {
    try {
      if (this.#pg) {
        return await withTenantRls(this.#db as PgDatabase<any, any, any>, tenantId, (tx) =>
          fn(scoped(tx as unknown as Db, tenantId)),
        )
      }
      return await fn(scoped(this.#db as unknown as Db, tenantId))
    } catch (error) {
      // The driver's message can carry SQL and host names; it stays in `cause`, out of responses.
      // A RangeError (a stack or string overflow while the query is built) comes from the input,
      // not from the database: reported as a backend failure, a caller could fake an outage.
      if (isTenantError(error) || error instanceof RangeError) throw error
      throw new TenantBackendError(`${what} failed for tenant "${tenantId}"`, { cause: error, tenantId })
    }
  }

  list(tenant: TenantRef, page: { limit: number; after?: string }): Promise<ResourcePage> {
    const t = this.#table
    return this.#run(tenant.id, 'listing resources', async (tdb) => {
      const rows = await tdb
        .select()
        .from(t)
        .where(and(this.#ownedBy(tenant), page.after === undefined ? undefined : gt(t.id, page.after)))
        .orderBy(asc(t.id))
        .limit(page.limit + 1)
      const items = rows.slice(0, page.limit).map(toResource)
      return rows.length > page.limit ? { items, next: items[items.length - 1]!.id } : { items }
    })
  }

  create(tenant: TenantRef, input: ResourceInput): Promise<Resource> {
    const t = this.#table
    return this.#run(tenant.id, 'creating a resource', async (tdb) => {
      const now = new Date(this.#clock.now())
      const [row] = await tdb
        .insert(t)
        .values({
          id: newResourceId(now.getTime()),
          tenantCreatedAt: tenant.createdAt,
          name: input.name,
          data: input.data,
          createdAt: now,
          updatedAt: now,
        })
        .returning()
      return toResource(row!)
    })
  }

  get(tenant: TenantRef, id: string): Promise<Resource | undefined> {
    const t = this.#table
    return this.#run(tenant.id, 'reading a resource', async (tdb) => {
      const [row] = await tdb
        .select()
        .from(t)
        .where(and(this.#ownedBy(tenant), eq(t.id, id)))
        .limit(1)
      return row === undefined ? undefined : toResource(row)
    })
  }

  update(tenant: TenantRef, id: string, input: ResourceInput): Promise<Resource | undefined> {
    const t = this.#table
    return this.#run(tenant.id, 'updating a resource', async (tdb) => {
      const [row] = await tdb
        .update(t)
        .set({ name: input.name, data: input.data, updatedAt: new Date(this.#clock.now()) })
        .where(and(this.#ownedBy(tenant), eq(t.id, id)))
        .returning()
      return row === undefined ? undefined : toResource(row)
    })
  }

  delete(tenant: TenantRef, id: string): Promise<boolean> {
    const t = this.#table
    return this.#run(tenant.id, 'deleting a resource', async (tdb) => {
      const rows = await tdb
        .delete(t)
        .where(and(this.#ownedBy(tenant), eq(t.id, id)))
        .returning({ id: t.id })
      return rows.length > 0
    })
  }

  purge(tenantId: string): Promise<number> {
    const t = this.#table
    return this.#run(tenantId, 'purging resources', async (tdb) => {
      const rows = await tdb.delete(t).returning({ id: t.id })
      return rows.length
    })
  }

  async ping(): Promise<void> {
    try {
      const db = this.#db as any
      await (this.#pg ? db.execute(sql`select 1`) : db.run(sql`select 1`))
    } catch (error) {
      throw new TenantBackendError('the database did not answer', { cause: error })
    }
  }
}
