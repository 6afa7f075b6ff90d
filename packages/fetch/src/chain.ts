import { type Clock, isThenable, type TenantConfig } from '@tenant/core'
import {
  isStaleState,
  resolvedScope,
  runResolved,
  setTenantState,
  type TenantState,
  tenantState,
} from './context'
import { executionContextOf, keepPromiseAlive, type WaitUntil } from './execution-context'
import { withHeaders, withoutEarlierHeaders } from './headers'
import type { TenancyStage } from './hooks'
import { unresolved } from './stage'
import type { MaybePromise, Middleware, Next } from './types'

/**
 * What a host binding (the Hono adapter) can do for the stages through its own context, given once
 * per chain: each method gets the host's context (Hono's `c`) as `host`. Plain functions of the
 * host rather than closures made per request: a closure kept on the admission kept each request's
 * objects alive past the young generation (measured on Node 20: about 10 µs per request in
 * collector time).
 */
export interface HostHooks {
  /**
   * The runtime's execution context (Workers' `ctx`), asked only when work must outlive the
   * response: finding it may cost (Hono's `c.executionCtx` throws, with a stack, on runtimes
   * without one).
   */
  readonly executionContext?: (host: unknown) => WaitUntil | undefined
  /**
   * Calls `done` once, when the response has been sent or the client went away, and answers
   * true; answers false when the host cannot tell. Stages that hold something until then (the
   * concurrency slot) otherwise watch the body and the request's abort signal themselves, which
   * costs a stream per response (and on @hono/node-server, reading `request.signal` builds the
   * full Request). `done` may come before the handler has answered (the client left early): the
   * concurrency stage then holds its slot until the answer.
   */
  readonly whenSent?: (host: unknown, done: () => void) => boolean
  /**
   * The path the host's router serves the request under, when it reads the URL differently from
   * the text after the host: the policy stage asks it for a path that ends with `/`, since a
   * router may drop that slash (Hono's `strict: false`) and serve a handler the path with it
   * would not name.
   */
  readonly routedPath?: (host: unknown) => string | undefined
}

const NO_HOST_HOOKS: HostHooks = Object.freeze({})

/**
 * Everything the stages of a chain decided about one request, before its handler runs: the tenant,
 * its config, the response headers each stage wants, and what must run once the handler answered.
 * A host binding (the Fetch middleware here, the Hono middleware in @tenant/hono) reads it to run
 * the handler in the tenant's scope and to write the headers its own cheapest way.
 *
 * @example
 * ```ts
 * const outcome = await decide(tenancyStages(options), request)
 * if (!(outcome instanceof Admission)) return outcome // the refusal
 * const response = await outcome.run(() => handler(request))
 * await outcome.finish(response)
 * return withHeaders(response, outcome.headers())
 * ```
 */
export class Admission implements TenantState {
  tenantId: string | undefined = undefined
  /** The tenant's stored config, when the resolver read it. */
  tenant: TenantConfig | undefined = undefined
  /** The store `tenant` came from: a manager reading that store may be handed `tenant`. */
  source: object | undefined = undefined
  /**
   * The request this one is part of: `request`, or, when an earlier resolver decided the tenant
   * (on a Request this one was made from, or in the tenant context), that decision's. What marks a
   * response as this request's when the stages write their headers into it.
   */
  owner: object
  /** Set by a resolver in this chain (it decided the tenant, `undefined` included). */
  resolved = false
  /** Set by the host once the handler has answered (see `TenantState.finished`). */
  finished = false
  // The limiters this run holds a slot of (see holdsSlot); rarely more than one.
  #slots: object[] | undefined = undefined
  /**
   * Set by a resolver in this chain: the host runs the handler with the tenant as
   * `currentTenantId()`, through {@link run}.
   */
  scoped = false
  /**
   * The cost the quota's pre-check read and checked, which its run charges: read again, a header
   * an event hook (or a store) changed in between would be charged unchecked.
   */
  quotaCost: Readonly<{ requests: number; tokens: number; subject?: string }> | undefined = undefined
  // Each stage's response headers, in stage order (see `headers()`), and their merge once made.
  #headers: (readonly [string, string][])[] | undefined = undefined
  #merged: readonly [string, string][] | undefined = undefined
  #finishers: Finisher[] | undefined = undefined
  #executionContext: WaitUntil | undefined = undefined
  #lastCount = 0
  #abandoners: (() => void)[] | undefined = undefined
  #clock: Clock | undefined = undefined
  #now = 0

