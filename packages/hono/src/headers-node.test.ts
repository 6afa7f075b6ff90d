import { connect, createServer as createHttp2Server } from 'node:http2'
import type { AddressInfo } from 'node:net'
import { type ServerType, serve } from '@hono/node-server'
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response'
import {
  InMemoryConfigManager,
  InMemoryQuotaManager,
  ManualClock,
  TokenBucketRateLimiter,
} from '@tenant/core'
import { Hono } from 'hono'
import { afterEach, describe, expect, it } from 'vitest'
import { tenancy, tenantQuota, tenantRateLimit, tenantResolver } from './index'

// Under @hono/node-server the stages' headers join the response head as Node writes it, instead
// of going through c.header(): these run the same apps on a real server and through app.request()
// (the c.header() path), and expect the same headers from both.

const NAMES = [
  'ratelimit-policy',
  'ratelimit',
  'x-quota-remaining-requests',
  'x-quota-remaining-tokens',
  'location',
  'content-type',
  'x-used',
] as const

type Seen = { status: number; headers: Partial<Record<(typeof NAMES)[number], string>> }

function seen(status: number, get: (name: string) => string | null | undefined): Seen {
  const headers: Seen['headers'] = {}
  for (const name of NAMES) {
    const value = get(name)
    // undici and @hono/node-server spell their default text/plain differently.
    if (value !== null && value !== undefined) headers[name] = value.replace(';charset', '; charset')
  }
  return { status, headers }
}

const SHARED_HEADERS = Object.freeze({ 'Content-Type': 'text/plain', 'X-Quota-Remaining-Requests': 'mine' })

async function fixtures() {
  const clock = new ManualClock(Date.UTC(2026, 0, 1, 12, 0, 15))
  const configs = new InMemoryConfigManager({ clock })
  await configs.setTenantConfig({
    id: 'acme',
    quota: { limits: [{ window: 'minute', requests: 100, tokens: 1000 }] },
    rateLimit: { requestsPerSecond: 10, burst: 10 },
  })
  const quotas = new InMemoryQuotaManager(configs, { clock })
  const limiter = new TokenBucketRateLimiter(configs, { clock })
  return { clock, configs, quotas, limiter }
}

/** The app every test runs: one chain, routes that answer in each way a handler can. */
async function chainApp() {
  const { clock, configs, quotas, limiter } = await fixtures()
  const app = new Hono()
  app.use(
    '/api/*',
    tenancy({
      configManager: configs,
      rateLimit: limiter,
      quota: {
        manager: quotas,
        clock,
        actualTokens: (response) => {
          const used = response.headers.get('X-Used')
          return used === null ? undefined : Number(used)
        },
      },
      clock,
    }),
  )
  app.get('/api/json', (c) => c.json({ ok: true }))
  app.get('/api/text', (c) => c.text('ok', 200, { 'X-Used': '40' }))
  app.get('/api/redirect', () => Response.redirect('https://example.com/elsewhere', 302))
  app.get('/api/own', (c) => {
    c.header('RateLimit-Policy', '"own";q=5;w=1')
    c.header('X-Quota-Remaining-Requests', 'overwritten')
    return c.text('own')
  })
  app.get('/api/raw', () => new Response('raw', { headers: SHARED_HEADERS }))
  app.get(
    '/api/raw-lower',
    () => new Response('raw', { headers: { ratelimit: '"own";r=1;t=1', 'x-quota-remaining-tokens': '7' } }),
  )
  app.get('/api/stream', (c) =>
    c.body(
      new ReadableStream({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('data: 1\n\n'))
          controller.close()
        },
      }),
      200,
      { 'Content-Type': 'text/event-stream' },
    ),
  )
  app.get('/api/boom', () => {
    throw new Error('handler bug')
  })
  app.use('/api/later-refusal', async (c) => c.json({ error: 'later' }, 401))
  app.onError((_error, c) => c.text('failed', 500))
  return { app, quotas }
}

const servers: ServerType[] = []

async function listen(app: Hono<any>, options: Partial<Parameters<typeof serve>[0]> = {}): Promise<string> {
  const server = await new Promise<ServerType>((resolve) => {
    const started = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1', ...options }, () =>
      resolve(started),
    )
  })
  servers.push(server)
  return `127.0.0.1:${(server.address() as AddressInfo).port}`
}

