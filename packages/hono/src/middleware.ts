import { invalidOption, isThenable, TenantError } from '@tenant/core'
import {
  Admission,
  type ChainStage,
  type ConcurrencyOptions,
  claimResponse,
  concurrencyStage,
  decide,
  type ResolverOptions as FetchResolverOptions,
  type TenancyOptions as FetchTenancyOptions,
  getTenant,
  getTenantId,
  type HostHooks,
  type HostPrincipal,
  inheritTenantState,
  isListField,
  listItemsAt,
  type Middleware,
  type PolicyOptions,
  policyStage,
  type QuotaOptions,
  quotaStage,
  type RateLimitOptions,
  rateLimitStage,
  recordExecutionContext,
  resolverStage,
  responseForHeaders,
  tenancyStages,
  type WaitUntil,
  withoutEarlierHeaders,
} from '@tenant/fetch'
import type { Context, Env, MiddlewareHandler, Next } from 'hono'
import type { OptionalTenantEnv, TenantEnv } from './env'

type MaybePromise<T> = T | Promise<T>

/**
 * Runs a `@tenant/fetch` middleware as a Hono middleware: the Fetch middleware's `next()` runs
 * the rest of the Hono chain, and its answer (a refusal, or the downstream response with headers
 * added) becomes `c.res`. After the resolver, `c.var.tenantId` and `c.var.tenant` are set.
 *
 * @example
 * ```ts
 * app.use(fromFetch(async (request, next) => withAuditHeader(await next())))
 * ```
 */
export function fromFetch<E extends Env = TenantEnv>(middleware: Middleware): MiddlewareHandler<E> {
  return async function fromFetchMiddleware(c, next) {
    const request = requestOf(c)
    // What applyMiddleware records from a fetch handler's arguments: a middleware that watches the
    // response body (tenantMetricsMiddleware) needs Workers' ctx to see a client leave.
    recordExecutionContext(request, [honoExecutionContext(c)])
    let passed = false
    const response = await middleware(request, async () => {
      passed = true
      const tenantId = getTenantId(request)
      if (tenantId !== undefined) {
        c.set('tenantId' as never, tenantId as never)
        c.set('tenant' as never, getTenant(request) as never)
        // A Fetch resolver's decision, for the chains after a middleware that replaces c.req.raw.
        ;(c as Carrier)[resolvedRequest] = request
      }
      await next()
      return c.res
    })
    if (!passed) return refuse(c, response)
    if (response !== c.res) {
      // Dropping c.res first stops Hono from copying the old headers over the ones just added.
      c.res = undefined
      c.res = response
    }
  }
}

/**
 * A refusal keeps the headers earlier middleware set with `c.header()`, as `c.json()` would:
 * reading `c.res` materialises them and the setter copies them onto the new response. The setter
 * copies them over the refusal's own, so those are put back: its `Cache-Control: no-store` and its
 * other headers win, and its `RateLimit-Policy` / `RateLimit` items go before the earlier stages'
 * (as on the Fetch host and under @hono/node-server).
 */
function refuse(c: Context, response: Response): Response {
  if (!c.res) return c.res
  const own = [...response.headers]
  c.res = response
  const sent = c.res
  if (sent === response) return sent
  for (const [name, value] of own) {
    if (name === 'set-cookie') continue
    const now = sent.headers.get(name)
    if (now === null || now === value) continue
    if (name !== 'ratelimit-policy' && name !== 'ratelimit') sent.headers.set(name, value)
    else if (listItemsAt(now, value) === -1) sent.headers.set(name, `${value}, ${now}`)
  }
  return sent
}

const APPEND = Object.freeze({ append: true })

/**
 * The request a resolver of this Hono context decided on, kept on `c`: a middleware between two
 * chains may replace `c.req.raw` (Hono's `bodyLimit` does for a body without Content-Length, a
 * chunked upload), and the Request object is where the decision rides. See {@link requestOf}.
 */
const resolvedRequest = Symbol('@tenant/hono.resolvedRequest')
type Carrier = Context & { [resolvedRequest]?: Request }

/**
 * `c.req.raw`, carrying the decision of a resolver that ran earlier in this context on the
 * Request it replaced: the stages of a split chain (`tenantQuota()` after `bodyLimit()`) find the
 * tenant, and a later resolver (a sub-app's `tenancy()` under `app.route()`) confirms it instead
 * of resolving again, with or without the tenant context (`context: false`).
 */
