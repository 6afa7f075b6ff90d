import {
  AdminService,
  auditedPlanStore,
  auditedStore,
  InMemoryAuditLog,
  InMemoryConcurrencyLimiter,
  InMemoryConfigManager,
  InMemoryPlanStore,
  InMemoryQuotaManager,
  ManualClock,
} from '@tenant/core'
import { expectInvalidOption } from '@tenant/core/testing'
import { Hono } from 'hono'
import { requestId } from 'hono/request-id'
import { beforeEach, describe, expect, it } from 'vitest'
import { adminClient, expectOneAuditRecordPerChange, expectProblem } from '../test/admin-routes-helpers'
import { adminOpenApiDocument, adminRoutes } from './admin-routes'

const T0 = Date.UTC(2026, 0, 1)
const TOKEN = 's3cret-admin-token-0123456789abcdef'

let clock: ManualClock
let configs: InMemoryConfigManager
let auditLog: InMemoryAuditLog
let quotas: InMemoryQuotaManager
let limiter: InMemoryConcurrencyLimiter
let service: AdminService
let app: Hono

function build(
  options: Parameters<typeof adminRoutes>[1] = { token: TOKEN },
  withQuotas = true,
  withPlans = true,
) {
  service = new AdminService({
    store: auditedStore(configs, auditLog, { clock }),
    auditLog,
    clock,
    // The live-state stores (quota usage, in-flight counts) come and go together.
    ...(withQuotas ? { quotas, concurrency: limiter } : {}),
    ...(withPlans
      ? { plans: auditedPlanStore(new InMemoryPlanStore({ tenants: configs, clock }), auditLog, { clock }) }
      : {}),
  })
  app = new Hono()
  app.route('/admin', adminRoutes(service, options))
}

beforeEach(() => {
  clock = new ManualClock(T0)
  configs = new InMemoryConfigManager({ clock })
  auditLog = new InMemoryAuditLog()
  quotas = new InMemoryQuotaManager(configs, { clock })
  limiter = new InMemoryConcurrencyLimiter()
  build()
})

const call = adminClient(() => app, TOKEN)

async function history(id: string) {
  return (await auditLog.list(id, { limit: 1000 })).items
}

