/** What a request asks for, as far as policy is concerned. */
export interface PolicyRequest {
  model?: string
  tool?: string
  method?: string
  path?: string
}

/** The dimension a policy decision was made on. */
export type PolicyRule = 'model' | 'tool' | 'method' | 'path'

/** The answer of a {@link PolicyEvaluator}. A denial is a value, not an exception. */
export interface PolicyDecision {
  allowed: boolean
  /** Which allow-list refused the request; absent when allowed. */
  rule?: PolicyRule
  /** Human-readable reason; absent when allowed. */
  reason?: string
}

/** Decides whether a tenant may use a model, tool, method and path. */
export interface PolicyEvaluator {
  /** Throws `TenantNotFoundError` for an unknown tenant. */
  evaluate(tenantId: string, request: PolicyRequest): Promise<PolicyDecision>
}
