import {
  type ConcurrencyConfig,
  type ConcurrencyDecision,
  type ConcurrencyLease,
  type ConcurrencyLimiter,
  type ConcurrencyProvider,
  isThenable,
  TenantError,
} from '@tenant/core'
import { whenBodyEnds } from './body-end'
import { type Admission, type ChainStage, fetchChain, type StageStep } from './chain'
import { resolvedScope } from './context'
import { keepPromiseAlive, type WaitUntil } from './execution-context'
import { type HookSet, reportError } from './hooks'
import { assertMethods, checkFunction, checkStageOptions } from './options'
import { StageCore, type StageOptions, StoreFailed } from './stage'
import type { MaybePromise, Middleware } from './types'

/** Options of {@link tenantConcurrency}. */
export interface ConcurrencyOptions extends StageOptions {
  /** Counts each tenant's requests in flight (core's in-memory limiter, Redis, Durable Object). Without one the stage is off. */
  limiter?: ConcurrencyLimiter
  /**
   * Where each tenant's cap (`concurrency.maxInFlight`) is read. The config the resolver read is
   * used when it came from this store (so it is read once), or when no provider is given.
   * @default undefined (the resolver's config; `tenancy()` passes its `configManager`)
   */
  provider?: ConcurrencyProvider
  /**
   * The response for a request over the cap, instead of the 429 problem. `Retry-After: 1` is
   * added to it unless it sets one.
   * @default undefined (429 `tenant_concurrency_limited`)
   */
  onRejected?: (
    request: Request,
    decision: Omit<ConcurrencyDecision, 'lease'> & { tenantId: string },
  ) => MaybePromise<Response>
}

const RETRY_AFTER: [string, string] = ['Retry-After', '1']

/**
 * The concurrency stage as a chain stage: what {@link tenantConcurrency} and `tenancy()` run;
 * `undefined` without a limiter (the stage is off).
 *
 * @example
 * ```ts
 * const stage = concurrencyStage({ limiter: new InMemoryConcurrencyLimiter(), provider: configs })
 * ```
 */
export function concurrencyStage(options: ConcurrencyOptions = {}): ChainStage | undefined {
  const name = 'tenantConcurrency'
  checkStageOptions(name, options)
  checkFunction(`${name}.onRejected`, options.onRejected)
  if (options.limiter === undefined) return undefined
  assertMethods(options.limiter, `${name}.limiter`, ['acquire'])
  if (options.provider !== undefined)
    assertMethods(options.provider, `${name}.provider`, ['concurrencyConfig'])
  return new ConcurrencyStage(options, options.limiter)
}

class ConcurrencyStage implements ChainStage {
  readonly stage = 'concurrency' as const
  readonly middleware = 'tenantConcurrency'
  readonly #core: StageCore<'onConcurrency'>
  readonly #provider: ConcurrencyProvider | undefined

  constructor(
    readonly options: ConcurrencyOptions,
    readonly limiter: ConcurrencyLimiter,
  ) {
    this.#core = new StageCore(options, 'onConcurrency', 'concurrency')
    this.#provider = options.provider
  }