describe('adminRoutes authentication', () => {
  it('refuses a request without a token with 401 and a Bearer challenge, doing nothing', async () => {
    const result = await call('POST', '/tenants', { body: { id: 'acme' }, token: null })
    expectProblem(result, 401, 'admin_unauthorized')
    expect(result.response.headers.get('WWW-Authenticate')).toBe('Bearer realm="tenant-admin"')
    expect((await configs.listTenants()).items).toEqual([])
    expect(await history('acme')).toEqual([])
  })

  it('refuses a wrong token, a prefix of the token and a longer one with 401 invalid_token', async () => {
    for (const token of ['wrong', TOKEN.slice(0, -1), `${TOKEN}x`, TOKEN.toUpperCase()]) {
      const result = await call('GET', '/tenants', { token })
      expectProblem(result, 401, 'admin_unauthorized')
      expect(result.response.headers.get('WWW-Authenticate')).toContain('error="invalid_token"')
    }
  })

  it('refuses other schemes and malformed headers', async () => {
    for (const header of [`Basic ${TOKEN}`, 'Bearer', `Bearer ${TOKEN} extra`, TOKEN]) {
      const result = await call('GET', '/tenants', { token: null, headers: { Authorization: header } })
      expectProblem(result, 401, 'admin_unauthorized')
    }
  })

  it('guards every route, the OpenAPI document included', async () => {
    await configs.setTenantConfig({ id: 'acme' })
    const routes: [string, string][] = [
      ['GET', '/tenants'],
      ['POST', '/tenants'],
      ['GET', '/tenants/acme'],
      ['PUT', '/tenants/acme'],
      ['DELETE', '/tenants/acme'],
      ['PUT', '/tenants/acme/quota'],
      ['PUT', '/tenants/acme/policy'],
      ['POST', '/tenants/acme/suspend'],
      ['POST', '/tenants/acme/activate'],
      ['GET', '/tenants/acme/usage'],
      ['POST', '/tenants/acme/usage/reset'],
      ['GET', '/tenants/acme/in-flight'],
      ['POST', '/tenants/acme/in-flight/reset'],
      ['GET', '/tenants/acme/audit'],
      ['GET', '/plans'],
      ['POST', '/plans'],
      ['GET', '/plans/pro'],
      ['PUT', '/plans/pro'],
      ['DELETE', '/plans/pro'],
      ['GET', '/plans/pro/audit'],
      ['GET', '/openapi.json'],
    ]
    for (const [method, path] of routes) {
      expect(
        (await call(method, path, { token: 'nope', body: method === 'GET' ? undefined : {} })).status,
      ).toBe(401)
    }
    expect(await configs.getTenantConfig('acme')).toMatchObject({ status: 'active' })
  })

  it('records the actor of the token; several tokens tell their holders apart', async () => {
    build({ tokens: { ci: 'ci-token-aaaaaaaaaaaaaaaa', alice: 'alice-token-bbbbbbbbbbbb' } })
    expect(
      (await call('POST', '/tenants', { body: { id: 'acme' }, token: 'ci-token-aaaaaaaaaaaaaaaa' })).status,
    ).toBe(201)
    expect((await call('POST', '/tenants/acme/suspend', { token: 'alice-token-bbbbbbbbbbbb' })).status).toBe(
      200,
    )
    expect((await call('GET', '/tenants', { token: TOKEN })).status).toBe(401)
    expect((await history('acme')).map((r) => r.actor)).toEqual(['alice', 'ci'])
  })

  it('records "admin" for a single token unless an actor is given', async () => {
    await call('POST', '/tenants', { body: { id: 'a' } })
    build({ token: TOKEN, actor: 'deploy-bot' })
    await call('POST', '/tenants', { body: { id: 'b' } })
    expect((await history('a'))[0]!.actor).toBe('admin')
    expect((await history('b'))[0]!.actor).toBe('deploy-bot')
  })

  it('uses authorize for real identity: its actor, its refusal, or its own response', async () => {
    build({
      authorize: (request) => {
        const user = request.headers.get('X-User')
        if (user === 'mallory') return new Response('go away', { status: 403 })
        return user ? { actor: `user:${user}` } : false
      },
    })
    const created = await call('POST', '/tenants', {
      token: null,
      body: { id: 'acme' },
      headers: { 'X-User': 'bob' },
    })
    expect(created.status).toBe(201)
    expect((await history('acme'))[0]!.actor).toBe('user:bob')
    expectProblem(await call('GET', '/tenants', { token: null }), 401, 'admin_unauthorized')
    const refused = await call('GET', '/tenants', { token: null, headers: { 'X-User': 'mallory' } })
    expect(refused.status).toBe(403)
    expect(refused.response.headers.get('Content-Type')).toMatch(/^text\/plain/)
    expect(refused.text).toBe('go away')
  })

  it('answers 500 when authorize throws or returns a bad actor, and reports it', async () => {
    const reported: unknown[] = []
    build({
      authorize: (request) => {
        if (request.headers.get('X-Mode') === 'throw') throw new Error('idp down')
        // Empty, or text the audit log refuses (a NUL, a lone surrogate): the app's bug, not the client's.
        return {
          actor:
            request.headers.get('X-Mode') === 'nul'
              ? 'ci\u0000bot'
              : request.headers.get('X-Mode') === 'surrogate'
                ? 'ci\ud800'
                : '',
        }
      },
      onError: (error) => reported.push(error),
    })
    expectProblem(
      await call('GET', '/tenants', { token: null, headers: { 'X-Mode': 'throw' } }),
      500,
      'internal_error',
    )
    for (const mode of ['empty', 'nul', 'surrogate']) {
      const bad = await call('POST', '/tenants', {
        token: null,
        body: { id: 'acme' },
        headers: { 'X-Mode': mode },
      })
      expectProblem(bad, 500, 'internal_error')
      expect(bad.json.detail).not.toMatch(/actor/)
    }
    const actorBug =
      'adminRoutes: the actor returned by authorize must be a string of 1 to 255 characters, without U+0000 or lone surrogates'
    expect(reported.map((e) => (e as Error).message)).toEqual(['idp down', actorBug, actorBug, actorBug])
    expect(await history('acme')).toEqual([])
  })

  it('checks its options when created, with the typed config error naming the option', () => {
    const s = service
    const cases: [() => unknown, string, RegExp][] = [
      [
        () => adminRoutes(s, {}),
        'adminRoutes',
        /^pass exactly one of token, tokens or authorize \(got none\)$/,
      ],
      [() => adminRoutes(s, { token: TOKEN, authorize: () => false }), 'adminRoutes', /got token, authorize/],
      [() => adminRoutes(s, undefined as never), 'adminRoutes', /^options must be an object$/],
      [() => adminRoutes(s, { authorize: 'yes' as never }), 'adminRoutes.authorize', /^must be a function$/],
      [
        () => adminRoutes(s, { token: '' }),
        'adminRoutes.token',
        /the token of "admin" must be a non-empty RFC 6750 b64token/,
      ],
      [() => adminRoutes(s, { token: 'has space' }), 'adminRoutes.token', /b64token/],
      [() => adminRoutes(s, { tokens: {} }), 'adminRoutes.tokens', /^is empty$/],
      [() => adminRoutes(s, { tokens: 'x' as never }), 'adminRoutes.tokens', /must be an object/],
      [
        () => adminRoutes(s, { tokens: { '': TOKEN } }),
        'adminRoutes.tokens',
        /an actor in tokens must be a string of 1 to 255/,
      ],
      [
        () => adminRoutes(s, { tokens: { 'ci\u0000bot': TOKEN } }),
        'adminRoutes.tokens',
        /without U\+0000 or lone surrogates/,
      ],
      [
        () => adminRoutes(s, { token: TOKEN, actor: 'ci\udc00' }),
        'adminRoutes.actor',
        /without U\+0000 or lone surrogates/,
      ],
      [() => adminRoutes(s, { tokens: { bob: 'has space' } }), 'adminRoutes.tokens', /the token of "bob"/],
      // A shared token would record every change as the first actor's.
      [
        () => adminRoutes(s, { tokens: { alice: TOKEN, bob: TOKEN } }),
        'adminRoutes.tokens',
        /"alice" and "bob" have the same token/,
      ],
      [
        () => adminRoutes(s, { token: TOKEN, actor: '' }),
        'adminRoutes.actor',
        /^must be a string of 1 to 255 characters, without U\+0000 or lone surrogates$/,
      ],
      [
        () => adminRoutes(s, { token: TOKEN, maxBodyBytes: 0 }),
        'adminRoutes.maxBodyBytes',
        /^must be a whole number >= 1$/,
      ],
      [() => adminRoutes({} as never, { token: TOKEN }), 'adminRoutes.service', /^must be an AdminService$/],
    ]
    for (const [create, path, message] of cases) expectInvalidOption(create, path, message)
  })
})

