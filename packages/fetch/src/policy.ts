import {
  evaluatePolicy,
  invalidPolicyRequest,
  isThenable,
  type PolicyDecision,
  type PolicyEvaluator,
  type PolicyRequest,
  TenantError,
} from '@tenant/core'
import { type Admission, type ChainStage, fetchChain, type StageStep } from './chain'
import { handedFrom } from './context'
import { assertMethods, checkFunction, checkStageOptions, checkToken } from './options'
import { AMBIGUOUS_URL, parsedUrl, pathOf, routerDecoded } from './path'
import { callUser, StageCore, type StageOptions, StoreFailed, UserRefusal } from './stage'
import type { MaybePromise, Middleware } from './types'

/** Options of {@link tenantPolicy}. */
export interface PolicyOptions extends StageOptions {
  /**
   * Decides per tenant (core's `ConfigPolicyEvaluator`, or your own). Without one the stage
   * lets every request through.
   */
  evaluator?: PolicyEvaluator
  /**
   * Header naming the model the request uses.
   * @default 'X-Model'
   */
  modelHeader?: string
  /**
   * Header naming the tool the request uses.
   * @default 'X-Tool'
   */
  toolHeader?: string
  /**
   * Reads model and tool from the request instead of the headers (a JSON body, a route
   * parameter). Read the body from `request.clone()` so the handler can still read it. The
   * method and path always come from the request line: a `method` or `path` this returns that
   * differs from the request's is denied (a JSON body handed back as is would let the client name
   * them). A value that is not a string (`null`, an array, an object from a JSON body) is denied
   * with 403 `tenant_policy_denied` before the evaluator runs, `failOpen` or not.
   * @default undefined (the headers)
   */
  extract?: (request: Request) => MaybePromise<PolicyRequest>
  /**
   * The response for a denied request, instead of the 403 problem.
   * @default undefined (403 `tenant_policy_denied`)
   */
  onDenied?: (request: Request, decision: PolicyDecision & { tenantId: string }) => MaybePromise<Response>
}

/**
 * The policy stage as a chain stage: what {@link tenantPolicy} and `tenancy()` run; `undefined`
 * without an evaluator (the stage is off).
 *
 * @example
 * ```ts
 * const stage = policyStage({ evaluator: new ConfigPolicyEvaluator(configs) })
 * ```
 */
export function policyStage(options: PolicyOptions = {}): ChainStage | undefined {
  const name = 'tenantPolicy'
  checkStageOptions(name, options)
  checkFunction(`${name}.extract`, options.extract)
  checkFunction(`${name}.onDenied`, options.onDenied)
  const modelHeader = checkToken(`${name}.modelHeader`, options.modelHeader ?? 'X-Model')
  const toolHeader = checkToken(`${name}.toolHeader`, options.toolHeader ?? 'X-Tool')
  if (options.evaluator === undefined) return undefined
  assertMethods(options.evaluator, `${name}.evaluator`, ['evaluate'])
  return new PolicyStage(options, options.evaluator, modelHeader, toolHeader)
}

const AMBIGUOUS_PATH: PolicyDecision = Object.freeze({ allowed: false, rule: 'path', reason: AMBIGUOUS_URL })

const LINE_RULES = ['method', 'path'] as const

function lineMismatch(rule: 'method' | 'path', extracted: string, actual: string): PolicyDecision {
  return {
    allowed: false,
    rule,
    reason: `extract() answered the ${rule} ${JSON.stringify(extracted.slice(0, 200))}, but the request's is ${JSON.stringify(actual.slice(0, 200))}: the policy checks the request line's`,
  }
}

/**
 * The path the policy checks: the path the client sent (allow-lists are written that way). The
 * request may be another Request object than the one the tenant was resolved on:
 * - one a middleware handed downstream in its stead (a rewrite: `compose()` and the Hono adapter
 *   hand the decision on, see `inheritTenantState`): the client's path, from the resolver's
 *   request;
 * - the client's with a mount prefix cut off (a sub-app reached through Hono's `mount()`, which
 *   finds the decision in the tenant context): the client's path too;
 * - any other request made inside the request's run (a handler calling
 *   `app.request('/admin/keys')`, which also finds the decision in the tenant context): its own
 *   path, the one it is served on. Checked as the client's, it ran where the allow-list of the
 *   client's path let it.
 * Where the host's router drops a trailing slash (Hono's `strict: false` routes `/v1/files/` to
 * `/v1/files`), the path without it, which is what the handler serves.
 */
