// A tenant deleted and created again under the same id is a new customer: it must start with none
// of the earlier customer's rate-limit burst spent, and a request of the earlier customer that
// settles later (a stream still open) must not charge it, nor find its resources or metrics.
// In-memory limits and Redis limits.
import { ManualClock, withPlans } from '@tenant/core'
import { Redis } from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { createPostgresSandbox, postgresRedisUnavailable } from '../test/e2e/backends'
import { ADMIN_TOKEN, inProcessApp, START } from '../test/in-process'
import { redisLimits } from './limits'
import { createServer } from './server'

const redis = new Redis(process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379')
afterAll(() => redis.quit())

async function app(store: 'memory' | 'redis') {
  if (store === 'memory') return inProcessApp()
  // The Redis limits read the app's own configs, bound once the app exists.
  let view: ReturnType<typeof withPlans> | undefined
  const provider = {
    quotaConfig: (id: string) => view!.quotaConfig(id),
    rateLimitConfig: (id: string) => view!.rateLimitConfig(id),
  } as unknown as ReturnType<typeof withPlans>
  const prefix = `recycled-${Date.now()}-${Math.random().toString(36).slice(2)}`
  const t = await inProcessApp({ ...redisLimits(provider, { redis, prefix, algorithm: 'fixed' }) })
  view = withPlans(t.deps.configs, t.deps.plans)
  return t
}

type App = Awaited<ReturnType<typeof app>>

/** Deletes `acme` and creates it again (a millisecond later: its createdAt tells the two apart). */
async function handOver(t: App, body: object) {
  expect((await t.request('DELETE', '/admin/tenants/acme', { admin: true })).status).toBe(204)
  t.clock.advance(1)
  expect((await t.request('POST', '/admin/tenants', { admin: true, body })).status).toBe(201)
}

/** A streamed chat completion of acme's, estimated at 1 token; its usage event reports about 15,000. */
function bigStream(t: App) {
  return t.request('POST', '/api/v1/chat/completions', {
    tenant: 'acme',
    headers: { 'X-Token-Count': '1' },
    body: { model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'x'.repeat(60_000) }] },
  })
}

async function usage(t: App) {
  const answer = (await (await t.request('GET', '/admin/tenants/acme/usage', { admin: true })).json()) as {
    windows: { used: { requests: number; tokens: number } }[]
  }
  return answer.windows[0]!.used
}

/**
 * A POST of a resource by acme whose body arrives only when `send()` is called: the chain admits
 * it at once, and the row is written once the body is in, however long that takes.
 */
function slowCreate(request: (init: RequestInit) => Promise<Response>, name: string) {
  let send!: () => void
  let reading!: () => void
  const sent = new Promise<void>((resolve) => (send = resolve))
  const started = new Promise<void>((resolve) => (reading = resolve))
  let done = false
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      reading()
      if (done) return controller.close()
      await sent
      controller.enqueue(new TextEncoder().encode(JSON.stringify({ name })))
      done = true
    },
  })
  const response = request({
    method: 'POST',
    headers: { 'X-Tenant-ID': 'acme', 'Content-Type': 'application/json' },
    body,
    duplex: 'half',
  } as RequestInit)
  return { response, started, send }
}

describe('a recycled tenant id', () => {
  it("does not find the earlier customer's resources; other tenants keep theirs", async () => {
    const t = await app('memory')
    const body = { id: 'acme' }
    for (const id of ['acme', 'globex']) {
      expect((await t.request('POST', '/admin/tenants', { admin: true, body: { id } })).status).toBe(201)
    }
    const secret = { name: 'old-secret', data: { card: '4111' } }
    expect((await t.request('POST', '/api/v1/resources', { tenant: 'acme', body: secret })).status).toBe(201)
    expect((await t.request('POST', '/api/v1/resources', { tenant: 'globex', body: secret })).status).toBe(
      201,
    )
    await handOver(t, body)
    const list = async (tenant: string) =>
      ((await (await t.request('GET', '/api/v1/resources', { tenant })).json()) as { items: unknown[] }).items
    expect(await list('acme')).toEqual([])
    expect(await list('globex')).toHaveLength(1)
  })

  it('gets no row from a request of the earlier customer that writes after the hand-over', async () => {
    const t = await app('memory')
    expect((await t.request('POST', '/admin/tenants', { admin: true, body: { id: 'acme' } })).status).toBe(
      201,
    )
    const late = slowCreate((init) => Promise.resolve(t.app.request('/api/v1/resources', init)), 'planted')
    await late.started
    await handOver(t, { id: 'acme' })
    late.send()
    await (await late.response).text()
    const listed = (await (await t.request('GET', '/api/v1/resources', { tenant: 'acme' })).json()) as {
      items: unknown[]
    }
    expect(listed.items).toEqual([])
  })

  it("starts its metrics at zero: the earlier customer's series are gone from /metrics", async () => {
    const t = await app('memory')
    const body = { id: 'acme' }
    // Requests are counted when their body has been read.
    const status = async (path: string) => {
      const response = await t.request('GET', path, { tenant: 'acme' })
      await response.text()
      return response.status
    }
    expect((await t.request('POST', '/admin/tenants', { admin: true, body })).status).toBe(201)
    for (let i = 0; i < 3; i++) expect(await status('/api/v1/resources')).toBe(200)
    expect(await status('/api/v1/resources/nope')).toBe(404)
    await handOver(t, body)
    expect(await status('/api/v1/resources')).toBe(200)
    const acme = (await t.deps.metrics.registry.metrics())
      .split('\n')
      .filter((line) => line.startsWith('tenant_requests_total{tenant="acme"'))
    expect(acme).toEqual(['tenant_requests_total{tenant="acme",outcome="success",code="200"} 1'])
  })
})

