/**
 * The part of a Workers `ExecutionContext` (or Vercel / Netlify edge `context`) the chain uses:
 * `waitUntil` keeps the isolate alive for work that outlives the response.
 */
export interface WaitUntil {
  waitUntil(promise: Promise<unknown>): void
}

// Bounded by the requests alive: an entry goes with its Request.
const contexts = new WeakMap<Request, WaitUntil>()

function isWaitUntil(value: unknown): value is WaitUntil {
  return typeof value === 'object' && value !== null && typeof (value as WaitUntil).waitUntil === 'function'
}

/**
 * Records the first of a fetch handler's extra arguments that has `waitUntil` (Workers' `ctx`,
 * the edge runtimes' `context`) as the request's execution context. `applyMiddleware` and
 * `withTenancy` call it; a host adapter that runs Fetch middleware its own way (`fromFetch` in
 * @tenant/hono) calls it with the context it has.
 *
 * @example
 * ```ts
 * recordExecutionContext(request, [env, ctx]) // ctx.waitUntil keeps the body's watchers alive
 * ```
 */
export function recordExecutionContext(request: Request, args: readonly unknown[]): void {
  for (const arg of args) {
    if (isWaitUntil(arg)) {
      contexts.set(request, arg)
      return
    }
  }
}

/**
 * The execution context recorded for `request`, if its handler was given one: what a Fetch
 * middleware passes to {@link whenBodyEnds} so that a client leaving mid-body is seen on Workers.
 *
 * @example
 * ```ts
 * return whenBodyEnds(response, record, executionContextOf(request)) ?? response
 * ```
 */
export function executionContextOf(request: Request): WaitUntil | undefined {
  return contexts.get(request)
}

/**
 * Hands `promise` to `context.waitUntil` when there is a context (so Workers keep running it after
 * the response), and keeps a rejection from going unhandled either way.
 */
export function keepPromiseAlive(context: WaitUntil | undefined, promise: Promise<unknown>): void {
  const guarded = promise.then(undefined, () => undefined)
  if (context === undefined) return
  try {
    context.waitUntil(guarded)
  } catch {
    // A context used outside its request (a test double, a finished request) refuses: the work
    // still runs, only without the runtime's promise to wait for it.
  }
}