  constructor(
    readonly request: Request,
    /** The host's own context (Hono's `c`), handed to callbacks that read it (the Hono principal). */
    readonly host: unknown,
    /** What the host can do with its context for the stages (see {@link HostHooks}). */
    readonly hostHooks: HostHooks = NO_HOST_HOOKS,
  ) {
    this.owner = request
  }

  /**
   * Adds a stage's response headers; returns a handle to replace them with later (`actualTokens`
   * replaces the quota's once the usage is adjusted).
   */
  addHeaders(headers: readonly [string, string][]): number {
    if (headers.length === 0) return -1
    this.#headers ??= []
    this.#merged = undefined
    return this.#headers.push(headers) - 1
  }

  /** Replaces the headers added under `handle` (see {@link addHeaders}). */
  replaceHeaders(handle: number, headers: readonly [string, string][]): void {
    if (handle < 0) {
      this.addHeaders(headers)
      return
    }
    this.#headers![handle] = headers
    this.#merged = undefined
  }

  /**
   * Registers work to run once the handler answered, before the response leaves (the quota's
   * `actualTokens` adjustment). Finishers run in the order the stages registered them, each on
   * the response the one before left; one may answer a replacement response (a stage that must
   * act when the body has been sent wraps the body in a stream that tells it). With `last`, it
   * runs after every finisher registered without it, in the order of those with it.
   */
  onResponse(finish: Finisher, options?: { last?: boolean }): void {
    this.#finishers ??= []
    // `last`: after every other finisher, whichever stage registered it (the concurrency stage
    // wraps the body that goes out, after any finisher that reads or replaces it).
    if (options?.last === true) {
      this.#lastCount++
      this.#finishers.push(finish)
    } else this.#finishers.splice(this.#finishers.length - this.#lastCount, 0, finish)
  }

  /**
   * Registers work to run if the request is given up after this stage admitted it: a later stage
   * refused it, a stage or the handler threw, or a finisher failed. The concurrency stage frees
   * its slot here; what it holds would otherwise stay taken until its lease expired.
   */
  onAbandon(abandon: () => void): void {
    this.#abandoners ??= []
    this.#abandoners.push(abandon)
  }

  /**
   * Runs `handler` (the rest of the chain) as the stages decided: when a resolver of this chain
   * asked for the tenant context (`scoped`), with the tenant as `currentTenantId()`, in a scope
   * marked as a resolver's, so that a resolver further down on another Request object (a
   * sub-application called with a new Request, Hono's `mount()`) confirms this tenant instead of
   * switching it, and stages without a resolver find it; otherwise it just calls `handler`. What a
   * host calls, rather than `runWithTenantId`, whose scope is user code's and counts for neither.
   */
  run<R>(handler: () => R): R {
    return this.scoped ? runResolved(this, handler) : handler()
  }

  /**
   * {@link run} for what comes after the stages, as a promise: a `handler` that answers a value
   * rather than a promise is taken as that value, and one that throws before answering gives back
   * what the stages hold (a concurrency slot: nothing else will carry the request to its end) and
   * becomes a rejection. What both hosts call.
   */
  runDownstream<R>(handler: () => R | PromiseLike<R>): Promise<R> {
    try {
      return Promise.resolve(this.run(handler))
    } catch (error) {
      this.abandon()
      return Promise.reject(error)
    }
  }

  /**
   * Runs the {@link onAbandon} callbacks, once (later calls do nothing); called by the hosts. A
   * callback that throws does not stop the others.
   */
  abandon(): void {
    const abandoners = this.#abandoners
    if (abandoners === undefined) return
    this.#abandoners = undefined
    for (const abandon of abandoners) {
      try {
        abandon()
      } catch {
        // Each callback reports its own failures; the request is already being given up.
      }
    }
  }

  /**
   * The runtime's execution context (Workers' `ctx`): the one the host set or finds (Hono's
   * `c.executionCtx`), else the one `withTenancy` / `applyMiddleware` recorded for the request.
   */
  get executionContext(): WaitUntil | undefined {
    this.#executionContext ??= this.hostHooks.executionContext?.(this.host)
    return this.#executionContext ?? executionContextOf(this.request)
  }

  set executionContext(context: WaitUntil | undefined) {
    this.#executionContext = context
  }

  /** Records that this run holds a slot of `limiter` (its concurrency stage took one). */
  holdSlot(limiter: object): void {
    this.#slots ??= []
    this.#slots.push(limiter)
  }

