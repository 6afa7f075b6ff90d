import {
  type ConfigManager,
  isThenable,
  isValidTenantId,
  readTenantConfig,
  type TenantConfig,
  TenantError,
  validateTenantId,
} from '@tenant/core'
import { type Admission, type ChainStage, fetchChain, type StageStep } from './chain'
import { isStaleState, resolvedScope, setTenantState, type TenantState, tenantState } from './context'
import { extractEvery, extractFrom, type Found, fromHeader, type TenantExtractor } from './extractors'
import { assertMethods, checkFunction, checkStageOptions, checkToken, invalidOption } from './options'
import { callUser, StageCore, type StageOptions, StoreFailed, UserRefusal } from './stage'
import type { MaybePromise, Middleware } from './types'

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
   * The `WWW-Authenticate` challenge of the 401 `tenant_required` (RFC 9110 requires one on every
   * 401): how the client should name its tenant.
   * @default `Bearer realm="tenant"` with a `principal`; `Tenant realm="tenant", header="X-Tenant-ID"`
   * (the first header extractor's name, without `header` when there is none) without one; both,
   * comma-separated, with a principal and `fallbackToExtractors`
   */
  challenge?: string
  /**
   * Run the rest of the chain with the tenant as `currentTenantId()` (AsyncLocalStorage).
   * `false` skips the scope for apps that read the tenant only from the request (`getTenantId`,
   * `c.var.tenantId`): on Node 20 an active AsyncLocalStorage makes every async operation of the
   * process pay its hooks (about 4 µs per request on @hono/node-server in BENCHMARKS.md).
   * `currentTenantId()` is then `undefined` downstream.
   * @default true
   */
  context?: boolean
  /**
   * Checks that the tenant exists and is active: 403 `tenant_unknown` or `tenant_suspended`
   * otherwise. Its config is then available as `getTenant(request)` (`c.var.tenant` in Hono).
   * @default undefined (any well-formed id is accepted)
   */
  configManager?: Pick<ConfigManager, 'getTenantConfig'>
}

/**
 * A principal read through the host's context (`c` in Hono) rather than the request alone: the
 * resolver calls it with the request and the context the host handed to `decide`.
 */
export type HostPrincipal = (request: Request, host: unknown) => MaybePromise<string | null | undefined>

/**
 * The resolver as a chain stage: what {@link tenantResolver} and `tenancy()` run. `principalOf`
 * replaces `options.principal` for a host that reads the principal from its own context (the
 * Hono adapter reads a JWT claim from `c`); it gets the request and the host's context.
 *
 * @example
 * ```ts
 * const stages = [resolverStage({ configManager }), quotaStage({ manager: quotas })]
 * ```
 */
export function resolverStage(options: ResolverOptions = {}, principalOf?: HostPrincipal): ChainStage {
  return new ResolverStage(options, principalOf)
}

const NO_PRINCIPAL = Symbol('no principal')
type PrincipalAnswer = string | typeof NO_PRINCIPAL

/** The `source` reported when the tenant is the one a resolver earlier in the request found. */
const EARLIER = 'earlier-resolver'

// A principal means a credential (Bearer); the extractors mean the request names its tenant. A
// principal with fallbackToExtractors accepts either, so both challenges are offered.
function defaultChallenge(
  principal: unknown,
  principalOnly: boolean,
  extractors: readonly TenantExtractor[],
): string {
  const bearer = 'Bearer realm="tenant"'
  if (principal !== undefined && principalOnly) return bearer
  const header = extractors.find((e) => typeof e.source === 'string' && e.source.startsWith('header:'))
  const tenant = header
    ? `Tenant realm="tenant", header="${header.source.slice('header:'.length)}"`
    : 'Tenant realm="tenant"'
  return principal === undefined ? tenant : `${bearer}, ${tenant}`
}

class ResolverStage implements ChainStage {
  readonly stage = 'resolve' as const
  readonly middleware = 'tenantResolver'
  readonly #core: StageCore<'onResolve'>
  readonly #principal: HostPrincipal | undefined
  readonly #extractors: readonly TenantExtractor[]
  readonly #configManager: Pick<ConfigManager, 'getTenantConfig'> | undefined
  readonly #onMissing: ResolverOptions['onMissing']
  readonly #allowMissing: boolean
  readonly #context: boolean
  // With a principal source, a request whose principal has no tenant never takes one from the request.
  readonly #principalOnly: boolean
  // Whether a request whose tenant an earlier resolver found keeps it when this resolver has no
  // principal's tenant: not a principal-only one, which refuses it as it would alone (an earlier
  // resolver that read a header must not stand in for its principal), unless it lets requests
  // without a tenant through anyway (none is no better a tenant than the earlier one).
  readonly #keepsEarlier: boolean
  readonly #challenge: [string, string][]

