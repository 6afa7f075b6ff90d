import type { AddressInfo } from 'node:net'
import { type ServerType, serve } from '@hono/node-server'
import { ConfigPolicyEvaluator, InMemoryConfigManager, InMemoryQuotaManager } from '@tenant/core'
import { Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { methodOverride } from 'hono/method-override'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type TenantEnv, tenancy, tenantResolver } from './index'

const headers = { 'X-Tenant-ID': 'acme' }

async function configs(allowedPaths: string[]): Promise<InMemoryConfigManager> {
  const store = new InMemoryConfigManager()
  await store.setTenantConfig({ id: 'acme', policy: { allowedPaths } })
  return store
}

function filesApp(store: InMemoryConfigManager, strict: boolean): Hono<TenantEnv> {
  const app = new Hono<TenantEnv>({ strict })
  app.use('*', tenancy({ configManager: store, policy: new ConfigPolicyEvaluator(store) }))
  app.get('/v1/files', (c) => c.text('list-all-files'))
  app.get('/v1/files/:id', (c) => c.text(`file ${c.req.param('id')}`))
  return app
}

// Hono's strict: false serves /v1/files/ with the /v1/files handler. The policy checked the text
// of the URL, which /v1/files/* allows: the tenant reached the handler its allow-list leaves out.
describe('the policy checks the path Hono serves under strict: false', () => {
  let app: Hono<TenantEnv>
  let server: ServerType
  let base: string
  beforeAll(async () => {
    // acme may read single files, not list them all.
    app = filesApp(await configs(['/v1/files/*']), false)
    server = await new Promise<ServerType>((resolve) => {
      const started = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(started))
    })
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

  it('denies /v1/files/, which runs the /v1/files handler, on app.request() and @hono/node-server', async () => {
    for (const response of [
      await app.request('/v1/files/', { headers }),
      await fetch(`${base}/v1/files/`, { headers }),
    ]) {
      expect(response.status).toBe(403)
      expect(await response.json()).toMatchObject({ code: 'tenant_policy_denied', rule: 'path' })
    }
    expect((await app.request('/v1/files', { headers })).status).toBe(403)
  })

  it('allows what the allow-list names, with or without the trailing slash the router drops', async () => {
    for (const path of ['/v1/files/42', '/v1/files/42/']) {
      const response = await fetch(`${base}${path}`, { headers })
      expect(response.status, path).toBe(200)
      expect(await response.text(), path).toBe('file 42')
    }
  })

  it('keeps the trailing slash significant on a strict app, as documented', async () => {
    const strict = filesApp(await configs(['/v1/files/*']), true)
    // /v1/files/ is its own route there (none here: 404 after the policy allowed it).
    expect((await strict.request('/v1/files/', { headers })).status).toBe(404)
    expect((await strict.request('/v1/files', { headers })).status).toBe(403)
  })
})

// mount() hands the sub-app a Request without the mount prefix; allow-lists are written as clients
// send paths, so the sub-app's policy checks the path on the request the tenant was resolved on.
describe('the policy of a sub-app reached through mount() checks the path the client sent', () => {
  async function mounted(allowedPaths: string[]) {
    const store = await configs(allowedPaths)
    const app = new Hono<TenantEnv>()
    app.use('*', tenantResolver({ configManager: store }))
    app.get('/public/*', (c) => c.text('public'))
    const internal = new Hono<TenantEnv>()
    internal.use('*', tenancy({ configManager: store, policy: new ConfigPolicyEvaluator(store) }))
    internal.get('*', (c) => c.text(`internal ${c.req.path}`))
    app.mount('/internal', internal.fetch)
    return app
  }

  it('does not allow /internal/public/x by an allowedPaths of ["/public/*"]', async () => {
    const app = await mounted(['/public/*'])
    expect((await app.request('/public/x', { headers })).status).toBe(200)
    const response = await app.request('/internal/public/x', { headers })
    expect(response.status).toBe(403)
    expect(await response.json()).toMatchObject({ code: 'tenant_policy_denied', rule: 'path' })
  })

  it('allows it by an entry for the path the client sent', async () => {
    const app = await mounted(['/internal/*'])
    const response = await app.request('/internal/public/x', { headers })
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('internal /public/x')
  })

  // mount() writes Hono's decoded path into the new URL, and a URL parser's form of the query: the
  // sub-app's request was no longer read as the client's, and was checked on its own path.
  it("reads it as the client's when mount() rewrote the escapes of the path or the query", async () => {
    const denying = await mounted(['/public/*'])
    for (const path of ['/internal/%70ublic/x', '/internal/public/x?q="a b"']) {
      expect((await denying.request(`http://api.example.com${path}`, { headers })).status, path).toBe(403)
    }
    const allowing = await mounted(['/internal/*'])
    expect((await allowing.request('http://api.example.com/internal/a%41b', { headers })).status).toBe(200)
  })
})

// A handler inside the chain that runs requests of its own through the app (a batch route): each is
// checked on its own path. They ran in the outer request's resolver scope, whose request the
// policy took for the client's (as under mount()), so /admin/keys was checked as /v1/batch.
describe('a request a handler makes through the app inside the chain', () => {
  async function batchApp() {
    const store = await configs(['/v1/*'])
    const app = new Hono<TenantEnv>()
    app.use('*', tenancy({ configManager: store, policy: new ConfigPolicyEvaluator(store) }))
    app.post('/v1/batch', async (c) => {
      const paths = (await c.req.json()) as string[]
      const statuses: number[] = []
      for (const path of paths) statuses.push((await app.request(path, { headers })).status)
      return c.json(statuses)
    })
    app.get('/v1/hello', (c) => c.text('hello'))
    app.get('/admin/keys', (c) => c.text('admin keys'))
    // The client's URL with a path that ends the client's: the client's whole request sent on
    // reads as a mount (as mount() makes it), a request with headers of its own does not, nor one
    // on another origin the client chose with its Host.
    app.post('/v1/echo', async (c) => {
      const url = new URL(c.req.url)
      url.pathname = '/echo'
      const whole = c.req.query('whole') !== undefined
      return app.request(whole ? new Request(url, c.req.raw) : new Request(url, { method: 'POST', headers }))
    })
    app.post('/echo', (c) => c.text('echo'))
    return app
  }

  // A middleware that replaces the request (bodyLimit for a chunked body) hands the decision on:
  // the replacement of the app's own request was taken for the client's and checked on its path.
  it('is checked on its own path when a middleware replaced it on the way', async () => {
    const store = await configs(['/v1/*'])
    const app = new Hono<TenantEnv>()
    app.use('*', tenantResolver({ configManager: store }))
    app.use('*', bodyLimit({ maxSize: 1024 }))
    app.use('*', tenancy({ policy: new ConfigPolicyEvaluator(store) }))
    app.post('/v1/batch', async (c) => {
      const statuses: number[] = []
      for (const path of ['/v1/hello', '/admin/keys']) {
        const body = new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(new TextEncoder().encode('x'))
            controller.close()
          },
        })
        const init = { method: 'POST', headers, body, duplex: 'half' } as RequestInit
        statuses.push((await app.request(path, init)).status)
      }
      return c.json(statuses)
    })
    app.post('/v1/hello', (c) => c.text('hello'))
    app.post('/admin/keys', (c) => c.text('admin keys'))
    const response = await app.request('/v1/batch', { method: 'POST', headers })
    expect(await response.json()).toEqual([200, 403])
  })

  it('is checked on its own path: /admin/keys is denied, /v1/hello allowed', async () => {
    const app = await batchApp()
    const response = await app.request('/v1/batch', {
      method: 'POST',
      headers,
      body: JSON.stringify(['/v1/hello', '/admin/keys', '/v1/batch/../../admin/keys']),
    })
    expect(await response.json()).toEqual([200, 403, 403])
  })

  it("is read as a mount only when it is the client's whole request with its path shortened", async () => {
    const app = await batchApp()
    const client = { ...headers, Accept: 'text/plain' }
    expect((await app.request('/v1/echo?whole', { method: 'POST', headers: client })).status).toBe(200)
    expect((await app.request('/v1/echo', { method: 'POST', headers: client })).status).toBe(403)
    // Host: localhost makes the client's origin the one app.request() uses; still its own headers.
    const local = await app.request('http://localhost/v1/batch', {
      method: 'POST',
      headers,
      body: JSON.stringify(['/', '/batch']),
    })
    expect(await local.json()).toEqual([403, 403])
  })
})

