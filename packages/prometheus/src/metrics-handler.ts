import { invalidOption } from '@tenant/core'
import type { Registry } from 'prom-client'
import type { TenantMetrics } from './tenant-metrics'

/**
 * A Fetch handler that serves a registry in the Prometheus text format, for a `/metrics` route.
 * Answers `GET` and `HEAD`; other methods get a 405. It does no authentication: serve it on an
 * internal port, or behind your own auth middleware.
 *
 * @example
 * ```ts
 * const metrics = new TenantMetrics()
 * const serveMetrics = metricsHandler(metrics)
 * app.get('/metrics', (c) => serveMetrics(c.req.raw))         // Hono
 * // or: if (new URL(request.url).pathname === '/metrics') return serveMetrics(request)
 * ```
 */
export function metricsHandler(source: TenantMetrics | Registry): (request: Request) => Promise<Response> {
  const registry: Registry | undefined =
    typeof source === 'object' && source !== null && 'registry' in source ? source.registry : source
  if (typeof registry?.metrics !== 'function') {
    throw invalidOption('metricsHandler', 'pass a TenantMetrics or a prom-client Registry')
  }
  return async function serveMetrics(request: Request): Promise<Response> {
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      return new Response('method not allowed\n', {
        status: 405,
        headers: { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' },
      })
    }
    const body = await registry.metrics()
    return new Response(request.method === 'HEAD' ? null : body, {
      headers: { 'Content-Type': registry.contentType, 'Cache-Control': 'no-store' },
    })
  }
}
