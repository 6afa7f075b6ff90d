// The Workers entry's wiring of /metrics, in the test process (the e2e suite serves the Worker on
// workerd with METRICS_TOKEN): a Worker is on the internet, so without a token /metrics is off.
// The chat model check runs there too (the e2e scenario runs the policy and quota part on workerd).
import { describe, expect, it, vi } from 'vitest'
import { createWorker, type Env } from './worker'

// The Durable Object class needs the Workers runtime; these requests never reach one.
vi.mock('cloudflare:workers', () => ({ DurableObject: class {} }))

/** Bindings that are never called: /metrics (and a chat body refused) touches neither D1 nor an object. */
function env(vars: Partial<Env> = {}): Env {
  const unused = () => {
    throw new Error('not called by /metrics')
  }
  const TENANT_QUOTA = { idFromName: unused, get: unused }
  return { DB: {}, TENANT_QUOTA, ADMIN_TOKEN: 'worker-admin-token-0123456789', ...vars } as unknown as Env
}

async function get(vars: Partial<Env>, headers: Record<string, string> = {}) {
  return send(vars, new Request('https://saas.example/metrics', { headers }))
}

async function send(vars: Partial<Env>, request: Request) {
  const ctx = { waitUntil: () => {}, passThroughOnException: () => {}, props: {} }
  return createWorker().fetch!(request as never, env(vars), ctx as never)
}

describe('the Worker', () => {
  it('does not serve /metrics without METRICS_TOKEN, as /admin without ADMIN_TOKEN', async () => {
    const response = await get({})
    expect(response.status).toBe(503)
    expect(response.headers.get('Content-Type')).toBe('application/problem+json')
    const body = await response.json()
    expect(body).toMatchObject({ code: 'metrics_disabled', status: 503 })
    expect(JSON.stringify(body)).not.toContain('tenant_requests_total')
  })

  it('serves /metrics behind METRICS_TOKEN when one is set', async () => {
    const token = 'worker-metrics-token-0123456789'
    expect((await get({ METRICS_TOKEN: token })).status).toBe(401)
    const allowed = await get({ METRICS_TOKEN: token }, { Authorization: `Bearer ${token}` })
    expect(allowed.status).toBe(200)
    expect(await allowed.text()).toContain('# TYPE tenant_requests_total counter')
  })

  it("reads a chat completion's model from its body: an X-Model naming another is 400 model_mismatch", async () => {
    const request = new Request('https://saas.example/api/v1/chat/completions', {
      method: 'POST',
      headers: { 'X-Tenant-ID': 'demo-free', 'X-Model': 'gpt-4o-mini', 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], stream: true }),
    })
    const response = await send({}, request)
    expect(response.status).toBe(400)
    expect(response.headers.get('Content-Type')).toBe('application/problem+json')
    expect(await response.json()).toMatchObject({
      code: 'model_mismatch',
      model: 'gpt-4o',
      header: 'gpt-4o-mini',
    })
  })
})
