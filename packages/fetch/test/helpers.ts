import type { Next, TenancyHooks } from '../src/index'

/** A request to the test origin. */
export function req(path = '/', init: RequestInit & { tenant?: string } = {}): Request {
  const { tenant, ...rest } = init
  const headers = new Headers(rest.headers)
  if (tenant !== undefined) headers.set('X-Tenant-ID', tenant)
  return new Request(`https://api.example.com${path}`, { ...rest, headers })
}

/** The downstream handler of most tests: 200 "ok", and counts its calls. */
export function okHandler(): { calls: Request[]; next: Next } {
  const calls: Request[] = []
  const next = async (request?: Request) => {
    if (!request) throw new Error('the middleware called next() without the request')
    calls.push(request)
    return new Response('ok', { status: 200 })
  }
  return { calls, next }
}

/** Reads a problem+json body, checking its media type and that `status` matches the response. */
export async function problem(response: Response): Promise<Record<string, unknown>> {
  if (response.headers.get('Content-Type') !== 'application/problem+json') {
    throw new Error(`expected application/problem+json, got ${response.headers.get('Content-Type')}`)
  }
  const body = (await response.json()) as Record<string, unknown>
  if (body.status !== response.status) throw new Error(`body status ${body.status} != ${response.status}`)
  return body
}

type Recorded = { hook: string; event: any }

/** Hooks that record every call, in order. */
export function recorder(): {
  hooks: TenancyHooks
  events: Recorded[]
  errors: { error: unknown; info: any }[]
} {
  const events: Recorded[] = []
  const errors: { error: unknown; info: any }[] = []
  const record = (hook: string) => (event: unknown) => {
    events.push({ hook, event })
  }
  return {
    events,
    errors,
    hooks: {
      onResolve: record('onResolve'),
      onPolicy: record('onPolicy'),
      onRateLimit: record('onRateLimit'),
      onQuota: record('onQuota'),
      onAdjust: record('onAdjust'),
      onError: (error, info) => {
        errors.push({ error, info })
      },
    },
  }
}

/** A store method that fails like a dead backend, with a driver-ish error. */
export function failing(message = 'connect ECONNREFUSED 10.0.0.7:5432') {
  const error = new Error(message)
  return { error, call: async (): Promise<never> => Promise.reject(error) }
}

/** A store method that never answers (for timeouts). */
export function hanging<T>(): () => Promise<T> {
  return () => new Promise<T>(() => {})
}

// Bad options: the same assertion every package uses.
export { expectInvalidOption } from '@tenant/core/testing'