function policyPath(admission: Admission): string | undefined {
  const { owner } = admission
  // A rewrite is checked as the request it was made from (a sub-request's rewrite as that
  // sub-request, not as the client's).
  const request = handedFrom(admission.request)
  const own = pathOf(request.url)
  if (own === undefined || owner === request || !(owner instanceof Request)) return servedPath(admission, own)
  const sent = pathOf(owner.url)
  if (sent === undefined) return undefined
  return servedPath(admission, mountedFrom(request, own, owner, sent) ? sent : own)
}

/**
 * Whether `request` (path `path`) is the client's request `sent` (path `sentPath`) with a mount
 * prefix cut off, as Hono's `mount()` makes it (`new Request(url, request)`): the same method,
 * headers, origin and query, and a path that is the end of the client's (`/`, for the mount point
 * itself). A request the app made on its own (`app.request('/admin/keys')`: its own headers, an
 * origin of its own or the client's Host) is not. What this cannot tell from a mount: the client's
 * whole request sent again by the app to a path that ends the client's (`/v1/batch` -> `/batch`).
 */
function mountedFrom(request: Request, path: string, sent: Request, sentPath: string): boolean {
  // Hono's mount() writes the router's decoded path into the new URL (`/internal/%70ublic/x` ->
  // `/public/x`), so the ends are compared decoded as routers decode them.
  if (path !== '/' && !sentPath.endsWith(path) && !routerDecoded(sentPath).endsWith(routerDecoded(path))) {
    return false
  }
  // Compared as URL parsers write them: mount() parses the client's URL (a Host in upper case, a
  // default port, a query with characters a parser escapes) and writes it out again.
  const own = parsedUrl(request.url)
  const theirs = parsedUrl(sent.url)
  if (
    own === undefined ||
    theirs === undefined ||
    own.origin !== theirs.origin ||
    own.search !== theirs.search
  ) {
    return false
  }
  return request.method === sent.method && sameHeaders(request.headers, sent.headers)
}

// Both lists in full, in the order Headers iterates them (sorted by name).
function sameHeaders(a: Headers, b: Headers): boolean {
  const left = [...a]
  const right = [...b]
  return (
    left.length === right.length &&
    left.every(([name, value], i) => right[i]![0] === name && right[i]![1] === value)
  )
}

// The router's view of `path`: without a trailing slash where the host's router drops it.
function servedPath(admission: Admission, path: string | undefined): string | undefined {
  if (path === undefined || path.length < 2 || path.charCodeAt(path.length - 1) !== SLASH) return path
  const routed = admission.hostHooks.routedPath?.(admission.host)
  return routed === undefined || routed.charCodeAt(routed.length - 1) === SLASH ? path : path.slice(0, -1)
}

const SLASH = 47

class PolicyStage implements ChainStage {
  readonly stage = 'policy' as const
  readonly middleware = 'tenantPolicy'
  readonly #core: StageCore<'onPolicy'>

  constructor(
    readonly options: PolicyOptions,
    readonly evaluator: PolicyEvaluator,
    readonly modelHeader: string,
    readonly toolHeader: string,
  ) {
    this.#core = new StageCore(options, 'onPolicy', 'policy', evaluator)
  }