  /** See `TenantState.holdsSlot`: a slot of `limiter`, while the handler has not answered. */
  holdsSlot(limiter: object): boolean {
    return !this.finished && this.#slots !== undefined && this.#slots.includes(limiter)
  }

  /**
   * Keeps work that outlives the response (a streamed body's settlement) running: hands it to
   * `executionContext.waitUntil` when there is one, and never lets it reject unhandled.
   */
  keepAlive(promise: Promise<unknown>): void {
    keepPromiseAlive(this.executionContext, promise)
  }

  /** True when something must happen after the handler: headers to write or finishers to run. */
  get pending(): boolean {
    return this.#headers !== undefined || this.#finishers !== undefined
  }

  /**
   * Runs the finishers (see {@link onResponse}) on the handler's response; answers the response to
   * send (the same one unless a finisher replaced it).
   */
  finish(response: Response): MaybePromise<Response> {
    const finishers = this.#finishers
    if (finishers === undefined) return response
    return runAll(finishers, 0, response)
  }

  /**
   * The stages' response headers, merged: the items of `RateLimit-Policy` and `RateLimit` from
   * every stage become one value each, innermost stage first (the order separate middleware would
   * append them in: the quota's before the rate limit's); of any other name the outermost stage's
   * value wins.
   */
  headers(): readonly [string, string][] {
    this.#merged ??= merge(this.#headers)
    return this.#merged
  }

  /**
   * `clock.now()`, read once per request and clock: the stages that write the RateLimit fields'
   * `t=` share one reading (a clock read is not free: about 50 ns on a virtual machine).
   */
  now(clock: Clock): number {
    if (this.#clock !== clock) {
      this.#clock = clock
      this.#now = clock.now()
    }
    return this.#now
  }
}

const NO_HEADERS: readonly [string, string][] = Object.freeze([])

function merge(lists: (readonly [string, string][])[] | undefined): readonly [string, string][] {
  if (lists === undefined) return NO_HEADERS
  if (lists.length === 1) return lists[0]!
  let policy: string | undefined
  let state: string | undefined
  const out: [string, string][] = []
  // Innermost stage first, as separate middleware would append on the way out.
  for (let i = lists.length - 1; i >= 0; i--) {
    for (const header of lists[i]!) {
      const name = header[0]
      if (name === 'RateLimit-Policy') policy = policy === undefined ? header[1] : `${policy}, ${header[1]}`
      else if (name === 'RateLimit') state = state === undefined ? header[1] : `${state}, ${header[1]}`
      else {
        // Of one name, the outermost stage's value wins (it would be set last).
        let at = 0
        while (at < out.length && out[at]![0] !== name) at++
        out[at] = header as [string, string]
      }
    }
  }
  if (state !== undefined) out.unshift(['RateLimit', state])
  if (policy !== undefined) out.unshift(['RateLimit-Policy', policy])
  return out
}

/**
 * Work a stage runs once the handler answered (see `Admission.onResponse`): nothing, or a
 * replacement for the response.
 */
export type Finisher = (response: Response) => MaybePromise<Response | undefined>

function runAll(finishers: readonly Finisher[], from: number, response: Response): MaybePromise<Response> {
  let current = response
  for (let i = from; i < finishers.length; i++) {
    const done = finishers[i]!(current)
    if (isThenable(done)) return done.then((next) => runAll(finishers, i + 1, next ?? current))
    if (done) current = done
  }
  return current
}

/** What a stage answers for one request: go on (`undefined`), or the refusal's response. */
export type StageStep = Response | undefined | Promise<Response | undefined>

/**
 * One stage of a tenancy chain: its options validated once, its decision per request. A stage
 * never touches the response of an admitted request itself; it adds headers and finishers to the
 * {@link Admission}, and the host writes them.
 */
export interface ChainStage {
  readonly stage: TenancyStage
  /** The middleware name, for wiring errors (`tenantQuota`). */
  readonly middleware: string
  /** Decides for one request; may read and set the admission's tenant. */
  run(admission: Admission): StageStep
}

/**
 * Runs `stages` in order for `request` until one refuses: the refusal's response (its event
 * fired), or the {@link Admission} of a request every stage let through. Synchronous as long as the
 * stores answer synchronously (in-memory stores, cached configs); a store that returns a promise
 * makes the rest asynchronous. A chain that does not start with a resolver takes the tenant a
 * resolver earlier in the request recorded (on the request, else in the tenant context a host
 * opened with `Admission.run`), and throws when there was none (a wiring bug).
 *
 * @example
 * ```ts
 * const outcome = decide([resolverStage(options)], request)
 * ```
 */
