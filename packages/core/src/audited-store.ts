import { toTenantConfigInput } from './admin-service'
import {
  type AuditAction,
  type AuditedPlanStore,
  type AuditedTenantStore,
  type AuditLog,
  type AuditRecord,
  type AuditRecordInput,
  auditTimestamp,
  type PlanChange,
  type TenantChange,
  validateAuditRecord,
} from './audit'
import { type Clock, systemClock } from './clock'
import { type ConfigManager, getTenantConfigOrNull } from './config'
import {
  InvalidTenantConfigError,
  isTenantError,
  PlanNotFoundError,
  TenantBackendError,
  TenantNotFoundError,
} from './errors'
import { KeyedLock, MAX_QUEUED_CHANGES, MAX_QUEUED_CHANGES_TOTAL } from './keyed-lock'
import { isPlanView } from './plan-views'
import { getPlanOrNull, type PlanStore, toPlanConfigInput, validatePlanId } from './plans'
import type { PlanConfig, PlanConfigInput, TenantConfig, TenantConfigInput } from './schemas'
import { validateTenantId } from './tenant-id'
import { invalidOption } from './validate'

export { KeyedLock, MAX_QUEUED_CHANGES, MAX_QUEUED_CHANGES_TOTAL }

/** Options of {@link auditedStore}. */
export interface AuditedStoreOptions {
  /** Stamps `at` on audit records, rounded down to a whole ms (`auditTimestamp`). @default systemClock */
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
 * change without its record (the error then says so, and what the change did), and a restored
 * tenant gets fresh timestamps. Restoring a tenant that a change took off a plan puts it back on
 * that plan: `AdminService` holds the plan (`PlanStore.holdPlan`) until the restore is done, so
 * that it cannot be deleted in between; a direct `applyChange` holds nothing.
 * `DrizzleConfigManager` is truly transactional and should be preferred where it applies.
 *
 * Changes to one tenant through the same store are serialised in this process, so two concurrent
 * updates (say quota and policy) never overwrite each other's work; its `setTenantConfig` and
 * `deleteTenantConfig` wait their turn too, so a restore never undoes a write made meanwhile (or
 * brings back a tenant deleted meanwhile). At most
 * {@link MAX_QUEUED_CHANGES} wait per tenant ({@link MAX_QUEUED_CHANGES_TOTAL} in all); a change
 * beyond that fails at once with `TenantBackendError`.
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
  // A change reads the tenant, edits it and writes it back: read through the view, the plan's
  // values would be written into the tenant's own config, and later plan changes never reach it.
  if (isPlanView(configs)) {
    throw invalidOption(
      'auditedStore.configs',
      'is a withPlans() view, whose reads are effective configs (tenant over plan): pass the store it reads',
    )
  }
  const { apply: applyChange, locked } = auditedChanges<TenantConfig, TenantConfigInput, TenantChange>(
    auditLog,
    options,
    {
      kind: 'tenant',
      idOf: (change) => validateTenantId(change.tenantId),
      get: (id) => getTenantConfigOrNull(configs, id),
      set: (input) => configs.setTenantConfig(input),
      delete: (id) => configs.deleteTenantConfig(id),
      toInput: toTenantConfigInput,
      notFound: (id) => new TenantNotFoundError(id),
      record: (id, fields) => ({ tenantId: id, ...fields }) as AuditRecordInput,
    },
  )
  return {
    applyChange: applyChange as AuditedTenantStore['applyChange'],
    getTenantConfig: (id) => configs.getTenantConfig(id),
    setTenantConfig: (input) => locked(lockKey(input), () => configs.setTenantConfig(input)),
    deleteTenantConfig: (id) => locked(id, () => configs.deleteTenantConfig(id)),
    listTenants: (listOptions) => configs.listTenants(listOptions),
    quotaConfig: (id) => configs.quotaConfig(id),
    policyConfig: (id) => configs.policyConfig(id),
    rateLimitConfig: (id) => configs.rateLimitConfig(id),
    concurrencyConfig: (id) => configs.concurrencyConfig(id),
  }
}

/** A plan store that also applies audited changes: what {@link auditedPlanStore} returns. */
export type AuditedPlans = PlanStore & AuditedPlanStore

/**
 * Composes any {@link PlanStore} with any {@link AuditLog} into an {@link AuditedPlanStore}: the
 * plan counterpart of {@link auditedStore}, with the same best-effort compensation (the plan is
 * written first, then the record; a failed append restores the previous plan). Changes to one plan
 * are serialised in this process. `DrizzlePlanStore` is truly transactional and should be preferred
 * where it applies.
 *
 * @example
 * ```ts
 * const configs = new InMemoryConfigManager()
 * const auditLog = new InMemoryAuditLog()
 * const plans = auditedPlanStore(new InMemoryPlanStore({ tenants: configs }), auditLog)
 * const admin = new AdminService({ store: auditedStore(configs, auditLog), plans, auditLog })
 * ```
 */
