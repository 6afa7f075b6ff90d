import { type PolicyDecision, type PolicyEvaluator, type PolicyRequest, TenantError } from '@tenant/core'
import { getTenantId } from './context'
import { hookSet } from './hooks'
import { assertMethods, checkFunction, checkStageOptions, checkToken } from './options'
import { callUser, requireResolution, type StageOptions, StageRun } from './stage'
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
   * method and path come from the request unless this returns them.
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
  const name = 'tenantPolicy'
  checkStageOptions(name, options)
  checkFunction(`${name}.extract`, options.extract)
  checkFunction(`${name}.onDenied`, options.onDenied)
  const { evaluator, extract, onDenied, failOpen = false, timeoutMs } = options
  const modelHeader = checkToken(`${name}.modelHeader`, options.modelHeader ?? 'X-Model')
  const toolHeader = checkToken(`${name}.toolHeader`, options.toolHeader ?? 'X-Tool')
  // No evaluator: the stage is off (tenancy() leaves it out altogether).
  if (evaluator === undefined) return (request, next) => next(request)
  assertMethods(evaluator, `${name}.evaluator`, ['evaluate'])
  const hooks = hookSet(options.hooks)

  function headerInput(request: Request): PolicyRequest {
    const input: PolicyRequest = { method: request.method, path: new URL(request.url).pathname }
    const model = request.headers.get(modelHeader)
    const tool = request.headers.get(toolHeader)
    if (model) input.model = model
    if (tool) input.tool = tool
    return input
  }

  async function extractedInput(
    request: Request,
    from: NonNullable<PolicyOptions['extract']>,
  ): Promise<{ value: PolicyRequest } | { error: TenantError }> {
    const input: PolicyRequest = { method: request.method, path: new URL(request.url).pathname }
    const result = await callUser('policy', () => from(request))
    if ('error' in result) return result
    for (const [key, value] of Object.entries(result.value ?? {})) {
      if (value !== undefined) input[key as keyof PolicyRequest] = value
    }
    return { value: input }
  }

  return async function tenantPolicy(request, next) {
    requireResolution(request, name)
    const tenantId = getTenantId(request)
    if (tenantId === undefined) return next(request)
    const run = new StageRun(hooks, 'onPolicy', 'policy', request, tenantId, { failOpen, timeoutMs })

    // Without `extract` the input comes from the request line and headers, with no await.
    const read = extract ? await extractedInput(request, extract) : { value: headerInput(request) }
    if ('error' in read) return run.refuse({ input: {} }, { error: read.error })
    const input = read.value

    const outcome = await run.store(() => evaluator.evaluate(tenantId, input))
    if (outcome.status === 'failedOpen') {
      run.failOpen({ input }, outcome.cause)
      return next(request)
    }
    if (outcome.status === 'refused') return run.refuse({ input }, outcome)
    const decision = outcome.value
    if (decision.allowed) {
      run.allow({ input, decision })
      return next(request)
    }
    return run.refuse(
      { input, decision },
      {
        error: new TenantError('tenant_policy_denied', decision.reason ?? 'denied by the tenant policy', {
          tenantId,
        }),
        extensions: decision.rule ? { rule: decision.rule } : {},
        override: onDenied && { hook: 'onDenied', call: () => onDenied(request, { ...decision, tenantId }) },
      },
    )
  }
}
