import {
  InMemoryConcurrencyLimiter,
  InMemoryConfigManager,
  InMemoryQuotaManager,
  ManualClock,
  TokenBucketRateLimiter,
} from '@tenant/core'
import { Hono, type Next } from 'hono'
import { beforeEach, describe, expect, it } from 'vitest'
import { type TenancyOptions, type TenantEnv, tenancy, tenantConcurrency, tenantResolver } from './index'

// Lets queued microtasks and stream pulls run (no timers, no sleeping).
const settle = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve()
}

describe('@tenant/hono concurrency', () => {
  let clock: ManualClock
  let configs: InMemoryConfigManager
  let limiter: InMemoryConcurrencyLimiter
  beforeEach(async () => {
    clock = new ManualClock(Date.UTC(2026, 0, 1, 12, 0, 15))
    configs = new InMemoryConfigManager({ clock })
    limiter = new InMemoryConcurrencyLimiter()
    await configs.setTenantConfig({ id: 'acme', concurrency: { maxInFlight: 1 } })
  })

  // A route whose body streams until the test closes it; `/throw` fails; `/empty` has no body.
  function app(options: Partial<TenancyOptions> = {}) {
    const ends: (() => void)[] = []
    const hono = new Hono()
    hono.use('*', tenancy({ configManager: configs, concurrency: limiter, clock, ...options }))
    hono.get('/stream', (c) => {
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('data: 1\n\n'))
          ends.push(() => controller.close())
        },
      })
      return c.body(body, 200, { 'Content-Type': 'text/event-stream' })
    })
    hono.get('/throw', () => {
      throw new Error('handler failed')
    })
    hono.get('/empty', (c) => c.body(null, 204))
    hono.get('/ok', (c) => c.text('ok'))
    const send = (path: string, init: RequestInit = {}) =>
      hono.request(`https://api.example.com${path}`, { headers: { 'X-Tenant-ID': 'acme' }, ...init })
    return { send, ends }
  }

  it('holds the slot while the body streams, refuses meanwhile, and frees it when the stream ends', async () => {
    const { send, ends } = app()
    const streamed = await send('/stream')
    expect(streamed.headers.get('Content-Type')).toBe('text/event-stream')
    const reader = streamed.body!.getReader()
    await reader.read()
    const refused = await send('/ok')
    expect(refused.status).toBe(429)
    expect(refused.headers.get('Retry-After')).toBe('1')
    expect(((await refused.json()) as { code: string }).code).toBe('tenant_concurrency_limited')
    ends[0]!()
    expect((await reader.read()).done).toBe(true)
    await settle()
    expect(await limiter.inFlight('acme')).toBe(0)
    const again = await send('/ok')
    expect(await again.text()).toBe('ok')
  })

  it('releases at once for a body-less response', async () => {
    const { send } = app()
    expect((await send('/empty')).status).toBe(204)
    await settle()
    expect(await limiter.inFlight('acme')).toBe(0)
  })

  it('releases when the client aborts', async () => {
    const { send } = app()
    const abort = new AbortController()
    const streamed = await send('/stream', { signal: abort.signal })
    expect(streamed.status).toBe(200)
    expect(await limiter.inFlight('acme')).toBe(1)
    abort.abort()
    await settle()
    expect(await limiter.inFlight('acme')).toBe(0)
  })

  it('releases when the handler throws (Hono answers 500)', async () => {
    const { send } = app()
    const failed = await send('/throw')
    expect(failed.status).toBe(500)
    await failed.text()
    await settle()
    expect(await limiter.inFlight('acme')).toBe(0)
  })

  it('releases when the rate limit or the quota refuses after it', async () => {
    await configs.setTenantConfig({
      id: 'acme',
      concurrency: { maxInFlight: 1 },
      rateLimit: { requestsPerSecond: 1, burst: 1 },
      quota: { limits: [{ window: 'minute', requests: 2 }] },
    })
    const { send } = app({
      rateLimit: new TokenBucketRateLimiter(configs, { clock }),
      quota: new InMemoryQuotaManager(configs, { clock }),
    })
    expect(await (await send('/ok')).text()).toBe('ok')
    await settle()
    expect(((await (await send('/ok')).json()) as { code: string }).code).toBe('tenant_rate_limited')
    await settle()
    expect(await limiter.inFlight('acme')).toBe(0)
    clock.advance(1_000)
    expect(await (await send('/ok')).text()).toBe('ok')
    clock.advance(1_000)
    await settle()
    expect(((await (await send('/ok')).json()) as { code: string }).code).toBe('tenant_quota_exceeded')
    await settle()
    expect(await limiter.inFlight('acme')).toBe(0)
  })

  it('gives a HEAD request its slot back when the handler answers (Hono drops the body unread)', async () => {
    await configs.setTenantConfig({ id: 'acme', concurrency: { maxInFlight: 2 } })
    const { send } = app()
    for (let i = 0; i < 2; i++) {
      const head = await send('/ok', { method: 'HEAD' })
      expect(head.status).toBe(200)
      expect(head.body).toBeNull()
    }
    expect(await limiter.inFlight('acme')).toBe(0)
    expect(await (await send('/ok')).text()).toBe('ok')
    // A HEAD of a streamed route too: the stream is never read.
    expect((await send('/stream', { method: 'HEAD' })).status).toBe(200)
    expect(await limiter.inFlight('acme')).toBe(0)
  })

  it('gives the slot back when the next() it is handed throws before answering, or answers no promise', async () => {
    const boom = new Error('thrown by next')
    const chain = tenancy({ configManager: configs, concurrency: limiter, clock })
    const hono = new Hono<TenantEnv>()
    // The chain called by hand, with a next() of another kind than Hono's (which always answers a promise).
    hono.get('/throws', async (c) => {
      const thrown = await Promise.resolve(
        chain(c, (() => {
          throw boom
        }) as unknown as Next),
      ).then(
        () => 'resolved',
        (error: unknown) => (error === boom ? 'rejected with it' : String(error)),
      )
      return c.text(thrown)
    })
    hono.get('/plain', async (c) => {
      await chain(c, (() => undefined) as unknown as Next)
      return c.text('answered')
    })
    const send = (path: string) => hono.request(path, { headers: { 'X-Tenant-ID': 'acme' } })
    expect(await (await send('/throws')).text()).toBe('rejected with it')
    await settle()
    expect(await limiter.inFlight('acme')).toBe(0)
    expect(await (await send('/plain')).text()).toBe('answered')
    await settle()
    expect(await limiter.inFlight('acme')).toBe(0)
  })

  it('keeps the slot of a client that aborts while the handler runs until the handler answers', async () => {
    const hono = new Hono()
    hono.use('*', tenancy({ configManager: configs, concurrency: limiter, clock }))
    let answer!: () => void
    let entered!: () => void
    const inHandler = new Promise<void>((resolve) => {
      entered = resolve
    })
    hono.get('/slow', async (c) => {
      entered()
      await new Promise<void>((resolve) => {
        answer = resolve
      })
      return c.text('late')
    })
    hono.get('/ok', (c) => c.text('ok'))
    const send = (path: string, init: RequestInit = {}) =>
      hono.request(`https://api.example.com${path}`, { headers: { 'X-Tenant-ID': 'acme' }, ...init })
    const abort = new AbortController()
    const slow = send('/slow', { signal: abort.signal })
    await inHandler
    abort.abort()
    await settle()
    // The client has gone, its handler still runs: the cap (1) still counts it.
    expect(await limiter.inFlight('acme')).toBe(1)
    expect((await send('/ok')).status).toBe(429)
    answer()
    await slow
    await settle()
    expect(await limiter.inFlight('acme')).toBe(0)
    expect(await (await send('/ok')).text()).toBe('ok')
  })

  it('gives the slot back at once when an outer middleware cancels the body it replaces', async () => {
    const hono = new Hono()
    hono.use('*', async (c, next) => {
      await next()
      if (c.res.status >= 500) {
        await c.res.body?.cancel()
        c.res = c.json({ error: 'upstream failed' }, 502)
      }
    })
    hono.use('*', tenancy({ configManager: configs, concurrency: limiter, clock }))
    hono.get('/x', (c) => c.text('upstream exploded', 500))
    const response = await hono.request('https://api.example.com/x', { headers: { 'X-Tenant-ID': 'acme' } })
    expect(response.status).toBe(502)
    await settle()
    expect(await limiter.inFlight('acme')).toBe(0)
  })

  it('works as a single middleware after the resolver', async () => {
    const hono = new Hono()
    hono.use('*', tenantResolver({ configManager: configs }), tenantConcurrency({ limiter }))
    hono.get('/ok', (c) => c.text('ok'))
    const first = await hono.request('https://api.example.com/ok', { headers: { 'X-Tenant-ID': 'acme' } })
    expect(await limiter.inFlight('acme')).toBe(1)
    expect(
      (await hono.request('https://api.example.com/ok', { headers: { 'X-Tenant-ID': 'acme' } })).status,
    ).toBe(429)
    await first.text()
    await settle()
    expect(await limiter.inFlight('acme')).toBe(0)
  })

  // One client request through two chains with concurrency (or dispatched twice) took two slots:
  // with maxInFlight 1 its own second chain refused it 429.
  describe('a request that runs through two chains holding the same limiter', () => {
    // The handler's view: how many slots the tenant holds while it runs.
    const seen = (c: { text: (t: string) => Response }) =>
      limiter.inFlight('acme').then((n) => c.text(`in flight: ${n}`))
    const send = (app: Hono<any>, path: string, init: RequestInit = {}) =>
      app.request(`https://a.example${path}`, {
        ...init,
        headers: { 'X-Tenant-ID': 'acme', ...(init.headers as Record<string, string>) },
      })

    it("takes one slot: an app-wide tenancy() and a sub-app's, or a route's tenantConcurrency()", async () => {
      const app = new Hono()
      app.use('*', tenancy({ configManager: configs, concurrency: limiter }))
      const api = new Hono()
      api.use('*', tenancy({ configManager: configs, concurrency: limiter }))
      api.get('/x', seen)
      app.route('/api', api)
      app.get('/route', tenantConcurrency({ limiter, provider: configs }), seen)
      for (const path of ['/api/x', '/route']) {
        const response = await send(app, path)
        expect([response.status, await response.text()], path).toEqual([200, 'in flight: 1'])
        await settle()
        expect(await limiter.inFlight('acme')).toBe(0)
      }
    })

    it('still refuses another request of the tenant while the first holds the slot', async () => {
      let release!: () => void
      const held = new Promise<void>((resolve) => {
        release = resolve
      })
      const app = new Hono()
      app.use('*', tenancy({ configManager: configs, concurrency: limiter }))
      app.get('/slow', async (c) => {
        await held
        return c.text('slow')
      })
      app.get('/route', tenantConcurrency({ limiter, provider: configs }), seen)
      const slow = send(app, '/slow')
      await settle()
      expect((await send(app, '/route')).status).toBe(429)
      release()
      expect((await slow).status).toBe(200)
    })

    it('takes one slot when hono/method-override dispatches the request again after tenancy()', async () => {
      const { methodOverride } = await import('hono/method-override')
      const app = new Hono()
      app.use('*', tenancy({ configManager: configs, concurrency: limiter }))
      app.use('*', methodOverride({ app }))
      app.delete('/x', seen)
      const response = await send(app, '/x', {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: '_method=DELETE',
      })
      expect([response.status, await response.text()]).toEqual([200, 'in flight: 1'])
    })
  })
})