function requestOf(c: Context): Request {
  const request = c.req.raw
  const resolved = (c as Carrier)[resolvedRequest]
  if (resolved !== undefined && resolved !== request) inheritTenantState(resolved, request)
  return request
}

/**
 * The Hono host of a chain of `@tenant/fetch` stages: the stages decide before the handler, their
 * headers go out through `c.header()` (so Hono builds the response with them, and no response is
 * rebuilt), the handler runs with the tenant as `currentTenantId()`, and `c.var.tenantId` /
 * `c.var.tenant` are set. A response that does not carry the headers (one the handler built
 * itself, such as `Response.redirect()`) gets them afterwards, as in `@tenant/fetch`.
 */
function honoChain(name: string, stages: readonly ChainStage[]): MiddlewareHandler<any> {
  const middleware = {
    [name](c: Context, next: Next): Promise<Response | undefined> {
      const outcome = decide(stages, requestOf(c), c, honoHost)
      if (isThenable(outcome)) return outcome.then((decided) => proceed(c, decided, next))
      return proceed(c, outcome, next)
    },
  }
  return middleware[name]! as MiddlewareHandler<any>
}

/** Hono's `c.executionCtx`, whose getter throws when the app was called without one (Node, Bun). */
function honoExecutionContext(host: unknown): WaitUntil | undefined {
  try {
    return (host as Context).executionCtx
  } catch {
    return undefined
  }
}

/** Header values as Node's `http.ServerResponse` takes them. */
type NodeHeaderValue = string | number | readonly string[]
type NodeHeaders = Record<string, NodeHeaderValue | undefined>

/** The part of Node's `http.ServerResponse` (or HTTP/2 compatibility response) the chain uses. */
interface NodeResponse {
  once(event: 'close', listener: () => void): unknown
  off(event: 'close', listener: () => void): unknown
  writeHead(status: number, second?: unknown, third?: unknown): unknown
  getHeader(name: string): NodeHeaderValue | undefined
  setHeader(name: string, value: NodeHeaderValue): unknown
  destroyed?: boolean
  writableFinished?: boolean
  /** The connection, once the response may write to it; null while queued behind another. */
  socket?: NodeConnection | null
}

/** The part of a `net.Socket` a queued response's end is watched on. */
interface NodeConnection {
  once(event: 'close', listener: () => void): unknown
  off(event: 'close', listener: () => void): unknown
  destroyed?: boolean
}

function isNodeResponse(value: unknown): value is NodeResponse {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as NodeResponse).once === 'function' &&
    typeof (value as NodeResponse).writeHead === 'function' &&
    typeof (value as NodeResponse).getHeader === 'function' &&
    typeof (value as NodeResponse).setHeader === 'function'
  )
}

/**
 * `c.env.outgoing` when the app runs under @hono/node-server and this context's request is the one
 * the server made for it: the request's Node response. A request the app makes to itself with the
 * same bindings (`app.request(path, init, c.env)`, Hono's way to hand them on) carries the outer
 * request's response there; taken for its own, its headers would go out on the outer response and
 * its slot would be held until the outer response closed. Such a request, or one a middleware
 * replaced, takes the general path (headers through `c.header()`, the end from its body).
 */
function nodeResponseOf(c: Context): NodeResponse | undefined {
  const env = c.env as { incoming?: unknown; outgoing?: unknown } | undefined
  const outgoing = env?.outgoing
  if (!isNodeResponse(outgoing)) return undefined
  return madeFrom(c.req.raw, env!.incoming) ? outgoing : undefined
}

// @hono/node-server keeps the IncomingMessage a Request was made from under a symbol of its own
// (not a registered one), found once by its description on a request that has it.
let incomingKey: symbol | undefined

function madeFrom(request: Request, incoming: unknown): boolean {
  if (incoming === undefined || incoming === null) return false
  const held = request as unknown as Record<symbol, unknown>
  if (incomingKey !== undefined) return held[incomingKey] === incoming
  const key = Object.getOwnPropertySymbols(request).find((symbol) => symbol.description === 'incomingKey')
  if (key === undefined || held[key] !== incoming) return false
  incomingKey = key
  return true
}

