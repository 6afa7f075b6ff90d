import type { AddressInfo } from 'node:net'
import { type ServerType, serve } from '@hono/node-server'
import { InMemoryConfigManager, InMemoryQuotaManager } from '@tenant/core'
import { Hono } from 'hono'
import { streamSSE } from 'hono/streaming'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import {
  currentTenantId,
  fromHeader,
  fromPathPrefix,
  fromSubdomain,
  runWithTenantId,
  type TenantEnv,
  tenancy,
  tenantResolver,
} from './index'

// What the resolver reads must be what Hono routes on and what ran before it: a path Hono decodes,
// a tenant an app-wide resolver already found, a host under nested base domains.

let configs: InMemoryConfigManager
beforeEach(async () => {
  configs = new InMemoryConfigManager()
  await configs.setTenantConfig({ id: 'acme', quota: { limits: [{ window: 'day', requests: 100 }] } })
  await configs.setTenantConfig({ id: 'globex', quota: { limits: [{ window: 'day', requests: 100 }] } })
})

function pathApp(principal: boolean) {
  return new Hono<TenantEnv>()
    .use(
      '*',
      tenantResolver({
        ...(principal ? { principal: (c) => c.req.header('X-Session-Tenant') } : { jwtClaim: false }),
        extractors: [fromPathPrefix('/t/'), fromHeader()],
        configManager: configs,
      }),
    )
    .get('/t/:org/invoices', (c) => c.json({ tenant: c.var.tenantId, org: c.req.param('org') }))
}

// Hono's router decodes the path (getPath): /%74/globex/... runs the route /t/:org with org globex.
const ENCODED = [
  '/%74/globex/invoices',
  '/t/gl%6Fbex/invoices',
  '/t/%61cme/invoices',
  '/%2574/globex/invoices',
]

