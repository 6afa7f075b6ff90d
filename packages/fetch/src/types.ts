/** A value or a promise of it: what user callbacks may return. */
export type MaybePromise<T> = T | Promise<T>

/**
 * Calls the rest of the chain. Pass a request to hand a different one downstream (its tenant
 * state is carried over); call it with no argument to pass the same request on.
 */
export type Next = (request?: Request) => Promise<Response>

/**
 * A Fetch API middleware: takes the request and the rest of the chain, returns the response.
 *
 * @example
 * ```ts
 * const timing: Middleware = async (request, next) => {
 *   const response = await next()
 *   response.headers.set('Server-Timing', 'app')
 *   return response
 * }
 * ```
 */
export type Middleware = (request: Request, next: Next) => Promise<Response>

/** A plain Fetch handler, such as a Workers `fetch(request, env, ctx)` or `Bun.serve({ fetch })`. */
export type FetchHandler<Args extends unknown[] = unknown[]> = (
  request: Request,
  ...args: Args
) => MaybePromise<Response>
