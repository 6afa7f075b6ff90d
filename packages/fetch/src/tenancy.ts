import type {
  Clock,
  ConcurrencyLimiter,
  ConcurrencyProvider,
  ConfigManager,
  PolicyEvaluator,
  QuotaManager,
  RateLimiter,
} from '@tenant/core'
import { type ChainStage, fetchChain } from './chain'
import { applyMiddleware } from './compose'
import { type ConcurrencyOptions, concurrencyStage } from './concurrency'
import { recordExecutionContext } from './execution-context'
import type { TenancyHooks } from './hooks'
import { invalidOption } from './options'
import { type PolicyOptions, policyStage } from './policy'
import { type QuotaOptions, quotaPrecheck, quotaStage } from './quota'
import { type RateLimitOptions, rateLimitStage } from './rate-limit'
import { type HostPrincipal, type ResolverOptions, resolverStage } from './resolver'
import type { FetchHandler, Middleware } from './types'

/** Options of {@link tenancy} and {@link withTenancy}. */
export interface TenancyOptions {
  /**
   * Checks every resolved tenant exists and is active (403 `tenant_unknown` /
   * `tenant_suspended`); `resolver.configManager` overrides it.
   * @default undefined (no existence check)
   */
  configManager?: Pick<ConfigManager, 'getTenantConfig'>
  /** Resolver options (principal, extractors, allowMissing, onMissing). @default header `X-Tenant-ID`, required */
  resolver?: ResolverOptions
  /** The policy stage: an evaluator or the stage's options. @default undefined (stage skipped) */
  policy?: PolicyEvaluator | PolicyOptions
  /**
   * The concurrency stage (cap on requests in flight, from `concurrency.maxInFlight`): a limiter or
   * the stage's options. Caps are read from the resolver's config, or `configManager`.
   * @default undefined (stage skipped)
   */
  concurrency?: ConcurrencyLimiter | ConcurrencyOptions
  /** The rate-limit stage: a limiter or the stage's options. @default undefined (stage skipped) */
  rateLimit?: RateLimiter | RateLimitOptions
  /** The quota stage: a manager or the stage's options. @default undefined (stage skipped) */
  quota?: QuotaManager | QuotaOptions
  /** Event hooks for every stage (one set or several); a stage's own `hooks` run after these. */
  hooks?: TenancyHooks | readonly TenancyHooks[]
  /** Default `failOpen` of every stage; a stage's own setting wins. @default false */
  failOpen?: boolean
  /** Default `timeoutMs` of every stage's store calls; a stage's own setting wins. @default undefined */
  timeoutMs?: number
  /** Default clock of the RateLimit fields; a stage's own wins. @default systemClock */
  clock?: Clock
}

// A stage's option: its store, or its options object naming the store. Anything else (a number,
// a string, another kind of store passed by mistake, options that do not name their store) would
// leave the stage out without a word, and the chain would serve every request without it.
function stageOptions<M extends object, O extends object>(
  value: M | O | undefined,
  method: string,
  key: string,
  name: string,
): O | undefined {
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'object' && typeof value !== 'function') {
    throw invalidOption(`tenancy.${name}`, `must be a store or the stage's options, got ${typeof value}`)
  }
  if (typeof (value as Record<string, unknown>)[method] === 'function') return { [key]: value } as O
  // Options that name their store as undefined skip the stage on purpose (wiring that depends on
  // the environment); options that do not name it at all are a mistake.
  if (Array.isArray(value) || !(key in value)) {
    throw invalidOption(
      `tenancy.${name}`,
      `must be a store (with ${method}()) or the stage's options with its ${key}; leave it out to skip the stage`,
    )
  }
  return value as O
}

interface Shared {
  hooks?: TenancyHooks | readonly TenancyHooks[]
  failOpen?: boolean
  timeoutMs?: number
  clock?: Clock
}

function withShared<O extends Shared>(options: O, shared: TenancyOptions): O {
  return {
    ...options,
    failOpen: options.failOpen ?? shared.failOpen,
    timeoutMs: options.timeoutMs ?? shared.timeoutMs,
    ...('clock' in options || shared.clock ? { clock: options.clock ?? shared.clock } : {}),
    // Both run: the chain-wide hooks (metrics, logging) first, then the stage's own.
    hooks: [shared.hooks ?? [], options.hooks ?? []].flat(),
  }
}

/**
 * The stages of the whole chain in the canonical order (resolve -> policy -> concurrency -> rate limit -> quota),
 * options validated, stages without a store left out: what {@link tenancy} runs, and what a host
 * adapter (@tenant/hono) runs its own way. `principalOf` is the host's principal (see
 * `resolverStage`).
 *
 * @example
 * ```ts
 * const stages = tenancyStages({ configManager: configs, quota: new InMemoryQuotaManager(configs) })
 * ```
 */