export function decide(
  stages: readonly ChainStage[],
  request: Request,
  host?: unknown,
  hostHooks?: HostHooks,
): Admission | Response | Promise<Admission | Response> {
  const admission = new Admission(request, host, hostHooks)
  const first = stages[0]
  if (first !== undefined && first.stage !== 'resolve') {
    // On the request; else (a sub-application called with a new Request) in the scope the
    // earlier resolver's host opened.
    let state = tenantState(request)
    // Not one left on the Request by another run (see isStaleState).
    if (state !== undefined && isStaleState(state, request)) state = undefined
    if (state === undefined) {
      state = resolvedScope()
      if (state === undefined) throw unresolved(first.middleware)
      // The request carries it from here on: getTenantId(), and the stages after this chain.
      setTenantState(request, state)
    }
    admission.owner = state.owner
    admission.tenantId = state.tenantId
    admission.tenant = state.tenant
    admission.source = state.source
  }
  return runFrom(stages, 0, admission)
}

function runFrom(
  stages: readonly ChainStage[],
  from: number,
  admission: Admission,
): Admission | Response | Promise<Admission | Response> {
  for (let i = from; i < stages.length; i++) {
    let step: StageStep
    try {
      step = stages[i]!.run(admission)
    } catch (error) {
      admission.abandon()
      throw error
    }
    if (step === undefined) continue
    if (isThenable(step)) {
      return step.then(
        (refused) =>
          refused === undefined ? runFrom(stages, i + 1, admission) : refusal(admission, refused),
        (error: unknown) => {
          admission.abandon()
          throw error
        },
      )
    }
    return refusal(admission, step)
  }
  return admission
}

// A refusal carries the headers of the stages that admitted the request before it, as it would
// going out through them one by one (the rate limit's fields on a quota refusal). What those
// stages hold for the request (a concurrency slot) is given back.
function refusal(admission: Admission, response: Response): Response {
  admission.abandon()
  // Through withHeaders even with nothing to add: an override hook may hand out one response
  // object that another request's refusal wrote its headers into.
  return withHeaders(response, admission.pending ? admission.headers() : NO_HEADERS, admission.owner)
}

/**
 * The Fetch host of a chain: the stages decide, the handler runs in the tenant's scope, and the
 * stages' headers are written to the handler's response in one merge.
 *
 * @example
 * ```ts
 * const middleware = fetchChain('tenancy', tenancyStages(options))
 * ```
 */
export function fetchChain(name: string, stages: readonly ChainStage[]): Middleware {
  const middleware = {
    [name](request: Request, next: Next): Promise<Response> {
      let outcome: Admission | Response | Promise<Admission | Response>
      try {
        outcome = decide(stages, request)
      } catch (error) {
        // A synchronous throw still surfaces as a rejection, as from an async function.
        return Promise.reject(error)
      }
      if (isThenable(outcome)) return outcome.then((decided) => proceed(decided, next))
      return proceed(outcome, next)
    },
  }
  return middleware[name]!
}

function proceed(outcome: Admission | Response, next: Next): Promise<Response> {
  if (!(outcome instanceof Admission)) return Promise.resolve(outcome)
  const { request } = outcome
  const downstream = outcome.runDownstream(() => next(request))
  // Nothing to add, unless the handler hands out a response an earlier request's stages wrote into.
  // The headers are marked as the request's `owner`'s: an inner chain on another Request object of
  // the same request (a sub-application's) wrote as that one too, and its headers stay.
  const { owner } = outcome
  if (!outcome.pending) {
    return downstream.then(
      (response) => {
        outcome.finished = true
        return withoutEarlierHeaders(response, owner)
      },
      (error: unknown) => {
        outcome.finished = true
        throw error
      },
    )
  }
  return downstream
    .then((response) => {
      outcome.finished = true
      const finished = outcome.finish(response)
      if (isThenable(finished)) return finished.then((sent) => withHeaders(sent, outcome.headers(), owner))
      return withHeaders(finished, outcome.headers(), owner)
    })
    .catch((error: unknown) => {
      // The handler or a finisher threw: no response will carry the request to its end.
      outcome.finished = true
      outcome.abandon()
      throw error
    })
}
