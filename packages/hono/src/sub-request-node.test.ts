import type { AddressInfo } from 'node:net'
import { type ServerType, serve } from '@hono/node-server'
import { InMemoryConcurrencyLimiter, InMemoryConfigManager, InMemoryQuotaManager } from '@tenant/core'
import { Hono } from 'hono'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { tenancy } from './index'

// A route outside the chain that calls the app for each item, handing on its bindings
// (`app.request(path, init, c.env)`, Hono's documented way): under @hono/node-server those carry
// the outer request's Node response, which is not the sub-request's.
describe('requests an app makes to itself under @hono/node-server', () => {
  let configs: InMemoryConfigManager
  let limiter: InMemoryConcurrencyLimiter
  let server: ServerType | undefined

  beforeEach(async () => {
    configs = new InMemoryConfigManager()
    await configs.setTenantConfig({
      id: 'acme',
      concurrency: { maxInFlight: 2 },
      quota: { limits: [{ window: 'minute', requests: 100 }] },
    })
    limiter = new InMemoryConcurrencyLimiter()
  })
  afterEach(async () => {
    if (server) await new Promise<void>((resolve) => server!.close(() => resolve()))
    server = undefined
  })

  function build() {
    const app = new Hono()
    const api = new Hono()
    // Records, for the outer request, whether the chain's headers went through c.header()
    // (the general path) or straight onto the Node response (the server's own request).
    const viaContext: boolean[] = []
    api.use('*', async (c, next) => {
      await next()
      viaContext.push(c.res.headers.has('X-Quota-Remaining-Requests'))
    })
    api.use(
      '*',
      tenancy({ configManager: configs, concurrency: limiter, quota: new InMemoryQuotaManager(configs) }),
    )
    api.get('/item/:n', (c) => c.json({ n: c.req.param('n') }))
    app.get('/batch', async (c) => {
      const items: { status: number; remaining: string | null; inFlight: number }[] = []
      for (let i = 0; i < 4; i++) {
        const reply = await app.request(`/api/item/${i}`, { headers: { 'X-Tenant-ID': 'acme' } }, c.env)
        await reply.text()
        items.push({
          status: reply.status,
          remaining: reply.headers.get('X-Quota-Remaining-Requests'),
          inFlight: await limiter.inFlight('acme'),
        })
      }
      return c.json(items)
    })
    app.route('/api', api)
    return { app, viaContext }
  }

  async function listen(app: Hono): Promise<string> {
    server = await new Promise<ServerType>((resolve) => {
      const started = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(started))
    })
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  }

  it('each one frees its slot once its reply was read, and carries its own headers', async () => {
    const { app, viaContext } = build()
    const base = await listen(app)
    const outer = await fetch(`${base}/batch`)
    expect(await outer.json()).toEqual([
      { status: 200, remaining: '99', inFlight: 0 },
      { status: 200, remaining: '98', inFlight: 0 },
      { status: 200, remaining: '97', inFlight: 0 },
      { status: 200, remaining: '96', inFlight: 0 },
    ])
    // The outer route is outside the chain: none of the sub-requests' headers reach it.
    expect(outer.headers.get('X-Quota-Remaining-Requests')).toBeNull()
    expect(outer.headers.get('RateLimit-Policy')).toBeNull()
    expect(viaContext).toEqual([true, true, true, true])
  })

  it('a request the server made still has its headers written onto the Node response', async () => {
    const { app, viaContext } = build()
    const base = await listen(app)
    const response = await fetch(`${base}/api/item/1`, { headers: { 'X-Tenant-ID': 'acme' } })
    expect(response.headers.get('X-Quota-Remaining-Requests')).toBe('99')
    await response.text()
    // Not through c.header(): the fast path of this host.
    expect(viaContext).toEqual([false])
  })
})
