// The fast path of the in-process stores, for the tenancy chain (@tenant/fetch, @tenant/hono). The
// public store methods promise a Promise, and a request path that awaits four of them pays four
// promise ticks (and, on Node 20 with AsyncLocalStorage enabled, the promise hooks of each). The
// fast path gives the same answer as a value when it is ready without I/O, and lets the chain hand
// a manager the config it already read, so a request reads its tenant's config once.
//
// The keys are registered symbols (Symbol.for), so two copies of core in one process (a bundled
// one and an installed one) agree on them, as `isTenantError` does. Stores without the fast path
// (Redis, Durable Objects, user stores) keep working: callers fall back to the public methods.
import type { ConfigManager } from './config'
import type { PlanStore } from './plans'
import type { PolicyDecision, PolicyEvaluator, PolicyRequest } from './policy'
import type { QuotaCost, QuotaDecision, QuotaManager } from './quota'
import type { RateLimitDecision, RateLimiter } from './rate-limit'
import type { PlanConfig, PolicyConfig, QuotaConfig, RateLimitConfig, TenantConfig } from './schemas'

/**
 * Key of a config store's fast read: `store[tenantConfigNow](tenantId)` answers what
 * `getTenantConfig(tenantId)` would (the same frozen object), as a value when no I/O is needed
 * (an in-memory store, a fresh cache hit) and as a native Promise otherwise (callers test
 * `instanceof Promise`, which costs nothing on the value path). It may also throw
 * synchronously what the promise would reject with (`TenantNotFoundError`, `InvalidTenantIdError`).
 *
 * @example
 * ```ts
 * const config = await readTenantConfig(configs, 'acme') // from the fast path when the store has one
 * ```
 */
export const tenantConfigNow: unique symbol = Symbol.for('@tenant/core.tenantConfigNow')

/**
 * Key of a plan store's fast read: `store[planConfigNow](planId)` answers what `getPlan(planId)`
 * would, as a value when no I/O is needed and a native Promise otherwise; it may throw what the
 * promise would reject with. `withPlans` uses it, so a tenant on a plan costs no promise either.
 *
 * @example
 * ```ts
 * const plan = readPlanConfig(plans, 'pro') // PlanConfig, or a promise of it
 * ```
 */
export const planConfigNow: unique symbol = Symbol.for('@tenant/core.planConfigNow')

/**
 * Key of a manager's fast decision: `consume` for `QuotaManager` and `RateLimiter`, with the same
 * answer as the public method, as a value when no I/O is needed. Its last argument is the tenant's
 * config part (`QuotaConfig`, `RateLimitConfig | null`) when the caller already read it from the
 * manager's own {@link configSource}; `undefined` makes the manager read it. It may throw
 * synchronously what the public method would reject with.
 *
 * @example
 * ```ts
 * const decision = await consumeQuota(quotas, 'acme', { tokens: 10 })
 * ```
 */
export const consumeNow: unique symbol = Symbol.for('@tenant/core.consumeNow')

/**
 * Key of a policy evaluator's fast decision: `evaluate` with the same answer as the public method,
 * as a value when no I/O is needed; the last argument is the tenant's `PolicyConfig` when the
 * caller already read it from the evaluator's own {@link configSource}.
 *
 * @example
 * ```ts
 * const decision = await evaluatePolicy(policy, 'acme', { model: 'gpt-4o' })
 * ```
 */
export const evaluateNow: unique symbol = Symbol.for('@tenant/core.evaluateNow')

/**
 * Key of the store a fast-path manager reads its config from (its provider). A caller hands the
 * manager a config only when it read that config from this very object, so a manager never
 * decides on another store's config.
 *
 * @example
 * ```ts
 * const reuse = quotas[configSource] === configs // then the resolver's config can be handed over
 * ```
 */
export const configSource: unique symbol = Symbol.for('@tenant/core.configSource')

/** A config store with the fast read; see {@link tenantConfigNow}. */
export interface FastConfigStore {
  [tenantConfigNow](tenantId: string): TenantConfig | Promise<TenantConfig>
}

/** A plan store with the fast read; see {@link planConfigNow}. */
export interface FastPlanStore {
  [planConfigNow](planId: string): PlanConfig | Promise<PlanConfig>
}

/** A quota manager with the fast decision; see {@link consumeNow}. */
export interface FastQuotaManager {
  readonly [configSource]: object
  [consumeNow](
    tenantId: string,
    cost: QuotaCost | undefined,
    config: QuotaConfig | undefined,
  ): QuotaDecision | Promise<QuotaDecision>
}

/** A rate limiter with the fast decision; see {@link consumeNow}. */
export interface FastRateLimiter {
  readonly [configSource]: object
  [consumeNow](
    tenantId: string,
    cost: number | undefined,
    config: RateLimitConfig | null | undefined,
  ): RateLimitDecision | Promise<RateLimitDecision>
}

/** A policy evaluator with the fast decision; see {@link evaluateNow}. */
export interface FastPolicyEvaluator {
  readonly [configSource]: object
  [evaluateNow](
    tenantId: string,
    request: PolicyRequest,
    config: PolicyConfig | undefined,
  ): PolicyDecision | Promise<PolicyDecision>
}

