import { type AddressInfo, connect, type Socket } from 'node:net'
import { type ServerType, serve } from '@hono/node-server'
import {
  type ConcurrencyDecision,
  InMemoryConcurrencyLimiter,
  InMemoryConfigManager,
  type TenantConfigInput,
} from '@tenant/core'
import { withTenancy } from '@tenant/fetch'
import { type Context, Hono } from 'hono'
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

/** A response that sends one event and stays open until the test calls the `end` it pushes. */
function openStream(c: Context, ends: (() => void)[]): Response {
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
    app.get('/stream', (c) => openStream(c, ends))
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

/** Serves `fetch` with @hono/node-server on a free loopback port. */
async function listen(fetch: (request: Request, env?: unknown) => Response | Promise<Response>) {
  const server = await new Promise<ServerType>((resolve) => {
    const started = serve({ fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(started))
  })
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

/** A handler that signals when it runs and answers when the test says; `gone` when its client left. */
function heldHandler() {
  let enter!: () => void
  let clientGone!: () => void
  const state = {
    entered: new Promise<void>((resolve) => {
      enter = resolve
    }),
    gone: new Promise<void>((resolve) => {
      clientGone = resolve
    }),
    answer: (): void => {
      throw new Error('the handler has not run')
    },
  }
  const run = async (request: Request): Promise<void> => {
    request.signal.addEventListener('abort', () => clientGone(), { once: true })
    const answered = new Promise<void>((resolve) => {
      state.answer = resolve
    })
    enter()
    await answered
  }
  return { state, run }
}

// F1 and F3 of the red team's review, on a real server: HEAD gives its slot back (also when a
// fetch wrapper drops c.env, so the adapter watches the body), and a client that aborts while the
// handler runs does not free the slot before the handler answers (Hono and Fetch hosts alike).
describe('concurrency slots on @hono/node-server: HEAD and early aborts', () => {
  let limiter: WatchedLimiter
  let configs: InMemoryConfigManager
  const H = { 'X-Tenant-ID': 'acme' }

  beforeEach(async () => {
    configs = new InMemoryConfigManager()
    await configs.setTenantConfig({ id: 'acme', concurrency: { maxInFlight: 1 } })
    limiter = new WatchedLimiter()
  })

  function honoApp(handler: ReturnType<typeof heldHandler>) {
    const app = new Hono()
    app.use('*', tenancy({ configManager: configs, concurrency: limiter }))
    app.get('/ok', (c) => c.text('ok'))
    app.get('/slow', async (c) => {
      await handler.run(c.req.raw)
      return c.text('late')
    })
    return app
  }

  for (const wrapped of [false, true]) {
    it(`frees a HEAD request's slot when it is answered (${wrapped ? 'fetch wrapper without env' : 'serve(app.fetch)'})`, async () => {
      const app = honoApp(heldHandler())
      const server = await listen(wrapped ? (request) => app.fetch(request) : app.fetch)
      try {
        for (let i = 1; i <= 2; i++) {
          const head = await fetch(`${server.base}/ok`, { method: 'HEAD', headers: H })
          expect(head.status).toBe(200)
          await limiter.releasedAtLeast(i)
        }
        expect(await limiter.inFlight('acme')).toBe(0)
        const get = await fetch(`${server.base}/ok`, { headers: H })
        expect([get.status, await get.text()]).toEqual([200, 'ok'])
      } finally {
        await server.close()
      }
    })

    it(`holds the slot of a client that aborts mid-handler until the handler answers (Hono host, ${wrapped ? 'fetch wrapper without env' : 'serve(app.fetch)'})`, async () => {
      const handler = heldHandler()
      const app = honoApp(handler)
      const server = await listen(wrapped ? (request) => app.fetch(request) : app.fetch)
      try {
        await expectHeldUntilAnswered(server.base, handler)
      } finally {
        await server.close()
      }
    })
  }

  it('holds the slot of a client that aborts mid-handler until the handler answers (Fetch host)', async () => {
    const handler = heldHandler()
    const served = withTenancy(
      async (request: Request) => {
        if (new URL(request.url).pathname === '/ok') return new Response('ok')
        await handler.run(request)
        return new Response('late')
      },
      { configManager: configs, concurrency: limiter },
    )
    const server = await listen((request) => served(request))
    try {
      await expectHeldUntilAnswered(server.base, handler)
    } finally {
      await server.close()
    }
  })

  async function expectHeldUntilAnswered(base: string, handler: ReturnType<typeof heldHandler>) {
    const abort = new AbortController()
    const slow = fetch(`${base}/slow`, { headers: H, signal: abort.signal }).catch(() => undefined)
    await handler.state.entered
    abort.abort()
    await slow
    // The server has seen the client go (the request's signal), and the handler still runs.
    await handler.state.gone
    expect(limiter.released).toBe(0)
    expect(await limiter.inFlight('acme')).toBe(1)
    const refused = await fetch(`${base}/ok`, { headers: H })
    expect(refused.status).toBe(429)
    await refused.arrayBuffer()
    handler.state.answer()
    await limiter.releasedAtLeast(1)
    expect(await limiter.inFlight('acme')).toBe(0)
    const admitted = await fetch(`${base}/ok`, { headers: H })
    expect([admitted.status, await admitted.text()]).toEqual([200, 'ok'])
    await limiter.releasedAtLeast(2)
    expect(limiter.released).toBe(2)
  }
})

// Pipelining: a second request sent on the connection before the first's response ended runs
// at once, but its response waits behind the first's, with no socket of its own. When the client
// leaves, Node closes only the response on the socket: the queued one emitted no 'close', and its
// slot was held for leaseTtlMs (10 minutes by default).
describe('@tenant/hono concurrency on @hono/node-server, pipelined requests', () => {
  let limiter: WatchedLimiter
  let server: ServerType
  let port: number
  let ends: (() => void)[]
  let answered: number
  // Resolves once the server side of the last connection read the client's FIN.
  let serverEnded: Promise<void>
  const sockets: Socket[] = []

  beforeEach(async () => {
    const configs = new InMemoryConfigManager()
    await configs.setTenantConfig({ id: 'acme', concurrency: { maxInFlight: 2 } })
    limiter = new WatchedLimiter()
    ends = []
    answered = 0
    const app = new Hono()
    app.use('*', tenancy({ configManager: configs, concurrency: limiter }))
    app.get('/stream', (c) => openStream(c, ends))
    app.get('/ok', (c) => {
      answered++
      return c.text('ok')
    })
    server = await new Promise<ServerType>((resolve) => {
      const started = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(started))
    })
    port = (server.address() as AddressInfo).port
    server.on('connection', (socket: Socket) => {
      serverEnded = new Promise((resolve) => socket.once('end', () => resolve()))
    })
  })

  afterEach(async () => {
    for (const end of ends) end()
    for (const socket of sockets.splice(0)) socket.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })

  const line = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\nX-Tenant-ID: acme\r\n\r\n`

  /** A raw connection and what it received so far; resolves once connected. */
  async function open(): Promise<{
    socket: Socket
    received: () => string
    arrived: (text: string) => Promise<void>
  }> {
    const socket = connect(port, '127.0.0.1')
    sockets.push(socket)
    socket.on('error', () => {})
    let received = ''
    const waiting: (() => void)[] = []
    socket.on('data', (chunk) => {
      received += chunk.toString()
      for (const wake of waiting.splice(0)) wake()
    })
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
    const arrived = async (text: string) => {
      while (!received.includes(text)) await new Promise<void>((wake) => waiting.push(wake))
    }
    return { socket, received: () => received, arrived }
  }

  it('frees the slot of a queued response when the client closes the connection', async () => {
    const { socket, arrived } = await open()
    socket.write(line('/stream') + line('/ok'))
    await arrived('data: 1')
    while (answered < 1) await new Promise((resolve) => setImmediate(resolve))
    expect(await limiter.inFlight('acme')).toBe(2)
    socket.destroy()
    await limiter.releasedAtLeast(2)
    expect(await limiter.inFlight('acme')).toBe(0)
  })

  it('frees every slot of a client that sends its requests and half-closes', async () => {
    const { socket } = await open()
    // printf 'GET …GET …' | nc host port: both requests, then FIN.
    socket.end(line('/stream') + line('/ok'))
    while (answered < 1) await new Promise((resolve) => setImmediate(resolve))
    // The server has read the FIN while the first response streams: it ends the connection once
    // that response is written, and the queued one never goes out.
    await serverEnded
    for (const end of ends) end()
    await limiter.releasedAtLeast(2)
    expect(await limiter.inFlight('acme')).toBe(0)
  })

  it('frees each slot as its response goes out when the client stays', async () => {
    const { socket, received, arrived } = await open()
    socket.write(line('/stream') + line('/ok') + line('/ok'))
    await arrived('data: 1')
    while (answered < 1) await new Promise((resolve) => setImmediate(resolve))
    for (const end of ends) end()
    // The third came while two were held: over the cap of 2.
    await arrived('HTTP/1.1 429')
    await limiter.releasedAtLeast(2)
    expect(received().match(/HTTP\/1\.1 \d+/g)).toEqual(['HTTP/1.1 200', 'HTTP/1.1 200', 'HTTP/1.1 429'])
    expect(await limiter.inFlight('acme')).toBe(0)
  })
})
