import type {
  ConfigIssue,
  NormalizedCost,
  QuotaConfig,
  QuotaDecision,
  QuotaWindowUsage,
  RateLimitConfig,
  RateLimitDecision,
  TenantErrorCode,
} from '@tenant/core'
import {
  InvalidCostError,
  InvalidTenantConfigError,
  isTenantError,
  TenantBackendError,
  TenantError,
} from '@tenant/core'

/**
 * Newest version of the messages between the managers and {@link TenantQuotaObject}. Version 2
 * adds quota subjects (`subject`, `subjectConfig`); the managers send it only for calls naming a
 * subject and version 1 for everything else, and the object accepts both. It refuses any other
 * version, so a Worker and an object class deployed from incompatible releases fail loudly (503)
 * instead of misreading each other's state: deploy the object class first.
 */
export const PROTOCOL_VERSION = 2

/** The version of calls that name no subject, which objects of every release accept. */
export const BASE_PROTOCOL_VERSION = 1

/** The quota algorithms the object runs (core's `fixedWindowAlgorithm` / `slidingWindowAlgorithm`). */
export type QuotaAlgorithmName = 'fixed' | 'sliding'

/** Fields every quota call carries. */
interface QuotaCallBase {
  v: typeof BASE_PROTOCOL_VERSION | typeof PROTOCOL_VERSION
  /** Version 2: the subject the call is also for (validated by the manager). */
  subject?: string
  /** Version 2: the subject's limits (core's `subjectQuota`), with `subject` on consume/adjust/peek. */
  subjectConfig?: QuotaConfig
  algorithm: QuotaAlgorithmName
  /** Buckets per window; only read for `'sliding'`. */
  precision: number
  /** The tenant's limits as the calling Worker's provider returned them. */
  config: QuotaConfig
  /** The caller's time in ms since the epoch; absent: the object's own `Date.now()`. */
  now?: number
}

/**
 * One quota operation, sent to the tenant's object in a single RPC. The cost is validated by the
 * manager before the call; the object checks it again through core's algorithms.
 */
export type QuotaCall =
  | (QuotaCallBase & {
      op: 'consume'
      cost: NormalizedCost
      /**
       * The call's id, drawn by the manager (see {@link VoidCall}): the object remembers an
       * admission by it for a while, answers a consume run again with it as the first was answered
       * without charging again, and takes the admission back when the id is voided. Absent
       * (callers of earlier releases): nothing is remembered. Objects of earlier releases ignore it.
       */
      opId?: string
    })
  | (QuotaCallBase & {
      op: 'adjust'
      tokens: number
      /**
       * The refunded admission's `decidedAt` (core's `QuotaAdjustment`): a refund leaves the
       * windows started since alone. Objects of earlier releases ignore it and refund the current
       * windows.
       */
      decidedAt?: number
    })
  | (QuotaCallBase & { op: 'peek' })
  | (Omit<QuotaCallBase, 'config'> & { op: 'reset' })

/** One token-bucket operation for the tenant's object. */
export interface RateLimitCall {
  v: typeof BASE_PROTOCOL_VERSION | typeof PROTOCOL_VERSION
  config: RateLimitConfig
  /** Whole number >= 0, validated by the manager. */
  cost: number
  /** The caller's time in ms since the epoch; absent: the object's own `Date.now()`. */
  now?: number
  /** The take's id, as a quota consume's `opId`: a take run again charges once, a void gives it back. */
  opId?: string
}

/** Which calls an op id belongs to: quota consumes and rate-limit takes keep their ids apart. */
export type OpKind = 'quota' | 'rateLimit'

/**
 * Voids the quota consume or rate-limit take sent with `opId`, which the manager sends when it
 * tells its caller that the call failed (the object may have applied it and its answer been
 * lost): an admission the object remembers is taken back, from the windows or buckets of its
 * decision time (what a quota consume added to each; a take's tokens are given back at the
 * void's time, while no other take has run since); an id it does not know is remembered as void,
 * so a consume or take with it that arrives later charges nothing. Voiding twice takes back once.
 * Objects of earlier releases have no `voidOp` method.
 */
export interface VoidCall {
  v: typeof BASE_PROTOCOL_VERSION | typeof PROTOCOL_VERSION
  /**
   * `'quota'` for a `QuotaCall`'s id, `'rateLimit'` for a `RateLimitCall`'s. The object keeps the
   * two apart, so a quota consume's id never answers or voids a take, nor a take's a consume.
   */
  kind: OpKind
  opId: string
  /** The caller's time in ms since the epoch; absent: the object's own `Date.now()`. */
  now?: number
}

/** What the object answers to a void: whether it took an admission back. */
export type VoidReply = Reply<{ refunded: boolean }>

/** One concurrency operation for the tenant's object (see `DurableObjectConcurrencyLimiter`). */
export type ConcurrencyCall = {
  v: typeof PROTOCOL_VERSION
  /** The caller's time in ms since the epoch; absent: the object's own `Date.now()`. */
  now?: number
} & (
  | {
      op: 'acquire'
      maxInFlight: number
      leaseTtlMs: number
      /**
       * The lease's id, chosen by the caller so that it can release a lease whose answer it never
       * got; an acquire run again with a held id answers as the first did. Absent (callers of
       * earlier releases): the object draws one.
       */
      leaseId?: string
    }
  | { op: 'release'; leaseId: string }
  | { op: 'inFlight' }
  | { op: 'reset' }
)

/** What the object answers to a concurrency call: the count after it, and the new lease on admission. */
export interface ConcurrencyAnswer {
  inFlight: number
  /** `acquire` only: whether a slot was taken. */
  allowed?: boolean
  /** `acquire` only, when admitted: the lease's id. */
  leaseId?: string
}

/** A `TenantError` as it crosses the RPC boundary (RPC keeps an error's message, not its class). */
export interface WireError {
  code: TenantErrorCode
  message: string
  issues?: ConfigIssue[]
}

/** What the object answers: a value, or the `TenantError` the algorithms threw. */
export type Reply<T> = { ok: true; value: T } | { ok: false; error: WireError }

/** The answer to a quota call: the decision for `consume`, the windows for `adjust` / `peek`. */
export type QuotaReply = Reply<QuotaDecision | QuotaWindowUsage[]>

/** The answer to a concurrency call. */
export type ConcurrencyReply = Reply<ConcurrencyAnswer>

/** The answer to a rate-limit call. */
export type RateLimitReply = Reply<RateLimitDecision>

/** Turns a thrown `TenantError` into a reply; anything else is rethrown (a backend failure). */
export function errorReply(error: unknown): { ok: false; error: WireError } {
  if (!isTenantError(error)) throw error
  const wire: WireError = { code: error.code, message: error.message }
  if (error instanceof InvalidTenantConfigError || Array.isArray((error as { issues?: unknown }).issues)) {
    wire.issues = (error as InvalidTenantConfigError).issues
  }
  return { ok: false, error: wire }
}

/** Rebuilds the typed error of a {@link WireError}, so callers can match on class as well as code. */
export function errorFromWire(wire: WireError, tenantId: string): TenantError {
  switch (wire.code) {
    case 'invalid_cost':
      return new InvalidCostError(wire.message, { tenantId })
    case 'tenant_invalid_config':
      return new InvalidTenantConfigError(wire.issues ?? [], { tenantId })
    case 'tenant_backend_unavailable':
      return new TenantBackendError(wire.message, { tenantId })
    default:
      return new TenantError(wire.code, wire.message, { tenantId })
  }
}