describe('fromPathPrefix and a percent-encoded path', () => {
  let server: ServerType
  let base: string
  const apps = { principal: pathApp(true), header: pathApp(false) }
  beforeAll(async () => {
    // One server, two apps: the header picks one.
    const both = new Hono().all('*', (c) =>
      (c.req.header('X-Session-Tenant') ? apps.principal : apps.header).fetch(c.req.raw, c.env),
    )
    server = await new Promise<ServerType>((resolve) => {
      const started = serve({ fetch: both.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(started))
    })
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

  const transports = {
    'app.request': (app: Hono<TenantEnv>, path: string, headers: Record<string, string>) =>
      app.request(path, { headers }),
    '@hono/node-server': (_app: Hono<TenantEnv>, path: string, headers: Record<string, string>) =>
      fetch(`${base}${path}`, { headers }),
  }

  for (const [transport, send] of Object.entries(transports)) {
    it(`${transport}: refuses it with 400 tenant_invalid_id, with a principal or a header`, async () => {
      for (const [kind, headers] of [
        ['principal', { 'X-Session-Tenant': 'acme' }],
        ['header', { 'X-Tenant-ID': 'acme' }],
      ] as const) {
        const app = apps[kind]
        for (const path of ENCODED) {
          const response = await send(app, path, headers)
          expect(response.status, `${kind} ${path}`).toBe(400)
          expect(((await response.json()) as { code: string }).code).toBe('tenant_invalid_id')
        }
        // Unencoded, the same request is read as the router reads it.
        const plain = await send(app, '/t/globex/invoices', headers)
        if (kind === 'principal') expect(plain.status).toBe(403)
        else expect(await plain.json()).toEqual({ tenant: 'globex', org: 'globex' })
        const own = await send(app, '/t/acme/invoices', headers)
        expect(await own.json()).toEqual({ tenant: 'acme', org: 'acme' })
      }
    })
  }
})

describe('a tenancy() sub-app behind an app-wide resolver', () => {
  function composed(quotas?: InMemoryQuotaManager) {
    const app = new Hono()
    app.use(
      '*',
      tenantResolver({
        principal: (c) => c.req.header('X-Session-Tenant'),
        extractors: [fromSubdomain('example.com')],
        configManager: configs,
      }),
    )
    const api = new Hono<TenantEnv>()
      .use('*', tenancy({ configManager: configs, ...(quotas ? { quota: quotas } : {}) }))
      .get('/data', (c) => c.json({ tenant: c.var.tenantId, current: currentTenantId() ?? null }))
    return app.route('/api', api)
  }

  it('refuses 403 tenant_mismatch when the sub-app finds another tenant, and charges nobody', async () => {
    const quotas = new InMemoryQuotaManager(configs)
    const response = await composed(quotas).request('http://acme.example.com/api/data', {
      headers: { 'X-Session-Tenant': 'acme', 'X-Tenant-ID': 'globex' },
    })
    expect(response.status).toBe(403)
    expect(await response.json()).toMatchObject({ code: 'tenant_mismatch' })
    expect((await quotas.peek('globex')).windows[0]!.used.requests).toBe(0)
    expect((await quotas.peek('acme')).windows[0]!.used.requests).toBe(0)
  })

  it('keeps the tenant the app-wide resolver found when the sub-app finds the same, or none', async () => {
    const quotas = new InMemoryQuotaManager(configs)
    for (const headers of [{}, { 'X-Tenant-ID': 'acme' }] as Record<string, string>[]) {
      const response = await composed(quotas).request('http://acme.example.com/api/data', {
        headers: { 'X-Session-Tenant': 'acme', ...headers },
      })
      expect(response.status, JSON.stringify(headers)).toBe(200)
      expect(await response.json()).toEqual({ tenant: 'acme', current: 'acme' })
    }
    expect((await quotas.peek('acme')).windows[0]!.used.requests).toBe(2)
  })
})

describe('fromSubdomain with nested base domains', () => {
  it('reads no tenant from a base itself and the tenant under the deeper base, whatever the order', async () => {
    for (const bases of [
      ['example.com', 'eu.example.com'],
      ['eu.example.com', 'example.com'],
    ]) {
      const app = new Hono<TenantEnv>()
        .use('*', tenantResolver({ extractors: [fromSubdomain(bases)], configManager: configs }))
        .get('/', (c) => c.text(c.var.tenantId))
      expect((await app.request('http://eu.example.com/')).status, `${bases}`).toBe(401)
      expect(await (await app.request('http://acme.eu.example.com/')).text(), `${bases}`).toBe('acme')
    }
  })
})

describe('currentTenantId() in a response body (see "Tenant context" in the README)', () => {
  const app = new Hono<TenantEnv>()
    .use('*', tenancy({ configManager: configs }))
    // The documented workaround: read the tenant while the handler runs, scope the pull with it.
    .get('/pulled', () => {
      const tenantId = currentTenantId()
      const body = new ReadableStream<Uint8Array>(
        {
          pull: (controller) =>
            runWithTenantId(tenantId, () => {
              controller.enqueue(new TextEncoder().encode(String(currentTenantId())))
              controller.close()
            }),
        },
        { highWaterMark: 0 },
      )
      return new Response(body)
    })
    // streamSSE runs its callback from the handler, so the scope follows its awaits.
    .get('/sse', (c) =>
      streamSSE(c, async (stream) => {
        await stream.writeSSE({ data: String(currentTenantId()) })
        await new Promise((resolve) => setTimeout(resolve, 1))
        await stream.writeSSE({ data: String(currentTenantId()) })
      }),
    )

  it('keeps the tenant in a lazily pulled body scoped with runWithTenantId, and in streamSSE', async () => {
    const pulled = await app.request('/pulled', { headers: { 'X-Tenant-ID': 'acme' } })
    expect(await pulled.text()).toBe('acme')
    const sse = await app.request('/sse', { headers: { 'X-Tenant-ID': 'acme' } })
    expect(await sse.text()).toBe('data: acme\n\ndata: acme\n\n')
  })
})