  run(admission: Admission): StageStep {
    const tenantId = admission.tenantId
    if (tenantId === undefined) return undefined
    // A chain nested in a run that holds a slot of this limiter (an app-wide tenancy() and a
    // sub-app's, hono/method-override dispatching again, a handler's sub-request): one client
    // request, one slot. Only inside that run's tenant context, which a concurrent run of the same
    // Request object is not in; without the context each chain takes its own.
    const scope = resolvedScope()
    if (scope !== undefined && scope.tenantId === tenantId && scope.holdsSlot?.(this.limiter))
      return undefined
    const provider = this.#provider
    const tenant = admission.tenant
    if (tenant !== undefined && (provider === undefined || admission.source === provider)) {
      return this.#capped(admission, tenant.concurrency)
    }
    // No config at hand and nowhere to read one: no cap is known, so none applies.
    if (provider === undefined) return undefined
    const config = this.#core.attempt(() => provider.concurrencyConfig(tenantId), admission)
    if (isThenable(config)) return config.then((c) => this.#capped(admission, c))
    return this.#capped(admission, config)
  }

  #capped(admission: Admission, config: ConcurrencyConfig | null | undefined | StoreFailed): StageStep {
    if (config instanceof StoreFailed) return this.#core.failed(admission, {}, config)
    // A tenant without a cap is not counted at all: nothing to acquire, nothing to release. A
    // config without the member (a hand-written store, a record older than it) has none either.
    if (config === null || config === undefined) return undefined
    const max = config.maxInFlight
    const tenantId = admission.tenantId!
    const acquire = () => this.limiter.acquire(tenantId, max)
    // A slot acquired after the timeout is held by no request (refused with 503, or passed under
    // failOpen without one): it is released at once instead of waiting for its lease to expire.
    const answer =
      this.#core.timeoutMs === undefined
        ? this.#core.attempt(acquire)
        : this.#core.attempt(acquire, admission, (late) => releaseLate(admission, late, this.#core))
    if (isThenable(answer)) return answer.then((decision) => this.#decided(admission, max, decision))
    return this.#decided(admission, max, answer)
  }

  #decided(admission: Admission, limit: number, answer: ConcurrencyDecision | StoreFailed): StageStep {
    const core = this.#core
    if (answer instanceof StoreFailed) return core.failed(admission, { limit }, answer)
    const { lease, ...decision } = answer
    if (answer.allowed && lease !== undefined) {
      if (core.observed) core.allow(admission, { limit, decision })
      admission.holdSlot(this.limiter)
      holdUntilDone(admission, lease, core)
      return undefined
    }
    const tenantId = admission.tenantId!
    const { onRejected } = this.options
    return core.refuse(
      admission,
      { limit, decision },
      {
        error: new TenantError(
          'tenant_concurrency_limited',
          answer.reason ?? `too many requests of this tenant in flight (limit ${limit})`,
          { tenantId },
        ),
        headers: [RETRY_AFTER],
        extensions: { limit, inFlight: answer.inFlight },
        override: onRejected && {
          hook: 'onRejected',
          call: () => onRejected(admission.request, { ...decision, tenantId }),
        },
      },
    )
  }
}

// A slot acquired after the stage's timeout: no request holds it, so it is given back now (the
// release is kept alive with the request's, see callStore).
function releaseLate(
  admission: Admission,
  late: ConcurrencyDecision,
  core: StageCore<'onConcurrency'>,
): Promise<void> | undefined {
  const { lease } = late
  if (lease === undefined) return undefined
  const info = { stage: 'concurrency' as const, request: admission.request, tenantId: admission.tenantId }
  return Promise.resolve()
    .then(() => lease.release())
    .catch((error: unknown) => reportError(core.hooks, error, info))
}

/**
 * Holds `lease` for the request and releases it exactly once, when both the handler has answered
 * and the response is over for the client:
 *
 * - answered: the finisher ran (the handler's response is at hand); or the request was given up
 *   (`onAbandon`: a later stage refused it, a stage, the handler or a finisher threw), which also
 *   means nothing will be sent.
 * - over: the response body ended or was cancelled, or there is none, or the client went away
 *   (`request.signal`). A host that knows when the response has been sent or the client left
 *   (`HostHooks.whenSent`) tells that instead of the body and the signal. A `HEAD` sends no body,
 *   whatever the handler's response holds (Hono answers one with `new Response(null, response)`,
 *   dropping the GET handler's body unread and uncancelled), so the stage cancels that body itself:
 *   its producer sees the abort as it would on a client that left (Hono's `stream.onAbort()`, an
 *   upstream body's cancel), rather than running on unseen, and the slot is held until the cancel
 *   has gone through.
 *
 * A client that leaves while the handler runs does not free the slot before the handler is done:
 * the cap bounds the handlers running, not the clients connected. A wrapped body dropped unread
 * by code outside the chain (a middleware that replaces the response without cancelling it) is
 * released when the runtime collects it (`FinalizationRegistry`); the limiter's lease expiry is the
 * last backstop.
 */
