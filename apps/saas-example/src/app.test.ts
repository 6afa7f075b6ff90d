// createApp in the test process (the e2e suites cover the same routes through real servers): the
// options and failure paths that need a particular wiring, a real broken database, or a JWT.

import { AdminService, MAX_JSON_DEPTH } from '@tenant/core'
import { sign } from 'hono/jwt'
import { describe, expect, it } from 'vitest'
import { ADMIN_TOKEN, inProcessApp, START } from '../test/in-process'
import type { ResourceStore } from './db/resource-store'
import { seedDemoTenants } from './demo-tenants'
import { MAX_BODY_BYTES } from './routes/resources'

describe('createApp', () => {
  it('caps requests in flight by plan (free: 4) and shows and resets them on the admin plane', async () => {
    const t = await inProcessApp()
    const admin = new AdminService({ store: t.deps.configs, plans: t.deps.plans, auditLog: t.deps.auditLog })
    await seedDemoTenants(admin)
    // Bodies left unread: each request is still being sent, so it holds its slot.
    const held: Response[] = []
    for (let i = 0; i < 4; i++) {
      const response = await t.request('GET', '/api/v1/resources', { tenant: 'demo-free' })
      expect(response.status).toBe(200)
      held.push(response)
    }
    const refused = await t.request('GET', '/api/v1/resources', { tenant: 'demo-free' })
    expect(refused.status).toBe(429)
    expect(refused.headers.get('Retry-After')).toBe('1')
    expect(await refused.json()).toMatchObject({ code: 'tenant_concurrency_limited', limit: 4 })
    const inFlight = await t.request('GET', '/admin/tenants/demo-free/in-flight', { admin: true })
    expect(await inFlight.json()).toEqual({ tenantId: 'demo-free', inFlight: 4, maxInFlight: null })
    await held[0]!.text()
    await Promise.resolve()
    expect((await t.request('GET', '/api/v1/resources', { tenant: 'demo-free' })).status).toBe(200)
    const reset = await t.request('POST', '/admin/tenants/demo-free/in-flight/reset', { admin: true })
    expect(await reset.json()).toMatchObject({ inFlight: 0 })
    // The pro plan's cap is 50.
    for (let i = 0; i < 5; i++) {
      expect((await t.request('GET', '/api/v1/resources', { tenant: 'demo-pro' })).status).toBe(200)
    }
  })

  it("stamps the admin plane's reset records with the app's clock, as the stores stamp the others", async () => {
    const t = await inProcessApp()
    expect((await t.request('POST', '/admin/tenants', { admin: true, body: { id: 'acme' } })).status).toBe(
      201,
    )
    t.clock.advance(60_000)
    expect((await t.request('POST', '/admin/tenants/acme/usage/reset', { admin: true })).status).toBe(200)
    t.clock.advance(60_000)
    expect((await t.request('POST', '/admin/tenants/acme/in-flight/reset', { admin: true })).status).toBe(200)
    const audit = (await (await t.request('GET', '/admin/tenants/acme/audit', { admin: true })).json()) as {
      items: { action: string; at: number }[]
    }
    expect(audit.items.map(({ action, at }) => [action, at - START])).toEqual([
      ['tenant.concurrency.reset', 120_000],
      ['tenant.usage.reset', 60_000],
      ['tenant.create', 0],
    ])
  })

  it('answers unknown routes with a problem, outside the tenant chain', async () => {
    const t = await inProcessApp()
    const response = await t.request('GET', '/nowhere')
    expect(response.status).toBe(404)
    expect(response.headers.get('Content-Type')).toBe('application/problem+json')
    expect(await response.json()).toMatchObject({ code: 'not_found', status: 404 })
    expect(t.lines).toEqual([])
  })

  it('turns the admin plane off without a token', async () => {
    const t = await inProcessApp({ adminToken: undefined })
    const response = await t.request('GET', '/admin/tenants', { admin: true })
    expect(response.status).toBe(503)
    expect(await response.json()).toMatchObject({ code: 'admin_disabled' })
  })

  it('guards /metrics with METRICS_TOKEN when one is set, and serves it open only with openMetrics', async () => {
    const token = 'metrics-token-0123456789'
    const guarded = await inProcessApp({ metricsToken: token })
    for (const authorization of [
      undefined,
      'Bearer wrong-token-0123456789',
      `Basic ${token}`,
      `Bearer ${token}x`,
    ]) {
      const refused = await guarded.app.request('/metrics', {
        headers: authorization === undefined ? {} : { Authorization: authorization },
      })
      expect(refused.status).toBe(401)
      expect(refused.headers.get('WWW-Authenticate')).toBe('Bearer realm="metrics"')
      expect(await refused.json()).toMatchObject({ code: 'unauthorized', status: 401 })
    }
    const allowed = await guarded.app.request('/metrics', { headers: { Authorization: `bearer ${token}` } })
    expect(allowed.status).toBe(200)
    expect(await allowed.text()).toContain('# TYPE')

    const open = await inProcessApp({ openMetrics: true })
    expect((await open.app.request('/metrics')).status).toBe(200)

    // Neither: off, as /admin without a token (the labels would name every tenant).
    const off = await inProcessApp()
    for (const method of ['GET', 'HEAD']) {
      const response = await off.app.request('/metrics', { method })
      expect(response.status).toBe(503)
      expect(response.headers.get('Content-Type')).toBe('application/problem+json')
    }
    expect(await (await off.app.request('/metrics')).json()).toMatchObject({ code: 'metrics_disabled' })
  })

  it('refuses bodies over the limit with 413, before reading them whole', async () => {
    const t = await inProcessApp()
    await t.request('POST', '/admin/tenants', { admin: true, body: { id: 'acme' } })
    const big = JSON.stringify({ name: 'x', data: { blob: 'x'.repeat(MAX_BODY_BYTES) } })
    const response = await t.request('POST', '/api/v1/resources', { tenant: 'acme', body: big })
    expect(response.status).toBe(413)
    expect(await response.json()).toMatchObject({ code: 'payload_too_large' })
  })

  it('refuses a body that is not UTF-8 with 400, storing nothing, on the API and the admin plane', async () => {
    // Decoded leniently, the bad byte became U+FFFD and was stored so: two bodies as one.
    const t = await inProcessApp()
    await t.request('POST', '/admin/tenants', { admin: true, body: { id: 'acme' } })
    const utf8 = new TextEncoder()
    const withByte = (before: string, byte: number, after: string) =>
      new Uint8Array([...utf8.encode(before), byte, ...utf8.encode(after)])
    const api = await t.app.request('/api/v1/resources', {
      method: 'POST',
      headers: { 'X-Tenant-ID': 'acme', 'Content-Type': 'application/json' },
      body: withByte('{"name":"report', 0xff, '","data":{}}'),
    })
    expect(api.status).toBe(400)
    expect(await api.json()).toMatchObject({ code: 'invalid_request', detail: 'the body is not valid UTF-8' })
    const listed = (await (await t.request('GET', '/api/v1/resources', { tenant: 'acme' })).json()) as {
      items: unknown[]
    }
    expect(listed.items).toEqual([])
    const admin = await t.app.request('/admin/tenants', {
      method: 'POST',
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
      body: withByte('{"id":"u1","metadata":{"owner":"', 0xc3, '"}}'),
    })
    expect(admin.status).toBe(400)
    expect((await t.request('GET', '/admin/tenants/u1', { admin: true })).status).toBe(404)
  })

  it("stores data nested up to core's MAX_JSON_DEPTH as sent (it is bound, never read as SQL)", async () => {
    const t = await inProcessApp()
    await t.request('POST', '/admin/tenants', { admin: true, body: { id: 'acme' } })
    let data: Record<string, unknown> = { leaf: "') OR 1=1 --" }
    for (let i = 1; i < MAX_JSON_DEPTH; i++) data = { a: data }
    const created = await t.request('POST', '/api/v1/resources', {
      tenant: 'acme',
      body: { name: 'deep', data },
    })
    expect(created.status).toBe(201)
    const { id } = (await created.json()) as { id: string }
    const read = await t.request('GET', `/api/v1/resources/${id}`, { tenant: 'acme' })
    expect(await read.json()).toMatchObject({ name: 'deep', data })

    // One level more is a 400, with no store error logged.
    const deeper = await t.request('POST', '/api/v1/resources', {
      tenant: 'acme',
      body: { name: 'deeper', data: { a: data } },
    })
    expect(deeper.status).toBe(400)
    expect(await deeper.json()).toMatchObject({
      code: 'invalid_request',
      issues: [{ message: `nested deeper than ${MAX_JSON_DEPTH} levels` }],
    })
    expect(t.lines.filter((line) => line.level === 'error')).toEqual([])
  })

  it('reads the list limit in digits only: 0x10, 1e1, " 10 ", 5.0 are 400 invalid_request', async () => {
    const t = await inProcessApp()
    await t.request('POST', '/admin/tenants', { admin: true, body: { id: 'acme' } })
    for (const limit of ['0x10', '1e1', '%2010%20', '5.0', '0b11', '', '0', '101']) {
      const response = await t.request('GET', `/api/v1/resources?limit=${limit}`, { tenant: 'acme' })
      expect(response.status, limit).toBe(400)
      expect(await response.json()).toMatchObject({ code: 'invalid_request' })
    }
    expect((await t.request('GET', '/api/v1/resources?limit=100', { tenant: 'acme' })).status).toBe(200)
    expect((await t.request('GET', '/api/v1/resources', { tenant: 'acme' })).status).toBe(200)
  })

  it('echoes only well-formed resource ids in a 404', async () => {
    const t = await inProcessApp()
    await t.request('POST', '/admin/tenants', { admin: true, body: { id: 'acme' } })
    const odd = await t.request('GET', `/api/v1/resources/${'<script>'.repeat(50)}`, { tenant: 'acme' })
    expect(odd.status).toBe(404)
    expect(((await odd.json()) as { detail: string }).detail).toBe('no resource with this id for this tenant')
  })

  it('reports a database that fails for real: /health 503, the API 503 tenant_backend_unavailable', async () => {
    const t = await inProcessApp()
    await t.request('POST', '/admin/tenants', { admin: true, body: { id: 'acme' } })
    // Warm the config cache, so the tenancy chain passes and the resource query is what fails.
    expect((await t.request('GET', '/api/v1/resources', { tenant: 'acme' })).status).toBe(200)
    t.close()

    const health = await t.request('GET', '/health')
    expect(health.status).toBe(503)
    expect(await health.json()).toEqual({ status: 'unavailable', checks: { database: 'unavailable' } })

    const list = await t.request('GET', '/api/v1/resources', { tenant: 'acme' })
    expect(list.status).toBe(503)
    const body = await list.json()
    expect(body).toMatchObject({ code: 'tenant_backend_unavailable', tenantId: 'acme' })
    // The driver's message stays in the logs.
    expect(JSON.stringify(body)).not.toMatch(/client|closed|SQL/i)
    expect(t.lines).toContainEqual(
      expect.objectContaining({ level: 'error', msg: 'backend error', error: expect.stringMatching(/<- /) }),
    )
  })

  it('answers an unexpected error with 500 and the request id, logging the error', async () => {
    const broken = {
      list: () => Promise.reject(new TypeError('a bug')),
      purge: async () => 0,
    } as unknown as ResourceStore
    const t = await inProcessApp({ resources: broken })
    await t.request('POST', '/admin/tenants', { admin: true, body: { id: 'acme' } })
    const response = await t.request('GET', '/api/v1/resources', { tenant: 'acme' })
    expect(response.status).toBe(500)
    const body = (await response.json()) as { requestId: string }
    expect(body).toMatchObject({ code: 'internal_error', requestId: response.headers.get('X-Request-Id') })
    expect(JSON.stringify(body)).not.toContain('a bug')
    expect(t.lines).toContainEqual(
      expect.objectContaining({
        msg: 'unhandled error',
        error: 'TypeError: a bug',
        requestId: body.requestId,
      }),
    )
  })

  describe('with JWT_SECRET', () => {
    const secret = 'a-secret-of-at-least-thirty-two-characters'
    // Issued now on the app's clock, unless the claims say otherwise.
    const bearer = async (claims: Record<string, unknown>, iat = Math.floor(START / 1000)) => ({
      Authorization: `Bearer ${await sign({ iat, ...claims }, secret, 'HS256')}`,
    })

    it("checks exp, nbf and iat on the app's clock", async () => {
      const t = await inProcessApp({ jwtSecret: secret })
      await t.request('POST', '/admin/tenants', { admin: true, body: { id: 'acme' } })
      const now = Math.floor(START / 1000)
      const status = async (claims: Record<string, unknown>) =>
        (
          await t.request('GET', '/api/v1/resources', {
            headers: await bearer({ tenant_id: 'acme', ...claims }),
          })
        ).status
      expect(await status({ exp: now + 10, nbf: now })).toBe(200)
      expect(await status({ exp: now })).toBe(401)
      expect(await status({ nbf: now + 1 })).toBe(401)
      expect(await status({ iat: now + 1 })).toBe(401)
      expect(await status({ exp: 'soon' })).toBe(401)
      t.clock.advance(10_000)
      expect(await status({ exp: now + 10 })).toBe(401)
      expect(await status({ nbf: now + 1, iat: now + 5 })).toBe(200)
    })

    it('refuses a token of the second the tenant was created in, unless it names the tenant by its createdAt', async () => {
      // A delete and a create within one second: the old customer's token of that second has the
      // same iat as one issued to the new customer after the create.
      const t = await inProcessApp({ jwtSecret: secret })
      t.clock.advance(100)
      await t.request('POST', '/admin/tenants', { admin: true, body: { id: 'acme' } })
      const old = await bearer({ tenant_id: 'acme' })
      const oldCreatedAt = t.clock.now()
      t.clock.advance(200)
      expect((await t.request('DELETE', '/admin/tenants/acme', { admin: true })).status).toBe(204)
      t.clock.advance(100)
      const created = await t.request('POST', '/admin/tenants', { admin: true, body: { id: 'acme' } })
      const { createdAt } = (await created.json()) as { createdAt: number }
      const named = await bearer({ tenant_id: 'acme', tenant_created_at: createdAt })
      const write = await t.request('POST', '/api/v1/resources', {
        headers: named,
        body: { name: 'new secret' },
      })
      expect(write.status).toBe(201)
      for (const headers of [old, await bearer({ tenant_id: 'acme', tenant_created_at: oldCreatedAt })]) {
        const refused = await t.request('GET', '/api/v1/resources', { headers })
        expect(refused.status).toBe(401)
        expect(await refused.text()).not.toContain('new secret')
      }
      // A token of a later second needs no claim.
      t.clock.advance(1_000)
      const later = await bearer({ tenant_id: 'acme' }, Math.floor(t.clock.now() / 1000))
      expect((await t.request('GET', '/api/v1/resources', { headers: later })).status).toBe(200)
    })

    it("refuses a token of an id's deleted customer, and one without iat, charging no one", async () => {
      const t = await inProcessApp({ jwtSecret: secret })
      await t.request('POST', '/admin/tenants', { admin: true, body: { id: 'acme' } })
      const old = await bearer({ tenant_id: 'acme' })
      expect((await t.request('GET', '/api/v1/resources', { headers: old })).status).toBe(200)
      t.clock.advance(60_000)
      expect((await t.request('DELETE', '/admin/tenants/acme', { admin: true })).status).toBe(204)
      expect((await t.request('POST', '/admin/tenants', { admin: true, body: { id: 'acme' } })).status).toBe(
        201,
      )
      const fresh = await bearer({ tenant_id: 'acme' }, Math.floor(t.clock.now() / 1000))
      await t.request('POST', '/api/v1/resources', { headers: fresh, body: { name: 'new customer secret' } })
      for (const headers of [old, await bearer({ tenant_id: 'acme', iat: undefined })]) {
        const refused = await t.request('GET', '/api/v1/resources', { headers })
        expect(refused.status).toBe(401)
        expect(refused.headers.get('WWW-Authenticate')).toMatch(/invalid_token/)
        const body = await refused.text()
        expect(body).toContain('"code":"unauthorized"')
        expect(body).not.toContain('new customer secret')
      }
      const usage = (await (await t.request('GET', '/admin/tenants/acme/usage', { admin: true })).json()) as {
        windows: { used: { requests: number } }[]
      }
      // The new customer's own two requests, not the refused ones.
      expect(usage.windows.map((w) => w.used.requests)).not.toContain(4)
      const listed = await t.request('GET', '/api/v1/resources', { headers: fresh })
      expect(((await listed.json()) as { items: unknown[] }).items).toHaveLength(1)
    })

    it('takes the tenant from the token and refuses requests without one', async () => {
      const t = await inProcessApp({ jwtSecret: secret })
      await t.request('POST', '/admin/tenants', { admin: true, body: { id: 'acme' } })

      const anonymous = await t.request('GET', '/api/v1/resources', { tenant: 'acme' })
      expect(anonymous.status).toBe(401)
      expect(anonymous.headers.get('WWW-Authenticate')).toMatch(/^Bearer/)
      expect(await anonymous.json()).toMatchObject({ code: 'unauthorized' })

      const created = await t.request('POST', '/api/v1/resources', {
        headers: await bearer({ tenant_id: 'acme' }),
        body: { name: 'from a token' },
      })
      expect(created.status).toBe(201)
      const listed = await t.request('GET', '/api/v1/resources', {
        headers: await bearer({ tenant_id: 'acme' }),
      })
      expect(((await listed.json()) as { items: unknown[] }).items).toHaveLength(1)
    })

    it('refuses a token for one tenant that names another in X-Tenant-ID (403 tenant_mismatch)', async () => {
      const t = await inProcessApp({ jwtSecret: secret })
      for (const id of ['acme', 'globex'])
        await t.request('POST', '/admin/tenants', { admin: true, body: { id } })
      const response = await t.request('GET', '/api/v1/resources', {
        tenant: 'globex',
        headers: await bearer({ tenant_id: 'acme' }),
      })
      expect(response.status).toBe(403)
      expect(await response.json()).toMatchObject({ code: 'tenant_mismatch' })
    })

    // A valid token that names no tenant must not read the tenant the header names.
    it.each([{}, { tenant_id: null }, { tenant_id: '' }])(
      'refuses a valid token without a tenant (%j), with or without X-Tenant-ID',
      async (claims) => {
        const t = await inProcessApp({ jwtSecret: secret })
        await t.request('POST', '/admin/tenants', { admin: true, body: { id: 'globex' } })
        await t.request('POST', '/api/v1/resources', {
          headers: await bearer({ tenant_id: 'globex' }),
          body: { name: 'globex secret' },
        })
        const headers = await bearer({ sub: 'u1', ...claims })
        for (const tenant of ['globex', undefined]) {
          const response = await t.request('GET', '/api/v1/resources', {
            headers,
            ...(tenant ? { tenant } : {}),
          })
          expect(response.status).toBe(401)
          const body = await response.json()
          expect(body).toMatchObject({ code: 'tenant_required' })
          expect(JSON.stringify(body)).not.toContain('globex secret')
        }
      },
    )

    it('refuses a token signed with another secret', async () => {
      const t = await inProcessApp({ jwtSecret: secret })
      const forged = await sign({ tenant_id: 'acme' }, 'another-secret-of-thirty-two-characters!', 'HS256')
      const response = await t.request('GET', '/api/v1/resources', {
        headers: { Authorization: `Bearer ${forged}` },
      })
      expect(response.status).toBe(401)
      expect(await response.json()).toMatchObject({ code: 'unauthorized' })
    })
  })
})

