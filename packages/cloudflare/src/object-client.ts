import type { Clock } from '@tenant/core'
import { invalidOption, TenantBackendError } from '@tenant/core'
import type { OpKind, Reply } from './protocol'
import { BASE_PROTOCOL_VERSION, errorFromWire } from './protocol'
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

type Stub = Pick<TenantQuotaObject, 'quota' | 'rateLimit' | 'resetRateLimit' | 'concurrency' | 'voidOp'>

/**
 * How many times a call owed after a failure (a void, a lease release) is sent while the RPC
 * itself fails, before it is given up.
 */
export const OWED_CALL_ATTEMPTS = 3

// The pauses before the second and the third attempt, in ms.
const OWED_RETRY_MS = [50, 250] as const

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
   * would charge twice. `afterFailure` (a void, a release: it must not throw) runs when the call
   * itself failed, before that error is thrown, since the object may have applied the call and
   * only its answer been lost; an answer, even one carrying an error, means it was not needed.
   */
  async call<T>(
    tenantId: string,
    invoke: (stub: Stub) => Promise<Reply<T>>,
    afterFailure?: () => Promise<unknown>,
  ): Promise<T> {
    let reply: Reply<T>
    try {
      reply = await invoke(this.#stub(tenantId))
    } catch (error) {
      const detail = error instanceof Error ? error.message : String(error)
      const failure = new TenantBackendError(`the quota Durable Object call failed: ${detail}`, {
        tenantId,
        cause: error,
      })
      if (afterFailure !== undefined) await afterFailure()
      throw failure
    }
    if (!reply.ok) throw errorFromWire(reply.error, tenantId)
    return reply.value
  }

  /**
   * Sends a call owed after a failed one (a void, a lease release; both are idempotent), through
   * a new stub each time, up to {@link OWED_CALL_ATTEMPTS} times while the RPC itself fails,
   * pausing 50 then 250 ms. Any answer ends it, even one carrying an error (an object that cannot
   * run it will not run it on a second try). Resolves `true` once answered, `false` when given
   * up; never rejects, since its caller is about to report the first failure.
   */
  async owe(tenantId: string, invoke: (stub: Stub) => Promise<unknown>): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      try {
        await invoke(this.#stub(tenantId))
        return true
      } catch {
        const pause = OWED_RETRY_MS[attempt]
        if (pause === undefined) return false
        await new Promise((resolve) => setTimeout(resolve, pause))
      }
    }
  }

  /**
   * Voids the quota consume (`kind` `'quota'`) or rate-limit take (`'rateLimit'`) sent with `opId`
   * (see `VoidCall`), owed when
   * that call failed: the object takes back its admission, or, if the call has not reached it
   * yet, makes it charge nothing when it does.
   */
  void(tenantId: string, kind: OpKind, opId: string): Promise<boolean> {
    return this.owe(tenantId, (stub) => {
      const now = this.sentTime()
      return stub.voidOp({ v: BASE_PROTOCOL_VERSION, kind, opId, ...(now === undefined ? {} : { now }) })
    })
  }

  #stub(tenantId: string): Stub {
    return this.#namespace.get(this.#namespace.idFromName(this.#prefix + tenantId)) as unknown as Stub
  }
}
