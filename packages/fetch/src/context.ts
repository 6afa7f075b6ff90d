import type { TenantConfig } from '@tenant/core'

/** What the resolver learned about one request. */
export interface TenantState {
  tenantId: string | undefined
  tenant: TenantConfig | undefined
  /** The store `tenant` was read from, so later stages reuse it only for managers reading that store. */
  source: object | undefined
  /**
   * The request this decision belongs to, as the first chain that decided it saw it: the same
   * across the Request objects one request passes through (a middleware that replaces it, a
   * sub-application called with a new one), so the stages' headers an inner chain wrote into a
   * response are not taken for another request's by an outer one (see {@link ownerOf}).
   */
  owner: object
  /**
   * True once the run this decision was made for has answered (its handler settled). The state
   * stays on the Request object, which can be sent again, or handed to another request's code (a
   * module-level Request for an internal call): no later run may take it as its own.
   */
  readonly finished?: boolean
  /**
   * Whether this request's run holds a slot of `limiter` (its concurrency stage took one) and has
   * not answered yet: a chain nested in the run (a sub-app's, a route's) takes none of its own.
   */
  holdsSlot?(limiter: object): boolean
}

// The state rides on the Request object itself, under a module-private symbol, so it lives exactly
// as long as the request and needs no cleanup. A WeakMap did the same at about 1 µs per request on
// Node 20 (every request is a new key, and the collector pays for each ephemeron); a property costs
// nothing measurable. A runtime whose Request objects refuse new properties falls back to a WeakMap.
const stateKey = Symbol('@tenant/fetch.state')
let fallback: WeakMap<Request, TenantState> | undefined

type Carrier = Request & { [stateKey]?: TenantState }

/** Records the resolver's outcome on a request. Internal: only the resolver writes state. */
export function setTenantState(request: Request, state: TenantState): void {
  try {
    ;(request as Carrier)[stateKey] = state
  } catch {
    fallback ??= new WeakMap()
    fallback.set(request, state)
  }
}

/** The resolver's outcome for `request`, or `undefined` when no resolver ran. Internal. */
export function tenantState(request: Request): TenantState | undefined {
  return (request as Carrier)[stateKey] ?? fallback?.get(request)
}

/**
 * The request `value` is part of, for telling the stages' headers of one request from another's
 * on a shared response object (`withHeaders`' `owner`): the {@link TenantState.owner} of the
 * decision it carries, else `value` itself.
 */
export function ownerOf(value: object): object {
  return tenantState(value as Request)?.owner ?? value
}

/** True once a resolver ran on this request (with or without finding a tenant). */
export function isResolved(request: Request): boolean {
  return tenantState(request) !== undefined
}

/**
 * Carries the tenant a resolver found for `from` over to `to`, a Request made from it, unless `to`
 * already carries a decision of the same request (a resolver ran on it since). A decision `to`
 * carries from another request (one Request object handed downstream by several requests) is
 * replaced: it would answer that request's tenant. `compose()` does this when a middleware hands a new Request
 * downstream, and `@tenant/hono` when a middleware replaces `c.req.raw` (Hono's `bodyLimit` does
 * for a chunked body); call it where your own code replaces the request outside those, so that
 * the stages after it find the tenant and a later resolver confirms it rather than resolving again.
 *
 * @example
 * ```ts
 * const buffered = new Request(request, { body: await request.arrayBuffer() })
 * inheritTenantState(request, buffered)
 * return next(buffered)
 * ```
 */
export function inheritTenantState(from: Request, to: Request): void {
  const state = tenantState(from)
  if (state === undefined) return
  if (to !== from) handedOn.set(to, from)
  const held = tenantState(to)
  if (held === undefined || held.owner !== state.owner) setTenantState(to, state)
}

// Request -> the request inheritTenantState handed its decision from: the same request passed on
// (a rewrite, a buffered body). Rare (a rewrite), so a WeakMap.
const handedOn = new WeakMap<Request, Request>()

/**
 * The request `request` was made from, through every `inheritTenantState` hand-on (`request`
 * itself when it was handed nothing): the client's request for a rewrite of it, a request the app
 * made on its own for a rewrite of that one. Internal: the policy checks the path of this one.
 */
