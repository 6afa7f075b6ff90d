import {
  ConfigPolicyEvaluator,
  InMemoryConfigManager,
  InMemoryQuotaManager,
  ManualClock,
  TokenBucketRateLimiter,
} from '@tenant/core'
import { expectInvalidOption } from '@tenant/core/testing'
import { Hono } from 'hono'
import { jwt, sign } from 'hono/jwt'
import { beforeEach, describe, expect, it } from 'vitest'
import {
  currentTenantId,
  fromFetch,
  fromSubdomain,
  getTenantId,
  type TenancyHooks,
  tenancy,
  tenantPolicy,
  tenantQuota,
  tenantRateLimit,
  tenantResolver,
} from './index'

const SECRET = 'test-secret-of-at-least-32-bytes!!'

function get(app: Hono<any>, path: string, headers: Record<string, string> = {}, init: RequestInit = {}) {
  return app.request(`https://api.example.com${path}`, { headers, ...init })
}

async function problem(response: Response) {
  expect(response.headers.get('Content-Type')).toBe('application/problem+json')
  return (await response.json()) as Record<string, unknown>
}

describe('@tenant/hono', () => {
  let clock: ManualClock
  let configs: InMemoryConfigManager
  let quotas: InMemoryQuotaManager
  beforeEach(async () => {
    clock = new ManualClock(Date.UTC(2026, 0, 1, 12, 0, 15))
    configs = new InMemoryConfigManager({ clock })
    quotas = new InMemoryQuotaManager(configs, { clock })
    await configs.setTenantConfig({
      id: 'acme',
      metadata: { plan: 'pro' },
      quota: { limits: [{ window: 'minute', requests: 2, tokens: 100 }] },
      rateLimit: { requestsPerSecond: 10, burst: 10 },
      policy: { allowedModels: ['small'], allowedTools: [], allowedMethods: [], allowedPaths: [] },
    })
    await configs.setTenantConfig({ id: 'globex' })
    await configs.setTenantConfig({ id: 'frozen', status: 'suspended' })
  })

  function saas(hooks?: TenancyHooks) {
    const app = new Hono()
    // Health and admin routes stay outside the tenant chain.
    app.get('/health', (c) => c.text('ok'))
    app.get('/admin/tenants', async (c) => c.json(await configs.listTenants()))
    const api = new Hono()
      .use(
        tenancy({
          configManager: configs,
          policy: new ConfigPolicyEvaluator(configs),
          rateLimit: new TokenBucketRateLimiter(configs, { clock }),
          quota: quotas,
          clock,
          hooks,
        }),
      )
      .get('/me', (c) =>
        c.json({ tenantId: c.var.tenantId, plan: c.var.tenant?.metadata.plan, current: currentTenantId() }),
      )
      .get('/redirect', () => Response.redirect('https://example.com/elsewhere', 302))
      .get('/boom', () => {
        throw new Error('handler bug')
      })
    app.route('/api', api)
    app.onError((error, c) => c.text(error.message, 500))
    return app
  }

  it('sets c.var.tenantId, c.var.tenant and currentTenantId() for the handler', async () => {
    const response = await get(saas(), '/api/me', { 'X-Tenant-ID': 'acme' })
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ tenantId: 'acme', plan: 'pro', current: 'acme' })
    expect(response.headers.get('RateLimit-Policy')).toBe(
      '"minute";q=2;w=60, "minute-tokens";q=100;w=60;qu="tokens", "rate";q=10',
    )
    expect(response.headers.get('X-Quota-Remaining-Requests')).toBe('1')
  })

  it('leaves health and admin routes outside the chain', async () => {
    const app = saas()
    expect(await (await get(app, '/health')).text()).toBe('ok')
    const admin = await get(app, '/admin/tenants')
    expect(admin.status).toBe(200)
    expect(admin.headers.get('RateLimit')).toBeNull()
  })

  it('answers refusals with the same problem+json as @tenant/fetch', async () => {
    const app = saas()
    const cases: [Record<string, string>, number, string][] = [
      [{}, 401, 'tenant_required'],
      [{ 'X-Tenant-ID': 'bad id' }, 400, 'tenant_invalid_id'],
      [{ 'X-Tenant-ID': 'nobody' }, 403, 'tenant_unknown'],
      [{ 'X-Tenant-ID': 'frozen' }, 403, 'tenant_suspended'],
      [{ 'X-Tenant-ID': 'acme', 'X-Model': 'big' }, 403, 'tenant_policy_denied'],
      [{ 'X-Tenant-ID': 'acme', 'X-Token-Count': '-1' }, 400, 'invalid_cost'],
      [{ 'X-Tenant-ID': 'acme', 'X-Token-Count': '101' }, 429, 'tenant_quota_exceeded'],
    ]
    for (const [headers, status, code] of cases) {
      const response = await get(app, '/api/me', headers)
      expect(response.status, code).toBe(status)
      expect(await problem(response)).toMatchObject({ status, code })
    }
    // None of the refusals above consumed quota.
    expect((await quotas.peek('acme')).windows[0]!.used).toEqual({ requests: 0, tokens: 0 })
  })

  it('adds Retry-After and the RateLimit fields to a quota refusal', async () => {
    const app = saas()
    await get(app, '/api/me', { 'X-Tenant-ID': 'acme' })
    await get(app, '/api/me', { 'X-Tenant-ID': 'acme' })
    const denied = await get(app, '/api/me', { 'X-Tenant-ID': 'acme' })
    expect(denied.status).toBe(429)
    expect(denied.headers.get('Retry-After')).toBe('45')
    expect(denied.headers.get('RateLimit')).toContain('"minute";r=0;t=45')
  })

  it('adds the quota headers to a response with immutable headers and to an error response', async () => {
    const app = saas()
    const redirect = await get(app, '/api/redirect', { 'X-Tenant-ID': 'acme' })
    expect(redirect.status).toBe(302)
    expect(redirect.headers.get('Location')).toBe('https://example.com/elsewhere')
    expect(redirect.headers.get('X-Quota-Remaining-Requests')).toBe('1')
    const failed = await get(app, '/api/boom', { 'X-Tenant-ID': 'acme' })
    expect(failed.status).toBe(500)
    expect(failed.headers.get('X-Quota-Remaining-Requests')).toBe('0')
  })

  it('keeps headers set by earlier middleware on a refusal', async () => {
    const app = new Hono()
      .use(async (c, next) => {
        c.header('X-Request-Id', 'r-1')
        await next()
      })
      .use(tenantResolver())
      .get('/', (c) => c.text(c.var.tenantId))
    const response = await get(app, '/')
    expect(response.status).toBe(401)
    expect(response.headers.get('X-Request-Id')).toBe('r-1')
    expect(response.headers.get('Content-Type')).toBe('application/problem+json')
  })

  it('fires the hooks with the statuses sent', async () => {
    const events: [string, number][] = []
    const hooks: TenancyHooks = {
      onResolve: (e) => void events.push(['resolve', e.status]),
      onPolicy: (e) => void events.push(['policy', e.status]),
      onRateLimit: (e) => void events.push(['rateLimit', e.status]),
      onQuota: (e) => void events.push(['quota', e.status]),
    }
    const app = saas(hooks)
    await get(app, '/api/me', { 'X-Tenant-ID': 'acme' })
    await get(app, '/api/me', { 'X-Tenant-ID': 'acme', 'X-Model': 'big' })
    expect(events).toEqual([
      ['resolve', 200],
      ['policy', 200],
      ['rateLimit', 200],
      ['quota', 200],
      ['resolve', 200],
      ['policy', 403],
    ])
  })

  describe('principal', () => {
    function jwtApp(options: Parameters<typeof tenantResolver>[0] = {}) {
      return new Hono()
        .use(jwt({ secret: SECRET, alg: 'HS256' }))
        .use(tenantResolver({ configManager: configs, ...options }))
        .get('/', (c) => c.text(c.var.tenantId))
    }
    const bearer = async (claims: Record<string, unknown>) => ({
      Authorization: `Bearer ${await sign(claims, SECRET, 'HS256')}`,
    })

    it('reads the tenant_id claim of a hono/jwt payload', async () => {
      const response = await get(jwtApp(), '/', await bearer({ sub: 'u1', tenant_id: 'acme' }))
      expect(await response.text()).toBe('acme')
    })

    it('refuses a header naming another tenant than the token: 403 tenant_mismatch', async () => {
      const response = await get(jwtApp(), '/', {
        ...(await bearer({ tenant_id: 'acme' })),
        'X-Tenant-ID': 'globex',
      })
      expect(response.status).toBe(403)
      expect((await problem(response)).code).toBe('tenant_mismatch')
    })

    // A verified token without a tenant must never let the X-Tenant-ID header pick one.
    it.each([
      ['no claim', {}],
      ['a null claim', { tenant_id: null }],
      ['an empty claim', { tenant_id: '' }],
    ])('refuses a token with %s, whatever the header says', async (_, claims) => {
      const token = await bearer({ sub: 'u1', ...claims })
      for (const headers of [token, { ...token, 'X-Tenant-ID': 'globex' }]) {
        const response = await get(jwtApp(), '/', headers)
        expect(response.status).toBe(401)
        expect(response.headers.get('WWW-Authenticate')).toMatch(/^Bearer realm="tenant"/)
        expect(await problem(response)).toMatchObject({
          code: 'tenant_required',
          detail: 'the token has no "tenant_id" claim',
        })
      }
    })

    // Answered as any request without a tenant: it got the fallback challenge, and onMissing was
    // never asked.
    it("answers a token without the claim with the resolver's challenge and onMissing", async () => {
      const token = await bearer({ sub: 'u1' })
      const challenged = await get(jwtApp({ challenge: 'Bearer realm="api"' }), '/', token)
      expect(challenged.headers.get('WWW-Authenticate')).toBe('Bearer realm="api"')
      const answered = await get(
        jwtApp({ onMissing: () => new Response('sign in with an organisation', { status: 401 }) }),
        '/',
        token,
      )
      expect([answered.status, await answered.text()]).toEqual([401, 'sign in with an organisation'])
    })

    it('resolves from the header on routes without hono/jwt (no token, no principal)', async () => {
      const app = new Hono()
        .use(tenantResolver({ configManager: configs }))
        .get('/', (c) => c.text(c.var.tenantId))
      expect(await (await get(app, '/', { 'X-Tenant-ID': 'globex' })).text()).toBe('globex')
    })

    it('an explicit principal without a tenant is refused, not resolved from the header', async () => {
      const app = new Hono()
        .use(tenantResolver({ principal: () => undefined }))
        .get('/', (c) => c.text(c.var.tenantId))
      const response = await get(app, '/', { 'X-Tenant-ID': 'globex' })
      expect(response.status).toBe(403)
      expect((await problem(response)).code).toBe('tenant_mismatch')
    })

    it('reads a custom claim, or none with jwtClaim: false', async () => {
      const token = await bearer({ org: 'globex', tenant_id: 'acme' })
      expect(await (await get(jwtApp({ jwtClaim: 'org' }), '/', token)).text()).toBe('globex')
      const headerOnly = await get(jwtApp({ jwtClaim: false }), '/', { ...token, 'X-Tenant-ID': 'globex' })
      expect(await headerOnly.text()).toBe('globex')
    })

    it('takes a principal function of the Hono context', async () => {
      const app = new Hono<{ Variables: { user: { org: string } } }>()
        .use(async (c, next) => {
          c.set('user', { org: 'globex' })
          await next()
        })
        .use(tenantResolver({ principal: (c) => c.get('user').org }))
        .get('/', (c) => c.text(c.var.tenantId))
      expect(await (await get(app, '/')).text()).toBe('globex')
    })

    it('rejects a bad jwtClaim when created', () => {
      expect(() => tenantResolver({ jwtClaim: '' })).toThrow(/jwtClaim/)
    })

    it('rejects options that are not an object with the typed option error, as @tenant/fetch does', () => {
      expectInvalidOption(() => tenancy(null as never), 'tenancy', /^options must be an object$/)
      expectInvalidOption(() => tenantResolver('x' as never), 'tenantResolver', /must be an object/)
      expectInvalidOption(() => tenantResolver({ jwtClaim: '' }), 'tenantResolver.jwtClaim', /claim name/)
      expectInvalidOption(
        () => tenantResolver({ principal: 1 as never }),
        'tenantResolver.principal',
        /function/,
      )
    })
  })

  it('composes separate stage middleware, with extractors from @tenant/fetch', async () => {
    const app = new Hono()
      .use(
        tenantResolver({ extractors: [fromSubdomain('example.com')], configManager: configs }),
        tenantPolicy({ evaluator: new ConfigPolicyEvaluator(configs) }),
        tenantRateLimit({ limiter: new TokenBucketRateLimiter(configs, { clock }) }),
        tenantQuota({
          manager: quotas,
          clock,
          actualTokens: (response) => Number(response.headers.get('X-Used')),
        }),
      )
      .get('/chat', (c) => c.text('hi', 200, { 'X-Used': '40' }))
    const response = await app.request('https://acme.example.com/chat', {
      headers: { 'X-Token-Count': '10' },
    })
    expect(response.status).toBe(200)
    expect(response.headers.get('X-Quota-Remaining-Tokens')).toBe('60')
    expect((await quotas.peek('acme')).windows[0]!.used).toEqual({ requests: 1, tokens: 40 })
  })

  it('lets anonymous requests through with allowMissing', async () => {
    const app = new Hono()
      .use(tenantResolver({ allowMissing: true }))
      .get('/', (c) => c.json({ tenant: c.var.tenantId ?? null }))
    expect(await (await get(app, '/')).json()).toEqual({ tenant: null })
    expect(await (await get(app, '/', { 'X-Tenant-ID': 'acme' })).json()).toEqual({ tenant: 'acme' })
  })

  it('fromFetch runs any Fetch middleware in a Hono chain', async () => {
    const app = new Hono()
      .use(tenantResolver())
      .use(
        fromFetch(async (request, next) => {
          const response = await next()
          response.headers.set('X-Seen-Tenant', getTenantId(request) ?? '-')
          return response
        }),
      )
      .get('/', (c) => c.text('ok'))
    const response = await get(app, '/', { 'X-Tenant-ID': 'acme' })
    expect(response.headers.get('X-Seen-Tenant')).toBe('acme')
  })
  it("a response object the handler hands to every request carries only its own tenant's headers", async () => {
    const configs = new InMemoryConfigManager()
    await configs.setTenantConfig({ id: 'acme', quota: { limits: [{ window: 'minute', requests: 100 }] } })
    await configs.setTenantConfig({
      id: 'globex',
      quota: { limits: [{ window: 'minute', requests: 50, tokens: 1_000 }] },
    })
    await configs.setTenantConfig({ id: 'initech' }) // no limits: no stage headers
    for (const shared of [new Response(null, { status: 204 }), new Response(null, { status: 200 })]) {
      // The same object from a route outside the chain: it must never go out with a tenant's numbers.
      const app = new Hono()
        .get('/public', () => shared)
        .use(tenancy({ configManager: configs, quota: new InMemoryQuotaManager(configs) }))
        .get('/', () => shared)
      const seen: Record<string, string>[] = []
      for (const tenant of ['acme', 'globex', 'initech', 'acme', 'globex', 'initech']) {
        const response = await get(app, '/', { 'X-Tenant-ID': tenant, 'X-Token-Count': '7' })
        seen.push({ tenant, ...Object.fromEntries(response.headers) })
        expect(Object.fromEntries((await get(app, '/public', {})).headers)).toEqual({})
      }
      expect([...shared.headers]).toEqual([])
      for (const headers of seen) {
        const items = (headers.ratelimit ?? '').split(', ').filter((item) => item !== '')
        const expected = { acme: ['"minute"'], globex: ['"minute"', '"minute-tokens"'], initech: [] }[
          headers.tenant!
        ]
        expect(
          items.map((item) => item.split(';')[0]),
          JSON.stringify(headers),
        ).toEqual(expected)
        expect(headers['x-quota-remaining-tokens'] !== undefined).toBe(headers.tenant === 'globex')
      }
    }
  })
})