describe("an extract() that answers the request's own path", () => {
  it('is not denied where the router drops the trailing slash', async () => {
    const store = await configs(['/v1/*'])
    const app = new Hono<TenantEnv>({ strict: false })
    app.use(
      '*',
      tenancy({
        configManager: store,
        policy: {
          evaluator: new ConfigPolicyEvaluator(store),
          extract: (request) => ({ path: new URL(request.url).pathname }),
        },
      }),
    )
    app.get('/v1/files/:id', (c) => c.text('file'))
    const response = await app.request('/v1/files/42/', { headers })
    expect(response.status).toBe(200)
    // Another path than the request line's is still denied.
    const other = new Hono<TenantEnv>()
    other.use(
      '*',
      tenancy({
        configManager: store,
        policy: { evaluator: new ConfigPolicyEvaluator(store), extract: () => ({ path: '/v1/other' }) },
      }),
    )
    other.get('*', (c) => c.text('any'))
    expect((await other.request('/v1/files/42', { headers })).status).toBe(403)
  })
})

// hono/method-override dispatches again through app.fetch(): mounted before tenancy(), as the
// README asks, the chain runs once, on the method the handler serves.
describe('hono/method-override before tenancy()', () => {
  it('checks the overridden method and charges the request once', async () => {
    const store = new InMemoryConfigManager()
    await store.setTenantConfig({
      id: 'acme',
      policy: { allowedMethods: ['POST', 'DELETE'] },
      quota: { limits: [{ window: 'day', requests: 100 }] },
    })
    const quotas = new InMemoryQuotaManager(store)
    const app = new Hono<TenantEnv>()
    app.use('*', methodOverride({ app, header: 'X-HTTP-Method-Override' }))
    app.use('*', tenancy({ configManager: store, policy: new ConfigPolicyEvaluator(store), quota: quotas }))
    app.put('/items/1', (c) => c.text('put'))
    app.delete('/items/1', (c) => c.text('delete'))
    const send = (method: string) =>
      app.request('/items/1', { method: 'POST', headers: { ...headers, 'X-HTTP-Method-Override': method } })
    const used = async () => (await quotas.peek('acme')).windows[0]!.used.requests

    const denied = await send('PUT')
    expect(denied.status).toBe(403)
    expect(await denied.json()).toMatchObject({ rule: 'method' })
    expect(await used()).toBe(0)
    const allowed = await send('DELETE')
    expect(await allowed.text()).toBe('delete')
    expect(await used()).toBe(1)
  })
})
