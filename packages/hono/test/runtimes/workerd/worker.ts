// The Worker `wrangler dev` serves in workerd.test.ts (with nodejs_compat): the portable suite
// run inside workerd at /__suite, a withTenancy handler for end-to-end requests, and /nocompat/*
// forwarded to a second Worker without nodejs_compat.
import { InMemoryConcurrencyLimiter, InMemoryConfigManager, InMemoryQuotaManager } from '@tenant/core'
import { currentTenantId, getTenant, getTenantId, isTenantContextAvailable, withTenancy } from '@tenant/fetch'
import { inProcess, runCases } from '@tenant/fetch/testing'
import { Hono } from 'hono'
import { tenancy as honoTenancy } from '../../../src/index'
import { allCases } from '../../portable/all-cases'

interface Env {
  GREETING: string
  NOCOMPAT: { fetch(request: Request): Promise<Response> }
}

interface ExecutionContext {
  waitUntil(promise: Promise<unknown>): void
}

const configs = new InMemoryConfigManager()
const ready = configs.setTenantConfig({
  id: 'acme',
  metadata: { plan: 'pro' },
  quota: { limits: [{ window: 'day', requests: 2 }] },
})

/** An endless event stream, paced like a model's (it waits between events). */
function pacedEvents(): Response {
  const encoder = new TextEncoder()
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        await new Promise((resolve) => setTimeout(resolve, 1))
        controller.enqueue(encoder.encode(`data: ${'x'.repeat(500)}\n\n`))
      },
    },
    { highWaterMark: 0 },
  )
  return new Response(body, { headers: { 'Content-Type': 'text/event-stream' } })
}

// A tenant allowed one request in flight, and an endless event stream, paced like a model's: the
// slot must come back when the client leaves mid-stream (the body's pipe runs under waitUntil).
const streaming = configs.setTenantConfig({ id: 'streamer', concurrency: { maxInFlight: 1 } })
const slots = new InMemoryConcurrencyLimiter()
const stream = withTenancy(
  async (_request: Request, _env: Env, _ctx: ExecutionContext) => {
    return pacedEvents()
  },
  { configManager: configs, concurrency: slots },
)

// The same through the Hono adapter (c.executionCtx is the context).
const honoSlots = new InMemoryConcurrencyLimiter()
const honoApp = new Hono()
honoApp.use('/hono-stream', honoTenancy({ configManager: configs, concurrency: honoSlots }))
honoApp.get('/hono-stream', () => {
  return pacedEvents()
})

const app = withTenancy(
  async (request: Request, env: Env, ctx: ExecutionContext) => {
    await new Promise((resolve) => setTimeout(resolve, 1))
    return Response.json({
      tenantId: getTenantId(request),
      current: currentTenantId(),
      plan: getTenant(request)?.metadata.plan,
      greeting: env.GREETING,
      waitUntil: typeof ctx.waitUntil,
      contextAvailable: isTenantContextAvailable(),
    })
  },
  { configManager: configs, quota: new InMemoryQuotaManager(configs) },
)

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    await ready
    await streaming
    const url = new URL(request.url)
    if (url.pathname === '/stream/in-flight')
      return Response.json({ inFlight: await slots.inFlight('streamer') })
    if (url.pathname === '/stream') return stream(request, env, ctx)
    if (url.pathname === '/hono-stream/in-flight')
      return Response.json({ inFlight: await honoSlots.inFlight('streamer') })
    if (url.pathname === '/hono-stream') return honoApp.fetch(request, env, ctx as never)
    if (url.pathname === '/__ready') return new Response('ready')
    if (url.pathname === '/__suite') return Response.json(await runCases(allCases, inProcess))
    if (url.pathname.startsWith('/nocompat/')) return env.NOCOMPAT.fetch(request)
    return app(request, env, ctx)
  },
}