describe('adminRoutes CRUD', () => {
  it('creates, reads, replaces, lists and deletes a tenant', async () => {
    const created = await call('POST', '/tenants', {
      body: { id: 'acme', quota: { limits: [{ window: 'day', requests: 100 }] }, metadata: { plan: 'pro' } },
    })
    expect(created.status).toBe(201)
    expect(created.response.headers.get('Location')).toBe('/admin/tenants/acme')
    expect(created.json).toMatchObject({ id: 'acme', status: 'active', createdAt: T0, updatedAt: T0 })

    const read = await call('GET', '/tenants/acme')
    expect(read.status).toBe(200)
    expect(read.json).toEqual(created.json)
    expect(read.response.headers.get('Cache-Control')).toBe('no-store')

    clock.advance(1000)
    const replaced = await call('PUT', '/tenants/acme', { body: { metadata: { plan: 'team' } } })
    expect(replaced.status).toBe(200)
    expect(replaced.json).toMatchObject({
      metadata: { plan: 'team' },
      quota: { limits: [] },
      updatedAt: T0 + 1000,
    })

    await call('POST', '/tenants', { body: { id: 'beta' } })
    await call('POST', '/tenants', { body: { id: 'gamma' } })
    const page1 = await call('GET', '/tenants?limit=2')
    expect(page1.json.items.map((t: { id: string }) => t.id)).toEqual(['acme', 'beta'])
    expect(page1.json.next).toBe('beta')
    const page2 = await call('GET', `/tenants?limit=2&after=${page1.json.next}`)
    expect(page2.json).toMatchObject({ items: [{ id: 'gamma' }] })
    expect(page2.json.next).toBeUndefined()
    expect((await call('GET', '/tenants?offset=1&limit=1')).json.items[0].id).toBe('beta')

    const deleted = await call('DELETE', '/tenants/acme')
    expect(deleted.status).toBe(204)
    expect(deleted.json).toBeUndefined()
    expectProblem(await call('GET', '/tenants/acme'), 404, 'tenant_not_found')
  })

  it('updates quota and policy, suspends and activates', async () => {
    await call('POST', '/tenants', { body: { id: 'acme', metadata: { keep: true } } })
    const quota = await call('PUT', '/tenants/acme/quota', {
      body: { limits: [{ window: 'minute', requests: 10 }] },
    })
    expect(quota.json).toMatchObject({
      quota: { limits: [{ window: 'minute', requests: 10 }] },
      metadata: { keep: true },
    })
    const policy = await call('PUT', '/tenants/acme/policy', { body: { allowedModels: ['gpt-4o'] } })
    expect(policy.json.policy).toEqual({
      allowedModels: ['gpt-4o'],
      allowedTools: [],
      allowedMethods: [],
      allowedPaths: [],
    })
    expect((await call('POST', '/tenants/acme/suspend')).json.status).toBe('suspended')
    expect((await call('GET', '/tenants/acme')).json.status).toBe('suspended')
    expect((await call('POST', '/tenants/acme/activate')).json.status).toBe('active')
  })

  it('reports usage from peek() without consuming', async () => {
    await call('POST', '/tenants', {
      body: { id: 'acme', quota: { limits: [{ window: 'day', requests: 10 }] } },
    })
    await quotas.consume('acme', { requests: 3, tokens: 7 })
    const first = await call('GET', '/tenants/acme/usage')
    expect(first.status).toBe(200)
    expect(first.json).toEqual({
      tenantId: 'acme',
      windows: [
        {
          window: 'day',
          limit: { requests: 10 },
          used: { requests: 3, tokens: 7 },
          remaining: { requests: 7 },
          resetAt: T0 + 86_400_000,
        },
      ],
    })
    expect((await call('GET', '/tenants/acme/usage')).json).toEqual(first.json)
    expectProblem(await call('GET', '/tenants/ghost/usage'), 404, 'tenant_not_found')
  })

  it("reports one subject's usage with ?subject=, and 400 invalid_subject for a bad one", async () => {
    await call('POST', '/tenants', {
      body: {
        id: 'acme',
        quota: {
          limits: [{ window: 'day', requests: 10 }],
          subjects: [{ match: 'model:*', limits: [{ window: 'day', tokens: 100 }] }],
        },
      },
    })
    await quotas.consume('acme', { tokens: 40, subject: 'model:large' })
    const usage = await call('GET', '/tenants/acme/usage?subject=model:large')
    expect(usage.status).toBe(200)
    expect(usage.json).toEqual({
      tenantId: 'acme',
      subject: 'model:large',
      windows: [
        {
          window: 'day',
          subject: 'model:large',
          limit: { tokens: 100 },
          used: { requests: 1, tokens: 40 },
          remaining: { tokens: 60 },
          resetAt: T0 + 86_400_000,
        },
      ],
    })
    expect((await call('GET', '/tenants/acme/usage?subject=key:none')).json.windows).toEqual([])
    expectProblem(await call('GET', '/tenants/acme/usage?subject=a%20b'), 400, 'invalid_subject')
  })

  it('answers 501 for usage when the service has no quota manager', async () => {
    build({ token: TOKEN }, false)
    await call('POST', '/tenants', { body: { id: 'acme' } })
    expectProblem(await call('GET', '/tenants/acme/usage'), 501, 'usage_unavailable')
    expectProblem(await call('POST', '/tenants/acme/usage/reset'), 501, 'usage_unavailable')
  })

  it("resets one tenant's usage, audited with the actor and request id", async () => {
    const quota = { limits: [{ window: 'day', requests: 2 }] }
    await call('POST', '/tenants', { body: { id: 'acme', quota } })
    await call('POST', '/tenants', { body: { id: 'globex', quota } })
    await quotas.consume('acme', { requests: 2 })
    await quotas.consume('globex')
    expect((await quotas.consume('acme')).allowed).toBe(false)
    clock.advance(1_000)
    const reset = await call('POST', '/tenants/acme/usage/reset', { headers: { 'X-Request-ID': 'req-9' } })
    expect(reset.status).toBe(200)
    expect(reset.json).toMatchObject({ tenantId: 'acme', windows: [{ used: { requests: 0, tokens: 0 } }] })
    expect((await quotas.consume('acme')).allowed).toBe(true)
    expect((await quotas.peek('globex')).windows[0]!.used).toEqual({ requests: 1, tokens: 0 })
    const [record] = await history('acme')
    expect(record).toMatchObject({
      action: 'tenant.usage.reset',
      actor: expect.any(String),
      requestId: 'req-9',
      at: T0 + 1_000,
    })
    expect(record!.before).toEqual(record!.after)
    expectProblem(await call('POST', '/tenants/ghost/usage/reset'), 404, 'tenant_not_found')
    expect(await history('ghost')).toEqual([])
  })

  it('reads and resets in-flight counts, the reset audited; 501 without a limiter', async () => {
    await call('POST', '/tenants', { body: { id: 'acme', concurrency: { maxInFlight: 2 } } })
    await call('POST', '/tenants', { body: { id: 'globex' } })
    await limiter.acquire('acme', 2)
    await limiter.acquire('acme', 2)
    await limiter.acquire('globex', 5)
    const read = await call('GET', '/tenants/acme/in-flight')
    expect(read.status).toBe(200)
    expect(read.json).toEqual({ tenantId: 'acme', inFlight: 2, maxInFlight: 2 })
    expect((await call('GET', '/tenants/globex/in-flight')).json).toEqual({
      tenantId: 'globex',
      inFlight: 1,
      maxInFlight: null,
    })
    clock.advance(1_000)
    const reset = await call('POST', '/tenants/acme/in-flight/reset', {
      headers: { 'X-Request-ID': 'req-7' },
    })
    expect(reset.status).toBe(200)
    expect(reset.json).toEqual({ tenantId: 'acme', inFlight: 0, maxInFlight: 2 })
    expect(await limiter.inFlight('globex')).toBe(1)
    const [record] = await history('acme')
    expect(record).toMatchObject({ action: 'tenant.concurrency.reset', requestId: 'req-7', at: T0 + 1_000 })
    expectProblem(await call('GET', '/tenants/ghost/in-flight'), 404, 'tenant_not_found')
    expectProblem(await call('POST', '/tenants/ghost/in-flight/reset'), 404, 'tenant_not_found')
    build({ token: TOKEN }, false)
    expectProblem(await call('GET', '/tenants/acme/in-flight'), 501, 'concurrency_unavailable')
    expectProblem(await call('POST', '/tenants/acme/in-flight/reset'), 501, 'concurrency_unavailable')
  })

  it('serves audit history newest first, paginated, with the request id', async () => {
    await call('POST', '/tenants', { body: { id: 'acme' }, headers: { 'X-Request-ID': 'req-1' } })
    await call('POST', '/tenants/acme/suspend', { headers: { 'X-Request-ID': 'req-2' } })
    await call('POST', '/tenants/acme/activate', { headers: { 'X-Request-ID': 'bad id with spaces' } })
    const page1 = await call('GET', '/tenants/acme/audit?limit=2')
    expect(page1.status).toBe(200)
    expect(page1.json.items.map((r: { action: string }) => r.action)).toEqual([
      'tenant.activate',
      'tenant.suspend',
    ])
    expect(page1.json.items[0].requestId).toBeUndefined()
    expect(page1.json.items[1]).toMatchObject({
      actor: 'admin',
      requestId: 'req-2',
      tenantId: 'acme',
      at: T0,
    })
    const page2 = await call('GET', `/tenants/acme/audit?limit=2&before=${page1.json.next}`)
    expect(page2.json.items).toHaveLength(1)
    expect(page2.json.items[0]).toMatchObject({ action: 'tenant.create', before: null, requestId: 'req-1' })
    expect(page2.json.items[0].after).toMatchObject({ id: 'acme' })
  })

  it("takes the request id from hono's requestId middleware when present", async () => {
    const outer = new Hono()
    outer.use(requestId({ generator: () => 'generated-id' }))
    outer.route('/admin', adminRoutes(service, { token: TOKEN }))
    app = outer
    await call('POST', '/tenants', { body: { id: 'acme' } })
    expect((await history('acme'))[0]!.requestId).toBe('generated-id')
  })
})