/**
 * Under @hono/node-server, `c.env.outgoing` is the request's `http.ServerResponse`: its 'close'
 * comes once the response has been written out or the connection dropped, so a stage holding a
 * slot learns the end without wrapping the body (which would cost a stream per response and the
 * server's fast path for bodies known in full) or reading `request.signal` (which builds the
 * full Request there). Elsewhere (Bun, Workers, `app.request`) the stage watches the body.
 */
function whenSent(host: unknown, done: () => void): boolean {
  const outgoing = nodeResponseOf(host as Context)
  if (outgoing === undefined) return false
  // Already over (the client went away before the chain ran): 'close' will not come again.
  if (outgoing.destroyed === true || outgoing.writableFinished === true) done()
  else if (outgoing.socket !== null) outgoing.once('close', done)
  else
    whenQueuedSent(outgoing, (host as Context).env as { incoming?: { socket?: NodeConnection | null } }, done)
  return true
}

/**
 * A pipelined request's response waits for the one before it on the connection, with no socket
 * of its own yet; when the client leaves, Node closes only the response on the socket, and a
 * queued one never emits 'close'. So its end is also the connection's close. The connection's
 * listener goes when the response closes: a kept-alive connection would collect one per request.
 */
function whenQueuedSent(
  outgoing: NodeResponse,
  env: { incoming?: { socket?: NodeConnection | null } },
  done: () => void,
): void {
  const connection = env.incoming?.socket
  if (connection === undefined || connection === null) {
    outgoing.once('close', done)
    return
  }
  if (connection.destroyed === true) {
    done()
    return
  }
  const end = () => {
    outgoing.off('close', end)
    connection.off('close', end)
    done()
  }
  outgoing.once('close', end)
  connection.once('close', end)
}

// Hono's routed path (`c.req.path`): under `strict: false` it has no trailing slash.
const routedPath = (host: unknown): string => (host as Context).req.path

const honoHost: HostHooks = Object.freeze({ executionContext: honoExecutionContext, whenSent, routedPath })

/** A single stage as a Hono middleware; a stage without its store is a pass-through. */
function honoStage(name: string, stage: ChainStage | undefined): MiddlewareHandler<TenantEnv> {
  if (stage === undefined) return (_c, next) => next()
  return honoChain(name, [stage])
}

function proceed(c: Context, outcome: Admission | Response, next: Next): Promise<Response | undefined> {
  if (!(outcome instanceof Admission)) return Promise.resolve(refuse(c, outcome))
  if (outcome.resolved) {
    ;(c as Carrier)[resolvedRequest] = outcome.request
    if (outcome.tenantId !== undefined) {
      c.set('tenantId' as never, outcome.tenantId as never)
      c.set('tenant' as never, outcome.tenant as never)
    }
  } else if (outcome.tenantId !== undefined && c.get('tenantId' as never) === undefined) {
    // Stages without a resolver in a context whose resolver ran elsewhere (a sub-app called
    // through mount(): the tenant came in the tenant context): the handler still finds it.
    c.set('tenantId' as never, outcome.tenantId as never)
    c.set('tenant' as never, outcome.tenant as never)
  }
  if (!outcome.pending) {
    const done = outcome.runDownstream(next)
    // A response an earlier request's stages wrote into (one object handed to every request) goes
    // out without their headers.
    return done.then(
      () => {
        outcome.finished = true
        const response = c.res
        const sent = withoutEarlierHeaders(response, outcome.owner)
        if (sent !== response) {
          c.res = undefined
          c.res = sent
        }
        return undefined
      },
      (error: unknown) => {
        outcome.finished = true
        throw error
      },
    )
  }
  // Under @hono/node-server the headers join the response head as Node writes it (see
  // writeHeadWith); elsewhere they go through c.header(), and settle() checks them afterwards.
  const outgoing = nodeResponseOf(c)
  let written: readonly [string, string][] | undefined
  if (outgoing !== undefined) writeHeadWith(outgoing, outcome)
  else {
    written = outcome.headers()
    for (const [name, value] of written) c.header(name, value, isListField(name) ? APPEND : undefined)
  }
  const done = outcome.runDownstream(next)
  // One reaction for both outcomes (not .then().catch(): a second promise on every request).
  const abandon = (error: unknown): never => {
    // The handler or a finisher threw past Hono's error handler: give back what the stages hold.
    outcome.finished = true
    outcome.abandon()
    throw error
  }
  return done.then(() => {
    outcome.finished = true
    try {
      const response = c.res
      const finished = outcome.finish(response)
      if (isThenable(finished)) {
        return finished.then((sent) => conclude(c, outcome, written, response, sent)).then(undefined, abandon)
      }
      return conclude(c, outcome, written, response, finished)
    } catch (error) {
      return abandon(error)
    }
  }, abandon)
}

