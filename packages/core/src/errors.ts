import type { $ZodIssue } from 'zod/v4/core'

/** Every stable error code the toolkit produces, in code and over HTTP. */
export type TenantErrorCode =
  | 'tenant_not_found'
  | 'tenant_invalid_id'
  | 'tenant_quota_exceeded'
  | 'tenant_rate_limited'
  | 'tenant_concurrency_limited'
  | 'tenant_policy_denied'
  | 'invalid_cost'
  | 'tenant_suspended'
  | 'tenant_invalid_config'
  | 'tenant_backend_unavailable'
  | 'tenant_required'
  | 'tenant_unknown'
  | 'tenant_mismatch'
  | 'tenant_already_exists'
  | 'tenant_unsafe_query'
  | 'plan_not_found'
  | 'plan_already_exists'
  | 'plan_in_use'
  | 'invalid_subject'

/** Suggested HTTP status for each code; the HTTP adapters use this table. */
export const errorStatus: Readonly<Record<TenantErrorCode, number>> = Object.freeze({
  tenant_not_found: 404,
  tenant_invalid_id: 400,
  tenant_quota_exceeded: 429,
  tenant_rate_limited: 429,
  tenant_concurrency_limited: 429,
  tenant_policy_denied: 403,
  invalid_cost: 400,
  tenant_suspended: 403,
  tenant_invalid_config: 400,
  tenant_backend_unavailable: 503,
  tenant_required: 401,
  tenant_unknown: 403,
  tenant_mismatch: 403,
  tenant_already_exists: 409,
  // A query the isolation layer cannot prove tenant-scoped is a bug in the service, not the client.
  tenant_unsafe_query: 500,
  plan_not_found: 404,
  plan_already_exists: 409,
  plan_in_use: 409,
  invalid_subject: 400,
})

// Symbol.for so that two copies of @tenant/core in one process (a common result of
// mismatched versions in a monorepo) still recognise each other's errors.
const BRAND: unique symbol = Symbol.for('@tenant/core/TenantError') as never

/** Options shared by every {@link TenantError} constructor. */
export interface TenantErrorOptions {
  cause?: unknown
  tenantId?: string
}

/**
 * Base class of every error the toolkit throws on purpose. Carries a stable `code` and the
 * suggested HTTP `status`. Use {@link isTenantError} rather than `instanceof` across packages.
 *
 * @example
 * ```ts
 * try {
 *   await configs.getTenantConfig(id)
 * } catch (error) {
 *   if (isTenantError(error) && error.code === 'tenant_not_found') return null
 *   throw error
 * }
 * // or throw one yourself (a resolver's principal lookup, say):
 * throw new TenantError('tenant_required', 'send an API key', { cause })
 * ```
 */
export class TenantError extends Error {
  readonly code: TenantErrorCode
  readonly status: number
  readonly tenantId: string | undefined
  readonly [BRAND] = true

  constructor(code: TenantErrorCode, message: string, options: TenantErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'TenantError'
    this.code = code
    this.status = errorStatus[code]
    this.tenantId = options.tenantId
  }
}

/**
 * True for any {@link TenantError}, including one created by another copy of this package.
 *
 * @example
 * ```ts
 * try { await quotas.consume(id, cost) } catch (e) { if (isTenantError(e)) return e.status }
 * ```
 */
export function isTenantError(value: unknown): value is TenantError {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true
}

/** The tenant id is not known to the configuration store. */
export class TenantNotFoundError extends TenantError {
  constructor(tenantId: string, options: Omit<TenantErrorOptions, 'tenantId'> = {}) {
    super('tenant_not_found', `tenant "${tenantId}" not found`, { ...options, tenantId })
    this.name = 'TenantNotFoundError'
  }
}

/** The tenant id is not 1 to 255 characters of `[A-Za-z0-9._-]`. */
export class InvalidTenantIdError extends TenantError {
  constructor(reason: string, options: TenantErrorOptions = {}) {
    super('tenant_invalid_id', `invalid tenant id: ${reason}`, options)
    this.name = 'InvalidTenantIdError'
  }
}

/** Thrown only when a caller asks for an exception instead of a decision value. */
export class QuotaExceededError extends TenantError {
  readonly retryAfterMs: number
  constructor(message: string, retryAfterMs: number, options: TenantErrorOptions = {}) {
    super('tenant_quota_exceeded', message, options)
    this.name = 'QuotaExceededError'
    this.retryAfterMs = retryAfterMs
  }
}

/** Thrown only when a caller asks for an exception instead of a decision value. */
export class RateLimitExceededError extends TenantError {
  readonly retryAfterMs: number
  constructor(message: string, retryAfterMs: number, options: TenantErrorOptions = {}) {
    super('tenant_rate_limited', message, options)
    this.name = 'RateLimitExceededError'
    this.retryAfterMs = retryAfterMs
  }
}

