import { isValidTenantId, type TenantError, type TenantErrorCode } from '@tenant/core'

/** The media type of every error response (RFC 9457). */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json'

/** Prefix of the `type` member: `urn:tenant-toolkit:error:<code>`, stable per code. */
export const PROBLEM_TYPE_PREFIX = 'urn:tenant-toolkit:error:'

// Partial: a code added to core later still gets a body, titled by its code.
const titles: Partial<Record<TenantErrorCode, string>> = {
  tenant_required: 'Tenant required',
  tenant_invalid_id: 'Invalid tenant id',
  tenant_unknown: 'Unknown tenant',
  tenant_suspended: 'Tenant suspended',
  tenant_mismatch: 'Tenant mismatch',
  tenant_policy_denied: 'Denied by tenant policy',
  tenant_rate_limited: 'Tenant rate limit exceeded',
  tenant_concurrency_limited: 'Too many tenant requests in flight',
  tenant_quota_exceeded: 'Tenant quota exceeded',
  invalid_cost: 'Invalid request cost',
  invalid_subject: 'Invalid quota subject',
  tenant_backend_unavailable: 'Tenant backend unavailable',
  tenant_not_found: 'Tenant not found',
  tenant_invalid_config: 'Invalid tenant configuration',
}

/** An RFC 9457 problem body with the toolkit's stable `code`. */
export interface ProblemDetails {
  /** `urn:tenant-toolkit:error:<code>`. */
  type: string
  title: string
  status: number
  detail: string
  code: TenantErrorCode
  /** The tenant the problem concerns, when one was known and valid. */
  tenantId?: string
  /** Extension members, such as `rule` on a policy denial. */
  [extension: string]: unknown
}

/**
 * The problem body for a {@link TenantError}: `type`, `title`, `status` (from core's
 * `errorStatus`), `detail` (the error message), `code`, and `tenantId` when known.
 *
 * @example
 * ```ts
 * problemDetails(new TenantError('tenant_required', 'no tenant')).status // 401
 * ```
 */
export function problemDetails(error: TenantError, extensions: Record<string, unknown> = {}): ProblemDetails {
  const body: ProblemDetails = {
    type: PROBLEM_TYPE_PREFIX + error.code,
    title: titles[error.code] ?? error.code,
    status: error.status,
    detail: error.message,
    code: error.code,
  }
  // Only a valid id is echoed back: an invalid one is attacker-controlled text.
  if (isValidTenantId(error.tenantId)) body.tenantId = error.tenantId
  // Extensions follow the standard members and never replace one.
  for (const [name, value] of Object.entries(extensions)) if (!(name in body)) body[name] = value
  return body
}

// The challenge of a 401 whose caller named none (RFC 9110 requires one on every 401).
const FALLBACK_CHALLENGE = 'Tenant realm="tenant"'

/**
 * An `application/problem+json` response for a {@link TenantError}, with `Cache-Control: no-store`
 * so no cache keeps a denial. Use it in `onMissing` / `onDenied` / `onRejected` to keep the
 * default format while changing something else.
 *
 * @example
 * ```ts
 * onMissing: () => problemResponse(new TenantError('tenant_required', 'send X-Tenant-ID'), {
 *   headers: { 'WWW-Authenticate': 'Bearer' },
 * })
 * ```
 */
export function problemResponse(
  error: TenantError,
  init: { headers?: ConstructorParameters<typeof Headers>[0]; extensions?: Record<string, unknown> } = {},
): Response {
  const headers = new Headers(init.headers)
  headers.set('Content-Type', PROBLEM_CONTENT_TYPE)
  headers.set('Cache-Control', 'no-store')
  // RFC 9110 requires a challenge on every 401; callers that know the scheme pass their own.
  if (error.status === 401 && !headers.has('WWW-Authenticate'))
    headers.set('WWW-Authenticate', FALLBACK_CHALLENGE)
  return new Response(JSON.stringify(problemDetails(error, init.extensions)), {
    status: error.status,
    headers,
  })
}