/**
 * After the handler and the finishers: puts a finisher's replacement response (a wrapped body) in
 * place of the handler's, and, when the headers went through `c.header()` (`written`), makes sure
 * the response carries them.
 */
function conclude(
  c: Context,
  outcome: Admission,
  written: readonly [string, string][] | undefined,
  handled: Response,
  sent: Response,
): undefined {
  if (sent !== handled) {
    // Hono must not copy the old headers over the new response's.
    c.res = undefined
    c.res = sent
  }
  if (written !== undefined) settle(c, outcome, written, sent)
  return undefined
}

/**
 * Under @hono/node-server, `c.header()` would put the stages' headers in a Fetch `Headers` (which
 * checks every value character by character in JavaScript and sorts its list when read), and the
 * server would then copy them out into the object Node writes: about 6 µs per request for the four
 * quota and rate-limit headers, more than every stage's decision together. There they join the
 * head as Node writes it instead, with the rules of {@link settle}, and the handler's response is
 * never touched. The cost: a middleware mounted before the chain does not see these headers on
 * `c.res` under this server (the client gets them all the same).
 *
 * `outgoing.writeHead` adds the admission's headers, read when the head is written (after the
 * finishers, so the quota's `actualTokens` values are the ones sent), to the headers it is given:
 * the items of `RateLimit-Policy` and `RateLimit` after the response's own, any other name with
 * the stage's value. Every head goes through `writeHead` (`end()` without it calls it too). The
 * first chain of a request wraps it; a chain mounted after it (split stages, a sub-app's
 * `tenancy()`) joins the list, and the head gets every chain's items in the order the chains ran,
 * as through `c.header()`.
 */
function writeHeadWith(outgoing: NodeResponse, outcome: Admission): void {
  const response = outgoing as NodeResponse & { [stagedHead]?: StagedHead }
  const first = response[stagedHead]
  if (first !== undefined) {
    let last = first
    while (last.next !== undefined) last = last.next
    last.next = new StagedHead(undefined, outcome)
    return
  }
  // Kept on the response with one shared function rather than in a closure made per request: a
  // closure stored on the response made an in-process run of 120k requests take 15 mark-compacts
  // instead of 2, and doubled their time (Node 20).
  response[stagedHead] = new StagedHead(response.writeHead, outcome)
  response.writeHead = writeHeadWithStages
}

const stagedHead = Symbol('tenant.stagedHead')

/** What the chains of a request left on its Node response: their admissions, in the order they ran. */
class StagedHead {
  /** The admission of the chain that ran next in the same request. */
  next: StagedHead | undefined = undefined
  constructor(
    /** The `writeHead` the first chain wrapped (only on the first). */
    readonly writeHead: NodeResponse['writeHead'] | undefined,
    readonly outcome: Admission,
  ) {}
}

// writeHead(status, headers?) or writeHead(status, statusMessage, headers?)
function writeHeadWithStages(
  this: NodeResponse & { [stagedHead]?: StagedHead },
  status: number,
  second?: unknown,
  third?: unknown,
): unknown {
  const first = this[stagedHead]!
  this[stagedHead] = undefined
  // Node's own goes back: a second head is Node's error to raise, not ours.
  const writeHead = first.writeHead!
  this.writeHead = writeHead
  let headers = typeof second === 'string' ? third : second
  for (let staged: StagedHead | undefined = first; staged !== undefined; staged = staged.next) {
    headers = withStageHeaders(this, headers, staged.outcome.headers())
  }
  return typeof second === 'string'
    ? writeHead.call(this, status, second, headers)
    : writeHead.call(this, status, headers)
}