  constructor(options: ResolverOptions, principalOf: HostPrincipal | undefined) {
    const name = this.middleware
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
        ? [
            fromHeader(
              options.header === undefined ? undefined : checkToken(`${name}.header`, options.header),
            ),
          ]
        : Array.isArray(options.extractors)
          ? options.extractors
          : [options.extractors]
    extractors.forEach((extractor, index) => {
      if (typeof extractor?.extract !== 'function') {
        throw invalidOption(`${name}.extractors[${index}]`, 'is not an extractor (it needs extract(request))')
      }
    })
    if (options.fallbackToExtractors !== undefined && typeof options.fallbackToExtractors !== 'boolean') {
      throw invalidOption(`${name}.fallbackToExtractors`, 'must be a boolean')
    }
    if (options.context !== undefined && typeof options.context !== 'boolean') {
      throw invalidOption(`${name}.context`, 'must be a boolean')
    }
    if (
      options.challenge !== undefined &&
      (typeof options.challenge !== 'string' ||
        !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+( .*)?$/.test(options.challenge))
    ) {
      throw invalidOption(
        `${name}.challenge`,
        'must be an authentication challenge: a scheme, then its parameters',
      )
    }
    const { principal } = options
    this.#principal = principalOf ?? (principal && ((request: Request) => principal(request)))
    this.#extractors = extractors
    this.#configManager = options.configManager
    this.#onMissing = options.onMissing
    this.#allowMissing = options.allowMissing ?? false
    this.#context = options.context ?? true
    this.#principalOnly = this.#principal !== undefined && options.fallbackToExtractors !== true
    this.#keepsEarlier = !this.#principalOnly || this.#allowMissing
    this.#challenge = [
      [
        'WWW-Authenticate',
        options.challenge ?? defaultChallenge(this.#principal, this.#principalOnly, extractors),
      ],
    ]
    this.#core = new StageCore(options, 'onResolve', 'resolve')
  }

  run(admission: Admission): StageStep {
    // A resolver earlier in this request (an app-wide one, before a sub-app's tenancy()) already
    // decided the tenant, and what ran since (its stages, the app's own checks) ran for that
    // tenant: this one may confirm it, never switch it (see #choose). Its decision is on the
    // request, or, when the request was replaced on the way (a sub-application called with a new
    // Request, Hono's mount()), in the tenant context its host opened (only a resolver's scope
    // counts, not one of runWithTenantId).
    let state: TenantState | undefined = tenantState(admission.request)
    // Not one left on the Request by another run (see isStaleState).
    if (state !== undefined && isStaleState(state, admission.request)) state = undefined
    if (state?.tenantId === undefined) state = resolvedScope() ?? state
    // One request, whichever Request object carries it now (see TenantState.owner).
    if (state !== undefined) admission.owner = state.owner
    const earlier = state?.tenantId === undefined ? undefined : state
    const principal = this.#principal
    if (principal === undefined) return this.#extract(admission, NO_PRINCIPAL, 0, earlier)
    const answer = callUser('resolve', () => principal(admission.request, admission.host))
    if (isThenable(answer)) return answer.then((value) => this.#afterPrincipal(admission, value, earlier))
    return this.#afterPrincipal(admission, answer, earlier)
  }

  #afterPrincipal(
    admission: Admission,
    answer: string | null | undefined | UserRefusal,
    earlier: TenantState | undefined,
  ): StageStep {
    if (answer instanceof UserRefusal) {
      // A principal that says the tenant is missing (a verified token without its claim) is
      // answered as any missing tenant: the challenge, and onMissing.
      if (answer.error.code === 'tenant_required')
        return this.#missing(admission, { source: 'principal' }, answer)
      return this.#core.refuse(admission, { source: 'principal' }, answer)
    }
    const tenantId = answer === undefined || answer === null || answer === '' ? NO_PRINCIPAL : answer
    return this.#extract(admission, tenantId, 0, earlier)
  }

