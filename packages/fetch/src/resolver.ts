import { type ConfigManager, type TenantConfig, TenantError, validateTenantId } from '@tenant/core'
import { runWithTenantId, setTenantState } from './context'
import { extractFrom, fromHeader, type TenantExtractor } from './extractors'
import { hookSet } from './hooks'
import { assertMethods, checkFunction, checkStageOptions, checkToken, invalidOption } from './options'
import { callUser, type StageOptions, StageRun } from './stage'
import type { MaybePromise, Middleware, Next } from './types'

/** Options of {@link tenantResolver}. */
export interface ResolverOptions extends StageOptions {
  /**
   * The authenticated principal's tenant (from a JWT, an API key lookup, a session), checked
   * before the extractors. When it returns an id and the request also names a different one, the
   * request is refused with 403 `tenant_mismatch`. Throw a `TenantError` to answer with its code.
   *
   * Once a principal source is set, it is the only source of the tenant: when it returns no
   * tenant (`undefined`, `null`, `''`), the request is refused (401 `tenant_required`, or 403
   * `tenant_mismatch` when the request names a tenant), never resolved from a header. See
   * `fallbackToExtractors`.
   * @default undefined (no principal)
   */
  principal?: (request: Request) => MaybePromise<string | null | undefined>
  /**
   * With a `principal`: when it returns no tenant, resolve the tenant from the extractors instead
   * of refusing the request. Only for routes where unauthenticated requests may name their tenant;
   * the principal must then throw (a `TenantError`) for an authenticated principal without a
   * tenant, or that principal could pick any tenant by header.
   * @default false
   */
  fallbackToExtractors?: boolean
  /**
   * Where the request names its tenant, tried in order (see `fromHeader`, `fromQuery`,
   * `fromCookie`, `fromSubdomain`, `fromPathPrefix`, `chain`).
   * @default [fromHeader('X-Tenant-ID')]
   */
  extractors?: TenantExtractor | TenantExtractor[]
  /**
   * Shorthand for `extractors: [fromHeader(header)]`; not together with `extractors`.
   * @default 'X-Tenant-ID'
   */
  header?: string
  /**
   * Let a request that names no tenant through, without a tenant (the later stages skip it).
   * @default false (401 `tenant_required`)
   */
  allowMissing?: boolean
  /**
   * The response for a request that names no tenant, instead of the 401 problem. Not called
   * when `allowMissing` is set.
   * @default undefined (401 `tenant_required`)
   */
  onMissing?: (request: Request) => MaybePromise<Response>
  /**
   * Checks that the tenant exists and is active: 403 `tenant_unknown` or `tenant_suspended`
   * otherwise. Its config is then available as `getTenant(request)` (`c.var.tenant` in Hono).
   * @default undefined (any well-formed id is accepted)
   */
  configManager?: Pick<ConfigManager, 'getTenantConfig'>
}

interface Found {
  tenantId: unknown
  source: string
}

/**
 * Finds the request's tenant: the principal's first, then the extractors. Validates the id
 * (400 `tenant_invalid_id`), refuses a principal/request disagreement (403 `tenant_mismatch`), a
 * missing tenant (401 `tenant_required`, unless `allowMissing`) and, with a `configManager`, an
 * unknown or suspended tenant (403). Downstream, `getTenantId(request)` and `currentTenantId()`
 * give the tenant.
 *
 * @example
 * ```ts
 * const resolve = tenantResolver({
 *   principal: (request) => sessions.get(request)?.tenantId,
 *   extractors: [fromHeader(), fromSubdomain('example.com')],
 *   configManager,
 * })
 * ```
 */
