// The streaming chat route in the test process: the body streams through the tenancy chain
// unchanged, and the quota is settled at the stream's usage chunk (under ctx.waitUntil, as on Workers).
// The model the policy checks and the quota charges is the body's, the one the route serves.
import { Hono } from 'hono'
import { describe, expect, it } from 'vitest'
import { ADMIN_TOKEN, inProcessApp } from '../../test/in-process'
import { demoPlans } from '../demo-tenants'
import { chatRoutes, readChatRequest } from './chat'

const chat = {
  model: 'gpt-4o-mini',
  messages: [{ role: 'user', content: 'How many tokens is this?' }],
  stream: true,
}

async function setUp() {
  const t = await inProcessApp()
  await t.request('POST', '/admin/tenants', {
    admin: true,
    body: { id: 'acme', quota: { limits: [{ window: 'day', tokens: 10_000 }] } },
  })
  const waited: Promise<unknown>[] = []
  const ctx = {
    waitUntil: (p: Promise<unknown>) => void waited.push(p),
    passThroughOnException() {},
    props: {},
  }
  const send = (body: unknown, headers: Record<string, string> = { 'X-Token-Count': '100' }) =>
    t.app.request(
      '/api/v1/chat/completions',
      {
        method: 'POST',
        headers: { 'X-Tenant-ID': 'acme', 'Content-Type': 'application/json', ...headers },
        body: JSON.stringify(body),
      },
      undefined,
      ctx,
    )
  const usedTokens = async () => {
    const usage = await t.app.request('/admin/tenants/acme/usage', {
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
    })
    return ((await usage.json()) as { windows: { used: { tokens: number } }[] }).windows[0]!.used.tokens
  }
  return { t, send, waited, usedTokens }
}

describe('POST /api/v1/chat/completions', () => {
  it('streams OpenAI-style chunks and settles the quota at the usage chunk', async () => {
    const { send, waited, usedTokens } = await setUp()
    const response = await send(chat)
    expect(response.status).toBe(200)
    expect(response.headers.get('Content-Type')).toBe('text/event-stream')
    // Charged at X-Token-Count while the answer streams.
    expect(response.headers.get('X-Quota-Remaining-Tokens')).toBe('9900')
    const text = await response.text()
    expect(text).toContain('"content":"You "')
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true)
    const usage = JSON.parse(text.split('\n\n').at(-3)!.slice('data: '.length)).usage
    expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens)
    // The settlement, and the pipes the body goes out through under waitUntil (see pipedUnder).
    expect(waited.length).toBeGreaterThanOrEqual(1)
    await Promise.all(waited)
    expect(await usedTokens()).toBe(usage.total_tokens)
  })

  it('settles at what was sent when the client stops reading', async () => {
    const { send, waited, usedTokens } = await setUp()
    const reader = (await send(chat)).body!.getReader()
    await reader.read()
    await reader.read()
    await reader.cancel()
    await Promise.all(waited)
    // The 100 estimated, the two events read, and one more: under waitUntil the body goes out
    // through a pipe, which holds the next event before the client asks for it (see pipedUnder).
    expect(await usedTokens()).toBe(103)
  })

  // The prompt is charged when the request is admitted: the model reads it whether or not the
  // client stays for the usage chunk. Charged the client's X-Token-Count alone (0 without one),
  // a client that left before that chunk paid for a few words, and a prompt over the whole quota
  // was admitted.
  it('charges the prompt up front: a client leaving before the usage chunk pays for it', async () => {
    const { send, waited, usedTokens } = await setUp()
    // About 1,000 tokens by the fake model's rule (4 characters each), in a few words.
    const prompt = `${'x'.repeat(3_995)} end`
    const response = await send({ ...chat, messages: [{ role: 'user', content: prompt }] }, {})
    expect(response.status).toBe(200)
    expect(response.headers.get('X-Quota-Remaining-Tokens')).toBe(String(10_000 - 1_000))
    const reader = response.body!.getReader()
    await reader.read()
    await reader.cancel()
    await Promise.all(waited)
    // The prompt, the event read and the one a pipe holds ahead (see pipedUnder).
    expect(await usedTokens()).toBe(1_002)
  })

  it('refuses a prompt over the tenant token quota before the model reads it, and takes a larger X-Token-Count', async () => {
    const { send, usedTokens } = await setUp()
    const over = { ...chat, messages: [{ role: 'user', content: 'x'.repeat(44_000) }] }
    const refused = await send(over, {})
    expect(refused.status).toBe(429)
    expect(await refused.json()).toMatchObject({ code: 'tenant_quota_exceeded' })
    expect(await usedTokens()).toBe(0)
    // The prompt here is 6 tokens; the client reserves 500 for the completion.
    const reserved = await send(chat, { 'X-Token-Count': '500' })
    expect(reserved.headers.get('X-Quota-Remaining-Tokens')).toBe(String(10_000 - 500))
    await reserved.text()
    const bad = await send(chat, { 'X-Token-Count': '1e3' })
    expect(bad.status).toBe(400)
    expect(await bad.json()).toMatchObject({ code: 'invalid_cost' })
  })

  it('counts a body sent without Content-Length under its tenant, with its request id in the logs', async () => {
    const { t } = await setUp()
    const encoded = new TextEncoder().encode(JSON.stringify(chat))
    // A streamed upload: no Content-Length, so the body limit counts the bytes as they come.
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(encoded)
        controller.close()
      },
    })
    const response = await t.app.request('/api/v1/chat/completions', {
      method: 'POST',
      headers: {
        'X-Tenant-ID': 'acme',
        'X-Token-Count': '100',
        'X-Request-Id': 'chunked-1',
        'Content-Type': 'application/json',
      },
      body,
      duplex: 'half',
    } as RequestInit)
    expect(response.status).toBe(200)
    await response.text()
    const metrics = await t.deps.metrics.registry.metrics()
    expect(metrics).toContain('tenant_requests_total{tenant="acme",outcome="success",code="200"} 1')
    const decisions = t.lines.filter((line) => line.msg === 'tenancy decision')
    expect(decisions.length).toBeGreaterThan(0)
    for (const line of decisions) expect(line.requestId).toBe('chunked-1')
  })

  it('refuses a request that does not ask to stream', async () => {
    const { send } = await setUp()
    const response = await send({ ...chat, stream: false })
    expect(response.status).toBe(400)
    expect(await response.json()).toMatchObject({ code: 'invalid_request' })
  })
})

