// The streaming chat route in the test process: the body streams through the tenancy chain
// unchanged, and the quota is settled at the stream's usage chunk (under ctx.waitUntil, as on Workers).
import { describe, expect, it } from 'vitest'
import { ADMIN_TOKEN, inProcessApp } from '../../test/in-process'

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
  const send = (body: unknown) =>
    t.app.request(
      '/api/v1/chat/completions',
      {
        method: 'POST',
        headers: { 'X-Tenant-ID': 'acme', 'X-Token-Count': '100', 'Content-Type': 'application/json' },
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
    expect(waited).toHaveLength(1)
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
    expect(await usedTokens()).toBe(102)
  })

  it('refuses a request that does not ask to stream', async () => {
    const { send } = await setUp()
    const response = await send({ ...chat, stream: false })
    expect(response.status).toBe(400)
    expect(await response.json()).toMatchObject({ code: 'invalid_request' })
  })
})