/**
 * Sets the stages' headers on `outgoing` with `setHeader()` (which Node merges under the headers
 * `writeHead` is given) and answers the headers to hand on: those given, or, when they name a
 * stage header, a copy without it (its value went into the merge). `setHeader()` rather than a
 * merged object: Node checks an object's values again as it writes them, about 5 µs more for the
 * four headers (measured on Node 20). The given headers are an object, a flat
 * `[name, value, ...]` list or a list of pairs, and are never changed in place: they may be the
 * application's own object.
 */
function withStageHeaders(
  outgoing: NodeResponse,
  given: unknown,
  stages: readonly [string, string][],
): unknown {
  let headers = given
  let keys: string[] | undefined
  if (Array.isArray(headers)) headers = fromList(headers)
  if (typeof headers === 'object' && headers !== null) keys = Object.keys(headers)
  for (let i = 0; i < stages.length; i++) {
    const name = stages[i]![0]
    const value = stages[i]![1]
    // Sent in lower case, as through c.header() (the Headers class lowers every name).
    const lower = lowerNames[name] ?? name.toLowerCase()
    let key: string | undefined
    if (keys !== undefined) {
      for (let k = 0; k < keys.length; k++) {
        const candidate = keys[k]!
        if (candidate.length === lower.length && candidate.toLowerCase() === lower) {
          key = candidate
          break
        }
      }
    }
    let own: NodeHeaderValue | undefined
    if (key !== undefined) {
      // The response names it too: its value is merged here (list fields) or replaced, and the
      // copy handed on leaves it out so that Node does not put it back over the merge.
      if (headers === given) headers = { ...(given as NodeHeaders) }
      own = (headers as NodeHeaders)[key]
      delete (headers as NodeHeaders)[key]
    } else if (isListField(name)) {
      own = outgoing.getHeader(lower)
    }
    outgoing.setHeader(lower, isListField(name) ? appended(own, value) : value)
  }
  return headers
}

/** A list field's value with a stage's items after the response's own (once). */
function appended(own: NodeHeaderValue | undefined, value: string): string {
  const current = own === undefined ? '' : Array.isArray(own) ? own.join(', ') : String(own)
  if (current === '') return value
  return listItemsAt(current, value) !== -1 ? current : `${current}, ${value}`
}

/** A `writeHead` list of headers (flat, or pairs) as an object; a repeated name keeps every value. */
function fromList(list: readonly unknown[]): NodeHeaders {
  const headers: NodeHeaders = {}
  const add = (name: string, value: string) => {
    const had = headers[name]
    headers[name] = had === undefined ? value : [...(Array.isArray(had) ? had : [String(had)]), value]
  }
  if (list.length > 0 && Array.isArray(list[0])) {
    for (const [name, value] of list as [string, string][]) add(name, value)
  } else {
    for (let i = 0; i + 1 < list.length; i += 2) add(list[i] as string, list[i + 1] as string)
  }
  return headers
}

const lowerNames: Record<string, string> = {
  'RateLimit-Policy': 'ratelimit-policy',
  RateLimit: 'ratelimit',
  'X-Quota-Remaining-Requests': 'x-quota-remaining-requests',
  'X-Quota-Remaining-Tokens': 'x-quota-remaining-tokens',
}

/**
 * After the handler and the stages' finishers (the quota's `actualTokens`): makes sure the
 * response carries the stages' headers. One the handler built with `c.json()` / `c.text()` has
 * them already and goes out as it is. A Response the handler built itself, or a header it
 * overwrote, is put right in a copy (the handler may hand the same object to other requests and
 * routes; see responseForHeaders), with the same rules as `@tenant/fetch`: the stages' items are
 * appended to the handler's own `RateLimit-Policy` and `RateLimit`, any other header of a stage
 * replaces the handler's.
 */
function settle(
  c: Context,
  outcome: Admission,
  written: readonly [string, string][],
  response: Response,
): undefined {
  const wanted = outcome.headers()
  if (fixesFor(response, wanted, written) === undefined && claimResponse(response, wanted, outcome.owner)) {
    return undefined
  }
  const target = responseForHeaders(response, wanted, outcome.owner)
  for (const [name, value] of fixesFor(target, wanted, written) ?? []) target.headers.set(name, value)
  if (target !== response) {
    // Dropping c.res first stops Hono from copying the old headers over the ones just set.
    c.res = undefined
    c.res = target
  }
  return undefined
}