function holdUntilDone(
  admission: Admission,
  lease: ConcurrencyLease,
  core: StageCore<'onConcurrency'>,
): void {
  const { request } = admission
  const hold = new Hold(new Slot(lease, core.hooks, admission.tenantId!), request)
  admission.onAbandon(hold.abandon)
  // A host that can tell when the response has gone out (Hono on @hono/node-server) says so: no
  // abort listener and no body wrapper, so the response keeps the server's fast path.
  hold.sent = admission.hostHooks.whenSent?.(admission.host, hold.over) === true
  if (!hold.sent) {
    const signal = request.signal as AbortSignal | undefined
    if (signal !== undefined && signal !== null) {
      if (signal.aborted) hold.over()
      else {
        hold.signal = signal
        signal.addEventListener('abort', hold.over, { once: true })
      }
    }
  }
  // On Workers the body goes out through a pipe under ctx.waitUntil (see pipedUnder): the only
  // way a client that leaves mid-body is seen there.
  hold.context = () => admission.executionContext
  // Last: a finisher that reads the body (a clone for `actualTokens`) must not count as the client.
  admission.onResponse(hold.answer, { last: true })
}

/**
 * Releases the slot of a wrapped body that was dropped unread once the runtime has collected the
 * body: it would otherwise stay taken until the lease expired. Without a `FinalizationRegistry`
 * the lease expiry alone is the backstop.
 */
const dropped: FinalizationRegistry<Slot> | undefined =
  typeof FinalizationRegistry === 'function'
    ? /* @__PURE__ */ new FinalizationRegistry((slot: Slot) => slot.release(undefined))
    : undefined

/**
 * The lease and what reporting a failed release needs, released once. `dropped` keeps it while
 * the wrapped body lives, so it reaches nothing that reaches that body: not the request (the
 * resolver's state on it is the admission, whose host, Hono's `c`, holds the wrapped response).
 */
class Slot {
  released = false
  /** Registered with `dropped`, with the request's method and URL for a report after collection. */
  registered = false
  method = 'GET'
  url = ''

  constructor(
    readonly lease: ConcurrencyLease,
    readonly hooks: HookSet,
    readonly tenantId: string,
  ) {}

  /**
   * Releases the lease once; `request` for the error report (absent after a collection). Under a
   * runtime's `context` the release call is handed to its `waitUntil`: on Workers a release that
   * starts as the body's pipe ends (a client that left) would otherwise be cut off with the request.
   */
  release(request: Request | undefined, context?: WaitUntil): void {
    if (this.released) return
    this.released = true
    if (this.registered) dropped!.unregister(this)
    let done: Promise<void>
    try {
      // Promise.resolve: a lease of a JavaScript limiter may answer no promise; its release still
      // counts, and the body must not fail on it.
      done = Promise.resolve(this.lease.release())
    } catch (error) {
      done = Promise.reject(error)
    }
    keepPromiseAlive(context, done)
    // The response is on its way; a failed release is reported, and the lease's expiry gives the
    // slot back.
    done.then(undefined, (error: unknown) =>
      reportError(this.hooks, error, {
        stage: 'concurrency',
        request: request ?? standIn(this.method, this.url),
        tenantId: this.tenantId,
      }),
    )
  }
}

/** A request like the collected one, for `onError` (a Request for a forbidden method cannot be made). */
function standIn(method: string, url: string): Request {
  try {
    return new Request(url, { method })
  } catch {
    return new Request(url || 'http://unknown.invalid/')
  }
}

