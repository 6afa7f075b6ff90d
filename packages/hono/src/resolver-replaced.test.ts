import { request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type ServerType, serve } from '@hono/node-server'
import { InMemoryConcurrencyLimiter, InMemoryConfigManager, InMemoryQuotaManager } from '@tenant/core'
import { Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { mount } from 'hono/mount'
import { beforeEach, describe, expect, it } from 'vitest'
import {
  currentTenantId,
  fromSubdomain,
  getTenantId,
  type TenantEnv,
  tenancy,
  tenantConcurrency,
  tenantQuota,
  tenantResolver,
} from './index'

// A resolver never switches the tenant an earlier one found, also when the Request object is
// replaced between them: Hono's bodyLimit() re-creates c.req.raw for a body without a
// Content-Length (a chunked upload), app.mount() and hono/mount hand the sub-app a new Request
// (and a new context). The earlier decision comes along on `c`, or in the tenant context.

let configs: InMemoryConfigManager
let quotas: InMemoryQuotaManager
beforeEach(async () => {
  configs = new InMemoryConfigManager()
  for (const id of ['acme', 'globex']) {
    await configs.setTenantConfig({ id, quota: { limits: [{ window: 'day', requests: 100 }] } })
  }
  quotas = new InMemoryQuotaManager(configs)
})

const charged = async (tenant: string) => (await quotas.peek(tenant)).windows[0]!.used.requests

/** What a client gets back, whichever way the request was sent. */
interface Answer {
  status: number
  headers: Record<string, string>
  body: string
}

type Send = (app: Hono<any>, path: string, headers: Record<string, string>) => Promise<Answer>

const BODY = '{"prompt":"hello"}'

function chunks(): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      controller.enqueue(new TextEncoder().encode(BODY.slice(0, 5)))
      controller.enqueue(new TextEncoder().encode(BODY.slice(5)))
      controller.close()
    },
  })
}

async function answer(response: Response): Promise<Answer> {
  return {
    status: response.status,
    headers: Object.fromEntries(response.headers),
    body: await response.text(),
  }
}

/** A POST with a streamed body and no Content-Length, as app.request() and a Node server see one. */
const transports: Record<string, Send> = {
  'app.request': async (app, path, headers) =>
    answer(
      await app.request(`http://acme.example.com${path}`, {
        method: 'POST',
        headers,
        body: chunks(),
        duplex: 'half',
      } as RequestInit),
    ),
  // A real server and a real chunked upload (Transfer-Encoding: chunked), Host acme.example.com.
  '@hono/node-server': async (app, path, headers) => {
    const server = await new Promise<ServerType>((resolve) => {
      const started = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(started))
    })
    try {
      const { port } = server.address() as AddressInfo
      return await new Promise<Answer>((resolve, reject) => {
        const request = httpRequest(
          {
            host: '127.0.0.1',
            port,
            path,
            method: 'POST',
            headers: {
              ...headers,
              Host: 'acme.example.com',
              'Content-Type': 'application/json',
              'Transfer-Encoding': 'chunked',
            },
          },
          (response) => {
            let body = ''
            response.setEncoding('utf8')
            response.on('data', (chunk: string) => {
              body += chunk
            })
            response.on('end', () =>
              resolve({
                status: response.statusCode!,
                headers: response.headers as Record<string, string>,
                body,
              }),
            )
            response.on('error', reject)
          },
        )
        request.on('error', reject)
        request.write(BODY.slice(0, 5))
        request.end(BODY.slice(5))
      })
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  },
}

/** The README's scenario: an app-wide resolver (a session's tenant, the subdomain), a sub-app's tenancy(). */
function subApp() {
  return new Hono<TenantEnv>()
    .use('*', tenancy({ configManager: configs, quota: quotas }))
    .post('/data', async (c) =>
      c.json({ tenant: c.var.tenantId, current: currentTenantId() ?? null, body: await c.req.text() }),
    )
}

function appWide(context = true) {
  return tenantResolver({
    principal: (c) => c.req.header('X-Session-Tenant'),
    extractors: [fromSubdomain('example.com')],
    configManager: configs,
    context,
  })
}

const wirings: Record<string, () => Hono<any>> = {
  'app.route()': () => new Hono().use('*', appWide()).route('/api', subApp()),
  'bodyLimit() then app.route()': () =>
    new Hono()
      .use('*', appWide())
      .use('*', bodyLimit({ maxSize: 1024 }))
      .route('/api', subApp()),
  'bodyLimit() then app.route(), context: false': () =>
    new Hono()
      .use('*', appWide(false))
      .use('*', bodyLimit({ maxSize: 1024 }))
      .route('/api', subApp()),
  'app.mount()': () => {
    const app = new Hono().use('*', appWide())
    app.mount('/api', subApp().fetch)
    return app
  },
  'hono/mount': () => {
    const sub = subApp()
    return new Hono().use('*', appWide()).all('/api/*', mount(sub.fetch))
  },
  'bodyLimit() then hono/mount': () => {
    const sub = subApp()
    return new Hono()
      .use('*', appWide())
      .use('*', bodyLimit({ maxSize: 1024 }))
      .all('/api/*', mount(sub.fetch))
  },
}

