import type { Clock } from '@tenant/core'
import { invalidOption, TenantBackendError } from '@tenant/core'
import type { Reply } from './protocol'
import { errorFromWire } from './protocol'
import type { TenantQuotaObject } from './tenant-quota-object'

/**
 * The Durable Object namespace binding of {@link TenantQuotaObject} or a subclass of it
 * (`env.TENANT_QUOTA`). Typed loosely on purpose: namespaces are invariant in their class, so a
 * subclass's namespace or one declared as a bare `DurableObjectNamespace` is accepted too.
 */
export type TenantQuotaNamespace = DurableObjectNamespace<any>

/** Options both managers share. */
export interface ObjectClientOptions {
  /** The `TenantQuotaObject` namespace binding, e.g. `env.TENANT_QUOTA`. */
  namespace: TenantQuotaNamespace
  /**
   * The time sent to the object with each call. Without it the object uses its own `Date.now()`:
   * one clock per tenant, whichever Worker calls. Give one in tests (a `ManualClock`); in
   * production leave it unset, or use one that does not run behind Workers time (the cleanup
   * alarm runs on the object's time and deletes state whose windows are over by that time).
   * @default undefined (the object's time)
   */
  clock?: Clock
  /**
   * Prepended to the tenant id to name its object (`idFromName(prefix + tenantId)`), to keep two
   * managers on one namespace apart. Empty, or ending with `:`: tenant ids have no `:`, so the
   * tenant is what follows the last `:` and two (prefix, tenant) pairs never name one object
   * (`'q'` + `'a1'` and `'qa'` + `'1'` would).
   * @default ''
   */
  prefix?: string
}

type Stub = Pick<TenantQuotaObject, 'quota' | 'rateLimit' | 'concurrency'>

/** Calls a tenant's object: argument checks at construction, one RPC per call, typed errors. */
export class ObjectClient {
  readonly #namespace: DurableObjectNamespace<TenantQuotaObject>
  readonly #clock: Clock | undefined
  readonly #prefix: string

  /** `method`: the provider method the owner calls; `undefined` for an owner without a provider. */
  constructor(owner: string, provider: unknown, method: string | undefined, options: ObjectClientOptions) {
    if (
      method !== undefined &&
      typeof (provider as Record<string, unknown> | null)?.[method] !== 'function'
    ) {
      throw invalidOption(
        `${owner}.provider`,
        `must have a ${method}(tenantId) method (a ConfigManager qualifies)`,
      )
    }
    if (typeof options !== 'object' || options === null) {
      throw invalidOption(owner, 'options with a namespace are required')
    }
    const namespace = options.namespace as { idFromName?: unknown; get?: unknown } | undefined
    if (typeof namespace?.idFromName !== 'function' || typeof namespace.get !== 'function') {
      throw invalidOption(
        `${owner}.namespace`,
        'must be the Durable Object namespace binding of TenantQuotaObject',
      )
    }
    if (options.clock !== undefined && typeof options.clock?.now !== 'function') {
      throw invalidOption(`${owner}.clock`, 'must have a now() method')
    }
    if (options.prefix !== undefined && typeof options.prefix !== 'string') {
      throw invalidOption(`${owner}.prefix`, 'must be a string')
    }
    if (options.prefix !== undefined && options.prefix !== '' && !options.prefix.endsWith(':')) {
      throw invalidOption(
        `${owner}.prefix`,
        'must be empty or end with ":", so that no prefix and tenant id name the object of another pair',
      )
    }
    this.#namespace = options.namespace as DurableObjectNamespace<TenantQuotaObject>
    this.#clock = options.clock
    this.#prefix = options.prefix ?? ''
  }

  /** The time to send: the clock's, or `undefined` to let the object use its own. */
  sentTime(): number | undefined {
    if (this.#clock === undefined) return undefined
    const now = this.#clock.now()
    if (!Number.isFinite(now)) throw new TypeError(`clock.now() returned ${String(now)}`)
    return now
  }

  /** The time for an answer computed without the object (no limits, a pre-filter refusal). */
  localTime(): number {
    return this.sentTime() ?? Date.now()
  }

  /**
   * One RPC to the tenant's object. A reply that carries a `TenantError` is thrown as that error;
   * a failed call (object overloaded, storage error, network) is a `TenantBackendError` with the
   * cause. Not retried: the call may have been applied before it failed, and a retry of a consume
   * would charge twice.
   */
  async call<T>(tenantId: string, invoke: (stub: Stub) => Promise<Reply<T>>): Promise<T> {
    let reply: Reply<T>
    try {
      const stub = this.#namespace.get(this.#namespace.idFromName(this.#prefix + tenantId)) as unknown as Stub
      reply = await invoke(stub)
    } catch (error) {
      const detail = error instanceof Error ? error.message : String(error)
      throw new TenantBackendError(`the quota Durable Object call failed: ${detail}`, {
        tenantId,
        cause: error,
      })
    }
    if (!reply.ok) throw errorFromWire(reply.error, tenantId)
    return reply.value
  }
}
