// The end-to-end scenario every runtime and backing store runs, over real HTTP against a real
// server process. Time is the server's ManualClock, moved through the test entries' clock route:
// windows are crossed by moving the clock, never by sleeping.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { Child } from './process'

/** A started server under test. */
export interface RunningServer {
  url: string
  adminToken: string
  /** METRICS_TOKEN, when the target sets one (workerd must: a Worker without it serves no /metrics). */
  metricsToken?: string
  child: Child
  stop(): Promise<void>
}

/** One runtime + storage combination. */
export interface Target {
  /** e.g. `node, libSQL file, in-process limits`. */
  name: string
  /** Starts the server (fails the suite when it does not start). */
  start(): Promise<RunningServer>
  /** Tests of this combination only (what proves Postgres, Redis, ... were really used). */
  extra?: (server: () => RunningServer) => void
}

/** Tenants the scenario creates; every run has its own database, so fixed ids are safe. */
export const tenants = {
  alpha: { id: 'alpha' },
  beta: {
    id: 'beta',
    quota: { limits: [{ window: 'minute', requests: 100 }] },
    policy: { allowedModels: ['small-model'], allowedTools: [], allowedMethods: [], allowedPaths: [] },
  },
  metered: { id: 'metered', quota: { limits: [{ window: 'minute', requests: 3, tokens: 100 }] } },
  bursty: { id: 'bursty', rateLimit: { requestsPerSecond: 1, burst: 2 } },
} as const

/** 12:00:30 UTC on 15 January of next year: in the future, 30 s into a minute window. */
export const T0 = Date.UTC(new Date().getUTCFullYear() + 1, 0, 15, 12, 0, 30)

type Json = Record<string, any>

/**
 * Defines the scenario's tests for `target`, in order: they share the server and the data created
 * by the earlier ones. The server's output is printed only when a test fails.
 */
