import { ConfigPolicyEvaluator, InMemoryConfigManager } from '@tenant/core'
import { Hono } from 'hono'
import { jwt, sign } from 'hono/jwt'
import { beforeEach, describe, expect, it } from 'vitest'
import {
  chain,
  fromCookie,
  fromHeader,
  fromPathPrefix,
  fromQuery,
  type TenantEnv,
  tenancy,
  tenantResolver,
} from './index'

const SECRET = 'test-secret-of-at-least-32-bytes!!'

// The adapter runs @tenant/fetch's resolver stage; these pin what a Hono app sees: a token's tenant
// that any part of the request contradicts is a 403 tenant_mismatch, however many extractors agree.
describe('@tenant/hono: principal and request tenant', () => {
  let configs: InMemoryConfigManager
  beforeEach(async () => {
    configs = new InMemoryConfigManager()
    await configs.setTenantConfig({ id: 'acme' })
    await configs.setTenantConfig({ id: 'globex' })
  })

  const bearer = async (tenant: string) =>
    `Bearer ${await sign({ sub: 'u1', tenant_id: tenant }, SECRET, 'HS256')}`

  function app(middleware: ReturnType<typeof tenantResolver>) {
    return new Hono<TenantEnv>()
      .use('/t/*', jwt({ secret: SECRET, alg: 'HS256' }), middleware)
      .get('/t/:org/invoices', (c) =>
        c.json({ tenant: c.var.tenantId, org: c.req.param('org'), query: c.req.query('tenant') ?? null }),
      )
  }

  const extractors = [fromHeader(), fromPathPrefix('/t/'), fromQuery()]
  for (const [name, middleware] of [
    ['tenantResolver', () => tenantResolver({ configManager: configs, extractors })],
    [
      'tenancy',
      () =>
        tenancy({
          configManager: configs,
          resolver: { extractors },
          policy: new ConfigPolicyEvaluator(configs),
        }),
    ],
    [
      'tenantResolver with a chain',
      () => tenantResolver({ extractors: [chain(fromHeader(), fromPathPrefix('/t/'), fromQuery())] }),
    ],
  ] as const) {
    it(`${name}: refuses a path or query naming another tenant than the token, even after an agreeing header`, async () => {
      const served = app(middleware())
      const token = await bearer('acme')
      const cases: [string, Record<string, string>][] = [
        ['/t/globex/invoices', {}],
        ['/t/globex/invoices', { 'X-Tenant-ID': 'acme' }],
        ['/t/acme/invoices?tenant=globex', {}],
        ['/t/acme/invoices?tenant=globex', { 'X-Tenant-ID': 'acme' }],
      ]
      for (const [path, headers] of cases) {
        const response = await served.request(`https://api.example.com${path}`, {
          headers: { Authorization: token, ...headers },
        })
        expect(response.status, `${path} ${JSON.stringify(headers)}`).toBe(403)
        expect(((await response.json()) as { code: string }).code).toBe('tenant_mismatch')
      }
      const agreed = await served.request('https://api.example.com/t/acme/invoices?tenant=acme', {
        headers: { Authorization: token, 'X-Tenant-ID': 'acme' },
      })
      expect(await agreed.json()).toEqual({ tenant: 'acme', org: 'acme', query: 'acme' })
    })
  }

  it('without a token, keeps first-match order (the header wins)', async () => {
    const served = new Hono<TenantEnv>()
      .use(
        tenantResolver({
          configManager: configs,
          extractors: [fromHeader(), fromPathPrefix('/t/'), fromCookie()],
        }),
      )
      .get('/t/:org/invoices', (c) => c.text(c.var.tenantId))
    const response = await served.request('https://api.example.com/t/globex/invoices', {
      headers: { 'X-Tenant-ID': 'acme', Cookie: 'tenant=globex' },
    })
    expect(await response.text()).toBe('acme')
  })
})
