import type { PolicyRequest } from '@tenant/core'

/** The header naming the model on the routes whose body does not (the resource routes). */
export const MODEL_HEADER = 'X-Model'

/** The header naming the tool a request uses. */
export const TOOL_HEADER = 'X-Tool'

// The model a route's body names, for the routes whose body is the model's source (POST
// /chat/completions): set by the route's body reader before the tenancy chain runs, on the Request
// object the chain decides on.
const bodyModels = new WeakMap<Request, string>()
// The model the policy stage checked, per request: what the route compares its body's model with.
const checkedModels = new WeakMap<Request, string | undefined>()

/**
 * Records that `request`'s model is the one its body names, from now on for the tenancy chain's
 * policy and quota stages. Call it before the chain runs (see `readChatRequest`).
 */
export function useBodyModel(request: Request, model: string): void {
  bodyModels.set(request, model)
}

/**
 * The model of a request: the one its body named (see {@link useBodyModel}), otherwise the
 * `X-Model` header, otherwise none. The policy stage checks it and the quota stage charges it, so
 * the two can never differ.
 */
export function requestModel(request: Request): string | undefined {
  if (bodyModels.has(request)) return bodyModels.get(request)
  return request.headers.get(MODEL_HEADER) ?? undefined
}

/**
 * The policy stage's `extract`: the request's model ({@link requestModel}) and its `X-Tool`;
 * method and path come from the request line as without `extract`. It records the model it
 * handed to the evaluator, for {@link checkedModel}. An empty header counts as absent, as in the
 * stage's own header reading.
 *
 * @example
 * ```ts
 * tenancy({ policy: { evaluator, extract: policyInput } })
 * ```
 */
export function policyInput(request: Request): PolicyRequest {
  const model = requestModel(request) || undefined
  const tool = request.headers.get(TOOL_HEADER) || undefined
  checkedModels.set(request, model)
  const input: PolicyRequest = {}
  if (model !== undefined) input.model = model
  if (tool !== undefined) input.tool = tool
  return input
}

/**
 * The model the policy stage checked for `request` (`null` when the stage never read it, for
 * instance because the app was wired without {@link policyInput}).
 */
export function checkedModel(request: Request): string | undefined | null {
  return checkedModels.has(request) ? checkedModels.get(request) : null
}

/**
 * The quota subject of an API request: its model ({@link requestModel}, the one the policy stage
 * checked) as `model:<name>`, so a plan's `quota.subjects` can give each model its own limits
 * (per-model requests or tokens per minute) that also draw on the tenant's pool. No model: no
 * subject, only the tenant's windows. A model name outside `[A-Za-z0-9._:/@+-]` is refused with 400
 * `invalid_subject`.
 *
 * @example
 * ```ts
 * tenancy({ configManager, quota: { manager: quotas, subject: modelSubject } })
 * ```
 */
export function modelSubject(request: Request): string | undefined {
  const model = requestModel(request)
  return model === undefined ? undefined : `model:${model}`
}