export function tenantResolver(options: ResolverOptions = {}): Middleware {
  const name = 'tenantResolver'
  checkStageOptions(name, options)
  checkFunction(`${name}.principal`, options.principal)
  checkFunction(`${name}.onMissing`, options.onMissing)
  if (options.configManager !== undefined) {
    assertMethods(options.configManager, `${name}.configManager`, ['getTenantConfig'])
  }
  if (options.header !== undefined && options.extractors !== undefined) {
    throw invalidOption(name, 'give either header or extractors, not both')
  }
  const extractors =
    options.extractors === undefined
      ? [fromHeader(options.header === undefined ? undefined : checkToken(`${name}.header`, options.header))]
      : Array.isArray(options.extractors)
        ? options.extractors
        : [options.extractors]
  extractors.forEach((extractor, index) => {
    if (typeof extractor?.extract !== 'function') {
      throw invalidOption(`${name}.extractors[${index}]`, 'is not an extractor (it needs extract(request))')
    }
  })
  const hooks = hookSet(options.hooks)
  if (options.fallbackToExtractors !== undefined && typeof options.fallbackToExtractors !== 'boolean') {
    throw invalidOption(`${name}.fallbackToExtractors`, 'must be a boolean')
  }
  const { principal, configManager, onMissing, allowMissing = false, failOpen = false, timeoutMs } = options
  // With a principal source, a request whose principal has no tenant never takes one from the request.
  const principalOnly = principal !== undefined && options.fallbackToExtractors !== true

  function pass(
    run: StageRun<'onResolve'>,
    next: Next,
    found: { source?: string; tenant?: TenantConfig; failedOpen?: { cause: unknown } } = {},
  ): Promise<Response> {
    const { source, tenant, failedOpen } = found
    setTenantState(run.request, { tenantId: run.tenantId, tenant })
    if (failedOpen) run.failOpen({ source }, failedOpen.cause)
    else run.allow({ source, tenant })
    return runWithTenantId(run.tenantId, () => next(run.request))
  }

  return async function tenantResolver(request, next) {
    const run = new StageRun(hooks, 'onResolve', 'resolve', request, undefined, { failOpen, timeoutMs })

    let fromPrincipal: Found | undefined
    if (principal) {
      const result = await callUser('resolve', () => principal(request))
      if ('error' in result) return run.refuse({ source: 'principal' }, result)
      if (result.value !== undefined && result.value !== null && result.value !== '') {
        fromPrincipal = { tenantId: result.value, source: 'principal' }
      }
    }

    let fromRequest: Found | undefined
    for (const extractor of extractors) {
      const result = await callUser('resolve', () => extractFrom(extractor, request))
      if ('error' in result) return run.refuse({ source: extractor.source }, result)
      if (result.value) {
        fromRequest = result.value
        break
      }
    }

    for (const found of [fromPrincipal, fromRequest]) {
      if (!found) continue
      try {
        validateTenantId(found.tenantId)
      } catch (invalid) {
        return run.refuse({ source: found.source }, { error: invalid as TenantError })
      }
    }

    if (principalOnly && !fromPrincipal && fromRequest) {
      const detail = `the request names a tenant (${fromRequest.source}) but the authenticated principal carries none`
      return run.refuse({ source: fromRequest.source }, { error: new TenantError('tenant_mismatch', detail) })
    }
    const chosen = principalOnly ? fromPrincipal : (fromPrincipal ?? fromRequest)
    if (!chosen) {
      if (allowMissing) return pass(run, next)
      return run.refuse(
        {},
        {
          error: new TenantError(
            'tenant_required',
            principalOnly
              ? 'the authenticated principal carries no tenant'
              : 'this request must name a tenant',
          ),
          override: onMissing && { hook: 'onMissing', call: () => onMissing(request) },
        },
      )
    }
    const tenantId = chosen.tenantId as string
    run.tenantId = tenantId
    if (fromPrincipal && fromRequest && fromRequest.tenantId !== tenantId) {
      const detail = `the request names a tenant (${fromRequest.source}) other than the authenticated one`
      return run.refuse({ source: fromRequest.source }, { error: new TenantError('tenant_mismatch', detail) })
    }
    if (!configManager) return pass(run, next, { source: chosen.source })

    const outcome = await run.store(() => configManager.getTenantConfig(tenantId))
    if (outcome.status === 'failedOpen')
      return pass(run, next, { source: chosen.source, failedOpen: outcome })
    if (outcome.status === 'refused') return run.refuse({ source: chosen.source }, outcome)
    const tenant = outcome.value
    if (tenant.status === 'suspended') {
      const error = new TenantError('tenant_suspended', `tenant "${tenantId}" is suspended`, { tenantId })
      return run.refuse({ source: chosen.source, tenant }, { error })
    }
    return pass(run, next, { source: chosen.source, tenant })
  }
}