describe('a sub-app resolver after an app-wide one, with the Request replaced between them', () => {
  for (const [transport, send] of Object.entries(transports)) {
    for (const [wiring, make] of Object.entries(wirings)) {
      it(`${transport}, ${wiring}: refuses 403 tenant_mismatch and charges nobody`, async () => {
        const response = await send(make(), '/api/data', {
          'X-Session-Tenant': 'acme',
          'X-Tenant-ID': 'globex',
        })
        expect(response.status).toBe(403)
        expect(JSON.parse(response.body)).toMatchObject({ code: 'tenant_mismatch' })
        expect([await charged('acme'), await charged('globex')]).toEqual([0, 0])
      })

      it(`${transport}, ${wiring}: serves the same tenant, or none named, as the earlier one`, async () => {
        for (const [i, headers] of ([{}, { 'X-Tenant-ID': 'acme' }] as Record<string, string>[]).entries()) {
          const response = await send(make(), '/api/data', { 'X-Session-Tenant': 'acme', ...headers })
          expect(response.status, JSON.stringify(headers)).toBe(200)
          expect(JSON.parse(response.body)).toEqual({ tenant: 'acme', current: 'acme', body: BODY })
          // The sub-app's quota headers reach the client: an outer chain takes them for its own
          // request's, not another's, though they were written for another Request object.
          expect(response.headers['x-quota-remaining-requests'], JSON.stringify(headers)).toBe(String(99 - i))
        }
        expect([await charged('acme'), await charged('globex')]).toEqual([2, 0])
      })
    }
  }
})

describe('split middleware with bodyLimit() between the resolver and the stages', () => {
  // Every chunked POST used to get a 500 ("tenantConcurrency() found no tenant resolution"):
  // the stages read the decision from the Request object bodyLimit() replaced.
  for (const [transport, send] of Object.entries(transports)) {
    for (const context of [true, false]) {
      it(`${transport}, context: ${context}: the stages find the tenant, charge it and give the slot back`, async () => {
        await configs.setTenantConfig({
          id: 'acme',
          concurrency: { maxInFlight: 1 },
          quota: { limits: [{ window: 'day', requests: 100 }] },
        })
        const limiter = new InMemoryConcurrencyLimiter()
        const app = new Hono()
          .use('*', tenantResolver({ configManager: configs, context }))
          .use('*', bodyLimit({ maxSize: 1024 }))
          .use('*', tenantConcurrency({ limiter }), tenantQuota({ manager: quotas }))
          .post('/x', async (c) => c.json({ tenant: c.var.tenantId, body: await c.req.text() }))
        for (let i = 1; i <= 3; i++) {
          const response = await send(app, '/x', { 'X-Tenant-ID': 'acme' })
          expect(response.status).toBe(200)
          expect(JSON.parse(response.body)).toEqual({ tenant: 'acme', body: BODY })
          expect(response.headers['x-quota-remaining-requests']).toBe(String(100 - i))
          // The slot of each request is free again once it has been answered (cap 1).
          await expect.poll(() => limiter.inFlight('acme')).toBe(0)
        }
        expect(await charged('acme')).toBe(3)
      })
    }
  }
})

describe('a stage of a sub-app mounted behind an app-wide resolver', () => {
  it('finds the tenant in the tenant context: served and charged, c.var.tenantId set', async () => {
    const sub = new Hono<TenantEnv>()
      .use('*', tenantQuota({ manager: quotas }))
      .post('/data', (c) => c.json({ tenant: c.var.tenantId }))
    const app = new Hono().use('*', appWide())
    app.mount('/api', sub.fetch)
    const response = await transports['app.request']!(app, '/api/data', { 'X-Session-Tenant': 'acme' })
    expect([response.status, JSON.parse(response.body)]).toEqual([200, { tenant: 'acme' }])
    expect(response.headers['x-quota-remaining-requests']).toBe('99')
    expect(await charged('acme')).toBe(1)
  })
})

describe('the tenant context of one request', () => {
  it('does not reach the next request on a kept-alive connection (@hono/node-server, mount())', async () => {
    const sub = new Hono<TenantEnv>()
      .use('*', tenancy({ configManager: configs }))
      .get('/data', (c) => c.json({ tenant: c.var.tenantId, current: currentTenantId() ?? null }))
    const app = new Hono().use(
      '*',
      tenantResolver({ principal: (c) => c.req.header('X-Session-Tenant'), configManager: configs }),
    )
    app.mount('/api', sub.fetch)
    const server = await new Promise<ServerType>((resolve) => {
      const started = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(started))
    })
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      // fetch() keeps the connection alive: the requests follow one another on one socket.
      for (const tenant of ['acme', 'globex', 'acme', 'globex']) {
        const response = await fetch(`${base}/api/data`, {
          headers: { 'X-Session-Tenant': tenant, 'X-Tenant-ID': tenant },
        })
        expect([response.status, await response.json()]).toEqual([200, { tenant, current: tenant }])
      }
    } finally {
      ;(server as { closeAllConnections?: () => void }).closeAllConnections?.()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  })
})

describe('a Request object that middleware hands downstream for several requests', () => {
  it("carries each request's own tenant, and the quota charges it, not the first request's", async () => {
    // A middleware keeping one prebuilt Request per route: the first request's decision on it
    // must not answer for the next one.
    const shared = new Request('http://upstream.example.com/x')
    const app = new Hono<TenantEnv>()
      .use('*', tenantResolver({ configManager: configs }))
      .use('*', async (c, next) => {
        c.req.raw = shared
        await next()
      })
      .use('*', tenantQuota({ manager: quotas }))
      .get('/x', (c) =>
        c.json({ var: c.var.tenantId, req: getTenantId(c.req.raw) ?? null, ctx: currentTenantId() ?? null }),
      )
    const acme = await (await app.request('/x', { headers: { 'X-Tenant-ID': 'acme' } })).json()
    const globex = await (await app.request('/x', { headers: { 'X-Tenant-ID': 'globex' } })).json()
    expect({ acme, globex }).toEqual({
      acme: { var: 'acme', req: 'acme', ctx: 'acme' },
      globex: { var: 'globex', req: 'globex', ctx: 'globex' },
    })
    expect([await charged('acme'), await charged('globex')]).toEqual([1, 1])
  })
})