export function handedFrom(request: Request): Request {
  let current = request
  // Bounded: a hand-on chain is as long as the middleware that replace the request.
  for (let step = 0; step < 64; step++) {
    const from = handedOn.get(current)
    if (from === undefined) return current
    current = from
  }
  return current
}

/**
 * The tenant id the resolver found for `request`, or `undefined` when none was resolved
 * (the resolver did not run, or `allowMissing` let an anonymous request through).
 *
 * @example
 * ```ts
 * const handler = withTenancy((request) => new Response(`hello ${getTenantId(request)}`), { configManager })
 * ```
 */
export function getTenantId(request: Request): string | undefined {
  return decisionOf(request)?.tenantId
}

/**
 * The tenant's stored config, when the resolver checked the tenant against a `configManager`;
 * otherwise `undefined`.
 *
 * @example
 * ```ts
 * const plan = getTenant(request)?.metadata.plan
 * ```
 */
export function getTenant(request: Request): TenantConfig | undefined {
  return decisionOf(request)?.tenant
}

/**
 * The decision `getTenantId` and `getTenant` answer from: the request's, unless the caller runs
 * in another request's resolver scope and the decision on the Request is not one made for the
 * Request itself (one Request object used by the code of several requests at once, the last
 * decision written on it another request's), then the scope's. A decision made for the Request
 * itself and still running answers in any scope: code of one request that reads another's (a
 * batch flushed from the first request's timer) gets that request's tenant. A finished decision
 * still answers outside a scope: a middleware around the chain reads it after the handler.
 */
function decisionOf(request: Request): TenantState | undefined {
  const state = tenantState(request)
  if (state === undefined || (state.owner === request && state.finished !== true)) return state
  return foreignScope(state) ?? state
}

/** The resolver scope the caller runs in, when it is another request's than `state`'s. */
function foreignScope(state: TenantState): TenantState | undefined {
  const scope = resolvedScope()
  return scope !== undefined && scope.owner !== state.owner ? scope : undefined
}

interface Storage<T> {
  run<R>(store: T, fn: () => R): R
  getStore(): T | undefined
}

interface Scope {
  readonly tenantId: string | undefined
}

/**
 * The scope a chain's host opens for the handler once a resolver decided (see
 * {@link runResolved}): the tenant, with the config the resolver read. Told apart from a scope of
 * {@link runWithTenantId} (user code: a queue consumer, a test) by its class, so only a resolver's
 * decision counts as an earlier resolver's for the resolvers and stages further down.
 */
class ResolvedScope implements Scope, TenantState {
  readonly tenantId: string | undefined
  readonly tenant: TenantConfig | undefined
  readonly source: object | undefined
  readonly owner: object
  readonly #from: TenantState

  constructor(from: TenantState) {
    this.tenantId = from.tenantId
    this.tenant = from.tenant
    this.source = from.source
    this.owner = from.owner
    this.#from = from
  }

  /** The decision's own: a scope stored on a Request (see `decide`) ends with its run. */
  get finished(): boolean {
    return this.#from.finished === true
  }

  holdsSlot(limiter: object): boolean {
    return this.#from.holdsSlot?.(limiter) === true
  }
}

let storage: Storage<Scope> | null | undefined

// Loaded without an `import` statement: a static `node:async_hooks` import would stop the whole
// package from loading on runtimes without it (Workers without nodejs_compat), although only
// currentTenantId() needs it. `process.getBuiltinModule` exists on Node >= 20.16, Bun, Deno and
// Workers with nodejs_compat; some edge runtimes expose the class globally instead.
function loadStorage(): Storage<Scope> | null {
  if (storage !== undefined) return storage
  const g = globalThis as {
    process?: { getBuiltinModule?: (id: string) => { AsyncLocalStorage?: new () => Storage<Scope> } }
    AsyncLocalStorage?: new () => Storage<Scope>
  }
  let Ctor: (new () => Storage<Scope>) | undefined
  try {
    Ctor = g.process?.getBuiltinModule?.('node:async_hooks')?.AsyncLocalStorage ?? g.AsyncLocalStorage
  } catch {
    Ctor = g.AsyncLocalStorage
  }
  storage = Ctor ? new Ctor() : null
  return storage
}