describe('adminRoutes validation and errors', () => {
  it('refuses an invalid body with 400 and every issue, writing nothing', async () => {
    const result = await call('POST', '/tenants', {
      body: { id: 'bad id', quota: { limits: [{ window: 'week', requests: -1 }] }, surprise: 1 },
    })
    expectProblem(result, 400, 'tenant_invalid_config')
    const paths = result.json.issues.map((i: { path: unknown[] }) => i.path.join('.'))
    expect(paths).toEqual(
      expect.arrayContaining(['id', 'quota.limits.0.window', 'quota.limits.0.requests', '']),
    )
    for (const issue of result.json.issues)
      expect(issue).toEqual({
        path: expect.any(Array),
        message: expect.any(String),
        code: expect.any(String),
      })
    expect((await configs.listTenants()).items).toEqual([])
  })

  it('refuses bad quota and policy bodies and bad queries with the issues', async () => {
    await call('POST', '/tenants', { body: { id: 'acme' } })
    const quota = await call('PUT', '/tenants/acme/quota', {
      body: { limits: [{ window: 'day', requests: 1.5 }] },
    })
    expectProblem(quota, 400, 'tenant_invalid_config')
    expect(quota.json.issues[0].path).toEqual(['limits', 0, 'requests'])
    const policy = await call('PUT', '/tenants/acme/policy', { body: { allowedModels: 'gpt-4o' } })
    expectProblem(policy, 400, 'tenant_invalid_config')
    // Digits only: Number() would read these as 2, 2, 2, 0, 1 and 1.
    const notDigits = ['limit=0x2', 'limit=2e0', 'limit=%202%20', 'offset=', 'offset=0x1', 'offset=0b1']
    for (const query of ['limit=0', 'limit=abc', 'limit=1001', 'offset=-1', 'unknown=1', ...notDigits]) {
      expectProblem(await call('GET', `/tenants?${query}`), 400, 'tenant_invalid_config')
    }
    // Both pagination styles at once: refused by core's option check, same problem shape.
    const both = await call('GET', '/tenants?offset=1&after=a')
    expectProblem(both, 400, 'tenant_invalid_config')
    expect(both.json.issues[0].path).toEqual(['after'])
    expectProblem(await call('GET', '/tenants/acme/audit?limit=0'), 400, 'tenant_invalid_config')
    expectProblem(await call('GET', '/tenants/acme/audit?limit=0x1'), 400, 'tenant_invalid_config')
    expectProblem(await call('GET', '/tenants/acme/audit?before=bogus'), 400, 'tenant_invalid_config')
  })

  it('refuses an invalid tenant id in the path with 400 tenant_invalid_id', async () => {
    const result = await call('GET', `/tenants/${'x'.repeat(256)}`)
    expectProblem(result, 400, 'tenant_invalid_id')
    expectProblem(await call('POST', '/tenants/a%20b/suspend'), 400, 'tenant_invalid_id')
  })

  it('refuses to create a tenant or plan named "." or "..", which no admin path could name again', async () => {
    // Before, both were created (201), and /admin/tenants/.. then reached /admin/: the tenant
    // could never be suspended, updated or deleted over HTTP.
    for (const id of ['.', '..']) {
      expectProblem(await call('POST', '/tenants', { body: { id } }), 400, 'tenant_invalid_config')
      expectProblem(await call('POST', '/plans', { body: { id } }), 400, 'tenant_invalid_config')
    }
    expect((await configs.listTenants()).items).toEqual([])
    expect((await call('POST', '/tenants', { body: { id: '...' } })).status).toBe(201)
  })

  it('answers 409 for a taken id and 400 for a body id that differs from the path', async () => {
    await call('POST', '/tenants', { body: { id: 'acme' } })
    const conflict = await call('POST', '/tenants', { body: { id: 'acme' } })
    expectProblem(conflict, 409, 'tenant_already_exists')
    expect(conflict.json.tenantId).toBe('acme')
    expectProblem(await call('PUT', '/tenants/acme', { body: { id: 'other' } }), 400, 'tenant_invalid_config')
  })

  it('answers 404 for changes to an unknown tenant', async () => {
    for (const [method, path, body] of [
      ['PUT', '/tenants/ghost', {}],
      ['DELETE', '/tenants/ghost', undefined],
      ['PUT', '/tenants/ghost/quota', { limits: [] }],
      ['PUT', '/tenants/ghost/policy', {}],
      ['POST', '/tenants/ghost/suspend', undefined],
      ['POST', '/tenants/ghost/activate', undefined],
    ] as const) {
      expectProblem(await call(method, path, { body }), 404, 'tenant_not_found')
    }
    expect(await history('ghost')).toEqual([])
  })

  it('answers malformed JSON with 400, a non-JSON body with 415 and a huge body with 413', async () => {
    expectProblem(await call('POST', '/tenants', { body: '{"id":' }), 400, 'invalid_request')
    expectProblem(
      await call('POST', '/tenants', { body: 'id=acme', headers: { 'Content-Type': 'text/plain' } }),
      415,
      'unsupported_media_type',
    )
    build({ token: TOKEN, maxBodyBytes: 64 })
    const huge = await call('POST', '/tenants', { body: { id: 'acme', metadata: { blob: 'x'.repeat(100) } } })
    expectProblem(huge, 413, 'payload_too_large')
    expect((await configs.listTenants()).items).toEqual([])
  })

  it('refuses a body that is not UTF-8 with 400, writing nothing, and keeps UTF-8 text as sent', async () => {
    // JSON is UTF-8: decoded leniently, the bad byte became U+FFFD and was stored as such.
    const send = (bytes: Uint8Array) =>
      app.request('http://admin.test/admin/tenants', {
        method: 'POST',
        headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
        body: bytes,
      })
    const utf8 = new TextEncoder()
    for (const bad of [[0xff], [0xc3], [0xed, 0xa0, 0x80]]) {
      const body = new Uint8Array([
        ...utf8.encode('{"id":"acme","metadata":{"owner":"'),
        ...bad,
        ...utf8.encode('"}}'),
      ])
      const response = await send(body)
      expect(response.status).toBe(400)
      expect(await response.json()).toMatchObject({
        code: 'invalid_request',
        detail: 'the body is not valid UTF-8',
      })
    }
    expect((await configs.listTenants()).items).toEqual([])
    expect(await history('acme')).toEqual([])
    const created = await send(utf8.encode('{"id":"acme","metadata":{"owner":"Zoë 🐙"}}'))
    expect(created.status).toBe(201)
    expect((await configs.getTenantConfig('acme')).metadata).toEqual({ owner: 'Zoë 🐙' })
  })

  it('accepts a JSON media type with parameters', async () => {
    const result = await call('POST', '/tenants', {
      body: { id: 'acme' },
      headers: { 'Content-Type': 'application/json; charset=utf-8' },
    })
    expect(result.status).toBe(201)
  })

  it('answers a failing store with 503 and hides unexpected errors behind a 500', async () => {
    const reported: unknown[] = []
    build({ token: TOKEN, onError: (error) => reported.push(error) })
    await call('POST', '/tenants', { body: { id: 'acme' } })
    // The audit store goes down: the change is undone and the client told the backend is unavailable.
    auditLog.append = () => Promise.reject(new Error('disk full'))
    const down = await call('POST', '/tenants/acme/suspend')
    expectProblem(down, 503, 'tenant_backend_unavailable')
    expect((await configs.getTenantConfig('acme')).status).toBe('active')
    expect(reported).toEqual([])
    // A bug (not a TenantError) is a 500 that does not leak its message, and is reported.
    configs.getTenantConfig = () => Promise.reject(new TypeError('secret internals'))
    const bug = await call('GET', '/tenants/acme')
    expectProblem(bug, 500, 'internal_error')
    expect(JSON.stringify(bug.json)).not.toContain('secret')
    expect(reported).toHaveLength(1)
  })

  it('writes an audit record for every successful mutation and none for failed ones', async () => {
    await expectOneAuditRecordPerChange(call, auditLog)
  })
})