  // The extractors run even when the principal named a tenant: a request naming another one is a
  // mismatch, never silently re-targeted. Then all of them run (see #agree): the first that finds
  // an id is not the only place the request can name one (a path prefix, a query parameter the
  // app routes on). A tenant an earlier resolver found is held to the same rule.
  #extract(
    admission: Admission,
    principal: PrincipalAnswer,
    from: number,
    earlier: TenantState | undefined,
  ): StageStep {
    if (principal !== NO_PRINCIPAL) return this.#agree(admission, principal, 0, [], earlier)
    if (earlier !== undefined && this.#keepsEarlier) return this.#agree(admission, principal, 0, [], earlier)
    const extractors = this.#extractors
    for (let i = from; i < extractors.length; i++) {
      const extractor = extractors[i]!
      const result = callUser('resolve', () => extractFrom(extractor, admission.request))
      if (isThenable(result)) {
        return result.then((value) =>
          value === undefined
            ? this.#extract(admission, principal, i + 1, earlier)
            : this.#found(admission, principal, extractor, value, earlier),
        )
      }
      if (result !== undefined) return this.#found(admission, principal, extractor, result, earlier)
    }
    return this.#choose(admission, principal, undefined, earlier)
  }

  // With a principal's tenant (or an earlier resolver's): every extractor, and every member of a
  // chain, is read; the ids found go to #choose, which refuses any that is invalid or not that tenant.
  #agree(
    admission: Admission,
    principal: PrincipalAnswer,
    from: number,
    found: Found[],
    earlier: TenantState | undefined,
  ): StageStep {
    const extractors = this.#extractors
    for (let i = from; i < extractors.length; i++) {
      const extractor = extractors[i]!
      const result = callUser('resolve', () => extractEvery(extractor, admission.request, found))
      if (isThenable(result)) {
        return result.then((value) =>
          value instanceof UserRefusal
            ? this.#core.refuse(admission, { source: extractor.source }, value)
            : this.#agree(admission, principal, i + 1, found, earlier),
        )
      }
      if (result instanceof UserRefusal)
        return this.#core.refuse(admission, { source: extractor.source }, result)
    }
    return this.#choose(admission, principal, found, earlier)
  }

  #found(
    admission: Admission,
    principal: PrincipalAnswer,
    extractor: TenantExtractor,
    result: Found | UserRefusal,
    earlier: TenantState | undefined,
  ): StageStep {
    if (result instanceof UserRefusal)
      return this.#core.refuse(admission, { source: extractor.source }, result)
    return this.#choose(admission, principal, result, earlier)
  }

  /**
   * `fromRequest`: the id the first extractor that found one found, or, with a principal's tenant
   * or an `earlier` resolver's, every id the request names (see #agree).
   */
  #choose(
    admission: Admission,
    principal: PrincipalAnswer,
    found: Found | readonly Found[] | undefined,
    earlier: TenantState | undefined,
  ): StageStep {
    const core = this.#core
    if (principal !== NO_PRINCIPAL) {
      const refused = this.#invalid(admission, principal, 'principal')
      if (refused) return refused
    }
    let fromRequest: Found | undefined
    if (Array.isArray(found)) {
      for (const named of found as readonly Found[]) {
        const refused = this.#invalid(admission, named.tenantId, named.source)
        if (refused) return refused
      }
      // The first that names another tenant than the principal's (or the earlier one), else the first.
      const expected = principal === NO_PRINCIPAL ? earlier?.tenantId : principal
      fromRequest = found.find((named) => named.tenantId !== expected) ?? found[0]
    } else if (found !== undefined) {
      fromRequest = found as Found
      const refused = this.#invalid(admission, fromRequest.tenantId, fromRequest.source)
      if (refused) return refused
    }
    if (this.#principalOnly && principal === NO_PRINCIPAL && fromRequest !== undefined) {
      const detail = `the request names a tenant (${fromRequest.source}) but the authenticated principal carries none`
      return core.refuse(
        admission,
        { source: fromRequest.source },
        { error: new TenantError('tenant_mismatch', detail) },
      )
    }
    let tenantId: string
    let source: string
    if (principal !== NO_PRINCIPAL) {
      tenantId = principal
      source = 'principal'
    } else if (earlier !== undefined && this.#keepsEarlier) {
      tenantId = earlier.tenantId!
      source = EARLIER
    } else if (fromRequest !== undefined && !this.#principalOnly) {
      tenantId = fromRequest.tenantId
      source = fromRequest.source
    } else {
      if (this.#allowMissing) return this.#pass(admission, undefined, undefined)
      const error = new TenantError(
        'tenant_required',
        this.#principalOnly
          ? 'the authenticated principal carries no tenant'
          : 'this request must name a tenant',
      )
      return this.#missing(admission, {}, { error })
    }
    admission.tenantId = tenantId
    if (earlier !== undefined && tenantId !== earlier.tenantId) {
      const detail =
        'the authenticated principal carries another tenant than an earlier resolver found for this request'
      return core.refuse(admission, { source }, { error: new TenantError('tenant_mismatch', detail) })
    }
    if (fromRequest !== undefined && fromRequest.tenantId !== tenantId) {
      const detail =
        principal === NO_PRINCIPAL
          ? `the request names a tenant (${fromRequest.source}) other than the one an earlier resolver found`
          : `the request names a tenant (${fromRequest.source}) other than the authenticated one`
      return core.refuse(
        admission,
        { source: fromRequest.source },
        { error: new TenantError('tenant_mismatch', detail) },
      )
    }
    const store = this.#configManager
    if (earlier !== undefined) {
      // The earlier resolver's config, when it read one from this resolver's store (or this one has
      // none): not read twice, and not dropped by a resolver without a store. A config from another
      // store is not this resolver's existence check, which then runs as usual.
      if (earlier.tenant !== undefined && (store === undefined || earlier.source === store)) {
        admission.tenant = earlier.tenant
        admission.source = earlier.source
        return this.#pass(admission, source, earlier.tenant)
      }
    }
    if (store === undefined) return this.#pass(admission, source, undefined)
    const answer = core.attempt(() => readTenantConfig(store, tenantId), admission)
    if (isThenable(answer)) return answer.then((config) => this.#checked(admission, source, config))
    return this.#checked(admission, source, answer)
  }

  #invalid(admission: Admission, tenantId: unknown, source: string): Promise<Response> | undefined {
    if (isValidTenantId(tenantId)) return undefined
    try {
      validateTenantId(tenantId)
    } catch (invalid) {
      return this.#core.refuse(admission, { source }, { error: invalid as TenantError })
    }
    return undefined
  }

  #checked(admission: Admission, source: string, answer: TenantConfig | StoreFailed): StageStep {
    if (answer instanceof StoreFailed) {
      const failed = this.#core.failed(admission, { source }, answer)
      // Failed open: through without a config; the event has fired.
      return failed === undefined ? this.#pass(admission, source, undefined, false) : failed
    }
    if (answer.status === 'suspended') {
      const { tenantId } = admission
      const error = new TenantError('tenant_suspended', `tenant "${tenantId}" is suspended`, { tenantId })
      return this.#core.refuse(admission, { source, tenant: answer }, { error })
    }
    admission.tenant = answer
    admission.source = this.#configManager
    return this.#pass(admission, source, answer)
  }

  // The 401 `tenant_required` of a request without a tenant: with the challenge, or onMissing's answer.
  #missing(
    admission: Admission,
    event: { source?: string },
    refusal: { error: TenantError; cause?: unknown },
  ): StageStep {
    const onMissing = this.#onMissing
    return this.#core.refuse(admission, event, {
      ...refusal,
      headers: this.#challenge,
      override: onMissing && { hook: 'onMissing', call: () => onMissing(admission.request) },
    })
  }

  #pass(
    admission: Admission,
    source: string | undefined,
    tenant: TenantConfig | undefined,
    fire = true,
  ): undefined {
    admission.resolved = true
    admission.scoped = this.#context
    setTenantState(admission.request, admission)
    if (fire && this.#core.observed) this.#core.allow(admission, { source, tenant })
    return undefined
  }
}

/**
 * Finds the request's tenant: the principal's first, then the extractors. Validates the id
 * (400 `tenant_invalid_id`), refuses a principal/request disagreement (403 `tenant_mismatch`), a
 * missing tenant (401 `tenant_required`, unless `allowMissing`) and, with a `configManager`, an
 * unknown or suspended tenant (403). Downstream, `getTenantId(request)` and `currentTenantId()`
 * give the tenant. On a request an earlier resolver already resolved, it confirms that tenant and
 * never switches it: any other it finds is a 403 `tenant_mismatch`.
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
  return fetchChain('tenantResolver', [resolverStage(options)])
}
