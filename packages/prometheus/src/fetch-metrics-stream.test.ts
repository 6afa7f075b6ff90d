import { ManualClock } from '@tenant/core'
import { applyMiddleware } from '@tenant/fetch'
import { describe, expect, it } from 'vitest'
import { tenantMetricsMiddleware } from './fetch-metrics'
import { TenantMetrics } from './tenant-metrics'

const encoder = new TextEncoder()

/** A handler answering with a stream the test drives: `push` a chunk, `close` or `fail` it. */
function streaming() {
  let controller!: ReadableStreamDefaultController<Uint8Array>
  let cancelled: unknown = 'not cancelled'
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c
    },
    cancel(reason) {
      cancelled = reason
    },
  })
  return {
    handler: async () => new Response(body, { headers: { 'Content-Type': 'text/event-stream' } }),
    push: (text: string) => controller.enqueue(encoder.encode(text)),
    close: () => controller.close(),
    fail: (error: unknown) => controller.error(error),
    cancelled: () => cancelled,
  }
}

async function scrape(metrics: TenantMetrics): Promise<string[]> {
  const text = await metrics.registry.metrics()
  return text
    .split('\n')
    .filter((line) => /^tenant_requests_total\{|^tenant_request_duration_seconds_(sum|count)\{/.test(line))
    .sort()
}

function setup(handler: (request: Request) => Promise<Response>) {
  const clock = new ManualClock(0)
  const metrics = new TenantMetrics()
  const serve = applyMiddleware(tenantMetricsMiddleware(metrics, { clock }), handler)
  return { clock, metrics, serve }
}

describe('tenantMetricsMiddleware and streamed bodies', () => {
  it('records the duration up to the end of the body, not when the handler answered', async () => {
    const stream = streaming()
    const { clock, metrics, serve } = setup(stream.handler)
    const response = await serve(new Request('http://x/'))
    expect(await scrape(metrics)).toEqual([]) // nothing sent yet
    const reader = response.body!.getReader()
    stream.push('data: 1\n\n')
    expect(new TextDecoder().decode((await reader.read()).value)).toBe('data: 1\n\n')
    clock.advance(2200)
    stream.close()
    expect((await reader.read()).done).toBe(true)
    expect(await scrape(metrics)).toEqual([
      'tenant_request_duration_seconds_count{tenant="(none)"} 1',
      'tenant_request_duration_seconds_sum{tenant="(none)"} 2.2',
      'tenant_requests_total{tenant="(none)",outcome="success",code="200"} 1',
    ])
  })

  it('counts a body that failed part-way as a server error, keeping the status sent', async () => {
    const stream = streaming()
    const { clock, metrics, serve } = setup(stream.handler)
    const response = await serve(new Request('http://x/'))
    const reader = response.body!.getReader()
    stream.push('data: 1\n\n')
    await reader.read()
    clock.advance(500)
    const failure = new Error('upstream died')
    stream.fail(failure)
    await expect(reader.read()).rejects.toBe(failure)
    expect(await scrape(metrics)).toEqual([
      'tenant_request_duration_seconds_count{tenant="(none)"} 1',
      'tenant_request_duration_seconds_sum{tenant="(none)"} 0.5',
      'tenant_requests_total{tenant="(none)",outcome="server_error",code="200"} 1',
    ])
  })

  it('counts a body its reader cancelled (the client went away) as cancelled, once', async () => {
    const stream = streaming()
    const { clock, metrics, serve } = setup(stream.handler)
    const response = await serve(new Request('http://x/'))
    const reader = response.body!.getReader()
    clock.advance(300)
    await reader.cancel('client gone')
    expect(stream.cancelled()).toBe('client gone') // passed on to the upstream
    clock.advance(1000)
    await reader.cancel('again')
    expect(await scrape(metrics)).toEqual([
      'tenant_request_duration_seconds_count{tenant="(none)"} 1',
      'tenant_request_duration_seconds_sum{tenant="(none)"} 0.3',
      'tenant_requests_total{tenant="(none)",outcome="cancelled",code="200"} 1',
    ])
  })

  it('records a response without a body, and a HEAD, when the handler answers', async () => {
    const { clock, metrics, serve } = setup(async (request) => {
      clock.advance(10)
      return request.method === 'HEAD' ? new Response('ignored') : new Response(null, { status: 204 })
    })
    await serve(new Request('http://x/'))
    await serve(new Request('http://x/', { method: 'HEAD' }))
    expect(await scrape(metrics)).toEqual([
      'tenant_request_duration_seconds_count{tenant="(none)"} 2',
      'tenant_request_duration_seconds_sum{tenant="(none)"} 0.02',
      'tenant_requests_total{tenant="(none)",outcome="success",code="200"} 1',
      'tenant_requests_total{tenant="(none)",outcome="success",code="204"} 1',
    ])
  })

  it('passes the status, headers and bytes through unchanged', async () => {
    const { serve } = setup(
      async () => new Response('hello', { status: 201, statusText: 'Made', headers: { 'X-A': '1' } }),
    )
    const response = await serve(new Request('http://x/'))
    expect([response.status, response.statusText, response.headers.get('X-A')]).toEqual([201, 'Made', '1'])
    expect(await response.text()).toBe('hello')
  })
})