/**
 * True when this runtime has AsyncLocalStorage, so {@link currentTenantId} works: Node, Bun, Deno,
 * and Cloudflare Workers with the `nodejs_compat` flag.
 *
 * @example
 * ```ts
 * // Workers without nodejs_compat: fall back to the request
 * const tenantId = isTenantContextAvailable() ? currentTenantId() : getTenantId(request)
 * ```
 */
export function isTenantContextAvailable(): boolean {
  return loadStorage() !== null
}

/**
 * Runs `fn` with `tenantId` as the {@link currentTenantId} of everything it calls, synchronously or
 * across `await`. The resolver does this for the rest of the chain; call it yourself in queue
 * consumers, cron jobs and tests. Where AsyncLocalStorage is missing, runs `fn` without a scope.
 *
 * @example
 * ```ts
 * // a queue consumer: scoped(db, currentTenantId) from @tenant/drizzle reads 'acme' below
 * await runWithTenantId('acme', () => scoped(db, currentTenantId).select().from(invoices))
 * ```
 */
export function runWithTenantId<R>(tenantId: string | undefined, fn: () => R): R {
  const als = loadStorage()
  if (!als) return fn()
  // Inside a request a resolver decided, the same tenant keeps that resolver's scope (so a
  // resolver further down still confirms it); another tenant, or none, is a deliberate switch.
  const outer = als.getStore()
  return als.run(outer instanceof ResolvedScope && outer.tenantId === tenantId ? outer : { tenantId }, fn)
}

/**
 * Runs `fn` (the rest of a chain, the handler) with the tenant a resolver decided as
 * {@link currentTenantId}, in a scope marked as a resolver's: a resolver further down, even on
 * another Request object (a sub-application called with a new Request), confirms that tenant
 * instead of resolving again, and the stages of a chain without a resolver read it. Internal: the
 * hosts call it through the admission.
 */
export function runResolved<R>(state: TenantState, fn: () => R): R {
  const als = loadStorage()
  return als ? als.run(new ResolvedScope(state), fn) : fn()
}

/**
 * The decision of the resolver whose scope the caller runs in (see {@link runResolved}), or
 * `undefined` outside one (no scope, a scope of `runWithTenantId`, or no AsyncLocalStorage).
 * Internal: what a resolver and a chain without one read when the request carries no state.
 */
export function resolvedScope(): TenantState | undefined {
  // Not loaded yet: no scope was ever opened, and nothing to pay for.
  const scope = storage?.getStore()
  return scope instanceof ResolvedScope ? scope : undefined
}

/**
 * Whether `state`, found on `request`, is not the decision of the request being handled: its run
 * has answered (the Request is sent again, or kept and used by later code), or the code runs in
 * another request's resolved scope and the decision is not `request`'s own (one Request object
 * used by several requests' code). Internal: a resolver and a chain without one then take the
 * scope, or resolve, instead.
 */
export function isStaleState(state: TenantState, request: Request): boolean {
  return state.finished === true || (state.owner !== request && foreignScope(state) !== undefined)
}

/**
 * The tenant of the request being handled, for code deep in a call that has no request at hand
 * (a store's `tenantId` source, a logger). `undefined` outside a tenant scope.
 *
 * Throws an `Error` on a runtime without AsyncLocalStorage (Workers without `nodejs_compat`)
 * rather than answering `undefined` for a request that has a tenant: use {@link getTenantId}
 * there.
 *
 * @example
 * ```ts
 * // @tenant/drizzle: every query is scoped to the tenant of the request being handled
 * const invoicesOfThisTenant = await scoped(db, currentTenantId).select().from(invoices)
 * ```
 */
export function currentTenantId(): string | undefined {
  const als = loadStorage()
  if (!als) {
    const node = (globalThis as { process?: { versions?: { node?: string; bun?: string } } }).process
      ?.versions
    const hint =
      node?.node && !node.bun
        ? `Node ${node.node} lacks process.getBuiltinModule: use Node >= 20.16`
        : 'on Cloudflare Workers, enable the "nodejs_compat" compatibility flag'
    throw new Error(
      `currentTenantId() needs AsyncLocalStorage, which this runtime does not provide (${hint}); ` +
        'use getTenantId(request) instead.',
    )
  }
  return als.getStore()?.tenantId
}
