// A real HTTP server (Node, @hono/node-server on port 0) in front of the tenancy chain with a
// concurrency cap: a client that goes away in the middle of a streamed response gives its slot
// back, through the request's AbortSignal and the cancelled body, with no release call of its own.
import { request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type ServerType, serve } from '@hono/node-server'
import { InMemoryConcurrencyLimiter, InMemoryConfigManager } from '@tenant/core'
import { tenancy } from '@tenant/hono'
import { Hono } from 'hono'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

let server: ServerType
let port: number
const limiter = new InMemoryConcurrencyLimiter()

beforeAll(async () => {
  const configs = new InMemoryConfigManager()
  await configs.setTenantConfig({ id: 'acme', concurrency: { maxInFlight: 1 } })
  const app = new Hono()
  app.use('*', tenancy({ configManager: configs, concurrency: limiter }))
  // One chunk, then nothing: the stream stays open until the client leaves.
  app.get('/stream', (c) =>
    c.body(
      new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('data: first\n\n'))
        },
      }),
      200,
      { 'Content-Type': 'text/event-stream' },
    ),
  )
  app.get('/ok', (c) => c.text('ok'))
  await new Promise<void>((resolve) => {
    server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve())
  })
  port = (server.address() as AddressInfo).port
})

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve))
})

function get(path: string) {
  return new Promise<{ status: number; first: string; destroy: () => void; body: Promise<string> }>(
    (resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port, path, headers: { 'X-Tenant-ID': 'acme' } },
        (res) => {
          let text = ''
          const body = new Promise<string>((done) => {
            res.on('end', () => done(text))
            res.on('close', () => done(text))
          })
          res.once('data', (chunk: Buffer) => {
            text += chunk.toString()
            res.on('data', (more: Buffer) => {
              text += more.toString()
            })
            resolve({ status: res.statusCode!, first: text, destroy: () => req.destroy(), body })
          })
        },
      )
      req.on('error', (error) => {
        if ((error as NodeJS.ErrnoException).code !== 'ECONNRESET') reject(error)
      })
      req.end()
    },
  )
}

// Waits for an I/O consequence (the server seeing the socket close), not for a time window.
async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error(`timed out waiting until ${what}`)
}

describe('a client abort on a real server', () => {
  it('releases the slot of a streamed response the client walked away from', async () => {
    const streamed = await get('/stream')
    expect(streamed.status).toBe(200)
    expect(streamed.first).toContain('data: first')
    expect(await limiter.inFlight('acme')).toBe(1)
    const refused = await get('/ok')
    expect(refused.status).toBe(429)
    expect(refused.first).toContain('tenant_concurrency_limited')

    streamed.destroy()
    await until(async () => (await limiter.inFlight('acme')) === 0, 'the slot is released')

    const again = await get('/ok')
    expect(again.status).toBe(200)
    expect(await again.body).toBe('ok')
    await until(async () => (await limiter.inFlight('acme')) === 0, 'the finished request is released')
  })
})