/** One admitted request's hold on its {@link Slot} (see {@link holdUntilDone}). */
class Hold {
  #answered = false
  #over = false
  /** A `HEAD`'s body is being cancelled: the slot waits for it (see `answer`). */
  #cancelling = false
  /** The host tells when the response is over (`whenSent`): the body is not watched. */
  sent = false
  /** The request's abort signal while it is listened to. */
  signal: AbortSignal | undefined = undefined
  /** The runtime's execution context (Workers' `ctx`), read when the response is answered. */
  context: (() => WaitUntil | undefined) | undefined = undefined

  constructor(
    readonly slot: Slot,
    readonly request: Request,
  ) {}

  /** The response is over for the client: its body ended, or the client went away. */
  readonly over = (): void => {
    this.#over = true
    if (this.#answered && !this.#cancelling) this.#release()
  }

  /** Given up: the handler threw or never ran, and nothing will be sent. */
  readonly abandon = (): void => {
    this.#answered = true
    this.over()
  }

  /** The finisher: the handler answered with `response`. */
  readonly answer = (response: Response): Response | undefined => {
    this.#answered = true
    if (this.request.method === 'HEAD') return this.#head(response)
    if (this.#over) {
      this.over()
      return undefined
    }
    if (this.sent) return undefined
    const wrapped = whenBodyEnds(response, this.over, this.context?.())
    const slot = this.slot
    if (wrapped !== undefined && dropped !== undefined && !slot.released) {
      slot.method = this.request.method
      slot.url = this.request.url
      slot.registered = true
      dropped.register(wrapped.body!, slot, slot)
    }
    return wrapped
  }

  /**
   * A `HEAD`: no body goes out, whatever the response holds, and nothing will read it (Hono drops
   * the GET handler's body without cancelling it; a push producer such as `streamSSE()` would run
   * on unseen, past the cap). The body is cancelled here, so its producer sees the abort at once,
   * as on a client that left, and the slot is given back once the cancel has gone through (a
   * proxied upstream's connection closed). The response goes on without a body, head unchanged: a
   * cancelled body cannot be read or cloned, and whatever handles the response after the chain
   * must not trip over one.
   */
  #head(response: Response): Response | undefined {
    let cancelled: Promise<void> | undefined
    try {
      const body = response.bodyUsed ? null : response.body
      if (body !== null) cancelled = body.cancel()
    } catch {
      // A body that cannot be cancelled (locked by a reader of its own) is not this stage's.
    }
    if (cancelled === undefined) {
      this.over()
      return undefined
    }
    this.#cancelling = true
    const done = (): void => {
      this.#cancelling = false
      this.#release()
    }
    cancelled.then(done, done)
    try {
      const { status, statusText, headers } = response
      return new Response(null, { status, statusText, headers })
    } catch {
      // A status a Response cannot be made with (a runtime's protocol switch): left as it is.
      return undefined
    }
  }

  #release(): void {
    this.signal?.removeEventListener('abort', this.over)
    this.signal = undefined
    this.slot.release(this.request, this.context?.())
  }
}

/**
 * Caps each tenant's requests in flight at its `concurrency.maxInFlight`: a request over the cap
 * is refused with 429 `tenant_concurrency_limited` and `Retry-After: 1`. An admitted request holds
 * its slot until its handler has answered and its response body has been sent (a streamed body:
 * until the stream ends; a `HEAD`: at the answer) or the client has gone, or until a later stage
 * refuses it or the handler throws. Tenants without a cap pass uncounted.
 *
 * @example
 * ```ts
 * const concurrency = tenantConcurrency({ limiter: new InMemoryConcurrencyLimiter(), provider: configs })
 * ```
 */
export function tenantConcurrency(options: ConcurrencyOptions = {}): Middleware {
  const stage = concurrencyStage(options)
  if (stage === undefined) return (request, next) => next(request)
  return fetchChain('tenantConcurrency', [stage])
}