/** The headers `response` needs set so that it carries the stages' `wanted` headers, if any. */
function fixesFor(
  response: Response,
  wanted: readonly [string, string][],
  written: readonly [string, string][],
): [string, string][] | undefined {
  let fixes: [string, string][] | undefined
  for (let i = 0; i < wanted.length; i++) {
    const [name, value] = wanted[i]!
    // A get() per name, not one pass over the headers: where this runs (Bun, Workers, Deno,
    // app.request(); not @hono/node-server) get() is the cheaper, about 1 µs less on Bun.
    const now = response.headers.get(name)
    if (now === value) continue
    let fixed = value
    if (isListField(name) && now !== null) {
      if (listItemsAt(now, value) !== -1) continue
      const before = written.find(([n]) => n === name)?.[1]
      // An adjusted value (actualTokens) replaces what went out before the handler ran.
      const at = before === undefined ? -1 : listItemsAt(now, before)
      fixed = at !== -1 ? now.slice(0, at) + value + now.slice(at + before!.length) : appended(now, value)
    }
    fixes ??= []
    fixes.push([name, fixed])
  }
  return fixes
}

/** Options of the Hono {@link tenantResolver}. */
export interface ResolverOptions extends Omit<FetchResolverOptions, 'principal'> {
  /**
   * The authenticated principal's tenant, read from the Hono context (your auth middleware's
   * variables). Replaces the JWT claim lookup.
   * @default reads `jwtClaim` from the `jwtPayload` that `hono/jwt` sets
   */
  principal?: (c: Context) => MaybePromise<string | null | undefined>
  /**
   * The claim of the `hono/jwt` payload (`c.get('jwtPayload')`) that holds the tenant id; `false`
   * to not read it.
   * @default 'tenant_id'
   */
  jwtClaim?: string | false
}

function resolverParts(options: ResolverOptions): {
  options: FetchResolverOptions
  principalOf: HostPrincipal | undefined
} {
  if (typeof options !== 'object' || options === null)
    throw invalidOption('tenantResolver', 'options must be an object')
  const { principal, jwtClaim = 'tenant_id', ...rest } = options
  if (principal !== undefined && typeof principal !== 'function') {
    throw invalidOption('tenantResolver.principal', 'must be a function of the Hono context')
  }
  if (jwtClaim !== false && (typeof jwtClaim !== 'string' || jwtClaim === '')) {
    throw invalidOption('tenantResolver.jwtClaim', 'must be a claim name or false')
  }
  const fromContext = principal ?? (jwtClaim === false ? undefined : jwtPrincipal(jwtClaim))
  if (!fromContext) return { options: rest, principalOf: undefined }
  return {
    // Without a verified JWT on the request (no hono/jwt on this route) there is no principal, so
    // the default JWT principal lets the extractors decide; a JWT without the claim is refused in
    // jwtPrincipal. An explicit principal is the only source, as in @tenant/fetch.
    options: principal === undefined ? { fallbackToExtractors: true, ...rest } : rest,
    // The resolver hands the host's context (this adapter's `c`) to the principal.
    principalOf: (_request, c) => fromContext(c as Context),
  }
}

function jwtPrincipal(claim: string) {
  return (c: Context): string | undefined => {
    const payload: unknown = c.get('jwtPayload')
    if (typeof payload !== 'object' || payload === null) return undefined
    const value = (payload as Record<string, unknown>)[claim]
    // A verified token that names no tenant must not fall back to a header naming any tenant.
    if (value === undefined || value === null || value === '') {
      throw new TenantError('tenant_required', `the token has no "${claim}" claim`)
    }
    return value as string
  }
}

/**
 * Resolves the tenant (principal, then the extractors) and sets `c.var.tenantId` and
 * `c.var.tenant`. The principal defaults to the `tenant_id` claim of a `hono/jwt` payload. Same
 * options, codes and hooks as `@tenant/fetch`'s `tenantResolver`.
 *
 * @example
 * ```ts
 * app.use('/api/*', jwt({ secret, alg: 'HS256' }), tenantResolver({ configManager }))
 * ```
 */
