import { inheritTenantState } from './context'
import { recordExecutionContext } from './execution-context'
import { invalidOption } from './options'
import type { FetchHandler, Middleware, Next } from './types'

/**
 * Chains middleware into one: the first runs first and decides whether to call the next. A
 * middleware that hands a new Request downstream keeps the tenant state of the one it got.
 *
 * @example
 * ```ts
 * const chain = compose(tenantResolver(), tenantPolicy({ evaluator }), tenantQuota({ manager }))
 * const response = await chain(request, async () => new Response('ok'))
 * ```
 */
export function compose(...middlewares: Middleware[]): Middleware {
  middlewares.forEach((middleware, index) => {
    if (typeof middleware !== 'function') {
      throw invalidOption(`compose(${index})`, 'is not a middleware function')
    }
  })
  return function composed(request, next) {
    // Not async: each middleware already returns a promise, and a wrapper per stage would add one
    // more per request (this runs on every request, under AsyncLocalStorage's promise hooks).
    const dispatch = (index: number, current: Request): Promise<Response> => {
      const middleware = middlewares[index]
      let called = false
      const nextOf: Next = (handed = current) => {
        if (called) return Promise.reject(new Error('next() called multiple times'))
        called = true
        if (handed !== current) inheritTenantState(current, handed)
        return dispatch(index + 1, handed)
      }
      try {
        return middleware ? middleware(current, nextOf) : next(current)
      } catch (error) {
        // A synchronous throw still surfaces as a rejection, as from an async function.
        return Promise.reject(error)
      }
    }
    return dispatch(0, request)
  }
}

/**
 * Runs `middleware` in front of a plain fetch handler; extra arguments (Workers' `env` and `ctx`,
 * Bun's `server`) are passed through to the handler untouched.
 *
 * @example
 * ```ts
 * export default { fetch: applyMiddleware(tenantResolver(), (request, env, ctx) => app(request, env, ctx)) }
 * ```
 */
export function applyMiddleware<Args extends unknown[]>(
  middleware: Middleware,
  handler: FetchHandler<Args>,
): (request: Request, ...args: Args) => Promise<Response> {
  return function handle(request, ...args) {
    // Workers' ctx, for work that outlives the response (a streamed body's quota settlement).
    recordExecutionContext(request, args)
    return middleware(request, async (handed = request) => handler(handed, ...args))
  }
}