  run(admission: Admission): StageStep {
    if (admission.tenantId === undefined) return undefined
    const { request } = admission
    // The method and path come from the request line; without `extract`, model and tool from the
    // headers, with no await.
    const path = policyPath(admission)
    const input: PolicyRequest = { method: request.method, path }
    // A URL whose path one reader sees and the router another (a raw request-target on Deno).
    if (path === undefined) return this.#decided(admission, input, AMBIGUOUS_PATH)
    const extract = this.options.extract
    if (extract === undefined) {
      const model = request.headers.get(this.modelHeader)
      const tool = request.headers.get(this.toolHeader)
      if (model) input.model = model
      if (tool) input.tool = tool
      return this.#evaluate(admission, input)
    }
    const read = callUser('policy', () => extract(request))
    if (isThenable(read)) return read.then((value) => this.#extracted(admission, input, value))
    return this.#extracted(admission, input, read)
  }

  #extracted(admission: Admission, input: PolicyRequest, read: PolicyRequest | UserRefusal): StageStep {
    if (read instanceof UserRefusal) return this.#core.refuse(admission, { input: {} }, { error: read.error })
    const extracted: PolicyRequest = {}
    for (const [key, value] of Object.entries(read ?? {})) {
      // A JSON body's "__proto__" key would set the input's prototype, not a field of it.
      if (value !== undefined && key !== '__proto__') extracted[key as keyof PolicyRequest] = value
    }
    // What `extract` read is request input (a JSON body): a value of the wrong type is denied here,
    // before the evaluator, so it never reaches the store call whose failures failOpen passes.
    const invalid = invalidPolicyRequest(extracted)
    if (invalid !== undefined) return this.#decided(admission, { ...input, ...extracted }, invalid)
    // The method and path are the request line's, which the router serves. An `extract` that hands
    // back a JSON body would otherwise let the client name the ones the policy checks: one that
    // differs is denied.
    for (const rule of LINE_RULES) {
      const value = extracted[rule]
      // The request's own path, as extract() can read it, is the request line too (the policy's
      // may be without a trailing slash the router drops, or the client's under mount()).
      const own = rule === 'path' && value === pathOf(admission.request.url)
      if (value !== undefined && value !== input[rule] && !own) {
        return this.#decided(admission, { ...input, ...extracted }, lineMismatch(rule, value, input[rule]!))
      }
    }
    if (extracted.model !== undefined) input.model = extracted.model
    if (extracted.tool !== undefined) input.tool = extracted.tool
    return this.#evaluate(admission, input)
  }

  #evaluate(admission: Admission, input: PolicyRequest): StageStep {
    const { evaluator } = this
    const tenantId = admission.tenantId!
    // The resolver's config, when it read it from the store this evaluator reads.
    const config = this.#core.known(admission)?.policy
    const answer = this.#core.attempt(() => evaluatePolicy(evaluator, tenantId, input, config), admission)
    if (isThenable(answer)) return answer.then((decision) => this.#decided(admission, input, decision))
    return this.#decided(admission, input, answer)
  }

  #decided(admission: Admission, input: PolicyRequest, answer: PolicyDecision | StoreFailed): StageStep {
    const core = this.#core
    if (answer instanceof StoreFailed) return core.failed(admission, { input }, answer)
    if (answer.allowed) {
      if (core.observed) core.allow(admission, { input, decision: answer })
      return undefined
    }
    const tenantId = admission.tenantId!
    const { onDenied } = this.options
    return core.refuse(
      admission,
      { input, decision: answer },
      {
        error: new TenantError('tenant_policy_denied', answer.reason ?? 'denied by the tenant policy', {
          tenantId,
        }),
        extensions: answer.rule ? { rule: answer.rule } : {},
        override: onDenied && {
          hook: 'onDenied',
          call: () => onDenied(admission.request, { ...answer, tenantId }),
        },
      },
    )
  }
}

/**
 * Enforces the tenant's model / tool / method / path allow-lists: 403 `tenant_policy_denied`
 * (with the refusing `rule` in the body) when the evaluator says no. Runs after the resolver;
 * a request without a tenant (`allowMissing`) is not checked.
 *
 * @example
 * ```ts
 * const policy = tenantPolicy({ evaluator: new ConfigPolicyEvaluator(configManager) })
 * ```
 */
export function tenantPolicy(options: PolicyOptions = {}): Middleware {
  const stage = policyStage(options)
  // No evaluator: the stage is off (tenancy() leaves it out altogether).
  if (stage === undefined) return (request, next) => next(request)
  return fetchChain('tenantPolicy', [stage])
}
