import type { AddressInfo } from 'node:net'
import { type ServerType, serve } from '@hono/node-server'
import {
  type ConcurrencyDecision,
  InMemoryConcurrencyLimiter,
  InMemoryConfigManager,
  type TenantConfigInput,
} from '@tenant/core'
import { Hono } from 'hono'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { tenancy } from './index'

/**
 * An in-memory limiter that also tells when a slot is given back, so a test awaits the release
 * instead of sleeping until the server has noticed the end of a response.
 */
class WatchedLimiter extends InMemoryConcurrencyLimiter {
  #waiting: (() => void)[] = []
  released = 0

  override async acquire(tenantId: string, maxInFlight: number): Promise<ConcurrencyDecision> {
    const decision = await super.acquire(tenantId, maxInFlight)
    const lease = decision.lease
    if (lease === undefined) return decision
    return {
      ...decision,
      lease: {
        id: lease.id,
        release: async () => {
          await lease.release()
          this.released++
          for (const wake of this.#waiting.splice(0)) wake()
        },
      },
    }
  }

  /** Resolves once `count` slots have been given back in all. */
  async releasedAtLeast(count: number): Promise<void> {
    while (this.released < count) await new Promise<void>((wake) => this.#waiting.push(wake))
  }
}

// Under @hono/node-server the chain learns the end of a response from the ServerResponse's
// 'close' (HostHooks.whenSent), not by wrapping the body: these run the chain on a real server.
describe('@tenant/hono concurrency on @hono/node-server', () => {
  let configs: InMemoryConfigManager
  let limiter: WatchedLimiter
  let server: ServerType
  let base: string
  let ends: (() => void)[]

  beforeEach(async () => {
    configs = new InMemoryConfigManager()
    const acme: TenantConfigInput = { id: 'acme', concurrency: { maxInFlight: 1 } }
    await configs.setTenantConfig(acme)
    limiter = new WatchedLimiter()
    ends = []
    const app = new Hono()
    app.use('*', tenancy({ configManager: configs, concurrency: limiter }))
    app.get('/stream', (c) => {
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('data: 1\n\n'))
          ends.push(() => {
            try {
              controller.close()
            } catch {
              // Closed already: the test ended it, or the client went away.
            }
          })
        },
      })
      return c.body(body, 200, { 'Content-Type': 'text/event-stream' })
    })
    app.get('/ok', (c) => c.json({ ok: true }))
    app.get('/throw', () => {
      throw new Error('handler failed')
    })
    server = await new Promise<ServerType>((resolve) => {
      const started = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(started))
    })
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })

  afterEach(async () => {
    for (const end of ends) end()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })

  const send = (path: string, init: RequestInit = {}) =>
    fetch(`${base}${path}`, { ...init, headers: { 'X-Tenant-ID': 'acme' } })

  it('holds the slot while a body streams, refuses meanwhile, and frees it once the response is over', async () => {
    const streamed = await send('/stream')
    const reader = streamed.body!.getReader()
    await reader.read()
    const refused = await send('/ok')
    expect(refused.status).toBe(429)
    expect(await refused.json()).toMatchObject({ code: 'tenant_concurrency_limited' })
    expect(await limiter.inFlight('acme')).toBe(1)

    ends[0]!()
    while (!(await reader.read()).done) {}
    await limiter.releasedAtLeast(1)
    expect(await limiter.inFlight('acme')).toBe(0)
    expect((await send('/ok')).status).toBe(200)
  })

  it('keeps the server fast path for a body known in full: sent with its length, not chunked', async () => {
    const response = await send('/ok')
    expect(response.headers.get('content-length')).toBe(String('{"ok":true}'.length))
    expect(response.headers.get('transfer-encoding')).toBeNull()
    expect(await response.json()).toEqual({ ok: true })
    await limiter.releasedAtLeast(1)
    expect(await limiter.inFlight('acme')).toBe(0)
  })

  it('frees the slot of a client that aborts mid-stream', async () => {
    const abort = new AbortController()
    const streamed = await send('/stream', { signal: abort.signal })
    await streamed.body!.getReader().read()
    expect(await limiter.inFlight('acme')).toBe(1)
    abort.abort()
    await limiter.releasedAtLeast(1)
    expect(await limiter.inFlight('acme')).toBe(0)
  })

  it('frees each slot of requests one after another on a kept-alive connection', async () => {
    for (let i = 1; i <= 5; i++) {
      const response = await send('/ok')
      expect(response.status).toBe(200)
      await response.arrayBuffer()
      await limiter.releasedAtLeast(i)
    }
    expect(await limiter.inFlight('acme')).toBe(0)
  })

  it('frees the slot when the handler throws (Hono answers 500)', async () => {
    const response = await send('/throw')
    expect(response.status).toBe(500)
    await response.arrayBuffer()
    await limiter.releasedAtLeast(1)
    expect(limiter.released).toBe(1)
    expect(await limiter.inFlight('acme')).toBe(0)
  })
})