export function describeScenario(target: Target): void {
  describe(target.name, () => {
    let running: RunningServer | undefined
    const server = () => {
      if (!running) throw new Error('the server did not start')
      return running
    }

    beforeAll(async () => {
      running = await target.start()
      await clock({ set: T0 })
    })
    afterAll(async () => {
      await running?.stop()
    })
    afterEach((context) => {
      if (context.task.result?.state === 'fail' && running) {
        console.log(`--- ${target.name}: server output ---\n${running.child.output()}`)
      }
    })

    async function clock(body: { set?: number; advance?: number }): Promise<number> {
      const response = await fetch(`${server().url}/__test/clock`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      })
      expect(response.status).toBe(200)
      return ((await response.json()) as { now: number }).now
    }

    async function call(
      method: string,
      path: string,
      options: {
        tenant?: string
        body?: unknown
        raw?: string
        headers?: Record<string, string>
        admin?: boolean
      } = {},
    ): Promise<{ status: number; headers: Headers; body: Json; text: string }> {
      const headers: Record<string, string> = { ...options.headers }
      if (options.tenant !== undefined) headers['X-Tenant-ID'] = options.tenant
      if (options.admin) headers.Authorization = `Bearer ${server().adminToken}`
      let body: string | undefined
      if (options.raw !== undefined) body = options.raw
      else if (options.body !== undefined) body = JSON.stringify(options.body)
      if (body !== undefined && !('Content-Type' in headers)) headers['Content-Type'] = 'application/json'
      const response = await fetch(`${server().url}${path}`, { method, headers, body })
      const text = await response.text()
      let parsed: Json = {}
      try {
        parsed = text ? (JSON.parse(text) as Json) : {}
      } catch {
        // not JSON (metrics, empty bodies)
      }
      return { status: response.status, headers: response.headers, body: parsed, text }
    }

    /** GET /metrics, with the target's METRICS_TOKEN when it has one (Node/Bun on 127.0.0.1: none). */
    function scrape() {
      const token = server().metricsToken
      return call(
        'GET',
        '/metrics',
        token === undefined ? {} : { headers: { Authorization: `Bearer ${token}` } },
      )
    }

    const resources = '/api/v1/resources'
    const created: Record<string, Json> = {}

    it('serves /health and /metrics outside the tenant chain', async () => {
      const health = await call('GET', '/health')
      expect(health.status).toBe(200)
      expect(health.body).toMatchObject({ status: 'ok', checks: { database: 'ok' } })
      if (server().metricsToken !== undefined) {
        const refused = await call('GET', '/metrics')
        expect(refused.status).toBe(401)
        expect(refused.body.code).toBe('unauthorized')
      }
      const metrics = await scrape()
      expect(metrics.status).toBe(200)
      expect(metrics.headers.get('Content-Type')).toMatch(/^text\/plain/)
      expect(metrics.text).toContain('# TYPE tenant_requests_total counter')
    })

    it('requires the admin token on the admin plane', async () => {
      const none = await call('GET', '/admin/tenants')
      expect(none.status).toBe(401)
      expect(none.headers.get('WWW-Authenticate')).toMatch(/^Bearer/)
      expect(none.body).toMatchObject({ code: 'admin_unauthorized', status: 401 })

      const wrong = await call('POST', '/admin/tenants', {
        body: { id: 'intruder' },
        headers: { Authorization: 'Bearer not-the-token-0123456789' },
      })
      expect(wrong.status).toBe(401)
      expect(wrong.body.code).toBe('admin_unauthorized')
      // The refused create wrote nothing.
      expect((await call('GET', '/admin/tenants/intruder', { admin: true })).status).toBe(404)
    })

    it('creates tenants through the admin plane', async () => {
      for (const tenant of Object.values(tenants)) {
        const response = await call('POST', '/admin/tenants', { admin: true, body: tenant })
        expect(response.status, response.text).toBe(201)
        expect(response.headers.get('Location')).toBe(`/admin/tenants/${tenant.id}`)
        expect(response.body).toMatchObject({ id: tenant.id, status: 'active', createdAt: T0 })
      }
      const again = await call('POST', '/admin/tenants', { admin: true, body: { id: 'alpha' } })
      expect(again.status).toBe(409)
      expect(again.body.code).toBe('tenant_already_exists')

      const list = await call('GET', '/admin/tenants?limit=10', { admin: true })
      expect(list.status).toBe(200)
      expect(list.body.items.map((t: Json) => t.id)).toEqual(['alpha', 'beta', 'bursty', 'metered'])
      const beta = await call('GET', '/admin/tenants/beta', { admin: true })
      expect(beta.body.policy.allowedModels).toEqual(['small-model'])
    })

    it('creates, lists, reads, updates and deletes resources within each tenant', async () => {
      for (const [key, tenant, name] of [
        ['a1', 'alpha', 'first'],
        ['a2', 'alpha', 'second'],
        ['a3', 'alpha', 'third'],
        ['b1', 'beta', 'beta only'],
      ] as const) {
        const response = await call('POST', resources, { tenant, body: { name, data: { key, tags: ['x'] } } })
        expect(response.status, response.text).toBe(201)
        expect(response.body).toMatchObject({ name, data: { key, tags: ['x'] } })
        expect(response.body.id).toMatch(/^res_[0-9a-z]{26}$/)
        expect(response.body.createdAt).toBe(new Date(T0).toISOString())
        expect(response.headers.get('Location')).toBe(`${resources}/${response.body.id}`)
        expect(response.body).not.toHaveProperty('tenantId')
        created[key] = response.body
      }

      const alphaList = await call('GET', resources, { tenant: 'alpha' })
      expect(alphaList.status).toBe(200)
      expect(alphaList.body.items.map((r: Json) => r.name).sort()).toEqual(['first', 'second', 'third'])
      const betaList = await call('GET', resources, { tenant: 'beta' })
      expect(betaList.body.items.map((r: Json) => r.id)).toEqual([created.b1!.id])

      // Keyset paging, in id order.
      const ids = alphaList.body.items.map((r: Json) => r.id)
      expect([...ids].sort()).toEqual(ids)
      const page1 = await call('GET', `${resources}?limit=2`, { tenant: 'alpha' })
      expect(page1.body.items.map((r: Json) => r.id)).toEqual(ids.slice(0, 2))
      const page2 = await call('GET', `${resources}?limit=2&after=${page1.body.next}`, { tenant: 'alpha' })
      expect(page2.body.items.map((r: Json) => r.id)).toEqual(ids.slice(2))
      expect(page2.body.next).toBeUndefined()

      const read = await call('GET', `${resources}/${created.a1!.id}`, { tenant: 'alpha' })
      expect(read.status).toBe(200)
      expect(read.body).toEqual(created.a1)

      await clock({ advance: 5_000 })
      const updated = await call('PUT', `${resources}/${created.a1!.id}`, {
        tenant: 'alpha',
        body: { name: 'first, renamed', data: { key: 'a1', version: 2 } },
      })
      expect(updated.status, updated.text).toBe(200)
      expect(updated.body).toEqual({
        id: created.a1!.id,
        name: 'first, renamed',
        data: { key: 'a1', version: 2 },
        createdAt: new Date(T0).toISOString(),
        updatedAt: new Date(T0 + 5_000).toISOString(),
      })
      created.a1 = updated.body

      const deleted = await call('DELETE', `${resources}/${created.a2!.id}`, { tenant: 'alpha' })
      expect(deleted.status).toBe(204)
      expect(deleted.text).toBe('')
      const gone = await call('GET', `${resources}/${created.a2!.id}`, { tenant: 'alpha' })
      expect(gone.status).toBe(404)
      expect(gone.body.code).toBe('resource_not_found')
      expect((await call('DELETE', `${resources}/${created.a2!.id}`, { tenant: 'alpha' })).status).toBe(404)
    })

    it("answers 404 to another tenant's read, update and delete, and changes nothing", async () => {
      const target = `${resources}/${created.a1!.id}`
      const read = await call('GET', target, { tenant: 'beta' })
      expect(read.status).toBe(404)
      expect(read.body).toMatchObject({ code: 'resource_not_found', status: 404 })
      // The same answer as for an id that exists nowhere: nothing tells the two apart.
      const nowhere = await call('GET', `${resources}/res_00000000000000000000000000`, { tenant: 'beta' })
      expect(nowhere.body.detail.replace(/"res_\w+"/, 'ID')).toBe(read.body.detail.replace(/"res_\w+"/, 'ID'))

      const update = await call('PUT', target, { tenant: 'beta', body: { name: 'hijacked', data: {} } })
      expect(update.status).toBe(404)
      const remove = await call('DELETE', target, { tenant: 'beta' })
      expect(remove.status).toBe(404)

      const still = await call('GET', target, { tenant: 'alpha' })
      expect(still.status).toBe(200)
      expect(still.body).toEqual(created.a1)
      const betaOwn = await call('GET', resources, { tenant: 'beta' })
      expect(betaOwn.body.items.map((r: Json) => r.id)).toEqual([created.b1!.id])
    })

    it('refuses invalid JSON, invalid bodies and queries with 400, and other media types with 415', async () => {
      const broken = await call('POST', resources, { tenant: 'alpha', raw: '{"name": "unterminated' })
      expect(broken.status).toBe(400)
      expect(broken.headers.get('Content-Type')).toBe('application/problem+json')
      expect(broken.body).toMatchObject({ code: 'invalid_request', status: 400 })
      expect(broken.body.detail).toMatch(/not valid JSON/)

      const brokenPut = await call('PUT', `${resources}/${created.a1!.id}`, { tenant: 'alpha', raw: 'nope' })
      expect(brokenPut.status).toBe(400)
      expect(brokenPut.body.code).toBe('invalid_request')

      const invalid = await call('POST', resources, { tenant: 'alpha', body: { name: '', data: [] } })
      expect(invalid.status).toBe(400)
      expect(invalid.body.issues.map((i: Json) => i.path.join('.')).sort()).toEqual(['data', 'name'])

      // A client cannot pick the tenant of a row: unknown members are refused.
      const smuggled = await call('POST', resources, {
        tenant: 'alpha',
        body: { name: 'x', tenantId: 'beta' },
      })
      expect(smuggled.status).toBe(400)
      expect(smuggled.body.issues[0].code).toBe('unrecognized_keys')

      const text = await call('POST', resources, {
        tenant: 'alpha',
        raw: 'name=x',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      })
      expect(text.status).toBe(415)
      expect(text.body.code).toBe('unsupported_media_type')

      const query = await call('GET', `${resources}?limit=1000`, { tenant: 'alpha' })
      expect(query.status).toBe(400)
      expect(query.body.issues[0].path).toEqual(['limit'])

      // Nothing was created by any of them.
      const list = await call('GET', resources, { tenant: 'alpha' })
      expect(list.body.items).toHaveLength(2)
    })

    it('gives data back exactly as sent, key order included, on every store', async () => {
      const data = '{"zeta":1,"alpha":[2,{"b":1,"a":2}],"mid":{"y":"é","x":null}}'
      const created = await call('POST', resources, {
        tenant: 'beta',
        raw: `{"name":"ordered","data":${data}}`,
      })
      expect(created.status, created.text).toBe(201)
      expect(created.text).toContain(`"data":${data}`)
      const read = await call('GET', `${resources}/${created.body.id}`, { tenant: 'beta' })
      expect(read.text).toContain(`"data":${data}`)
      expect((await call('DELETE', `${resources}/${created.body.id}`, { tenant: 'beta' })).status).toBe(204)
    })

    it('refuses text and data a store would not keep as sent with 400, on every store, storing nothing', async () => {
      const deep = (levels: number) =>
        `{"name":"deep","data":{"x":${'['.repeat(levels)}${']'.repeat(levels)}}}`
      const bad: [string, string, (string | number)[]][] = [
        // [what, raw body, path of the issue]
        ['U+0000 in name', '{"name":"a\\u0000b"}', ['name']],
        ['lone surrogate in name', '{"name":"a\\ud800b"}', ['name']],
        ['U+0000 in data', '{"name":"ok","data":{"k":"x\\u0000y"}}', ['data', 'k']],
        ['lone surrogate in a data key', '{"name":"ok","data":{"\\udc00":1}}', ['data', '\udc00']],
        ['a __proto__ member of data', '{"name":"ok","data":{"__proto__":{"a":1}}}', ['data', '__proto__']],
        ['data nested 20,000 deep', deep(20_000), ['data', 'x', ...Array<number>(63).fill(0)]],
      ]
      for (const [what, raw, path] of bad) {
        for (const [method, target] of [
          ['POST', resources],
          ['PUT', `${resources}/${created.a1!.id}`],
        ] as const) {
          const response = await call(method, target, { tenant: 'alpha', raw })
          expect(response.status, `${method} ${what}`).toBe(400)
          expect(response.headers.get('Content-Type')).toBe('application/problem+json')
          expect(response.body).toMatchObject({ code: 'invalid_request', status: 400 })
          expect(
            response.body.issues.map((i: Json) => i.path),
            `${method} ${what}`,
          ).toEqual([path])
        }
      }

      // Nothing was created or changed, and no store error was logged.
      const list = await call('GET', resources, { tenant: 'alpha' })
      expect(list.body.items).toHaveLength(2)
      expect((await call('GET', `${resources}/${created.a1!.id}`, { tenant: 'alpha' })).body).toEqual(
        created.a1,
      )
      expect(server().child.output()).not.toMatch(/backend error|tenancy store error/)
    })

    it('enforces quotas: 429 with Retry-After and RateLimit fields, admitted again in the next window', async () => {
      const start = await clock({ set: T0 + 10 * 60_000 }) // 12:10:30
      const get = (tokens?: number) =>
        call('GET', resources, {
          tenant: 'metered',
          headers: tokens === undefined ? {} : { 'X-Token-Count': String(tokens) },
        })

      const first = await get(40)
      expect(first.status).toBe(200)
      expect(first.headers.get('RateLimit-Policy')).toBe(
        '"minute";q=3;w=60, "minute-tokens";q=100;w=60;qu="tokens"',
      )
      expect(first.headers.get('RateLimit')).toBe('"minute";r=2;t=30, "minute-tokens";r=60;t=30')
      expect(first.headers.get('X-Quota-Remaining-Requests')).toBe('2')
      expect(first.headers.get('X-Quota-Remaining-Tokens')).toBe('60')

      // Over the token budget: refused, and nothing is charged (all or nothing).
      const tooMany = await get(70)
      expect(tooMany.status).toBe(429)
      expect(tooMany.headers.get('Retry-After')).toBe('30')
      expect(tooMany.body).toMatchObject({ code: 'tenant_quota_exceeded', tenantId: 'metered' })
      expect(tooMany.body.detail).toMatch(/tokens/)

      expect((await get()).headers.get('X-Quota-Remaining-Requests')).toBe('1')
      const last = await get()
      expect(last.status).toBe(200)
      expect(last.headers.get('X-Quota-Remaining-Requests')).toBe('0')
      expect(last.headers.get('X-Quota-Remaining-Tokens')).toBe('60')

      const over = await get()
      expect(over.status).toBe(429)
      expect(over.headers.get('Content-Type')).toBe('application/problem+json')
      expect(over.headers.get('Retry-After')).toBe('30')
      expect(over.headers.get('RateLimit')).toBe('"minute";r=0;t=30, "minute-tokens";r=60;t=30')
      expect(over.body.detail).toMatch(/minute requests/)

      // An invalid cost is a 400, never a credit.
      const negative = await get(-5)
      expect(negative.status).toBe(400)
      expect(negative.body.code).toBe('invalid_cost')

      // The next minute window: admitted again, with a fresh allowance.
      expect(await clock({ advance: 30_000 })).toBe(start + 30_000)
      const next = await get(10)
      expect(next.status).toBe(200)
      expect(next.headers.get('X-Quota-Remaining-Requests')).toBe('2')
      expect(next.headers.get('X-Quota-Remaining-Tokens')).toBe('90')
      expect(next.headers.get('RateLimit')).toBe('"minute";r=2;t=60, "minute-tokens";r=90;t=60')
    })

    it('enforces rate limits: 429 when the bucket is empty, admitted once it refills', async () => {
      const get = () => call('GET', resources, { tenant: 'bursty' })
      expect((await get()).status).toBe(200)
      const second = await get()
      expect(second.status).toBe(200)
      expect(second.headers.get('RateLimit-Policy')).toBe('"rate";q=2')
      const limited = await get()
      expect(limited.status).toBe(429)
      expect(limited.body.code).toBe('tenant_rate_limited')
      expect(limited.headers.get('Retry-After')).toBe('1')
      await clock({ advance: 1_000 })
      expect((await get()).status).toBe(200)
    })

    it('enforces the model allow-list: 403 outside it, and a denied request consumes no quota', async () => {
      const ask = (model?: string) =>
        call('GET', resources, { tenant: 'beta', headers: model ? { 'X-Model': model } : {} })
      const before = await ask('small-model')
      expect(before.status).toBe(200)
      const remaining = Number(before.headers.get('X-Quota-Remaining-Requests'))

      const denied = await ask('big-model')
      expect(denied.status).toBe(403)
      expect(denied.body).toMatchObject({ code: 'tenant_policy_denied', rule: 'model', tenantId: 'beta' })

      const after = await ask()
      expect(after.status).toBe(200)
      expect(Number(after.headers.get('X-Quota-Remaining-Requests'))).toBe(remaining - 1)
      // alpha has no allow-list: every model passes.
      expect(
        (await call('GET', resources, { tenant: 'alpha', headers: { 'X-Model': 'big-model' } })).status,
      ).toBe(200)
    })

    it('refuses suspended, unknown, missing and malformed tenants', async () => {
      const suspend = await call('POST', '/admin/tenants/alpha/suspend', { admin: true })
      expect(suspend.status).toBe(200)
      expect(suspend.body.status).toBe('suspended')
      const refused = await call('GET', resources, { tenant: 'alpha' })
      expect(refused.status).toBe(403)
      expect(refused.body.code).toBe('tenant_suspended')
      // Its data is refused too, not only listing.
      expect((await call('GET', `${resources}/${created.a1!.id}`, { tenant: 'alpha' })).status).toBe(403)

      expect((await call('POST', '/admin/tenants/alpha/activate', { admin: true })).status).toBe(200)
      expect((await call('GET', resources, { tenant: 'alpha' })).status).toBe(200)

      const unknown = await call('GET', resources, { tenant: 'nobody' })
      expect(unknown.status).toBe(403)
      expect(unknown.body.code).toBe('tenant_unknown')
      const missing = await call('GET', resources)
      expect(missing.status).toBe(401)
      expect(missing.body.code).toBe('tenant_required')
      const malformed = await call('GET', resources, { tenant: 'not a tenant!' })
      expect(malformed.status).toBe(400)
      expect(malformed.body.code).toBe('tenant_invalid_id')
    })

    it('reports usage and the audit history on the admin plane', async () => {
      const usage = await call('GET', '/admin/tenants/metered/usage', { admin: true })
      expect(usage.status).toBe(200)
      expect(usage.body.windows).toEqual([
        expect.objectContaining({ window: 'minute', used: { requests: 1, tokens: 10 } }),
      ])
      const audit = await call('GET', '/admin/tenants/alpha/audit', { admin: true })
      expect(audit.status).toBe(200)
      expect(audit.body.items.map((r: Json) => r.action)).toEqual([
        'tenant.activate',
        'tenant.suspend',
        'tenant.create',
      ])
      expect(audit.body.items[0]).toMatchObject({ actor: 'admin', tenantId: 'alpha' })
      expect(audit.body.items[1].before.status).toBe('active')
      expect(audit.body.items[1].after.status).toBe('suspended')
    })

    it('applies a plan change to every tenant on it at the next request, without rewriting them', async () => {
      const plan = await call('POST', '/admin/plans', {
        admin: true,
        body: {
          id: 'starter',
          quota: { limits: [{ window: 'hour', requests: 2 }] },
          policy: { allowedModels: ['small-model'], allowedTools: [], allowedMethods: [], allowedPaths: [] },
        },
      })
      expect(plan.status, plan.text).toBe(201)
      expect(plan.headers.get('Location')).toBe('/admin/plans/starter')
      const ghost = await call('POST', '/admin/tenants', { admin: true, body: { id: 'lost', plan: 'nope' } })
      expect(ghost.status).toBe(400)
      expect(ghost.body.issues).toEqual([expect.objectContaining({ path: ['plan'] })])
      for (const body of [
        { id: 'on-plan', plan: 'starter' },
        // Its own day token limit is added to what the plan gives.
        { id: 'on-plan-2', plan: 'starter', quota: { limits: [{ window: 'day', tokens: 1000 }] } },
      ]) {
        const response = await call('POST', '/admin/tenants', { admin: true, body })
        expect(response.status, response.text).toBe(201)
        expect(response.body.plan).toBe('starter')
      }
      const ask = (tenant: string, model?: string) =>
        call('GET', resources, { tenant, headers: model ? { 'X-Model': model } : {} })

      expect((await ask('on-plan', 'big-model')).status).toBe(403)
      expect((await ask('on-plan')).headers.get('X-Quota-Remaining-Requests')).toBe('1')
      expect((await ask('on-plan')).status).toBe(200)
      const over = await ask('on-plan')
      expect(over.status).toBe(429)
      expect(over.body.detail).toMatch(/hour requests/)
      const other = await ask('on-plan-2')
      expect(other.headers.get('RateLimit-Policy')).toBe(
        '"hour";q=2;w=3600, "day-tokens";q=1000;w=86400;qu="tokens"',
      )

      // The plan changes: more requests, every model. Both tenants follow at their next request.
      const raised = await call('PUT', '/admin/plans/starter', {
        admin: true,
        body: { quota: { limits: [{ window: 'hour', requests: 10 }] } },
      })
      expect(raised.status, raised.text).toBe(200)
      const again = await ask('on-plan', 'big-model')
      expect(again.status).toBe(200)
      expect(again.headers.get('X-Quota-Remaining-Requests')).toBe('7')
      expect((await ask('on-plan-2')).headers.get('X-Quota-Remaining-Requests')).toBe('8')
      const stored = await call('GET', '/admin/tenants/on-plan', { admin: true })
      expect(stored.body).toMatchObject({ plan: 'starter', quota: { limits: [] } })
      expect(stored.body.updatedAt).toBe(stored.body.createdAt)

      const inUse = await call('DELETE', '/admin/plans/starter', { admin: true })
      expect(inUse.status).toBe(409)
      expect(inUse.body).toMatchObject({ code: 'plan_in_use', planId: 'starter' })
      const audit = await call('GET', '/admin/plans/starter/audit', { admin: true })
      expect(audit.body.items.map((r: Json) => [r.action, r.planId, r.actor])).toEqual([
        ['plan.update', 'starter', 'admin'],
        ['plan.create', 'starter', 'admin'],
      ])
    })

    it('streams a chat completion and settles its tokens at the usage chunk', async () => {
      const created = await call('POST', '/admin/tenants', {
        admin: true,
        body: { id: 'streamer', quota: { limits: [{ window: 'day', tokens: 10_000 }] } },
      })
      expect(created.status).toBe(201)
      const chat = await call('POST', '/api/v1/chat/completions', {
        tenant: 'streamer',
        headers: { 'X-Token-Count': '100' },
        body: { model: 'small-model', messages: [{ role: 'user', content: 'stream me' }], stream: true },
      })
      expect(chat.status).toBe(200)
      expect(chat.headers.get('Content-Type')).toBe('text/event-stream')
      // Charged at X-Token-Count while the answer streamed.
      expect(chat.headers.get('X-Quota-Remaining-Tokens')).toBe('9900')
      expect(chat.text).toContain('"content":"You "')
      expect(chat.text).toContain('"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}')
      expect(chat.text.endsWith('data: [DONE]\n\n')).toBe(true)
      // The settlement runs as the stream ends (on Workers under waitUntil), not before the response.
      const used = async () =>
        (await call('GET', '/admin/tenants/streamer/usage', { admin: true })).body.windows?.[0]?.used
      await expect.poll(used, { timeout: 5_000 }).toEqual({ requests: 1, tokens: 7 })
    })

    it("checks and charges a chat completion's model from its body, X-Model or not", async () => {
      const created = await call('POST', '/admin/tenants', {
        admin: true,
        body: {
          id: 'chatter',
          quota: {
            limits: [{ window: 'day', requests: 100 }],
            subjects: [{ match: 'model:*', limits: [{ window: 'day', requests: 1 }] }],
          },
          policy: { allowedModels: ['small-model'], allowedTools: [], allowedMethods: [], allowedPaths: [] },
        },
      })
      expect(created.status).toBe(201)
      const ask = (model: string, headers: Record<string, string> = {}) =>
        call('POST', '/api/v1/chat/completions', {
          tenant: 'chatter',
          headers,
          body: { model, messages: [{ role: 'user', content: 'hi' }], stream: true },
        })
      // The body names the model: no X-Model is needed for the allow-list to apply.
      const denied = await ask('big-model')
      expect(denied.status).toBe(403)
      expect(denied.body).toMatchObject({ code: 'tenant_policy_denied', rule: 'model' })
      // An X-Model naming another model than the body is refused, whichever is allowed.
      const mismatch = await ask('big-model', { 'X-Model': 'small-model' })
      expect(mismatch.status).toBe(400)
      expect(mismatch.body).toMatchObject({
        code: 'model_mismatch',
        model: 'big-model',
        header: 'small-model',
      })
      // The body's model is the quota subject: one a day per model.
      const served = await ask('small-model')
      expect(served.status).toBe(200)
      expect(served.text).toContain('"model":"small-model"')
      const second = await ask('small-model')
      expect(second.status).toBe(429)
      expect(second.body).toMatchObject({ code: 'tenant_quota_exceeded' })
      const usage = await call('GET', '/admin/tenants/chatter/usage?subject=model:small-model', {
        admin: true,
      })
      expect(usage.body.windows[0].used.requests).toBe(1)
    })

    it('counts the traffic in /metrics', async () => {
      const { text } = await scrape()
      const value = (series: string) => {
        const line = text.split('\n').find((l) => l.startsWith(`${series} `))
        return line === undefined ? undefined : Number(line.slice(series.length + 1))
      }
      expect(value('tenant_quota_rejections_total{tenant="metered"}')).toBe(2)
      expect(value('tenant_rate_limited_total{tenant="bursty"}')).toBe(1)
      expect(value('tenant_policy_denials_total{tenant="beta",rule="model"}')).toBe(1)
      expect(value('tenant_requests_total{tenant="metered",outcome="client_error",code="429"}')).toBe(2)
      expect(value('tenant_requests_total{tenant="alpha",outcome="success",code="201"}')).toBe(3)
      expect(
        value('tenant_requests_total{tenant="(none)",outcome="client_error",code="403"}'),
      ).toBeGreaterThanOrEqual(2)
      expect(value('tenant_tokens_consumed_total{tenant="metered"}')).toBe(50)
    })

    it('writes one JSON log line per decision', async () => {
      const decisions = () =>
        server()
          .child.jsonLines()
          .filter((l) => l.msg === 'tenancy decision')
      // Event hooks are not awaited and the lines travel through a pipe: wait for the last ones.
      await expect
        .poll(() => decisions().filter((l) => l.tenant === 'nobody').length, { timeout: 5_000 })
        .toBeGreaterThan(0)
      const lines = decisions()
      expect(lines.filter((l) => l.stage === 'quota' && l.tenant === 'metered' && l.status === 429)).toEqual([
        expect.objectContaining({ allowed: false, code: 'tenant_quota_exceeded', level: 'warn' }),
        expect.objectContaining({ allowed: false, code: 'tenant_quota_exceeded', level: 'warn' }),
      ])
      expect(lines).toContainEqual(
        expect.objectContaining({
          stage: 'policy',
          tenant: 'beta',
          allowed: false,
          status: 403,
          rule: 'model',
        }),
      )
      expect(lines).toContainEqual(
        expect.objectContaining({ stage: 'resolve', allowed: false, status: 403, code: 'tenant_unknown' }),
      )
      expect(lines).toContainEqual(
        expect.objectContaining({ stage: 'rateLimit', tenant: 'bursty', allowed: false, status: 429 }),
      )
      const allowed = lines.find((l) => l.stage === 'quota' && l.allowed === true && l.method === 'GET')!
      expect(allowed).toMatchObject({ level: 'info', status: 200, method: 'GET', path: resources })
      expect(allowed.requestId).toEqual(expect.any(String))
      // Timestamps come from the app's clock, which the scenario moved into next year.
      expect(Date.parse(String(allowed.time))).toBeGreaterThanOrEqual(T0)
    })

    target.extra?.(server)
  })
}
