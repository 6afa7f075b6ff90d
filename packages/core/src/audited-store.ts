import { toTenantConfigInput } from './admin-service'
import type { AuditedTenantStore, AuditLog, AuditRecord, TenantChange, TenantChangeResult } from './audit'
import { type Clock, systemClock } from './clock'
import type { ConfigManager } from './config'
import { InvalidTenantConfigError, isTenantError, TenantBackendError, TenantNotFoundError } from './errors'
import type { TenantConfig } from './schemas'
import { validateTenantId } from './tenant-id'

/** Options of {@link auditedStore}. */
export interface AuditedStoreOptions {
  /** Stamps `at` on audit records. @default systemClock */
  clock?: Clock
}

/** A config manager that also applies audited changes: what {@link auditedStore} returns. */
export type AuditedConfigManager = ConfigManager & AuditedTenantStore

/**
 * Composes any {@link ConfigManager} with any {@link AuditLog} into an {@link AuditedTenantStore},
 * for stores that cannot write both in one transaction (in-memory, a config store and a separate
 * log). Reads and the plain `ConfigManager` methods go straight to `configs`.
 *
 * `applyChange` writes the config first, then appends the audit record. If the append fails it
 * compensates by restoring `before` (deleting a created tenant, re-creating a deleted one) and
 * rethrows. This is best-effort: a crash between the two writes, or a failing restore, can leave a
 * change without its record (the error then says so), and a restored tenant gets fresh timestamps.
 * `DrizzleConfigManager` is truly transactional and should be preferred where it applies.
 *
 * Changes to one tenant through the same store are serialised in this process, so two concurrent
 * updates (say quota and policy) never overwrite each other's work.
 *
 * @example
 * ```ts
 * const configs = new InMemoryConfigManager()
 * const auditLog = new InMemoryAuditLog()
 * const admin = new AdminService({ store: auditedStore(configs, auditLog), auditLog })
 * ```
 */
export function auditedStore(
  configs: ConfigManager,
  auditLog: AuditLog,
  options: AuditedStoreOptions = {},
): AuditedConfigManager {
  const clock = options.clock ?? systemClock
  const locks = new KeyedLock()

  async function applyChange(change: TenantChange): Promise<TenantChangeResult> {
    const tenantId = validateTenantId(change.tenantId)
    return locks.run(tenantId, async () => {
      const before = await getTenantConfigOrNull(configs, tenantId)
      const next = change.apply(before)
      let after: TenantConfig | null
      if (next === null) {
        if (before === null) throw new TenantNotFoundError(tenantId)
        await configs.deleteTenantConfig(tenantId)
        after = null
      } else {
        if (next.id !== tenantId) {
          throw new InvalidTenantConfigError([
            {
              path: ['id'],
              message: `must be "${tenantId}", the tenant being changed`,
              code: 'invalid_value',
            },
          ])
        }
        after = await configs.setTenantConfig(next)
      }
      let audit: AuditRecord
      try {
        audit = await auditLog.append({
          tenantId,
          actor: change.actor,
          action: change.action,
          before,
          after,
          at: clock.now(),
          ...(change.requestId === undefined ? {} : { requestId: change.requestId }),
        })
      } catch (appendError) {
        try {
          if (before === null) await configs.deleteTenantConfig(tenantId)
          else await configs.setTenantConfig(toTenantConfigInput(before))
        } catch (restoreError) {
          throw new TenantBackendError(
            `audit append failed for tenant "${tenantId}" and restoring its previous config also failed: ` +
              'the change may be stored without an audit record',
            { tenantId, cause: new AggregateError([appendError, restoreError]) },
          )
        }
        if (isTenantError(appendError)) throw appendError
        throw new TenantBackendError(`audit append failed for tenant "${tenantId}"; the change was undone`, {
          tenantId,
          cause: appendError,
        })
      }
      return { before, after, audit }
    })
  }

  return {
    applyChange,
    getTenantConfig: (id) => configs.getTenantConfig(id),
    setTenantConfig: (input) => configs.setTenantConfig(input),
    deleteTenantConfig: (id) => configs.deleteTenantConfig(id),
    listTenants: (listOptions) => configs.listTenants(listOptions),
    quotaConfig: (id) => configs.quotaConfig(id),
    policyConfig: (id) => configs.policyConfig(id),
    rateLimitConfig: (id) => configs.rateLimitConfig(id),
  }
}

/**
 * The tenant's config, or null when the store says it does not exist.
 *
 * @example
 * ```ts
 * const before = await getTenantConfigOrNull(configs, 'acme') // null instead of TenantNotFoundError
 * ```
 */
export async function getTenantConfigOrNull(
  configs: Pick<ConfigManager, 'getTenantConfig'>,
  tenantId: string,
): Promise<TenantConfig | null> {
  try {
    return await configs.getTenantConfig(tenantId)
  } catch (error) {
    if (isTenantError(error) && error.code === 'tenant_not_found') return null
    throw error
  }
}

/**
 * Runs tasks one at a time per key. Entries are removed when a key's last task settles, so the map
 * only holds keys with work in flight.
 */
class KeyedLock {
  readonly #tails = new Map<string, Promise<unknown>>()

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve()
    const result = previous.then(task, task)
    const tail = result.then(
      () => undefined,
      () => undefined,
    )
    this.#tails.set(key, tail)
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key)
    })
    return result
  }
}