export function auditedPlanStore(
  plans: PlanStore,
  auditLog: AuditLog,
  options: AuditedStoreOptions = {},
): AuditedPlans {
  const { apply: applyPlanChange, locked } = auditedChanges<PlanConfig, PlanConfigInput, PlanChange>(
    auditLog,
    options,
    {
      kind: 'plan',
      idOf: (change) => validatePlanId(change.planId),
      get: (id) => getPlanOrNull(plans, id),
      set: (input) => plans.setPlan(input),
      delete: (id) => plans.deletePlan(id),
      toInput: toPlanConfigInput,
      notFound: (id) => new PlanNotFoundError(id),
      record: (id, fields) => ({ planId: id, ...fields }) as AuditRecordInput,
    },
  )
  return {
    applyPlanChange: applyPlanChange as AuditedPlanStore['applyPlanChange'],
    getPlan: (id) => plans.getPlan(id),
    setPlan: (input) => locked(lockKey(input), () => plans.setPlan(input)),
    deletePlan: (id) => locked(id, () => plans.deletePlan(id)),
    listPlans: (listOptions) => plans.listPlans(listOptions),
    // Passed through so that AdminService can hold a plan of the wrapped store (InMemoryPlanStore)
    // while it puts a tenant on it.
    ...(typeof plans.holdPlan === 'function'
      ? { holdPlan: <T>(id: string, task: () => Promise<T>) => plans.holdPlan!(id, task) }
      : {}),
  }
}

/** What differs between audited tenant changes and audited plan changes. */
interface Subject<C extends { id: string }, I, Change> {
  kind: 'tenant' | 'plan'
  /** The validated id of the subject a change is for. */
  idOf(change: Change): string
  get(id: string): Promise<C | null>
  set(input: I): Promise<C>
  delete(id: string): Promise<void>
  toInput(config: C): I
  notFound(id: string): Error
  record(
    id: string,
    fields: Omit<AuditRecordInput, 'tenantId' | 'planId' | 'before' | 'after'> & {
      before: C | null
      after: C | null
    },
  ): AuditRecordInput
}

interface AnyChange<C, I> {
  actor: string
  action: AuditAction
  requestId?: string
  apply(before: C | null): I | null
}

// The lock key of a plain write's input: its id (the store checks it; any other input is refused
// there, under a key of its own).
function lockKey(input: unknown): string {
  const id = (input as { id?: unknown } | null | undefined)?.id
  return typeof id === 'string' ? id : ''
}

/** What {@link auditedChanges} makes: the audited change, and the lock plain writes take too. */
interface AuditedChanges<C, Change> {
  apply(change: Change): Promise<{ before: C | null; after: C | null; audit: AuditRecord }>
  /** Runs a plain write of `id` in its turn, after the changes of `id` before it (and their undo). */
  locked<T>(id: string, write: () => Promise<T>): Promise<T>
}

// The one implementation of "write, then append, and undo the write if the append fails", for
// tenants and plans alike.
function auditedChanges<C extends { id: string }, I extends { id?: unknown }, Change extends AnyChange<C, I>>(
  auditLog: AuditLog,
  options: AuditedStoreOptions,
  subject: Subject<C, I, Change>,
): AuditedChanges<C, Change> {
  const clock = options.clock ?? systemClock
  const locks = new KeyedLock()
  const refusalOf = (id: string) => (reason: string) =>
    new TenantBackendError(`${subject.kind} "${id}" is not changed: ${reason}`, {
      ...(subject.kind === 'tenant' ? { tenantId: id } : {}),
    })
  const locked = <T>(id: string, write: () => Promise<T>): Promise<T> => locks.run(id, write, refusalOf(id))
  const apply = async (change: Change) => {
    const id = subject.idOf(change)
    return locked(id, async () => {
      const before = await subject.get(id)
      const next = change.apply(before)
      // Stamped before the write: a clock that gives no valid time then refuses the change
      // instead of leaving it written without its record.
      const at = auditTimestamp(clock)
      const fields = {
        actor: change.actor,
        action: change.action,
        at,
        ...(change.requestId === undefined ? {} : { requestId: change.requestId }),
      }
      // All of the record but `after` is known now: a record the log would refuse (an empty
      // actor, an unknown action) refuses the change here, before the write and its undo, which
      // would leave the subject missing for a moment and give it a new createdAt.
      validateAuditRecord(subject.record(id, { ...fields, before, after: before } as never))
      let after: C | null
      if (next === null) {
        if (before === null) throw subject.notFound(id)
        await subject.delete(id)
        after = null
      } else {
        if (next.id !== id) {
          throw new InvalidTenantConfigError([
            {
              path: ['id'],
              message: `must be "${id}", the ${subject.kind} being changed`,
              code: 'invalid_value',
            },
          ])
        }
        after = await subject.set(next)
      }
      let audit: AuditRecord
      try {
        audit = await auditLog.append(subject.record(id, { ...fields, before, after } as never))
      } catch (appendError) {
        const tenantId = subject.kind === 'tenant' ? { tenantId: id } : {}
        try {
          if (before === null) await subject.delete(id)
          else await subject.set(subject.toInput(before))
        } catch (restoreError) {
          // Says what the unrecorded change did, so the admin knows which state may remain.
          const did = after === null ? 'deleted' : before === null ? 'created' : 'changed'
          throw new TenantBackendError(
            `audit append failed for ${subject.kind} "${id}" and restoring its previous config also failed: ` +
              `the change may be stored without an audit record (it ${did} the ${subject.kind}; ` +
              'check it, then restore or record it by hand)',
            { ...tenantId, cause: new AggregateError([appendError, restoreError]) },
          )
        }
        if (isTenantError(appendError)) throw appendError
        throw new TenantBackendError(
          `audit append failed for ${subject.kind} "${id}"; the change was undone`,
          {
            ...tenantId,
            cause: appendError,
          },
        )
      }
      return { before, after, audit }
    })
  }
  return { apply, locked }
}