afterEach(async () => {
  for (const server of servers.splice(0)) await new Promise<void>((resolve) => server.close(() => resolve()))
})

const TENANT = { 'X-Tenant-ID': 'acme' }

async function overNode(app: Hono<any>, path: string): Promise<Seen> {
  const response = await fetch(`http://${await listen(app)}${path}`, { headers: TENANT, redirect: 'manual' })
  await response.arrayBuffer()
  return seen(response.status, (name) => response.headers.get(name))
}

async function throughRequest(app: Hono<any>, path: string): Promise<Seen> {
  const response = await app.request(`http://api.example.com${path}`, { headers: TENANT })
  await response.arrayBuffer()
  return seen(response.status, (name) => response.headers.get(name))
}

describe('@tenant/hono headers on @hono/node-server', () => {
  const paths = [
    '/api/json',
    '/api/text',
    '/api/redirect',
    '/api/own',
    '/api/raw',
    '/api/raw-lower',
    '/api/stream',
    '/api/boom',
    '/api/later-refusal',
  ]

  it.each(paths)('sends the headers app.request() gives for %s', async (path) => {
    const viaRequest = await throughRequest((await chainApp()).app, path)
    const viaNode = await overNode((await chainApp()).app, path)
    expect(viaNode).toEqual(viaRequest)
    // Every admitted request carries the quota and rate-limit fields, whatever the handler built.
    expect(viaNode.headers['ratelimit-policy']).toContain('"minute";q=100;w=60')
    expect(viaNode.headers.ratelimit).toContain('"rate";r=9;t=1')
  })

  it('merges the handler own fields and keeps its object unchanged', async () => {
    const { app } = await chainApp()
    const own = await overNode(app, '/api/own')
    expect(own.headers['ratelimit-policy']).toBe(
      '"own";q=5;w=1, "minute";q=100;w=60, "minute-tokens";q=1000;w=60;qu="tokens", "rate";q=10',
    )
    // A stage's other fields replace the handler's value.
    expect(own.headers['x-quota-remaining-requests']).toBe('99')
    const raw = await overNode(app, '/api/raw-lower')
    expect(raw.headers.ratelimit).toMatch(/^"own";r=1;t=1, "minute";r=98;t=45/)
    expect(raw.headers['x-quota-remaining-tokens']).toBe('1000')
    await overNode(app, '/api/raw')
    expect(SHARED_HEADERS).toEqual({ 'Content-Type': 'text/plain', 'X-Quota-Remaining-Requests': 'mine' })
  })

  it("keeps its own items next to a proxied upstream's items that merely start the same way", async () => {
    // An upstream on the same toolkit with a burst of 100 sends "rate";q=100; this gateway's own
    // item is "rate";q=10, which a text search finds inside the upstream's and dropped.
    const clock = new ManualClock(Date.UTC(2026, 0, 1, 12, 0, 15))
    const configs = new InMemoryConfigManager({ clock })
    await configs.setTenantConfig({ id: 'acme', rateLimit: { requestsPerSecond: 10, burst: 10 } })
    const app = new Hono()
    app.use(
      '*',
      tenancy({ configManager: configs, rateLimit: new TokenBucketRateLimiter(configs, { clock }), clock }),
    )
    app.get(
      '/proxy',
      () =>
        new Response('upstream', {
          headers: { 'RateLimit-Policy': '"rate";q=100', RateLimit: '"rate";r=99;t=12' },
        }),
    )
    for (const via of [throughRequest, overNode]) {
      const { headers } = await via(app, '/proxy')
      expect(headers['ratelimit-policy'], via.name).toBe('"rate";q=100, "rate";q=10')
      expect(headers.ratelimit, via.name).toMatch(/^"rate";r=99;t=12, "rate";r=\d;t=1$/)
    }
  })

  it('sends the values the quota adjusted after the handler (actualTokens)', async () => {
    const { app, quotas } = await chainApp()
    const text = await overNode(app, '/api/text')
    expect(text.headers['x-quota-remaining-tokens']).toBe('960')
    expect((await quotas.peek('acme')).windows[0]!.used).toEqual({ requests: 1, tokens: 40 })
  })

  it('adds each chain mounted on the route once, its items in the order the chains ran', async () => {
    const { clock, configs, quotas, limiter } = await fixtures()
    const app = new Hono()
      .use(tenantResolver({ configManager: configs }))
      .use(tenantRateLimit({ limiter, clock }))
      .use(tenantQuota({ manager: quotas, clock }))
      .get('/', (c) => c.text('ok'))
    const viaNode = await overNode(app, '/')
    const viaRequest = await throughRequest(
      await (async () => {
        const again = await fixtures()
        return new Hono()
          .use(tenantResolver({ configManager: again.configs }))
          .use(tenantRateLimit({ limiter: again.limiter, clock: again.clock }))
          .use(tenantQuota({ manager: again.quotas, clock: again.clock }))
          .get('/', (c) => c.text('ok'))
      })(),
      '/',
    )
    expect(viaNode.status).toBe(200)
    // The same items in the same order as through c.header(): the rate limit's, then the quota's
    // (each chain wrapped writeHead on top of the last, so the last chain's came first).
    expect(viaNode.headers['ratelimit-policy']).toBe(viaRequest.headers['ratelimit-policy'])
    expect(viaNode.headers.ratelimit).toBe(viaRequest.headers.ratelimit)
    expect(viaNode.headers['ratelimit-policy']!.split(', ')).toHaveLength(3)
    expect(viaNode.headers['ratelimit-policy']!.startsWith('"rate";')).toBe(true)
    expect(viaNode.headers['x-quota-remaining-requests']).toBe('99')
  })

  it('orders the items of two tenancy() chains on a route as app.request() does', async () => {
    const build = async () => {
      const a = await fixtures()
      const b = await fixtures()
      return new Hono()
        .use(tenancy({ configManager: a.configs, rateLimit: a.limiter, clock: a.clock }))
        .use(tenancy({ configManager: a.configs, quota: b.quotas, clock: b.clock }))
        .get('/', (c) => c.text('ok'))
    }
    const viaNode = await overNode(await build(), '/')
    const viaRequest = await throughRequest(await build(), '/')
    expect(viaNode.headers['ratelimit-policy']).toBe(viaRequest.headers['ratelimit-policy'])
    expect(viaNode.headers.ratelimit).toBe(viaRequest.headers.ratelimit)
    expect(viaNode.headers['ratelimit-policy']!.startsWith('"rate";')).toBe(true)
  })

  it('adds the headers to a head the handler writes itself, and to a header set on the Node response', async () => {
    const { app } = await chainApp()
    app.get('/api/direct', (c) => {
      const outgoing = (c.env as { outgoing: import('node:http').ServerResponse }).outgoing
      outgoing.setHeader('RateLimit', '"direct";r=3;t=3')
      outgoing.writeHead(203, 'Mine', ['X-Quota-Remaining-Tokens', 'direct', 'Content-Type', 'text/plain'])
      outgoing.end('direct')
      return RESPONSE_ALREADY_SENT
    })
    const direct = await overNode(app, '/api/direct')
    expect(direct.status).toBe(203)
    expect(direct.headers.ratelimit).toMatch(/^"direct";r=3;t=3, "minute";r=99;t=45/)
    expect(direct.headers['x-quota-remaining-tokens']).toBe('1000')
    expect(direct.headers['content-type']).toBe('text/plain')
  })

  it('sends the headers over HTTP/2 (the compatibility response)', async () => {
    const { app } = await chainApp()
    const authority = await listen(app, { createServer: createHttp2Server as never })
    const client = connect(`http://${authority}`)
    try {
      const headers = await new Promise<Record<string, unknown>>((resolve, reject) => {
        const stream = client.request({ ':path': '/api/json', 'x-tenant-id': 'acme' })
        stream.on('response', (head) => {
          stream.resume()
          stream.on('end', () => resolve(head))
        })
        stream.on('error', reject)
      })
      expect(headers[':status']).toBe(200)
      expect(headers['x-quota-remaining-requests']).toBe('99')
      expect(headers['ratelimit-policy']).toContain('"minute";q=100;w=60')
    } finally {
      client.close()
    }
  })
})