/**
 * True for a promise or any other thenable: what the fast path returns when it needs I/O. A
 * duck-typed check, so a provider returning another library's promise is still waited for.
 *
 * @example
 * ```ts
 * const answer = readTenantConfig(configs, id)
 * if (isThenable(answer)) return answer.then(go)
 * return go(answer)
 * ```
 */
export function isThenable<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null | undefined)?.then === 'function'
}

/**
 * The stored config of `tenantId` from `store`: its fast read when it has one (a value when no I/O
 * is needed), else `getTenantConfig`. May throw synchronously what the read would reject with.
 *
 * @example
 * ```ts
 * const config = readTenantConfig(configs, 'acme') // TenantConfig, or a promise of it
 * ```
 */
export function readTenantConfig(
  store: Pick<ConfigManager, 'getTenantConfig'>,
  tenantId: string,
): TenantConfig | Promise<TenantConfig> {
  const fast = (store as Partial<FastConfigStore>)[tenantConfigNow]
  // The public method's answer as a native Promise: a store may hand back another library's
  // promise (or one from another realm), which callers testing `instanceof Promise` would take
  // for the config itself, leaving its rejection unhandled.
  return fast === undefined ? Promise.resolve(store.getTenantConfig(tenantId)) : fast.call(store, tenantId)
}

/**
 * The plan `planId` from `store`: its fast read when it has one, else `getPlan`. May throw
 * synchronously what the read would reject with.
 *
 * @example
 * ```ts
 * const plan = readPlanConfig(plans, 'pro') // PlanConfig, or a promise of it
 * ```
 */
export function readPlanConfig(
  store: Pick<PlanStore, 'getPlan'>,
  planId: string,
): PlanConfig | Promise<PlanConfig> {
  const fast = (store as Partial<FastPlanStore>)[planConfigNow]
  // A native Promise, as in readTenantConfig.
  return fast === undefined ? Promise.resolve(store.getPlan(planId)) : fast.call(store, planId)
}

/**
 * Decides a quota cost with `manager`'s fast path when it has one, else its `consume`. `config` is
 * used only when read from `manager[configSource]`; pass it only then.
 *
 * @example
 * ```ts
 * const decision = await consumeQuota(quotas, 'acme', { tokens: 10 })
 * ```
 */
export function consumeQuota(
  manager: Pick<QuotaManager, 'consume'>,
  tenantId: string,
  cost: QuotaCost | undefined,
  config?: QuotaConfig,
): QuotaDecision | Promise<QuotaDecision> {
  const fast = (manager as Partial<FastQuotaManager>)[consumeNow]
  return fast === undefined ? manager.consume(tenantId, cost) : fast.call(manager, tenantId, cost, config)
}

/**
 * Takes one token (or `cost`) with `limiter`'s fast path when it has one, else its `consume`.
 * `config` is used only when read from `limiter[configSource]`; pass it only then.
 *
 * @example
 * ```ts
 * const decision = await consumeRate(limiter, 'acme')
 * ```
 */
export function consumeRate(
  limiter: Pick<RateLimiter, 'consume'>,
  tenantId: string,
  cost?: number,
  config?: RateLimitConfig | null,
): RateLimitDecision | Promise<RateLimitDecision> {
  const fast = (limiter as Partial<FastRateLimiter>)[consumeNow]
  if (fast !== undefined) return fast.call(limiter, tenantId, cost, config)
  return cost === undefined ? limiter.consume(tenantId) : limiter.consume(tenantId, { cost })
}

/**
 * Evaluates a policy request with `evaluator`'s fast path when it has one, else its `evaluate`.
 * `config` is used only when read from `evaluator[configSource]`; pass it only then.
 *
 * @example
 * ```ts
 * const decision = await evaluatePolicy(policy, 'acme', { model: 'gpt-4o' })
 * ```
 */
export function evaluatePolicy(
  evaluator: Pick<PolicyEvaluator, 'evaluate'>,
  tenantId: string,
  request: PolicyRequest,
  config?: PolicyConfig,
): PolicyDecision | Promise<PolicyDecision> {
  const fast = (evaluator as Partial<FastPolicyEvaluator>)[evaluateNow]
  return fast === undefined
    ? evaluator.evaluate(tenantId, request)
    : fast.call(evaluator, tenantId, request, config)
}

/**
 * The store a manager, limiter or evaluator reads its config from (its provider), when it tells
 * (see {@link configSource}); a config read from that store may be handed to its fast path. A
 * chain asks once, when it is built.
 *
 * @example
 * ```ts
 * const reuse = configSourceOf(quotas) === configs
 * ```
 */
export function configSourceOf(consumer: object): object | undefined {
  return (consumer as Partial<Record<typeof configSource, object>>)[configSource]
}

/**
 * A value that may be a promise, as a promise: the public async methods of the in-memory
 * stores are their fast path wrapped in this, so a synchronous throw becomes a rejection.
 *
 * @example
 * ```ts
 * consume(tenantId, cost) { return promiseOf(() => this[consumeNow](tenantId, cost, undefined)) }
 * ```
 */
export function promiseOf<T>(call: () => T | Promise<T>): Promise<T> {
  try {
    return Promise.resolve(call())
  } catch (error) {
    return Promise.reject(error)
  }
}