/** Thrown only when a caller asks for an exception instead of a decision value. */
export class ConcurrencyLimitedError extends TenantError {
  readonly maxInFlight: number
  constructor(message: string, maxInFlight: number, options: TenantErrorOptions = {}) {
    super('tenant_concurrency_limited', message, options)
    this.name = 'ConcurrencyLimitedError'
    this.maxInFlight = maxInFlight
  }
}

/** Thrown only when a caller asks for an exception instead of a decision value. */
export class PolicyDeniedError extends TenantError {
  constructor(message: string, options: TenantErrorOptions = {}) {
    super('tenant_policy_denied', message, options)
    this.name = 'PolicyDeniedError'
  }
}

/** A cost that is negative, fractional, not a number or not finite. Never treated as a credit. */
export class InvalidCostError extends TenantError {
  constructor(message: string, options: TenantErrorOptions = {}) {
    super('invalid_cost', message, options)
    this.name = 'InvalidCostError'
  }
}

/** The tenant exists but is suspended. */
export class TenantSuspendedError extends TenantError {
  constructor(tenantId: string, options: Omit<TenantErrorOptions, 'tenantId'> = {}) {
    super('tenant_suspended', `tenant "${tenantId}" is suspended`, { ...options, tenantId })
    this.name = 'TenantSuspendedError'
  }
}

/** One problem found in a tenant configuration: where it is and what is wrong. */
export interface ConfigIssue {
  path: (string | number)[]
  message: string
  code: string
}

/** A tenant configuration failed validation. `issues` lists every problem zod found. */
export class InvalidTenantConfigError extends TenantError {
  readonly issues: ConfigIssue[]
  constructor(issues: readonly ($ZodIssue | ConfigIssue)[], options: TenantErrorOptions = {}) {
    const list = issues.map((i) => ({
      path: i.path.map((p) => (typeof p === 'symbol' ? String(p) : p)),
      message: i.message,
      code: String(i.code),
    }))
    const summary = list.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')
    super('tenant_invalid_config', `invalid tenant config: ${summary}`, options)
    this.name = 'InvalidTenantConfigError'
    this.issues = list
  }
}

/** A store (database, Redis, Durable Object) failed or timed out. Never a quota or policy denial. */
export class TenantBackendError extends TenantError {
  constructor(message: string, options: TenantErrorOptions = {}) {
    super('tenant_backend_unavailable', message, options)
    this.name = 'TenantBackendError'
  }
}

/** A create named a tenant id that is already taken. */
export class TenantAlreadyExistsError extends TenantError {
  constructor(tenantId: string, options: Omit<TenantErrorOptions, 'tenantId'> = {}) {
    super('tenant_already_exists', `tenant "${tenantId}" already exists`, { ...options, tenantId })
    this.name = 'TenantAlreadyExistsError'
  }
}

/** Options of the plan errors: {@link TenantErrorOptions} without a tenant. */
export interface PlanErrorOptions {
  cause?: unknown
}

/** The plan id is not known to the plan store. */
export class PlanNotFoundError extends TenantError {
  /** The plan that was asked for. */
  readonly planId: string
  constructor(planId: string, options: PlanErrorOptions = {}) {
    super('plan_not_found', `plan "${planId}" not found`, options)
    this.name = 'PlanNotFoundError'
    this.planId = planId
  }
}

/** A create named a plan id that is already taken. */
export class PlanAlreadyExistsError extends TenantError {
  /** The plan id that is taken. */
  readonly planId: string
  constructor(planId: string, options: PlanErrorOptions = {}) {
    super('plan_already_exists', `plan "${planId}" already exists`, options)
    this.name = 'PlanAlreadyExistsError'
    this.planId = planId
  }
}

/**
 * A plan cannot be deleted while tenants reference it: their effective configs would have nothing
 * to inherit from. Move the tenants to another plan (or to none) first.
 */
export class PlanInUseError extends TenantError {
  /** The plan that is still referenced. */
  readonly planId: string
  constructor(planId: string, options: PlanErrorOptions = {}) {
    super(
      'plan_in_use',
      `plan "${planId}" is still used by tenants; move them to another plan first`,
      options,
    )
    this.name = 'PlanInUseError'
    this.planId = planId
  }
}

/**
 * A quota subject id (an API key, a user, a model under a tenant) that is not 1 to 255 characters
 * of `[A-Za-z0-9._:/@+-]`. A client-supplied value, so a 400, like a bad tenant id.
 */
export class InvalidSubjectError extends TenantError {
  constructor(reason: string, options: TenantErrorOptions = {}) {
    super('invalid_subject', `invalid quota subject: ${reason}`, options)
    this.name = 'InvalidSubjectError'
  }
}