export function tenantResolver(
  options: ResolverOptions & { allowMissing: true },
): MiddlewareHandler<OptionalTenantEnv>
export function tenantResolver(options?: ResolverOptions): MiddlewareHandler<TenantEnv>
export function tenantResolver(options: ResolverOptions = {}): MiddlewareHandler<any> {
  const parts = resolverParts(options)
  return honoChain('tenantResolver', [resolverStage(parts.options, parts.principalOf)])
}

/**
 * Enforces the tenant's model / tool / method / path allow-lists (403 `tenant_policy_denied`).
 * Same options as `@tenant/fetch`'s `tenantPolicy`; put it after the resolver.
 *
 * @example
 * ```ts
 * app.use('/api/*', tenantResolver(), tenantPolicy({ evaluator: new ConfigPolicyEvaluator(configs) }))
 * ```
 */
export function tenantPolicy(options: PolicyOptions = {}): MiddlewareHandler<TenantEnv> {
  return honoStage('tenantPolicy', policyStage(options))
}

/**
 * Caps each tenant's requests in flight (429 `tenant_concurrency_limited`, `Retry-After: 1`); the
 * slot is held until the response body has been sent. Same options as `@tenant/fetch`'s
 * `tenantConcurrency`; put it after the resolver.
 *
 * @example
 * ```ts
 * app.use('/api/*', tenantResolver({ configManager: configs }), tenantConcurrency({ limiter: new InMemoryConcurrencyLimiter() }))
 * ```
 */
export function tenantConcurrency(options: ConcurrencyOptions = {}): MiddlewareHandler<TenantEnv> {
  return honoStage('tenantConcurrency', concurrencyStage(options))
}

/**
 * Limits each tenant's request rate (429 `tenant_rate_limited`, `Retry-After`, RateLimit fields).
 * Same options as `@tenant/fetch`'s `tenantRateLimit`; put it after the resolver.
 *
 * @example
 * ```ts
 * app.use('/api/*', tenantResolver(), tenantRateLimit({ limiter: new TokenBucketRateLimiter(configs) }))
 * ```
 */
export function tenantRateLimit(options: RateLimitOptions = {}): MiddlewareHandler<TenantEnv> {
  return honoStage('tenantRateLimit', rateLimitStage(options))
}

/**
 * Charges each request to the tenant's quota (429 `tenant_quota_exceeded`, `Retry-After`,
 * RateLimit fields, `X-Quota-Remaining-*`). Same options as `@tenant/fetch`'s `tenantQuota`; put
 * it after the resolver.
 *
 * @example
 * ```ts
 * app.use('/api/*', tenantResolver(), tenantQuota({ manager: new InMemoryQuotaManager(configs) }))
 * ```
 */
export function tenantQuota(options: QuotaOptions = {}): MiddlewareHandler<TenantEnv> {
  return honoStage('tenantQuota', quotaStage(options))
}

/** Options of the Hono {@link tenancy}: `@tenant/fetch`'s, with the Hono resolver options. */
export interface TenancyOptions extends Omit<FetchTenancyOptions, 'resolver'> {
  /** Resolver options; the principal reads the Hono context. @default header `X-Tenant-ID`, JWT claim `tenant_id` */
  resolver?: ResolverOptions
}

/**
 * The whole chain, resolve -> policy -> concurrency -> rate limit -> quota, as one Hono middleware; stages
 * without a store are left out. Sets `c.var.tenantId` and `c.var.tenant`.
 *
 * @example
 * ```ts
 * const app = new Hono()
 * app.get('/health', (c) => c.text('ok')) // outside the chain
 * app.use('/api/*', tenancy({ configManager: configs, quota: new InMemoryQuotaManager(configs) }))
 * app.get('/api/me', (c) => c.json({ tenant: c.var.tenantId }))
 * ```
 */
export function tenancy(
  options: TenancyOptions & { resolver: { allowMissing: true } },
): MiddlewareHandler<OptionalTenantEnv>
export function tenancy(options?: TenancyOptions): MiddlewareHandler<TenantEnv>
export function tenancy(options: TenancyOptions = {}): MiddlewareHandler<any> {
  // Checked here too: the resolver options are read before @tenant/fetch sees the rest.
  if (typeof options !== 'object' || options === null)
    throw invalidOption('tenancy', 'options must be an object')
  const parts = resolverParts(options.resolver ?? {})
  return honoChain('tenancy', tenancyStages({ ...options, resolver: parts.options }, parts.principalOf))
}
