// @hono/node-server builds request.url from the Host header without parsing it, so a Host a URL
// parser refuses (`1.2.3.4.5`, a last label of digits) reaches the app: `new URL(request.url)`
// threw there, a 500 any client could cause, and it fails node-server's own body read.
import { type AddressInfo, connect } from 'node:net'
import { type ServerType, serve } from '@hono/node-server'
import { AdminService, auditedStore, InMemoryAuditLog, InMemoryConfigManager } from '@tenant/core'
import { Hono } from 'hono'
import { afterEach, describe, expect, it } from 'vitest'
import { adminRoutes, fromHeader, fromQuery, fromSubdomain, type TenantEnv, tenancy } from './index'

const HOSTS = ['1.2.3.4.5', 'acme.example.123', '999.999.999.999']

let server: ServerType | undefined
afterEach(async () => {
  if (server) await new Promise<void>((resolve) => server!.close(() => resolve()))
  server = undefined
})

async function listen(app: Hono<any>): Promise<number> {
  server = await new Promise<ServerType>((resolve) => {
    const started = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(started))
  })
  return (server.address() as AddressInfo).port
}

// One request as raw bytes, so the Host header is exactly the one written. The socket stays open
// for writing: a client that half-closes at once may see the server close before it answers. The
// server closes it after the answer (Connection: close).
function raw(port: number, text: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(text))
    let out = ''
    socket.on('data', (data) => {
      out += data
    })
    socket.on('end', () => {
      const [head, ...rest] = out.split('\r\n\r\n')
      resolve({ status: Number(head!.split(' ')[1]), body: rest.join('\r\n\r\n') })
    })
    socket.on('error', reject)
  })
}

describe('a Host header a URL parser refuses, on @hono/node-server', () => {
  it('names no subdomain, and the extractors after it still run; the query is read', async () => {
    const configs = new InMemoryConfigManager()
    await configs.setTenantConfig({ id: 'acme' })
    const app = new Hono<TenantEnv>()
    app.use(
      '*',
      tenancy({
        configManager: configs,
        resolver: { extractors: [fromSubdomain('example.com'), fromHeader(), fromQuery()] },
      }),
    )
    app.get('*', (c) => c.text(`tenant=${c.var.tenantId}`))
    const port = await listen(app)
    for (const host of HOSTS) {
      const byHeader = await raw(
        port,
        `GET /x HTTP/1.1\r\nHost: ${host}\r\nX-Tenant-ID: acme\r\nConnection: close\r\n\r\n`,
      )
      expect([byHeader.status, byHeader.body], host).toEqual([200, 'tenant=acme'])
      const byQuery = await raw(
        port,
        `GET /x?tenant=acme HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
      )
      expect([byQuery.status, byQuery.body], host).toEqual([200, 'tenant=acme'])
    }
  })

  it('is a 400 problem on the admin routes, before anything is changed', async () => {
    const configs = new InMemoryConfigManager()
    const auditLog = new InMemoryAuditLog()
    const app = new Hono()
    app.route(
      '/admin',
      adminRoutes(new AdminService({ store: auditedStore(configs, auditLog), auditLog }), { token: 't' }),
    )
    const port = await listen(app)
    const body = JSON.stringify({ id: 'acme' })
    const created = await raw(
      port,
      `POST /admin/tenants HTTP/1.1\r\nHost: 1.2.3.4.5\r\nAuthorization: Bearer t\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    )
    expect(created.status).toBe(400)
    expect(JSON.parse(created.body)).toMatchObject({
      code: 'invalid_request',
      detail: expect.stringMatching(/Host/),
    })
    expect((await configs.listTenants()).items).toEqual([])
    const good = await raw(
      port,
      `POST /admin/tenants HTTP/1.1\r\nHost: admin.example.com\r\nAuthorization: Bearer t\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    )
    expect(good.status).toBe(201)
  })
})
