import { TenantError } from '@tenant/core'
import type { TenantDatabase } from './driver'
import { TenantDB, type TenantDBOptions, type TenantIdSource } from './tenant-db'

/**
 * A {@link TenantDB} for one tenant: the main path to tenant data. `tenantId` is an id, or a
 * function returning the current one (wire `currentTenantId` from `@tenant/fetch`; this package
 * never imports the HTTP layer). Without a tenant it fails closed: `scoped(db, undefined)` throws,
 * and a source that returns `undefined` makes every query throw `TenantError` (`tenant_required`).
 *
 * @example
 * ```ts
 * import { currentTenantId } from '@tenant/fetch'
 *
 * const notesOfAcme = await scoped(db, 'acme').select().from(notes)
 * const mine = await scoped(db, currentTenantId).select().from(notes) // the request's tenant
 * ```
 */
export function scoped<TDb extends TenantDatabase>(
  db: TDb,
  tenantId: TenantIdSource | undefined,
  options: TenantDBOptions = {},
): TenantDB<TDb> {
  if (tenantId === undefined || tenantId === null || tenantId === '') {
    throw new TenantError('tenant_required', 'scoped(db, tenantId) needs a tenant id or a tenantId() source')
  }
  return new TenantDB(db, { ...options, tenantId })
}

/** Options of {@link createScoped}. */
export interface CreateScopedOptions extends TenantDBOptions {
  /** Where the current tenant comes from, usually `currentTenantId` from `@tenant/fetch`. */
  tenantId: () => string | undefined
}

/**
 * Binds the tenant source and options once, for code deep in a call that has no tenant at hand:
 * `tenantDb(db)` is scoped to whatever `tenantId()` returns when each query is built.
 *
 * @example
 * ```ts
 * import { currentTenantId } from '@tenant/fetch'
 *
 * export const tenantDb = createScoped({ tenantId: currentTenantId, shared: [plans] })
 * // in a handler:
 * const rows = await tenantDb(db).select().from(notes)
 * ```
 */
export function createScoped(
  options: CreateScopedOptions,
): <TDb extends TenantDatabase>(db: TDb) => TenantDB<TDb> {
  if (typeof options?.tenantId !== 'function') {
    throw new TenantError(
      'tenant_invalid_config',
      'createScoped needs a tenantId: () => string | undefined source',
    )
  }
  return (db) => new TenantDB(db, options)
}

/**
 * The explicit escape hatch for admin work across tenants (migrations, billing runs, support
 * tools): returns `db` unchanged. It exists so that every unscoped access is written down and
 * easy to find (`grep -rn "unscoped("`); review each one.
 *
 * @example
 * ```ts
 * const everyTenantsNotes = await unscoped(db).select().from(notes)
 * ```
 */
export function unscoped<TDb extends TenantDatabase>(db: TDb): TDb {
  return db
}