describe('per-model limits (quota subjects)', () => {
  it('charges the X-Model subject with the tenant, per the plan, and refuses a bad model name', async () => {
    const t = await inProcessApp()
    const plan = await t.request('POST', '/admin/plans', {
      admin: true,
      body: {
        id: 'gateway',
        quota: {
          limits: [{ window: 'minute', requests: 100 }],
          subjects: [{ match: 'model:*', limits: [{ window: 'minute', requests: 2 }] }],
        },
      },
    })
    expect(plan.status).toBe(201)
    expect(
      (await t.request('POST', '/admin/tenants', { admin: true, body: { id: 'llm', plan: 'gateway' } }))
        .status,
    ).toBe(201)
    const ask = (model: string) =>
      t.request('GET', '/api/v1/resources', { tenant: 'llm', headers: { 'X-Model': model } })
    const first = await ask('gpt-4o')
    expect(first.status).toBe(200)
    expect(first.headers.get('RateLimit-Policy')).toContain('"subject-minute";q=2')
    expect((await ask('gpt-4o')).status).toBe(200)
    expect((await ask('gpt-4o')).status).toBe(429)
    expect((await ask('gpt-4o-mini')).status).toBe(200)
    expect((await ask('bad model')).status).toBe(400)
    const usage = await t.request('GET', '/admin/tenants/llm/usage?subject=model:gpt-4o', { admin: true })
    expect(
      ((await usage.json()) as { windows: { used: { requests: number } }[] }).windows[0]!.used.requests,
    ).toBe(2)
    t.close()
  })
})