describe('adminRoutes plans', () => {
  const planHistory = async (id: string) => (await auditLog.listPlan(id, { limit: 100 })).items

  it('creates, reads, lists, replaces and deletes plans, each change audited with the actor', async () => {
    const created = await call('POST', '/plans', {
      body: { id: 'pro', quota: { limits: [{ window: 'day', requests: 100 }] }, metadata: { tier: 2 } },
      headers: { 'X-Request-ID': 'req-plan' },
    })
    expect(created.status).toBe(201)
    expect(created.response.headers.get('Location')).toBe('/admin/plans/pro')
    expect(created.json).toEqual({
      id: 'pro',
      quota: { limits: [{ window: 'day', requests: 100 }] },
      rateLimit: null,
      concurrency: null,
      policy: { allowedModels: [], allowedTools: [], allowedMethods: [], allowedPaths: [] },
      metadata: { tier: 2 },
      createdAt: T0,
      updatedAt: T0,
    })
    expect((await call('GET', '/plans/pro')).json).toEqual(created.json)
    await call('POST', '/plans', { body: { id: 'free' } })
    const page = await call('GET', '/plans?limit=1')
    expect(page.json).toMatchObject({ items: [{ id: 'free' }], next: 'free' })
    expect((await call('GET', '/plans?limit=1&after=free')).json.items[0].id).toBe('pro')
    clock.advance(1000)
    const replaced = await call('PUT', '/plans/pro', { body: { metadata: { tier: 3 } } })
    expect(replaced.json).toMatchObject({
      quota: { limits: [] },
      metadata: { tier: 3 },
      updatedAt: T0 + 1000,
    })
    expect((await call('DELETE', '/plans/pro')).status).toBe(204)
    expectProblem(await call('GET', '/plans/pro'), 404, 'plan_not_found')
    const audit = await call('GET', '/plans/pro/audit?limit=2')
    expect(audit.json.items.map((r: { action: string }) => r.action)).toEqual(['plan.delete', 'plan.update'])
    const rest = await call('GET', `/plans/pro/audit?before=${audit.json.next}`)
    expect(rest.json.items).toEqual([
      {
        id: expect.any(String),
        planId: 'pro',
        actor: 'admin',
        action: 'plan.create',
        before: null,
        after: created.json,
        at: T0,
        requestId: 'req-plan',
      },
    ])
  })

  it('puts tenants on plans, keeps the plan on updates that do not name one, and guards deletes', async () => {
    await call('POST', '/plans', { body: { id: 'pro' } })
    const ghost = await call('POST', '/tenants', { body: { id: 'acme', plan: 'ghost' } })
    expectProblem(ghost, 400, 'tenant_invalid_config')
    expect(ghost.json.issues[0]).toMatchObject({ path: ['plan'] })
    expect((await call('POST', '/tenants', { body: { id: 'acme', plan: 'pro' } })).json.plan).toBe('pro')
    expect((await call('PUT', '/tenants/acme', { body: { metadata: { a: 1 } } })).json.plan).toBe('pro')
    expectProblem(
      await call('PUT', '/tenants/acme', { body: { plan: 'ghost' } }),
      400,
      'tenant_invalid_config',
    )
    const inUse = await call('DELETE', '/plans/pro')
    expectProblem(inUse, 409, 'plan_in_use')
    expect(inUse.json.planId).toBe('pro')
    expect((await call('PUT', '/tenants/acme', { body: { plan: null } })).json.plan).toBeNull()
    expect((await call('DELETE', '/plans/pro')).status).toBe(204)
    expect((await planHistory('pro')).map((r) => r.action)).toEqual(['plan.delete', 'plan.create'])
  })

  it('validates bodies, ids and queries like the tenant routes', async () => {
    const bad = await call('POST', '/plans', {
      body: { id: 'pro', status: 'active', rateLimit: { burst: 0 } },
    })
    expectProblem(bad, 400, 'tenant_invalid_config')
    expect(bad.json.issues.length).toBeGreaterThan(1)
    expectProblem(await call('POST', '/plans', { body: { id: 'a b' } }), 400, 'tenant_invalid_config')
    expectProblem(await call('GET', '/plans/a%20b'), 400, 'tenant_invalid_config')
    await call('POST', '/plans', { body: { id: 'pro' } })
    expectProblem(await call('POST', '/plans', { body: { id: 'pro' } }), 409, 'plan_already_exists')
    expectProblem(await call('PUT', '/plans/pro', { body: { id: 'other' } }), 400, 'tenant_invalid_config')
    expectProblem(await call('PUT', '/plans/ghost', { body: {} }), 404, 'plan_not_found')
    expectProblem(await call('DELETE', '/plans/ghost'), 404, 'plan_not_found')
    expectProblem(await call('GET', '/plans?limit=0'), 400, 'tenant_invalid_config')
    expectProblem(await call('GET', '/plans/pro/audit?before=nope'), 400, 'tenant_invalid_config')
    expectProblem(
      await call('POST', '/plans', { body: 'id=pro', headers: { 'Content-Type': 'text/plain' } }),
      415,
      'unsupported_media_type',
    )
    expect((await planHistory('pro')).map((r) => r.action)).toEqual(['plan.create'])
  })

  it('answers 501 plans_unavailable without a plan store, and refuses a tenant on a plan', async () => {
    build({ token: TOKEN }, true, false)
    for (const [method, path] of [
      ['GET', '/plans'],
      ['POST', '/plans'],
      ['GET', '/plans/pro'],
      ['PUT', '/plans/pro'],
      ['DELETE', '/plans/pro'],
      ['GET', '/plans/pro/audit'],
    ] as const) {
      expectProblem(
        await call(method, path, { body: method === 'GET' ? undefined : {} }),
        501,
        'plans_unavailable',
      )
    }
    expectProblem(
      await call('POST', '/tenants', { body: { id: 'acme', plan: 'pro' } }),
      400,
      'tenant_invalid_config',
    )
  })
})

