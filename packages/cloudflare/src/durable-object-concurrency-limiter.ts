import type { ConcurrencyDecision, ConcurrencyLease, ConcurrencyLimiter } from '@tenant/core'
import { invalidOption, validateMaxInFlight, validateTenantId } from '@tenant/core'
import type { ObjectClientOptions } from './object-client'
import { ObjectClient } from './object-client'
import { type ConcurrencyAnswer, type ConcurrencyCall, PROTOCOL_VERSION } from './protocol'

/** Default `leaseTtlMs` of {@link DurableObjectConcurrencyLimiter}: 10 minutes. */
export const DEFAULT_LEASE_TTL_MS = 600_000

/** Options of {@link DurableObjectConcurrencyLimiter}. */
export interface DurableObjectConcurrencyLimiterOptions extends ObjectClientOptions {
  /**
   * How long a slot stays taken without being released, in ms: the slots of a Worker invocation
   * that died before releasing come back after this. Longer than your longest request.
   * @default 600000 (10 minutes)
   */
  leaseTtlMs?: number
}

/**
 * A {@link ConcurrencyLimiter} held by the tenant's Durable Object ({@link TenantQuotaObject}, the
 * same object as its quota and rate limit): one exact in-flight count for every Worker in every
 * location. Each acquire and each release is one RPC; the object keeps the leases with their
 * expiry, so a release is idempotent (an unknown lease id frees nothing) and the slots of a
 * Worker that died come back after `leaseTtlMs`.
 *
 * @example
 * ```ts
 * const limiter = new DurableObjectConcurrencyLimiter({ namespace: env.TENANT_QUOTA })
 * app.use(tenancy({ configManager, concurrency: limiter }))
 * ```
 */
export class DurableObjectConcurrencyLimiter implements ConcurrencyLimiter {
  readonly #client: ObjectClient
  readonly #leaseTtlMs: number

  constructor(options: DurableObjectConcurrencyLimiterOptions) {
    const owner = 'DurableObjectConcurrencyLimiter'
    this.#client = new ObjectClient(owner, undefined, undefined, options)
    const ttl = options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS
    if (!Number.isSafeInteger(ttl) || ttl < 1)
      throw invalidOption(`${owner}.leaseTtlMs`, 'must be a whole number >= 1')
    this.#leaseTtlMs = ttl
  }

  async acquire(tenantId: string, maxInFlight: number): Promise<ConcurrencyDecision> {
    validateTenantId(tenantId)
    validateMaxInFlight(maxInFlight)
    const leaseId = crypto.randomUUID()
    let answer: ConcurrencyAnswer
    try {
      answer = await this.#call(tenantId, {
        op: 'acquire',
        maxInFlight,
        leaseTtlMs: this.#leaseTtlMs,
        leaseId,
      })
    } catch (error) {
      // The object may have taken the slot and the answer been lost (a dropped connection, an
      // object reset after its write): release it by its id rather than leave it held for
      // leaseTtlMs, trying again while the release itself fails (see ObjectClient.owe).
      // Releasing an id that holds nothing writes nothing.
      await this.#client.owe(tenantId, (stub) => stub.concurrency(this.#message({ op: 'release', leaseId })))
      throw error
    }
    if (answer.allowed !== true || answer.leaseId === undefined) {
      return {
        allowed: false,
        inFlight: answer.inFlight,
        limit: maxInFlight,
        reason: `${answer.inFlight} requests in flight, the limit is ${maxInFlight}`,
      }
    }
    return {
      allowed: true,
      inFlight: answer.inFlight,
      limit: maxInFlight,
      lease: this.#lease(tenantId, answer.leaseId),
    }
  }

  async inFlight(tenantId: string): Promise<number> {
    validateTenantId(tenantId)
    return (await this.#call(tenantId, { op: 'inFlight' })).inFlight
  }

  async reset(tenantId: string): Promise<void> {
    validateTenantId(tenantId)
    await this.#call(tenantId, { op: 'reset' })
  }

  /**
   * Frees the lease `leaseId` of the tenant, if it is still held: what a lease's `release()` does,
   * for a caller that kept only the id (another invocation, a queue consumer).
   */
  async release(tenantId: string, leaseId: string): Promise<void> {
    validateTenantId(tenantId)
    await this.#call(tenantId, { op: 'release', leaseId: String(leaseId) })
  }

  #call(tenantId: string, op: Record<string, unknown>) {
    return this.#client.call(tenantId, (stub) => stub.concurrency(this.#message(op)))
  }

  #message(op: Record<string, unknown>): ConcurrencyCall {
    const now = this.#client.sentTime()
    return { v: PROTOCOL_VERSION, ...(now === undefined ? {} : { now }), ...op } as never
  }

  #lease(tenantId: string, id: string): ConcurrencyLease {
    let released: Promise<void> | undefined
    return {
      id,
      release: () => {
        // A release whose call failed is sent again through new stubs while it fails, as a failed
        // acquire's is (releasing twice frees nothing else): a transient fault must not hold the
        // slot for leaseTtlMs. Only when that gives up does the caller see the failure, and a
        // later release() tries again.
        released ??= this.release(tenantId, id).catch(async (error: unknown) => {
          const owed = this.#client.owe(tenantId, (stub) =>
            stub.concurrency(this.#message({ op: 'release', leaseId: id })),
          )
          if (await owed) return
          released = undefined
          throw error
        })
        return released
      },
    }
  }
}
