import { ConfigPolicyEvaluator, InMemoryConfigManager, type PolicyEvaluator, TenantError } from '@tenant/core'
import { beforeEach, describe, expect, it } from 'vitest'
import { expectInvalidOption, failing, okHandler, problem, recorder, req } from '../test/helpers'
import type { Middleware, PolicyOptions } from './index'
import { compose, tenantPolicy, tenantResolver } from './index'

describe('tenantPolicy', () => {
  let configs: InMemoryConfigManager
  let evaluator: ConfigPolicyEvaluator
  beforeEach(async () => {
    configs = new InMemoryConfigManager()
    evaluator = new ConfigPolicyEvaluator(configs)
    await configs.setTenantConfig({ id: 'open' })
    await configs.setTenantConfig({
      id: 'acme',
      policy: {
        allowedModels: ['gpt-4o-mini'],
        allowedTools: ['search'],
        allowedMethods: ['GET', 'POST'],
        allowedPaths: ['/v1/*'],
      },
    })
  })

  const chain = (options: PolicyOptions): Middleware => compose(tenantResolver(), tenantPolicy(options))

  it('allows everything for a tenant with an empty policy', async () => {
    const { calls, next } = okHandler()
    const request = req('/anything', {
      method: 'DELETE',
      tenant: 'open',
      headers: { 'X-Model': 'any', 'X-Tool': 'any' },
    })
    expect((await chain({ evaluator })(request, next)).status).toBe(200)
    expect(calls).toHaveLength(1)
  })

  it('checks the model and tool headers, method and path', async () => {
    const run = (path: string, init: RequestInit) =>
      chain({ evaluator })(req(path, { tenant: 'acme', ...init }), okHandler().next)
    expect(
      (await run('/v1/chat', { method: 'POST', headers: { 'X-Model': 'gpt-4o-mini', 'X-Tool': 'search' } }))
        .status,
    ).toBe(200)
    expect((await run('/v1/chat', {})).status).toBe(200)
    const cases: [string, RequestInit, string][] = [
      ['/v1/chat', { headers: { 'X-Model': 'gpt-4o' } }, 'model'],
      ['/v1/chat', { headers: { 'X-Tool': 'shell' } }, 'tool'],
      ['/v1/chat', { method: 'DELETE' }, 'method'],
      ['/admin', {}, 'path'],
    ]
    for (const [path, init, rule] of cases) {
      const response = await run(path, init)
      expect(response.status).toBe(403)
      const body = await problem(response)
      expect(body).toMatchObject({
        code: 'tenant_policy_denied',
        rule,
        tenantId: 'acme',
        title: 'Denied by tenant policy',
      })
      expect(body.detail).toEqual(expect.any(String))
    }
  })

  it('reads custom model and tool headers', async () => {
    const policy = chain({ evaluator, modelHeader: 'X-LLM', toolHeader: 'X-Function' })
    const allowed = req('/v1/chat', {
      tenant: 'acme',
      headers: { 'X-LLM': 'gpt-4o-mini', 'X-Model': 'ignored' },
    })
    expect((await policy(allowed, okHandler().next)).status).toBe(200)
    const denied = req('/v1/chat', { tenant: 'acme', headers: { 'X-Function': 'shell' } })
    expect((await problem(await policy(denied, okHandler().next))).rule).toBe('tool')
  })

  it('reads model and tool with extract(request), leaving the body to the handler', async () => {
    const extract = async (request: Request) => {
      const body = (await request.clone().json()) as { model?: string }
      return { model: body.model }
    }
    let handlerBody: unknown
    const next = async (request?: Request) => {
      handlerBody = await request!.json()
      return new Response('ok')
    }
    const policy = chain({ evaluator, extract })
    const post = (model: string) =>
      req('/v1/chat', { tenant: 'acme', method: 'POST', body: JSON.stringify({ model }) })
    expect((await policy(post('gpt-4o-mini'), next)).status).toBe(200)
    expect(handlerBody).toEqual({ model: 'gpt-4o-mini' })
    expect((await policy(post('gpt-4o'), next)).status).toBe(403)
  })

  it('checks the request line, not a method or path extract answers (a body handed back as is)', async () => {
    const extract = async (request: Request) => (await request.clone().json()) as Record<string, string>
    const { calls, next } = okHandler()
    const policy = chain({ evaluator, extract })
    const send = (method: string, path: string, body: Record<string, string>) =>
      policy(req(path, { tenant: 'acme', method, body: JSON.stringify(body) }), next)
    // The client names an allowed method and path in the body of a request the policy refuses.
    const spoofed = await send('DELETE', '/admin/delete-everything', {
      model: 'gpt-4o-mini',
      method: 'POST',
      path: '/v1/chat',
    })
    expect(spoofed.status).toBe(403)
    expect(await problem(spoofed)).toMatchObject({ code: 'tenant_policy_denied', rule: 'method' })
    const pathOnly = await send('POST', '/admin/x', { model: 'gpt-4o-mini', path: '/v1/chat' })
    expect(await problem(pathOnly)).toMatchObject({ rule: 'path' })
    expect(calls).toHaveLength(0)
    // The same values as the request line's change nothing.
    expect(
      (await send('POST', '/v1/chat', { model: 'gpt-4o-mini', method: 'POST', path: '/v1/chat' })).status,
    ).toBe(200)
    expect((await send('POST', '/v1/chat', { model: 'gpt-4o' })).status).toBe(403)
  })

  it('refuses with the code of a TenantError thrown by extract', async () => {
    const extract = () => {
      throw new TenantError('invalid_cost', 'body too large to inspect')
    }
    const response = await chain({ evaluator, extract })(req('/v1/x', { tenant: 'acme' }), okHandler().next)
    expect(response.status).toBe(400)
  })

  it('sends the onDenied response with the decision', async () => {
    const { hooks, events } = recorder()
    const policy = chain({
      evaluator,
      hooks,
      onDenied: (_request, decision) =>
        Response.json({ nope: decision.rule, tenant: decision.tenantId }, { status: 451 }),
    })
    const response = await policy(req('/admin', { tenant: 'acme' }), okHandler().next)
    expect(response.status).toBe(451)
    expect(await response.json()).toEqual({ nope: 'path', tenant: 'acme' })
    const event = events.find((e) => e.hook === 'onPolicy')!.event
    expect(event).toMatchObject({
      allowed: false,
      status: 451,
      code: 'tenant_policy_denied',
      decision: { allowed: false, rule: 'path' },
    })
  })

  it('sends the default problem when onDenied answers something shaped like a Response but not one', async () => {
    const { hooks, errors } = recorder()
    const policy = chain({
      evaluator,
      hooks,
      onDenied: () => ({ status: 403, headers: new Headers() }) as unknown as Response,
    })
    const response = await policy(req('/admin', { tenant: 'acme' }), okHandler().next)
    expect(response).toBeInstanceOf(Response)
    expect(response.status).toBe(403)
    expect(response.headers.get('Content-Type')).toBe('application/problem+json')
    expect(errors).toHaveLength(1)
  })

  it('fires onPolicy for allowed and denied requests with the input', async () => {
    const { hooks, events } = recorder()
    const policy = chain({ evaluator, hooks })
    await policy(
      req('/v1/chat', { tenant: 'acme', method: 'POST', headers: { 'X-Model': 'gpt-4o-mini' } }),
      okHandler().next,
    )
    await policy(req('/v1/chat', { tenant: 'acme', headers: { 'X-Model': 'o3' } }), okHandler().next)
    const policyEvents = events.filter((e) => e.hook === 'onPolicy').map((e) => e.event)
    expect(policyEvents).toMatchObject([
      {
        allowed: true,
        status: 200,
        tenantId: 'acme',
        input: { method: 'POST', path: '/v1/chat', model: 'gpt-4o-mini' },
      },
      { allowed: false, status: 403, tenantId: 'acme', code: 'tenant_policy_denied', input: { model: 'o3' } },
    ])
    expect(policyEvents[0].code).toBeUndefined()
  })

  it('is a pass-through without an evaluator', async () => {
    const { calls, next } = okHandler()
    const response = await tenantPolicy()(req('/admin'), next)
    expect(response.status).toBe(200)
    expect(calls).toHaveLength(1)
  })

  it('answers 403 tenant_unknown when the evaluator does not know the tenant', async () => {
    const response = await chain({ evaluator })(req('/v1', { tenant: 'nobody' }), okHandler().next)
    expect(response.status).toBe(403)
    expect((await problem(response)).code).toBe('tenant_unknown')
  })

  it('answers 503 when the evaluator fails, or passes under failOpen', async () => {
    const dead = failing()
    const broken: PolicyEvaluator = { evaluate: dead.call }
    const closed = recorder()
    const response = await chain({ evaluator: broken, hooks: closed.hooks })(
      req('/v1', { tenant: 'acme' }),
      okHandler().next,
    )
    expect(response.status).toBe(503)
    expect((await problem(response)).code).toBe('tenant_backend_unavailable')
    expect(closed.events.find((e) => e.hook === 'onPolicy')!.event).toMatchObject({
      allowed: false,
      status: 503,
      error: dead.error,
    })

    const open = recorder()
    const { calls, next } = okHandler()
    const passed = await chain({ evaluator: broken, failOpen: true, hooks: open.hooks })(
      req('/v1', { tenant: 'acme' }),
      next,
    )
    expect(passed.status).toBe(200)
    expect(calls).toHaveLength(1)
    expect(open.events.find((e) => e.hook === 'onPolicy')!.event).toMatchObject({
      allowed: true,
      failedOpen: true,
      error: dead.error,
    })
    expect(open.errors.map((e) => e.error)).toEqual([dead.error])
  })

  // Allow-lists are written as clients send paths: a middleware between the resolver and the
  // policy that hands a Request with another URL downstream (a rewrite, a mounted sub-app) does not
  // change the path checked. The method is the one the handler serves.
  it('checks the path of the request the tenant was resolved on, and the method handed on', async () => {
    const rewrite =
      (path: string, method?: string): Middleware =>
      (request, next) =>
        next(
          new Request(new URL(path, request.url), {
            method: method ?? request.method,
            headers: request.headers,
          }),
        )
    const via = (rewriter: Middleware, path: string, method = 'GET') =>
      compose(
        tenantResolver(),
        rewriter,
        tenantPolicy({ evaluator }),
      )(req(path, { tenant: 'acme', method }), okHandler().next)
    // /admin rewritten to /v1/chat: the client sent /admin, which the allow-list leaves out.
    const denied = await via(rewrite('/v1/chat'), '/admin')
    expect(denied.status).toBe(403)
    expect(await problem(denied)).toMatchObject({ rule: 'path' })
    expect((await via(rewrite('/admin'), '/v1/chat')).status).toBe(200)
    // A method override downstream (GET sent, DELETE served) is checked as served.
    const overridden = await via(rewrite('/v1/chat', 'DELETE'), '/v1/chat')
    expect(overridden.status).toBe(403)
    expect(await problem(overridden)).toMatchObject({ rule: 'method' })
  })

  // Deno.serve puts the raw request-target in request.url; an app routing on new URL().pathname
  // sees the dot segments resolved, so the policy must check that path.
  it('denies a URL whose path a URL parser and a router read differently (a raw request-target on Deno)', async () => {
    const rawRequest = (url: string) => {
      const request = req('/v1/chat', { tenant: 'acme' })
      Object.defineProperty(request, 'url', { value: url })
      return request
    }
    const { hooks, events } = recorder()
    const urls = [
      'http://api.example.com/v1/../admin',
      'http://api.example.com/v1/%2e%2e/admin',
      'http://api.example.com/v1/.%2E/admin',
      // A URL parser reads /v1/chat, a router that slices the text runs /admin/*.
      'http://api.example.com/admin/../v1/chat',
      'http://api.example.com/v1/x/../chat',
      // A raw Host header: URL reads /v1/admin/keys, a slicing router /admin/keys.
      'http://api.example.com\\v1/admin/keys',
      'http://api.example.com?/v1/chat',
      // An empty Host before the path (`Host: /v1`): URL and Hono read /admin/keys (host "v1").
      'http:///v1/admin/keys',
    ]
    for (const url of urls) {
      const { calls, next } = okHandler()
      const response = await chain({ evaluator, hooks })(rawRequest(url), next)
      expect(response.status, url).toBe(403)
      expect(await problem(response), url).toMatchObject({ code: 'tenant_policy_denied', rule: 'path' })
      expect(calls, url).toHaveLength(0)
    }
    expect(events.filter((e) => e.hook === 'onPolicy').map((e) => e.event.input.path)).toEqual(
      urls.map(() => undefined),
    )
    // The same paths, normalized as clients send them, are judged as usual.
    expect(
      (await chain({ evaluator })(rawRequest('http://api.example.com/v1/chat'), okHandler().next)).status,
    ).toBe(200)
  })

  describe('a request value of the wrong type from extract (bad request input)', () => {
    const body = (value: Record<string, unknown>) =>
      req('/v1/chat', { method: 'POST', tenant: 'acme', body: JSON.stringify(value) })
    const extract = async (request: Request) => (await request.clone().json()) as Record<string, never>

    for (const failOpen of [false, true]) {
      it(`is denied with 403 tenant_policy_denied, never a backend failure (failOpen: ${failOpen})`, async () => {
        const { hooks, events, errors } = recorder()
        const cases: [Record<string, unknown>, string, string][] = [
          [{ model: ['gpt-4o'] }, 'model', 'model must be a string, got an array'],
          [{ model: 'gpt-4o-mini', tool: { name: 'shell' } }, 'tool', 'tool must be a string, got an object'],
          [{ model: null }, 'model', 'model must be a string, got null'],
          [{ method: 1 }, 'method', 'method must be a string, got a number'],
          [{ path: ['/v1/chat'] }, 'path', 'path must be a string, got an array'],
        ]
        for (const [value, rule, detail] of cases) {
          const { calls, next } = okHandler()
          const response = await chain({ evaluator, extract, failOpen, hooks })(body(value), next)
          expect(response.status, rule).toBe(403)
          expect(await problem(response), rule).toMatchObject({ code: 'tenant_policy_denied', rule, detail })
          expect(calls, rule).toHaveLength(0)
        }
        expect(errors).toEqual([])
        expect(events.filter((e) => e.hook === 'onPolicy').map((e) => e.event.status)).toEqual([
          403, 403, 403, 403, 403,
        ])
      })
    }

    it('is denied before a custom evaluator that would throw on it is called', async () => {
      let called = 0
      const picky: PolicyEvaluator = {
        evaluate: async (_tenant, request) => {
          called++
          return { allowed: (request.model as string).startsWith('gpt') }
        },
      }
      const response = await chain({ evaluator: picky, extract, failOpen: true })(
        body({ model: { toString: 'gpt' } }),
        okHandler().next,
      )
      expect(response.status).toBe(403)
      expect(called).toBe(0)
    })

    it('ignores a "__proto__" key of the extracted body (it would become the input\'s prototype)', async () => {
      const { hooks, events } = recorder()
      const response = await chain({ evaluator, extract, hooks })(
        new Request('https://api.example.com/v1/chat', {
          method: 'POST',
          headers: { 'X-Tenant-ID': 'acme' },
          body: '{"__proto__": {"model": "gpt-4o"}}',
        }),
        okHandler().next,
      )
      expect(response.status).toBe(200)
      const { input } = events.find((e) => e.hook === 'onPolicy')!.event
      expect(Object.getPrototypeOf(input)).toBe(Object.prototype)
      expect(input.model).toBeUndefined()
    })
  })

  it('skips a request that has no tenant under allowMissing', async () => {
    const { calls, next } = okHandler()
    const response = await compose(tenantResolver({ allowMissing: true }), tenantPolicy({ evaluator }))(
      req('/admin'),
      next,
    )
    expect(response.status).toBe(200)
    expect(calls).toHaveLength(1)
  })

  it('throws a clear error when no resolver ran before it', async () => {
    await expect(tenantPolicy({ evaluator })(req('/', { tenant: 'acme' }), okHandler().next)).rejects.toThrow(
      /put tenantResolver\(\) before it/,
    )
  })

  it('rejects bad options when created', () => {
    expectInvalidOption(() => tenantPolicy({ evaluator: {} as never }), 'tenantPolicy.evaluator', /evaluate/)
    expectInvalidOption(
      () => tenantPolicy({ evaluator, modelHeader: '' }),
      'tenantPolicy.modelHeader',
      /HTTP header name/,
    )
    expectInvalidOption(
      () => tenantPolicy({ evaluator, extract: 'body' as never }),
      'tenantPolicy.extract',
      /function/,
    )
  })
})
