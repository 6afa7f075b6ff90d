import {
  InMemoryConfigManager,
  InMemoryQuotaManager,
  TenantBackendError,
  TenantError,
  TenantNotFoundError,
} from '@tenant/core'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { expectInvalidOption, failing, hanging, okHandler, problem, recorder, req } from '../test/helpers'
import {
  applyMiddleware,
  chain,
  compose,
  currentTenantId,
  fromCookie,
  fromHeader,
  fromPathPrefix,
  fromQuery,
  fromSubdomain,
  getTenant,
  getTenantId,
  problemResponse,
  type ResolverOptions,
  runWithTenantId,
  tenancy,
  tenantQuota,
  tenantResolver,
  withTenancy,
} from './index'

describe('tenantResolver', () => {
  let configs: InMemoryConfigManager
  beforeEach(async () => {
    configs = new InMemoryConfigManager()
    await configs.setTenantConfig({ id: 'acme', metadata: { plan: 'pro' } })
    await configs.setTenantConfig({ id: 'globex' })
    await configs.setTenantConfig({ id: 'frozen', status: 'suspended' })
  })

  it('resolves the tenant from the X-Tenant-ID header', async () => {
    const { calls, next } = okHandler()
    const response = await tenantResolver()(req('/', { tenant: 'acme' }), next)
    expect(response.status).toBe(200)
    expect(calls).toHaveLength(1)
    expect(getTenantId(calls[0]!)).toBe('acme')
  })

  it('prefers the principal over the header when they agree, and over no header', async () => {
    const resolve = tenantResolver({ principal: (request) => request.headers.get('Authorization')?.slice(7) })
    let seen: string | undefined
    const next = async (request?: Request) => {
      seen = getTenantId(request!)
      return new Response('ok')
    }
    const auth = { Authorization: 'Bearer acme' }
    expect((await resolve(req('/', { headers: auth }), next)).status).toBe(200)
    expect(seen).toBe('acme')
    expect((await resolve(req('/', { headers: auth, tenant: 'acme' }), next)).status).toBe(200)
    expect(seen).toBe('acme')
  })

  it('refuses a request naming another tenant than its principal: 403 tenant_mismatch', async () => {
    const { calls, next } = okHandler()
    const { hooks, events } = recorder()
    const resolve = tenantResolver({ principal: () => 'acme', hooks })
    const response = await resolve(req('/', { tenant: 'globex' }), next)
    expect(response.status).toBe(403)
    const body = await problem(response)
    expect(body).toMatchObject({
      code: 'tenant_mismatch',
      title: 'Tenant mismatch',
      type: 'urn:tenant-toolkit:error:tenant_mismatch',
    })
    expect(body.detail).toContain('header:X-Tenant-ID')
    expect(calls).toHaveLength(0)
    expect(events[0]!.event).toMatchObject({
      allowed: false,
      status: 403,
      code: 'tenant_mismatch',
      tenantId: 'acme',
    })
  })

  it('reads a custom header', async () => {
    const { calls, next } = okHandler()
    const resolve = tenantResolver({ header: 'X-Org' })
    expect((await resolve(req('/', { headers: { 'X-Org': 'acme' } }), next)).status).toBe(200)
    expect(getTenantId(calls[0]!)).toBe('acme')
    // The default header is no longer read.
    expect((await resolve(req('/', { tenant: 'acme' }), next)).status).toBe(401)
  })

  it('answers a request without a tenant with 401 tenant_required as problem+json', async () => {
    const { calls, next } = okHandler()
    const response = await tenantResolver()(req('/'), next)
    expect(response.status).toBe(401)
    expect(response.headers.get('Cache-Control')).toBe('no-store')
    expect(await problem(response)).toEqual({
      type: 'urn:tenant-toolkit:error:tenant_required',
      title: 'Tenant required',
      status: 401,
      detail: 'this request must name a tenant',
      code: 'tenant_required',
    })
    expect(calls).toHaveLength(0)
  })

  // RFC 9110: a 401 carries WWW-Authenticate, saying how to name the tenant.
  it('challenges a 401 tenant_required with WWW-Authenticate', async () => {
    const challenge = async (options: Parameters<typeof tenantResolver>[0], request = req('/')) =>
      (await tenantResolver(options)(request, okHandler().next)).headers.get('WWW-Authenticate')
    expect(await challenge({})).toBe('Tenant realm="tenant", header="X-Tenant-ID"')
    expect(await challenge({ header: 'X-Org' })).toBe('Tenant realm="tenant", header="X-Org"')
    expect(await challenge({ extractors: [fromQuery()] })).toBe('Tenant realm="tenant"')
    expect(await challenge({ principal: () => undefined })).toBe('Bearer realm="tenant"')
    expect(await challenge({ principal: () => undefined, fallbackToExtractors: true })).toBe(
      'Bearer realm="tenant", Tenant realm="tenant", header="X-Tenant-ID"',
    )
    expect(await challenge({ challenge: 'ApiKey realm="api"' })).toBe('ApiKey realm="api"')
    // An onMissing response gets the challenge where it set none, and keeps its own.
    expect(await challenge({ onMissing: () => new Response('no', { status: 401 }) })).toBe(
      'Tenant realm="tenant", header="X-Tenant-ID"',
    )
    for (const bad of ['', ' Bearer', 'Bearer\r\nSet-Cookie: x=1', 7]) {
      expect(() => tenantResolver({ challenge: bad as string })).toThrow('tenantResolver.challenge')
    }
    // Any 401 problem has one, even from code that names none.
    expect(problemResponse(new TenantError('tenant_required', 'x')).headers.get('WWW-Authenticate')).toBe(
      'Tenant realm="tenant"',
    )
  })

  it('treats an empty header as absent', async () => {
    const response = await tenantResolver()(req('/', { tenant: '' }), okHandler().next)
    expect(response.status).toBe(401)
  })

  it('lets a request without a tenant through with allowMissing, without a tenant', async () => {
    const { hooks, events } = recorder()
    let seen: { id?: string; current?: string } = {}
    const next = async (request?: Request) => {
      seen = { id: getTenantId(request!), current: currentTenantId() }
      return new Response('anon')
    }
    const response = await tenantResolver({ allowMissing: true, hooks })(req('/'), next)
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('anon')
    expect(seen).toEqual({ id: undefined, current: undefined })
    expect(events.map((e) => e.event)).toMatchObject([{ allowed: true, status: 200, tenantId: undefined }])
  })

  it('sends the onMissing response for a request without a tenant', async () => {
    const { hooks, events } = recorder()
    const onMissing = vi.fn((request: Request) =>
      Response.redirect(`https://login.example.com/?from=${new URL(request.url).pathname}`, 302),
    )
    const response = await tenantResolver({ onMissing, hooks })(req('/dash'), okHandler().next)
    expect(response.status).toBe(302)
    expect(response.headers.get('Location')).toBe('https://login.example.com/?from=/dash')
    expect(onMissing).toHaveBeenCalledTimes(1)
    // The event reports the status actually sent.
    expect(events[0]!.event).toMatchObject({ allowed: false, status: 302, code: 'tenant_required' })
  })

  it('falls back to the 401 problem when onMissing throws, and reports the error', async () => {
    const { hooks, errors } = recorder()
    const boom = new Error('template missing')
    const response = await tenantResolver({
      onMissing: () => {
        throw boom
      },
      hooks,
    })(req('/'), okHandler().next)
    expect(response.status).toBe(401)
    expect((await problem(response)).code).toBe('tenant_required')
    expect(errors).toEqual([
      { error: boom, info: expect.objectContaining({ stage: 'resolve', hook: 'onMissing' }) },
    ])
  })

  it('falls back to the 401 problem when onMissing returns something other than a Response', async () => {
    const { hooks, errors } = recorder()
    const onMissing = (() => 'nope') as unknown as () => Response
    const response = await tenantResolver({ onMissing, hooks })(req('/'), okHandler().next)
    expect(response.status).toBe(401)
    expect(String(errors[0]!.error)).toContain('onMissing must return a Response')
  })

  it('fires onResolve for every decision with the source and status', async () => {
    const { hooks, events } = recorder()
    const resolve = tenantResolver({ hooks, configManager: configs })
    await resolve(req('/', { tenant: 'acme' }), okHandler().next)
    await resolve(req('/'), okHandler().next)
    await resolve(req('/', { tenant: 'nobody' }), okHandler().next)
    expect(events.map((e) => e.hook)).toEqual(['onResolve', 'onResolve', 'onResolve'])
    expect(events[0]!.event).toMatchObject({
      allowed: true,
      status: 200,
      tenantId: 'acme',
      source: 'header:X-Tenant-ID',
      tenant: { id: 'acme', metadata: { plan: 'pro' } },
    })
    expect(events[0]!.event.code).toBeUndefined()
    expect(events[1]!.event).toMatchObject({ allowed: false, status: 401, code: 'tenant_required' })
    expect(events[2]!.event).toMatchObject({
      allowed: false,
      status: 403,
      code: 'tenant_unknown',
      tenantId: 'nobody',
    })
  })

  it('keeps answering when an event hook throws or rejects, and reports it', async () => {
    const errors: unknown[] = []
    const hooks = [
      {
        onResolve: () => {
          throw new Error('sync hook bug')
        },
      },
      { onResolve: async () => Promise.reject(new Error('async hook bug')) },
      { onError: (error: unknown) => void errors.push(error) },
    ]
    const { calls, next } = okHandler()
    const response = await tenantResolver({ hooks })(req('/', { tenant: 'acme' }), next)
    expect(response.status).toBe(200)
    expect(calls).toHaveLength(1)
    await vi.waitFor(() =>
      expect(errors.map(String)).toEqual(['Error: sync hook bug', 'Error: async hook bug']),
    )
  })

  it('logs to the console when a hook throws and there is no onError', async () => {
    const log = vi.spyOn(console, 'error').mockImplementation(() => {})
    try {
      const hooks = {
        onResolve: () => {
          throw new Error('hook bug')
        },
      }
      const response = await tenantResolver({ hooks })(req('/', { tenant: 'acme' }), okHandler().next)
      expect(response.status).toBe(200)
      expect(log).toHaveBeenCalledWith('[@tenant/fetch] error in the onResolve hook:', expect.any(Error))
    } finally {
      log.mockRestore()
    }
  })

  describe('tenant id validation', () => {
    it.each([
      ['a slash', 'acme/prod'],
      ['a space', 'acme prod'],
      ['a repeated header', 'acme, globex'],
      ['256 characters', 'a'.repeat(256)],
      ['unicode', 'acmé'],
    ])('refuses %s with 400 tenant_invalid_id and does not echo it', async (_, id) => {
      const { calls, next } = okHandler()
      const request = new Request('https://api.example.com/', { headers: [['X-Tenant-ID', id]] })
      const response = await tenantResolver()(request, next)
      expect(response.status).toBe(400)
      const body = await problem(response)
      expect(body.code).toBe('tenant_invalid_id')
      expect(body.tenantId).toBeUndefined()
      expect(calls).toHaveLength(0)
    })

    it('accepts 255 characters', async () => {
      const response = await tenantResolver()(req('/', { tenant: 'a'.repeat(255) }), okHandler().next)
      expect(response.status).toBe(200)
    })

    it('refuses an invalid principal id too', async () => {
      const response = await tenantResolver({ principal: () => 'not valid!' })(req('/'), okHandler().next)
      expect((await problem(response)).code).toBe('tenant_invalid_id')
    })
  })

  describe('existence check against a config manager', () => {
    it('puts the stored config on the request', async () => {
      const { calls, next } = okHandler()
      await tenantResolver({ configManager: configs })(req('/', { tenant: 'acme' }), next)
      expect(getTenant(calls[0]!)).toMatchObject({ id: 'acme', status: 'active', metadata: { plan: 'pro' } })
    })

    it('refuses an unknown tenant with 403 tenant_unknown', async () => {
      const response = await tenantResolver({ configManager: configs })(
        req('/', { tenant: 'nobody' }),
        okHandler().next,
      )
      expect(response.status).toBe(403)
      expect(await problem(response)).toMatchObject({ code: 'tenant_unknown', tenantId: 'nobody' })
    })

    it('refuses a suspended tenant with 403 tenant_suspended', async () => {
      const response = await tenantResolver({ configManager: configs })(
        req('/', { tenant: 'frozen' }),
        okHandler().next,
      )
      expect(response.status).toBe(403)
      expect(await problem(response)).toMatchObject({ code: 'tenant_suspended', tenantId: 'frozen' })
    })

    it('answers 503 tenant_backend_unavailable when the store throws, never 403', async () => {
      const { hooks, events, errors } = recorder()
      const dead = failing()
      const response = await tenantResolver({ configManager: { getTenantConfig: dead.call }, hooks })(
        req('/', { tenant: 'acme' }),
        okHandler().next,
      )
      expect(response.status).toBe(503)
      const body = await problem(response)
      expect(body.code).toBe('tenant_backend_unavailable')
      // The driver's message (host, port) stays out of the response.
      expect(JSON.stringify(body)).not.toContain('10.0.0.7')
      expect(events[0]!.event).toMatchObject({ allowed: false, status: 503, error: dead.error })
      expect(errors).toEqual([{ error: dead.error, info: expect.objectContaining({ stage: 'resolve' }) }])
    })

    it('passes the request without a config under failOpen when the store throws', async () => {
      const { hooks, events, errors } = recorder()
      const dead = failing()
      const { calls, next } = okHandler()
      const response = await tenantResolver({
        configManager: { getTenantConfig: dead.call },
        failOpen: true,
        hooks,
      })(req('/', { tenant: 'acme' }), next)
      expect(response.status).toBe(200)
      expect(getTenantId(calls[0]!)).toBe('acme')
      expect(getTenant(calls[0]!)).toBeUndefined()
      expect(events[0]!.event).toMatchObject({
        allowed: true,
        status: 200,
        failedOpen: true,
        error: dead.error,
      })
      expect(errors).toHaveLength(1)
    })

    it('still refuses an unknown tenant under failOpen: only backend failures pass', async () => {
      const response = await tenantResolver({ configManager: configs, failOpen: true })(
        req('/', { tenant: 'nobody' }),
        okHandler().next,
      )
      expect(response.status).toBe(403)
    })

    it('fails a store call that outlives timeoutMs', async () => {
      vi.useFakeTimers()
      try {
        const { hooks, errors } = recorder()
        const pending = tenantResolver({
          configManager: { getTenantConfig: hanging() },
          timeoutMs: 50,
          hooks,
        })(req('/', { tenant: 'acme' }), okHandler().next)
        await vi.advanceTimersByTimeAsync(50)
        const response = await pending
        expect(response.status).toBe(503)
        expect(errors[0]!.error).toBeInstanceOf(TenantBackendError)
        expect(String(errors[0]!.error)).toContain('no answer within 50 ms')
      } finally {
        vi.useRealTimers()
      }
    })
  })

  describe('principal', () => {
    it('answers with the code of a TenantError the principal throws', async () => {
      const principal = () => {
        throw new TenantBackendError('session store down')
      }
      const response = await tenantResolver({ principal })(req('/'), okHandler().next)
      expect(response.status).toBe(503)
    })

    it('maps a TenantNotFoundError from a principal lookup to 403 tenant_unknown', async () => {
      const principal = () => {
        throw new TenantNotFoundError('ghost')
      }
      const response = await tenantResolver({ principal })(req('/'), okHandler().next)
      expect(await problem(response)).toMatchObject({
        status: 403,
        code: 'tenant_unknown',
        tenantId: 'ghost',
      })
    })

    it('never fails open on a principal lookup: authentication is not optional', async () => {
      const principal = async () => {
        throw new TenantBackendError('session store down')
      }
      const response = await tenantResolver({ principal, failOpen: true })(
        req('/', { tenant: 'acme' }),
        okHandler().next,
      )
      expect(response.status).toBe(503)
    })

    it('lets any other error from the principal propagate: a bug is not a 4xx', async () => {
      const principal = () => {
        throw new TypeError('cannot read properties of undefined')
      }
      await expect(tenantResolver({ principal })(req('/'), okHandler().next)).rejects.toThrow(TypeError)
    })

    // A principal without a tenant (a valid token lacking the claim) must never pick a tenant by header.
    it.each([undefined, null, ''])(
      'refuses a principal without a tenant (%j): 403 when the request names one, 401 when not',
      async (none) => {
        const { calls, next } = okHandler()
        const resolve = tenantResolver({ principal: async () => none as string | undefined })
        const named = await resolve(req('/', { tenant: 'globex' }), next)
        expect(named.status).toBe(403)
        expect(await problem(named)).toMatchObject({ code: 'tenant_mismatch' })
        const bare = await resolve(req('/'), next)
        expect(bare.status).toBe(401)
        expect(await problem(bare)).toMatchObject({
          code: 'tenant_required',
          detail: 'the authenticated principal carries no tenant',
        })
        expect(calls).toHaveLength(0)
      },
    )

    it('with allowMissing, passes a principal without a tenant through without one, never the header', async () => {
      const { calls, next } = okHandler()
      const resolve = tenantResolver({ principal: () => undefined, allowMissing: true })
      expect((await resolve(req('/'), next)).status).toBe(200)
      expect(getTenantId(calls[0]!)).toBeUndefined()
      expect((await resolve(req('/', { tenant: 'globex' }), next)).status).toBe(403)
      expect(calls).toHaveLength(1)
    })

    it('falls back to the extractors only with fallbackToExtractors', async () => {
      const { calls, next } = okHandler()
      const resolve = tenantResolver({ principal: async () => null, fallbackToExtractors: true })
      await resolve(req('/', { tenant: 'globex' }), next)
      expect(getTenantId(calls[0]!)).toBe('globex')
      // A principal that has a tenant still wins, and a different header is still a mismatch.
      const withTenant = tenantResolver({ principal: () => 'acme', fallbackToExtractors: true })
      expect((await withTenant(req('/', { tenant: 'globex' }), next)).status).toBe(403)
      expect(() => tenantResolver({ principal: () => 'acme', fallbackToExtractors: 'yes' as never })).toThrow(
        'tenantResolver.fallbackToExtractors',
      )
    })
  })

  describe('a principal with a tenant: every extractor must agree with it', () => {
    const principal = (request: Request) => request.headers.get('Authorization')?.slice(7)
    const auth = (tenant: string, headers: Record<string, string> = {}) => ({
      headers: { Authorization: `Bearer ${tenant}`, ...headers },
    })
    const extractors = [fromHeader(), fromPathPrefix('/t/'), fromQuery(), fromCookie()]

    it('refuses 403 tenant_mismatch when a later extractor names another tenant than an agreeing earlier one', async () => {
      const resolve = tenantResolver({ principal, extractors })
      const cases: [string, RequestInit, string][] = [
        ['/t/globex/invoices', auth('acme', { 'X-Tenant-ID': 'acme' }), 'path:/t/'],
        ['/t/acme/invoices?tenant=globex', auth('acme', { 'X-Tenant-ID': 'acme' }), 'query:tenant'],
        ['/t/acme/invoices?tenant=globex', auth('acme'), 'query:tenant'],
        ['/?tenant=acme', auth('acme', { Cookie: 'tenant=globex' }), 'cookie:tenant'],
      ]
      for (const [path, init, source] of cases) {
        const { calls, next } = okHandler()
        const response = await resolve(req(path, init), next)
        expect(response.status, path).toBe(403)
        const body = await problem(response)
        expect(body.code, path).toBe('tenant_mismatch')
        expect(body.detail, path).toContain(source)
        expect(calls, path).toHaveLength(0)
      }
    })

    it('reads every member of a chain, not just the first that finds an id', async () => {
      const { hooks, events } = recorder()
      const resolve = tenantResolver({
        principal,
        extractors: [chain(fromCookie(), fromHeader(), fromQuery())],
        hooks,
      })
      const response = await resolve(
        req('/?tenant=evil', auth('acme', { Cookie: 'tenant=acme', 'X-Tenant-ID': 'acme' })),
        okHandler().next,
      )
      expect(response.status).toBe(403)
      expect(events[0]!.event).toMatchObject({
        code: 'tenant_mismatch',
        source: 'query:tenant',
        tenantId: 'acme',
      })
    })

    it('refuses an invalid id in any extractor with 400, and accepts a request where all agree', async () => {
      const resolve = tenantResolver({ principal, extractors })
      const invalid = await resolve(req('/t/acme/x?tenant=a%2Fb', auth('acme')), okHandler().next)
      expect(await problem(invalid)).toMatchObject({ status: 400, code: 'tenant_invalid_id' })
      const { calls, next } = okHandler()
      const agreed = await resolve(
        req('/t/acme/x?tenant=acme', auth('acme', { 'X-Tenant-ID': 'acme', Cookie: 'tenant=acme' })),
        next,
      )
      expect(agreed.status).toBe(200)
      expect(getTenantId(calls[0]!)).toBe('acme')
      // Naming nothing at all is fine: the principal's tenant.
      expect((await resolve(req('/', auth('acme')), okHandler().next)).status).toBe(200)
    })

    it('awaits asynchronous extractors and refuses with the code of a TenantError from any of them', async () => {
      const later = { source: 'custom', extract: async () => 'globex' }
      const resolve = tenantResolver({ principal: async () => 'acme', extractors: [fromHeader(), later] })
      const response = await resolve(req('/', { tenant: 'acme' }), okHandler().next)
      expect(await problem(response)).toMatchObject({ status: 403, code: 'tenant_mismatch' })
      const refusing = tenantResolver({
        principal: () => 'acme',
        extractors: [
          fromHeader(),
          {
            source: 'custom',
            extract: async () => {
              throw new TenantError('tenant_invalid_id', 'bad signature')
            },
          },
        ],
      })
      expect(await problem(await refusing(req('/', { tenant: 'acme' }), okHandler().next))).toMatchObject({
        status: 400,
        code: 'tenant_invalid_id',
      })
    })

    it('keeps first-match order without a principal (and with a principal that has no tenant, under fallbackToExtractors)', async () => {
      for (const options of [{}, { principal: () => undefined, fallbackToExtractors: true }]) {
        const { calls, next } = okHandler()
        const resolve = tenantResolver({ ...options, extractors })
        const response = await resolve(req('/t/globex/x?tenant=initech', { tenant: 'acme' }), next)
        expect(response.status).toBe(200)
        expect(getTenantId(calls[0]!)).toBe('acme')
      }
    })
  })

  describe('a path prefix written with percent-encoding', () => {
    it('is refused (400) rather than read otherwise than a router reads it', async () => {
      // Hono routes /%74/globex/... as /t/globex/...: read raw, the request named no path tenant,
      // and the principal's (or the header's) tenant served the route of another.
      const cases: [ResolverOptions, RequestInit][] = [
        [{ principal: () => 'acme', extractors: [fromPathPrefix('/t/')] }, {}],
        [{ extractors: [fromPathPrefix('/t/'), fromHeader()] }, { headers: { 'X-Tenant-ID': 'acme' } }],
      ]
      for (const [options, init] of cases) {
        for (const path of ['/%74/globex/invoices', '/t/gl%6Fbex/invoices', '/t/%61cme/invoices']) {
          const { calls, next } = okHandler()
          const response = await tenantResolver({ configManager: configs, ...options })(req(path, init), next)
          expect(await problem(response), path).toMatchObject({ status: 400, code: 'tenant_invalid_id' })
          expect(calls, path).toHaveLength(0)
        }
      }
    })
  })

  describe('a resolver after another on the same request', () => {
    // An app-wide resolver (a session's tenant checked against the subdomain), then a sub-app's
    // tenancy() with its default header extractor, as compose() or nested routers run them.
    const host = 'https://acme.example.com'
    const outer = (extra: ResolverOptions = {}) =>
      tenantResolver({
        principal: (request) => request.headers.get('X-Session-Tenant'),
        extractors: [fromSubdomain('example.com')],
        configManager: configs,
        ...extra,
      })
    const session = (headers: Record<string, string> = {}) => ({
      headers: { 'X-Session-Tenant': 'acme', ...headers },
    })
    const at = (init: RequestInit) => new Request(`${host}/data`, init)

    it('refuses 403 tenant_mismatch when the later one finds another tenant, and charges nobody', async () => {
      await configs.setTenantConfig({ id: 'acme', quota: { limits: [{ window: 'day', requests: 5 }] } })
      await configs.setTenantConfig({ id: 'globex', quota: { limits: [{ window: 'day', requests: 5 }] } })
      const quotas = new InMemoryQuotaManager(configs)
      const { hooks, events } = recorder()
      const served = compose(outer(), tenancy({ configManager: configs, quota: quotas, hooks }))
      const { calls, next } = okHandler()
      const response = await served(at(session({ 'X-Tenant-ID': 'globex' })), next)
      expect(await problem(response)).toMatchObject({ status: 403, code: 'tenant_mismatch' })
      expect(calls).toHaveLength(0)
      expect(events.find((e) => e.hook === 'onResolve')!.event).toMatchObject({
        code: 'tenant_mismatch',
        source: 'header:X-Tenant-ID',
      })
      expect((await quotas.peek('globex')).windows[0]!.used).toMatchObject({ requests: 0 })
      expect((await quotas.peek('acme')).windows[0]!.used).toMatchObject({ requests: 0 })
    })

    it('reuses the earlier tenant when the later one finds the same, or nothing (no 401)', async () => {
      const { hooks, events } = recorder()
      const served = compose(outer(), tenancy({ configManager: configs, hooks }))
      for (const headers of [{}, { 'X-Tenant-ID': 'acme' }] as Record<string, string>[]) {
        const { calls, next } = okHandler()
        const response = await served(at(session(headers)), next)
        expect(response.status, JSON.stringify(headers)).toBe(200)
        expect(getTenantId(calls[0]!)).toBe('acme')
        expect(getTenant(calls[0]!)).toMatchObject({ id: 'acme', metadata: { plan: 'pro' } })
      }
      expect(events.map((e) => e.event.source)).toEqual(['earlier-resolver', 'earlier-resolver'])
    })

    it('refuses a later principal of another tenant, and holds a principal-only one to its principal', async () => {
      const later = (principal: string | undefined) =>
        compose(outer(), tenantResolver({ principal: () => principal }))
      const other = await later('globex')(at(session()), okHandler().next)
      expect(await problem(other)).toMatchObject({ status: 403, code: 'tenant_mismatch' })
      expect((await later('acme')(at(session()), okHandler().next)).status).toBe(200)
      // Alone it would refuse a request whose principal has no tenant: an earlier resolver does
      // not stand in for its principal.
      const none = await later(undefined)(at(session()), okHandler().next)
      expect(await problem(none)).toMatchObject({ status: 401, code: 'tenant_required' })
      // Unless it lets requests without a tenant through: then the earlier tenant stays.
      const { calls, next } = okHandler()
      const optional = compose(outer(), tenantResolver({ principal: () => undefined, allowMissing: true }))
      expect((await optional(at(session()), next)).status).toBe(200)
      expect(getTenantId(calls[0]!)).toBe('acme')
    })

    it('every extractor of the later one must agree, as with a principal', async () => {
      const served = compose(
        outer(),
        tenantResolver({ extractors: [fromHeader(), fromPathPrefix('/t/'), fromQuery()] }),
      )
      for (const path of ['/t/globex/x', '/x?tenant=globex']) {
        const response = await served(
          new Request(`${host}${path}`, session({ 'X-Tenant-ID': 'acme' })),
          okHandler().next,
        )
        expect(await problem(response), path).toMatchObject({ status: 403, code: 'tenant_mismatch' })
      }
    })

    it('reads the config once from a shared store, and checks its own store otherwise', async () => {
      const shared = { getTenantConfig: vi.fn((id: string) => configs.getTenantConfig(id)) }
      const served = compose(outer({ configManager: shared }), tenantResolver({ configManager: shared }))
      expect((await served(at(session()), okHandler().next)).status).toBe(200)
      expect(shared.getTenantConfig).toHaveBeenCalledTimes(1)
      // A store of its own, where the tenant is unknown: its existence check still refuses.
      const elsewhere = new InMemoryConfigManager()
      await elsewhere.setTenantConfig({ id: 'globex' })
      const checked = compose(outer(), tenantResolver({ configManager: elsewhere }))
      expect(await problem(await checked(at(session()), okHandler().next))).toMatchObject({
        status: 403,
        code: 'tenant_unknown',
      })
      // An earlier resolver without a store: the later one's store is read.
      const late = compose(outer({ configManager: undefined }), tenantResolver({ configManager: elsewhere }))
      expect((await late(at(session()), okHandler().next)).status).toBe(403)
      // A later resolver without a store keeps the earlier one's config.
      const { calls, next } = okHandler()
      await compose(outer(), tenantResolver())(at(session()), next)
      expect(getTenant(calls[0]!)).toMatchObject({ id: 'acme', metadata: { plan: 'pro' } })
    })

    it('resolves as usual after an earlier resolver that let the request through without a tenant', async () => {
      const { calls, next } = okHandler()
      const served = compose(tenantResolver({ allowMissing: true, header: 'X-Other' }), tenantResolver())
      expect((await served(req('/', { tenant: 'globex' }), next)).status).toBe(200)
      expect(getTenantId(calls[0]!)).toBe('globex')
    })
  })

  describe('a resolver after another, when the Request object is replaced between them', () => {
    // The earlier decision rides on the Request; a sub-handler called with a new Request (a proxy,
    // a mounted sub-application) does not get it through compose(). The tenant context the
    // earlier resolver's host opened carries it there.
    const host = 'https://acme.example.com'
    const outer = (extra: ResolverOptions = {}) =>
      tenantResolver({
        principal: (request) => request.headers.get('X-Session-Tenant'),
        extractors: [fromSubdomain('example.com')],
        configManager: configs,
        ...extra,
      })
    const at = (headers: Record<string, string> = {}) =>
      new Request(`${host}/data`, { headers: { 'X-Session-Tenant': 'acme', ...headers } })
    const echo = (request: Request) =>
      Response.json({ tenant: getTenantId(request) ?? null, current: currentTenantId() ?? null })

    it('refuses 403 tenant_mismatch in a sub-handler called with a new Request, and charges nobody', async () => {
      await configs.setTenantConfig({ id: 'acme', quota: { limits: [{ window: 'day', requests: 5 }] } })
      await configs.setTenantConfig({ id: 'globex', quota: { limits: [{ window: 'day', requests: 5 }] } })
      const quotas = new InMemoryQuotaManager(configs)
      const { hooks, events } = recorder()
      const sub = withTenancy(echo, { configManager: configs, quota: quotas, hooks })
      const served = compose(outer(), (request) => sub(new Request(request)))
      const response = await served(at({ 'X-Tenant-ID': 'globex' }), okHandler().next)
      expect(await problem(response)).toMatchObject({ status: 403, code: 'tenant_mismatch' })
      expect(events.find((e) => e.hook === 'onResolve')!.event).toMatchObject({ code: 'tenant_mismatch' })
      expect((await quotas.peek('globex')).windows[0]!.used).toMatchObject({ requests: 0 })
      expect((await quotas.peek('acme')).windows[0]!.used).toMatchObject({ requests: 0 })
      // The same tenant, or none named: served as the earlier resolver's, its config read once.
      for (const headers of [{}, { 'X-Tenant-ID': 'acme' }] as Record<string, string>[]) {
        const ok = await served(at(headers), okHandler().next)
        expect(await ok.json(), JSON.stringify(headers)).toEqual({ tenant: 'acme', current: 'acme' })
      }
      expect(events.filter((e) => e.hook === 'onResolve').map((e) => e.event.source)).toEqual([
        'header:X-Tenant-ID',
        'earlier-resolver',
        'earlier-resolver',
      ])
      expect((await quotas.peek('acme')).windows[0]!.used).toMatchObject({ requests: 2 })
    })

    it('reads the config once across the new Request when both resolvers read one store', async () => {
      const shared = { getTenantConfig: vi.fn((id: string) => configs.getTenantConfig(id)) }
      const sub = withTenancy(echo, { configManager: shared })
      const served = compose(outer({ configManager: shared }), (request) => sub(new Request(request)))
      expect(await (await served(at(), okHandler().next)).json()).toEqual({ tenant: 'acme', current: 'acme' })
      expect(shared.getTenantConfig).toHaveBeenCalledTimes(1)
    })

    it('lets the stages of a chain without a resolver find the tenant in a sub-handler', async () => {
      await configs.setTenantConfig({ id: 'acme', quota: { limits: [{ window: 'day', requests: 5 }] } })
      const quotas = new InMemoryQuotaManager(configs)
      const sub = applyMiddleware(tenantQuota({ manager: quotas }), echo)
      const served = compose(outer(), (request) => sub(new Request(request)))
      const response = await served(at(), okHandler().next)
      expect(response.status).toBe(200)
      expect(response.headers.get('X-Quota-Remaining-Requests')).toBe('4')
      // Outside any resolver's scope the wiring error stays: no resolver ran for this request.
      await expect(sub(at())).rejects.toThrow(/found no tenant resolution/)
    })

    it("counts only a resolver's scope: runWithTenantId is user code, and switching it is deliberate", async () => {
      const sub = withTenancy(echo, { configManager: configs })
      // A scope of user code around a handler (a test, a queue consumer) is no earlier resolver.
      const named = await runWithTenantId('acme', () => sub(req('/', { tenant: 'globex' })))
      expect(await named.json()).toEqual({ tenant: 'globex', current: 'globex' })
      // Inside a resolved request, the same tenant keeps the resolver's scope ...
      const same = compose(outer(), (request) => runWithTenantId('acme', () => sub(new Request(request))))
      expect((await same(at({ 'X-Tenant-ID': 'globex' }), okHandler().next)).status).toBe(403)
      // ... while leaving it (a call made for another tenant on purpose) resolves as usual.
      const left = compose(outer(), (request) => runWithTenantId(undefined, () => sub(new Request(request))))
      const response = await left(at({ 'X-Tenant-ID': 'globex' }), okHandler().next)
      expect(await response.json()).toEqual({ tenant: 'globex', current: 'globex' })
    })

    it('holds a later principal to its own tenant across the new Request too', async () => {
      const sub = (principal: string) => applyMiddleware(tenantResolver({ principal: () => principal }), echo)
      const other = compose(outer(), (request) => sub('globex')(new Request(request)))
      expect(await problem(await other(at(), okHandler().next))).toMatchObject({
        status: 403,
        code: 'tenant_mismatch',
      })
      const own = compose(outer(), (request) => sub('acme')(new Request(request)))
      expect((await own(at(), okHandler().next)).status).toBe(200)
    })
  })

  it('tries the extractors in order and reports which one matched', async () => {
    const { hooks, events } = recorder()
    const resolve = tenantResolver({ extractors: [chain(fromHeader(), fromQuery()), fromCookie()], hooks })
    await resolve(req('/?tenant=globex', { headers: { Cookie: 'tenant=acme' } }), okHandler().next)
    await resolve(req('/', { headers: { Cookie: 'theme=dark; tenant=acme' } }), okHandler().next)
    expect(events.map((e) => [e.event.tenantId, e.event.source])).toEqual([
      ['globex', 'query:tenant'],
      ['acme', 'cookie:tenant'],
    ])
  })

  it('treats synchronous and asynchronous extractors alike: value, TenantError, other errors', async () => {
    const sync = (answer: () => string | undefined) => ({ source: 'custom', extract: answer })
    const async_ = (answer: () => string | undefined) => ({
      source: 'custom',
      extract: async () => answer(),
    })
    for (const make of [sync, async_]) {
      const { calls, next } = okHandler()
      await tenantResolver({ extractors: make(() => 'acme') })(req('/'), next)
      expect(getTenantId(calls[0]!)).toBe('acme')

      const refused = await tenantResolver({
        extractors: make(() => {
          throw new TenantError('tenant_invalid_id', 'bad signature')
        }),
      })(req('/'), okHandler().next)
      expect(await problem(refused)).toMatchObject({ status: 400, code: 'tenant_invalid_id' })

      // Not a TenantError: a bug in the extractor, for the framework's error handler.
      const bug = new Error('extractor bug')
      await expect(
        tenantResolver({
          extractors: make(() => {
            throw bug
          }),
        })(req('/'), okHandler().next),
      ).rejects.toBe(bug)
    }
  })

  it('makes the tenant the currentTenantId() of everything downstream', async () => {
    const next = async () => {
      await new Promise((resolve) => setTimeout(resolve, 1))
      return new Response(currentTenantId())
    }
    const resolve = tenantResolver()
    const [a, b] = await Promise.all([
      resolve(req('/', { tenant: 'acme' }), next),
      resolve(req('/', { tenant: 'globex' }), next),
    ])
    expect(await a.text()).toBe('acme')
    expect(await b.text()).toBe('globex')
    expect(currentTenantId()).toBeUndefined()
  })

  it('skips the tenant context with context: false, and still resolves the request', async () => {
    const { calls, next } = okHandler()
    const seen: (string | undefined)[] = []
    const response = await tenantResolver({ context: false })(
      req('/', { tenant: 'acme' }),
      async (request) => {
        seen.push(currentTenantId())
        return next(request)
      },
    )
    expect(response.status).toBe(200)
    expect(seen).toEqual([undefined])
    expect(getTenantId(calls[0]!)).toBe('acme')
    expectInvalidOption(() => tenantResolver({ context: 'no' as never }), 'tenantResolver.context', /boolean/)
  })

  it('rejects bad options when created, not per request', () => {
    const cases: [ResolverOptions, string, RegExp][] = [
      [{ header: 'X Bad' }, 'tenantResolver.header', /HTTP header name/],
      [{ header: 'X-A', extractors: [fromHeader()] }, 'tenantResolver', /either header or extractors/],
      [{ extractors: [{} as never] }, 'tenantResolver.extractors[0]', /not an extractor/],
      [{ configManager: {} as never }, 'tenantResolver.configManager', /getTenantConfig/],
      [{ failOpen: 'yes' as never }, 'tenantResolver.failOpen', /must be a boolean/],
      [{ timeoutMs: 0 }, 'tenantResolver.timeoutMs', /must be a number > 0/],
      // setTimeout runs a longer delay after about 1 ms: every lookup would time out.
      [{ timeoutMs: 2 ** 31 }, 'tenantResolver.timeoutMs', /at most 2147483647/],
      [{ timeoutMs: Number.POSITIVE_INFINITY }, 'tenantResolver.timeoutMs', /at most 2147483647/],
      [{ timeoutMs: Number.NaN }, 'tenantResolver.timeoutMs', /must be a number > 0/],
      [{ onMissing: 'x' as never }, 'tenantResolver.onMissing', /must be a function/],
      [{ hooks: { onResolve: 1 as never } }, 'hooks.onResolve', /must be a function/],
    ]
    for (const [options, path, message] of cases)
      expectInvalidOption(() => tenantResolver(options), path, message)
  })

  it('problemResponse builds the same body for custom handlers', async () => {
    const response = problemResponse(new TenantError('tenant_unknown', 'no such tenant', { tenantId: 'x' }), {
      headers: { 'X-Trace': '1' },
      // An extension never replaces a standard member.
      extensions: { hint: 'sign up', status: 200, code: 'ok' },
    })
    expect(response.headers.get('X-Trace')).toBe('1')
    expect(await problem(response)).toEqual({
      type: 'urn:tenant-toolkit:error:tenant_unknown',
      title: 'Unknown tenant',
      status: 403,
      detail: 'no such tenant',
      code: 'tenant_unknown',
      tenantId: 'x',
      hint: 'sign up',
    })
  })
})