for (const store of ['memory', 'redis'] as const) {
  describe(`a recycled tenant id (${store} limits)`, () => {
    it("starts with a full rate-limit bucket, not the earlier customer's spent one", async () => {
      const t = await app(store)
      const body = {
        id: 'acme',
        // 3 requests, then one every 100 s.
        rateLimit: { requestsPerSecond: 0.01, burst: 3 },
        quota: { limits: [{ window: 'day', requests: 100 }] },
      }
      expect((await t.request('POST', '/admin/tenants', { admin: true, body })).status).toBe(201)
      for (let i = 0; i < 3; i++) {
        expect((await t.request('GET', '/api/v1/resources', { tenant: 'acme' })).status).toBe(200)
      }
      expect((await t.request('GET', '/api/v1/resources', { tenant: 'acme' })).status).toBe(429)
      await handOver(t, body)
      const first = await t.request('GET', '/api/v1/resources', { tenant: 'acme' })
      expect(first.status).toBe(200)
      expect(first.headers.get('RateLimit')).toContain('"rate";r=2')
    })

    it('is not charged for a stream of the earlier customer that ends after the hand-over', async () => {
      const t = await app(store)
      const body = { id: 'acme', quota: { limits: [{ window: 'day', requests: 1000, tokens: 100_000 }] } }
      expect((await t.request('POST', '/admin/tenants', { admin: true, body })).status).toBe(201)
      const stream = await bigStream(t)
      expect(stream.status).toBe(200)
      await handOver(t, body)
      expect(await usage(t)).toEqual({ requests: 0, tokens: 0 })
      await stream.text()
      // The settlement is dropped and reported (onError, logged by the app).
      await expect
        .poll(() => JSON.stringify(t.lines.filter((line) => line.msg === 'tenancy store error')))
        .toContain('is dropped')
      expect(await usage(t)).toEqual({ requests: 0, tokens: 0 })
      // The new customer's own stream is settled as usual.
      const own = await bigStream(t)
      await own.text()
      await expect.poll(async () => (await usage(t)).tokens).toBeGreaterThan(10_000)
    })
  })
}

// The same hand-over on PostgreSQL, through the server as it runs (row-level security on, the
// application role): RLS filters by tenant id, which both customers share.
describe.skipIf(postgresRedisUnavailable() !== undefined && !process.env.CI)(
  'a recycled tenant id on PostgreSQL',
  () => {
    it('gets no row from a request of the earlier customer that writes after the hand-over', async () => {
      const sandbox = await createPostgresSandbox()
      const clock = new ManualClock(START)
      const server = await createServer(
        {
          DATABASE_URL: sandbox.appUrl,
          MIGRATION_DATABASE_URL: sandbox.ownerUrl,
          DATABASE_SCHEMA: sandbox.schema,
          ADMIN_TOKEN,
          LOG_LEVEL: 'error',
        },
        { clock, write: () => {} },
      )
      try {
        const admin = (method: string, path: string, body?: object) =>
          server.app.request(path, {
            method,
            headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
            ...(body ? { body: JSON.stringify(body) } : {}),
          })
        expect((await admin('POST', '/admin/tenants', { id: 'acme' })).status).toBe(201)
        const late = slowCreate(
          (init) => Promise.resolve(server.app.request('/api/v1/resources', init)),
          'planted',
        )
        await late.started
        expect((await admin('DELETE', '/admin/tenants/acme')).status).toBe(204)
        clock.advance(1)
        expect((await admin('POST', '/admin/tenants', { id: 'acme' })).status).toBe(201)
        late.send()
        await (await late.response).text()
        const listed = await server.app.request('/api/v1/resources', { headers: { 'X-Tenant-ID': 'acme' } })
        expect(((await listed.json()) as { items: unknown[] }).items).toEqual([])
      } finally {
        await server.close()
        await sandbox.drop()
      }
    }, 60_000)
  },
)