describe("POST /api/v1/chat/completions: the model is the body's", () => {
  /** The demo plans, and demo-free on the free plan (allowedModels: gpt-4o-mini; 10 a minute per model). */
  async function demoFree() {
    const t = await inProcessApp()
    for (const plan of demoPlans) {
      expect((await t.request('POST', '/admin/plans', { admin: true, body: plan })).status).toBe(201)
    }
    const body = { id: 'demo-free', plan: 'free' }
    expect((await t.request('POST', '/admin/tenants', { admin: true, body })).status).toBe(201)
    const send = (model: string, headers: Record<string, string> = {}) =>
      t.request('POST', '/api/v1/chat/completions', {
        tenant: 'demo-free',
        headers,
        body: { ...chat, model },
      })
    const used = async (subject?: string) => {
      const query = subject === undefined ? '' : `?subject=${subject}`
      const usage = await t.request('GET', `/admin/tenants/demo-free/usage${query}`, { admin: true })
      return ((await usage.json()) as { windows: { used: { requests: number } }[] }).windows[0]!.used.requests
    }
    return { t, send, used }
  }

  /** The model the fake upstream answered as. */
  async function served(response: Response): Promise<string | undefined> {
    return /"model":"([^"]+)"/.exec(await response.text())?.[1]
  }

  it("checks the body's model against the allow-list when no X-Model is sent", async () => {
    const { send, used } = await demoFree()
    const denied = await send('gpt-4o')
    expect(denied.status).toBe(403)
    expect(await denied.json()).toMatchObject({ code: 'tenant_policy_denied', rule: 'model' })
    const allowed = await send('gpt-4o-mini')
    expect(allowed.status).toBe(200)
    expect(await served(allowed)).toBe('gpt-4o-mini')
    // The denied request consumed nothing.
    expect(await used()).toBe(1)
  })

  it('refuses an X-Model naming another model than the body with 400 model_mismatch, charging nothing', async () => {
    const { send, used } = await demoFree()
    for (const [header, model] of [
      ['gpt-4o-mini', 'gpt-4o'],
      ['gpt-4o', 'gpt-4o-mini'],
    ] as const) {
      const response = await send(model, { 'X-Model': header })
      expect(response.status).toBe(400)
      expect(response.headers.get('Content-Type')).toBe('application/problem+json')
      expect(await response.json()).toMatchObject({
        type: 'urn:saas-example:error:model_mismatch',
        code: 'model_mismatch',
        status: 400,
        model,
        header,
      })
    }
    expect(await used()).toBe(0)
    // The same model in both is fine; a model the allow-list refuses is refused in both.
    const same = await send('gpt-4o-mini', { 'X-Model': 'gpt-4o-mini' })
    expect(same.status).toBe(200)
    expect(await served(same)).toBe('gpt-4o-mini')
    expect((await send('gpt-4o', { 'X-Model': 'gpt-4o' })).status).toBe(403)
  })

  it("charges the body's model as the quota subject: the free plan's 10 a minute per model, X-Model or not", async () => {
    const { t, send, used } = await demoFree()
    const statuses: number[] = []
    for (let i = 0; i < 12; i++) {
      const response = await send('gpt-4o-mini', i % 2 === 0 ? {} : { 'X-Model': 'gpt-4o-mini' })
      statuses.push(response.status)
      if (response.status === 429) {
        expect(await response.json()).toMatchObject({ code: 'tenant_quota_exceeded' })
      } else {
        await response.text()
      }
      t.clock.advance(1000) // the bucket (2 a second) refills; still the same minute
    }
    expect(statuses).toEqual([...Array(10).fill(200), 429, 429])
    expect(await used('model:gpt-4o-mini')).toBe(10)
    expect(await used()).toBe(10)
  })

  it('refuses a body that is not a chat request before the chain charges it', async () => {
    const { t, used } = await demoFree()
    const response = await t.request('POST', '/api/v1/chat/completions', {
      tenant: 'demo-free',
      body: { messages: chat.messages, stream: true },
    })
    expect(response.status).toBe(400)
    expect(await response.json()).toMatchObject({ code: 'invalid_request' })
    expect(await used()).toBe(0)
  })

  it('never serves a model the policy stage did not check (a wiring error is a 500)', async () => {
    const request = () =>
      new Request('http://saas.test/chat/completions', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ ...chat, model: 'gpt-4o' }),
      })
    // The route without the body reader, and with it but no policy stage reading the body's model.
    const bare = new Hono().route('/chat', chatRoutes())
    const unchecked = new Hono().use('/chat/completions', readChatRequest()).route('/chat', chatRoutes())
    const errors: string[] = []
    for (const app of [bare, unchecked]) {
      app.onError((error) => {
        errors.push(error.message)
        return new Response('internal error', { status: 500 })
      })
      const response = await app.request(request())
      expect(response.status).toBe(500)
      expect(await response.text()).not.toContain('chat.completion.chunk')
    }
    expect(errors).toEqual([
      expect.stringContaining('without readChatRequest()'),
      expect.stringContaining('the policy stage checked model null'),
    ])
  })
})