describe('adminRoutes OpenAPI', () => {
  it('serves a document that covers every route', async () => {
    const result = await call('GET', '/openapi.json')
    expect(result.status).toBe(200)
    expect(result.json).toEqual(adminOpenApiDocument())
    const documented = Object.entries(result.json.paths as Record<string, Record<string, unknown>>).flatMap(
      ([path, ops]) =>
        Object.keys(ops).map((method) => `${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`),
    )
    const served = adminRoutes(service, { token: TOKEN, openApi: false })
      .routes.filter((r) => r.method !== 'ALL')
      .map((r) => `${r.method} ${r.path}`)
    expect(new Set(documented)).toEqual(new Set(served))
    expect(result.json.components.schemas.TenantConfigInput.required).toEqual(['id'])
    expect(result.json.components.schemas.TenantUpdateInput.properties.status.enum).toEqual([
      'active',
      'suspended',
    ])
    expect(result.json.components.securitySchemes.bearerAuth).toEqual({ type: 'http', scheme: 'bearer' })
    expect(result.json.components.schemas.PlanConfigInput.required).toEqual(['id'])
    expect(result.json.components.schemas.TenantConfigInput.properties.plan).toBeDefined()
    expect(result.json.components.schemas.PlanAuditRecord.properties.action.enum).toEqual([
      'plan.create',
      'plan.update',
      'plan.delete',
    ])
    // Every operation with a JSON body documents the body refusals its route sends (413, 415).
    for (const [path, ops] of Object.entries(result.json.paths as Record<string, Record<string, any>>)) {
      for (const [method, op] of Object.entries(ops)) {
        if (op.requestBody === undefined) continue
        expect(Object.keys(op.responses), `${method} ${path}`).toEqual(expect.arrayContaining(['413', '415']))
      }
    }
  })

  it('documents statuses the routes send: 415 for a body that is not JSON on every PUT', async () => {
    await call('POST', '/tenants', { body: { id: 'acme' } })
    const document = (await call('GET', '/openapi.json')).json
    for (const path of ['/tenants/acme', '/tenants/acme/quota', '/tenants/acme/policy']) {
      const response = await app.request(`/admin${path}`, {
        method: 'PUT',
        headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'text/plain' },
        body: 'x',
      })
      expect(response.status).toBe(415)
      const documented = document.paths[path.replace('acme', '{id}')].put.responses
      expect(Object.keys(documented)).toContain('415')
    }
  })

  it('can be left out, and documents a server url when given', async () => {
    build({ token: TOKEN, openApi: false })
    expect((await call('GET', '/openapi.json')).status).toBe(404)
    expect(adminOpenApiDocument({ serverUrl: 'https://api.example.com/admin' }).servers).toEqual([
      { url: 'https://api.example.com/admin' },
    ])
  })
})

