import type { AddressInfo } from 'node:net'
import { type ServerType, serve } from '@hono/node-server'
import { InMemoryConcurrencyLimiter, InMemoryConfigManager } from '@tenant/core'
import { Hono } from 'hono'
import { streamSSE } from 'hono/streaming'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { tenancy } from './index'

// Hono answers a HEAD by running the GET handler and dropping its body, unread and uncancelled.
// A streamSSE() callback (an upstream LLM call, say) writes from the handler: it used to run on
// with its slot already given back, unseen, so HEAD requests ran any number of them past the cap.
// The stage now cancels that body: the producer is told at once (stream.onAbort(), as when a
// client leaves) and the slot is held until the cancel has gone through.

describe('HEAD on a streamSSE() route, cap 1', () => {
  let configs: InMemoryConfigManager
  let limiter: InMemoryConcurrencyLimiter
  let servers: ServerType[]
  beforeEach(async () => {
    configs = new InMemoryConfigManager()
    await configs.setTenantConfig({ id: 'acme', concurrency: { maxInFlight: 1 } })
    limiter = new InMemoryConcurrencyLimiter()
    servers = []
  })
  afterEach(async () => {
    for (const server of servers) {
      ;(server as { closeAllConnections?: () => void }).closeAllConnections?.()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  })

  /** The app, and what its producers did: started, told (aborted), the most running untold at once. */
  function app() {
    const stats = { started: 0, told: 0, ended: 0, untold: 0, peak: 0 }
    const hono = new Hono()
    hono.use('*', tenancy({ configManager: configs, concurrency: limiter }))
    hono.get('/chat', (c) =>
      streamSSE(c, async (stream) => {
        stats.started++
        stats.untold++
        stats.peak = Math.max(stats.peak, stats.untold)
        // What an upstream call does with it: stop (abort its fetch, leave its loop).
        stream.onAbort(() => {
          stats.told++
          stats.untold--
        })
        try {
          for (let i = 0; i < 3 && !stream.aborted; i++) {
            await stream.writeSSE({ data: `token ${i}` })
          }
        } finally {
          stats.ended++
        }
      }),
    )
    return { hono, stats }
  }

  const H = { 'X-Tenant-ID': 'acme' }

  it('app.request: each HEAD tells its producer, and never more than the cap run untold', async () => {
    const { hono, stats } = app()
    const heads = await Promise.all(
      Array.from({ length: 10 }, () => hono.request('/chat', { method: 'HEAD', headers: H })),
    )
    const admitted = heads.filter((head) => head.status === 200).length
    expect(heads.every((head) => head.status === 200 || head.status === 429)).toBe(true)
    expect(heads.every((head) => head.body === null)).toBe(true)
    expect(admitted).toBeGreaterThan(0)
    expect(stats.started).toBe(admitted)
    expect(stats.told).toBe(admitted)
    expect(stats.peak).toBe(1)
    await expect.poll(() => stats.ended).toBe(admitted)
    await expect.poll(() => limiter.inFlight('acme')).toBe(0)
    // One after another, each is admitted: the slot comes back with the cancel.
    for (let i = 0; i < 3; i++) {
      const head = await hono.request('/chat', { method: 'HEAD', headers: H })
      expect(head.status).toBe(200)
      await expect.poll(() => limiter.inFlight('acme')).toBe(0)
    }
    expect(stats.told).toBe(stats.started)
    // A GET still streams and holds the slot until its body ends.
    const get = await hono.request('/chat', { headers: H })
    expect((await hono.request('/chat', { method: 'HEAD', headers: H })).status).toBe(429)
    expect(await get.text()).toBe('data: token 0\n\ndata: token 1\n\ndata: token 2\n\n')
    await expect.poll(() => limiter.inFlight('acme')).toBe(0)
  })

  it('@hono/node-server: 10 parallel HEAD requests never run more producers untold than the cap', async () => {
    const { hono, stats } = app()
    const server = await new Promise<ServerType>((resolve) => {
      const started = serve({ fetch: hono.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(started))
    })
    servers.push(server)
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const heads = await Promise.all(
      Array.from({ length: 10 }, () => fetch(`${base}/chat`, { method: 'HEAD', headers: H })),
    )
    expect(heads.every((head) => head.status === 200 || head.status === 429)).toBe(true)
    const admitted = heads.filter((head) => head.status === 200).length
    expect(admitted).toBeGreaterThan(0)
    await expect.poll(() => stats.told).toBe(admitted)
    expect(stats.started).toBe(admitted)
    expect(stats.peak).toBe(1)
    await expect.poll(() => stats.ended).toBe(admitted)
    await expect.poll(() => limiter.inFlight('acme')).toBe(0)
    const get = await fetch(`${base}/chat`, { headers: H })
    expect(await get.text()).toBe('data: token 0\n\ndata: token 1\n\ndata: token 2\n\n')
    await expect.poll(() => limiter.inFlight('acme')).toBe(0)
  })
})