export function tenancyStages(options: TenancyOptions = {}, principalOf?: HostPrincipal): ChainStage[] {
  if (typeof options !== 'object' || options === null)
    throw invalidOption('tenancy', 'options must be an object')
  if (options.resolver !== undefined && (typeof options.resolver !== 'object' || options.resolver === null)) {
    throw invalidOption('tenancy.resolver', "must be the resolver's options object")
  }
  const resolver = withShared(options.resolver ?? {}, options)
  const stages: (ChainStage | undefined)[] = [
    resolverStage(
      { ...resolver, configManager: resolver.configManager ?? options.configManager },
      principalOf,
    ),
  ]
  const policy = stageOptions<PolicyEvaluator, PolicyOptions>(
    options.policy,
    'evaluate',
    'evaluator',
    'policy',
  )
  if (policy?.evaluator) stages.push(policyStage(withShared(policy, options)))
  // Where the quota's cost check goes when a stage that consumes runs before the quota.
  const consumersFrom = stages.length
  const concurrency = stageOptions<ConcurrencyLimiter, ConcurrencyOptions>(
    options.concurrency,
    'acquire',
    'limiter',
    'concurrency',
  )
  if (concurrency?.limiter) {
    // The store the resolver reads, when it can answer caps too.
    const fallback = (resolver.configManager ?? options.configManager) as
      | Partial<ConcurrencyProvider>
      | undefined
    const provider =
      concurrency.provider ??
      (typeof fallback?.concurrencyConfig === 'function' ? (fallback as ConcurrencyProvider) : undefined)
    // Caps come from the tenant's config: with no store to read it from, no request would ever
    // be capped.
    if (provider === undefined && fallback === undefined) {
      throw invalidOption(
        'tenancy.concurrency',
        "needs somewhere to read each tenant's cap: a configManager (on tenancy or its resolver) or concurrency.provider",
      )
    }
    stages.push(concurrencyStage(withShared({ ...concurrency, provider }, options)))
  }
  const rateLimit = stageOptions<RateLimiter, RateLimitOptions>(
    options.rateLimit,
    'consume',
    'limiter',
    'rateLimit',
  )
  if (rateLimit?.limiter) stages.push(rateLimitStage(withShared(rateLimit, options)))
  const quota = stageOptions<QuotaManager, QuotaOptions>(options.quota, 'consume', 'manager', 'quota')
  const quotaChain = quota?.manager ? quotaStage(withShared(quota, options)) : undefined
  if (quotaChain !== undefined) {
    // A request refused for its cost (400 invalid_cost) must have charged nothing: its cost is
    // read and checked before the concurrency and rate-limit stages take anything from it.
    if (stages.length > consumersFrom) stages.splice(consumersFrom, 0, quotaPrecheck(quotaChain))
    stages.push(quotaChain)
  }
  return stages.filter((stage): stage is ChainStage => stage !== undefined)
}

/**
 * The whole tenancy chain in the canonical order: resolve -> policy -> concurrency -> rate limit -> quota. Each
 * stage takes its store or its options object; a stage without one is left out. A request denied
 * by policy or the rate limit consumes no quota; a request
 * refused after the concurrency stage gives its slot back at once.
 *
 * Every stage decides before the handler runs (synchronously while the stores answer without
 * I/O), the tenant's config is read once, by the resolver, and handed to the stages whose stores
 * read that same config store; the stages' response headers are written once, merged, to the
 * handler's response.
 *
 * @example
 * ```ts
 * const configs = new InMemoryConfigManager()
 * const chain = tenancy({
 *   configManager: configs,
 *   policy: new ConfigPolicyEvaluator(configs),
 *   rateLimit: new TokenBucketRateLimiter(configs),
 *   quota: { manager: new InMemoryQuotaManager(configs), tokenEstimator: estimate },
 *   hooks: { onQuota: (event) => log(event) },
 * })
 * ```
 */
export function tenancy(options: TenancyOptions = {}): Middleware {
  return fetchChain('tenancy', tenancyStages(options))
}

/**
 * Wraps a plain fetch handler in the tenancy chain. Extra arguments (Workers' `env` and `ctx`,
 * Bun's `server`) reach the handler untouched. `options` may be a function of the request and
 * those arguments, for stores built from Workers bindings; return the same object for the same
 * bindings (memoize it) so the chain is built once, not per request.
 *
 * @example
 * ```ts
 * export default {
 *   fetch: withTenancy(
 *     (request, env: Env, ctx: ExecutionContext) => new Response(`hello ${getTenantId(request)}`),
 *     { configManager, quota: new InMemoryQuotaManager(configManager) },
 *   ),
 * }
 * ```
 */
export function withTenancy<Args extends unknown[]>(
  handler: FetchHandler<Args>,
  options: TenancyOptions | ((request: Request, ...args: Args) => TenancyOptions) = {},
): (request: Request, ...args: Args) => Promise<Response> {
  if (typeof handler !== 'function') throw invalidOption('withTenancy.handler', 'must be a function')
  if (typeof options !== 'function') return applyMiddleware(tenancy(options), handler)
  // Bounded by the option objects alive: a dropped one takes its chain with it.
  const chains = new WeakMap<TenancyOptions, Middleware>()
  return function withTenancy(request, ...args) {
    recordExecutionContext(request, args)
    const resolved = options(request, ...args)
    let chain = chains.get(resolved)
    if (!chain) {
      chain = tenancy(resolved)
      chains.set(resolved, chain)
    }
    return chain(request, async (handed = request) => handler(handed, ...args))
  }
}