describe('adminRoutes unknown paths and methods', () => {
  it('answers an unknown path with a problem+json 404, standalone or mounted', async () => {
    for (const [method, path] of [
      ['GET', '/tenant'],
      ['GET', '/tenants/acme/unknown'],
      ['POST', '/nothing/here'],
      ['GET', '/tenants/'],
    ] as const) {
      const result = await call(method, path)
      expectProblem(result, 404, 'not_found')
      expect(result.response.headers.get('Cache-Control')).toBe('no-store')
    }
    // Mounted nowhere (the routes as the app itself): still problem+json.
    const standalone = adminRoutes(service, { token: TOKEN })
    const response = await standalone.request('http://admin.test/tenant', {
      headers: { Authorization: `Bearer ${TOKEN}` },
    })
    expect(response.status).toBe(404)
    expect(response.headers.get('Content-Type')).toBe('application/problem+json')
  })

  it('answers a known path with a wrong method with 405 and Allow, changing nothing', async () => {
    await call('POST', '/tenants', { body: { id: 'acme' } })
    for (const [method, path, allow] of [
      ['PATCH', '/tenants/acme', 'GET, PUT, DELETE, HEAD'],
      ['DELETE', '/tenants', 'GET, POST, HEAD'],
      ['GET', '/tenants/acme/suspend', 'POST'],
      ['POST', '/tenants/acme/usage', 'GET, HEAD'],
      ['PUT', '/plans/pro/audit', 'GET, HEAD'],
      ['POST', '/openapi.json', 'GET, HEAD'],
      ['HEAD', '/tenants/acme/quota', 'PUT'],
    ] as const) {
      const result = await call(method, path)
      expect(result.status, `${method} ${path}`).toBe(405)
      expect(result.response.headers.get('Allow')).toBe(allow)
      expect(result.response.headers.get('Content-Type')).toBe('application/problem+json')
      if (method !== 'HEAD') expectProblem(result, 405, 'method_not_allowed')
    }
    expect((await configs.getTenantConfig('acme')).status).toBe('active')
    expect(await history('acme')).toHaveLength(1)
    // The right method still reaches its route; HEAD is answered like GET.
    expect((await call('GET', '/tenants/acme')).status).toBe(200)
    expect((await call('HEAD', '/tenants/acme')).status).toBe(200)
  })

  it('still asks for credentials first: no route or method is revealed without them', async () => {
    expectProblem(await call('PATCH', '/tenants/acme', { token: null }), 401, 'admin_unauthorized')
    expectProblem(await call('GET', '/nothing', { token: null }), 401, 'admin_unauthorized')
  })
})

describe('adminRoutes metadata "__proto__" keys', () => {
  it('refuses a top-level "__proto__" key with 400 naming it, for tenants and plans', async () => {
    for (const [path, body] of [
      ['/tenants', '{"id":"acme","metadata":{"__proto__":{"isAdmin":true},"x":1}}'],
      ['/plans', '{"id":"pro","metadata":{"__proto__":{"isAdmin":true}}}'],
    ] as const) {
      const result = await call('POST', path, { body })
      expectProblem(result, 400, 'tenant_invalid_config')
      expect(result.json.issues.map((i: { path: unknown }) => i.path)).toEqual([['metadata', '__proto__']])
    }
    expect((await configs.listTenants()).items).toEqual([])
    expect(await history('acme')).toEqual([])
  })
})
