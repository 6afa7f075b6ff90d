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
import { assertMethods, checkFunction, checkStageOptions, checkToken } from './options'
import { AMBIGUOUS_URL, pathOf } from './path'
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
 * The path the policy checks: the path the client sent (allow-lists are written that way), read
 * from the request the tenant was resolved on. A chain in a sub-application reached through
 * Hono's `mount()` sees the path with the mount prefix cut off, but the resolver's request still
 * carries the client's. Where the host's router drops a trailing slash (Hono's `strict: false`
 * routes `/v1/files/` to `/v1/files`), the path without it, which is what the handler serves.
 */
function policyPath(admission: Admission): string | undefined {
  const { request, owner } = admission
  const sent = owner !== request && owner instanceof Request ? owner : request
  const path = pathOf(sent.url)
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
      if (value !== undefined && value !== input[rule]) {
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
