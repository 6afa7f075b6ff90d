// A store's answer that lands after the stage's timeout is compensated (a slot released, tokens
// refunded). On Workers that work runs after the request was answered 503: it must be handed to
// ctx.waitUntil, or the runtime drops it when the invocation ends (a slot held for its whole
// lease, 10 minutes, locking out a tenant with maxInFlight 1).
import { Miniflare } from 'miniflare'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { bundledWorker } from './workerd'

describe('late answers on workerd (the chain in a Worker, a slow tenant object)', () => {
  let mf: Miniflare
  beforeAll(async () => {
    mf = new Miniflare({
      modules: true,
      script: await bundledWorker('late-worker.ts'),
      compatibilityDate: '2025-09-01',
      durableObjects: { TENANT_QUOTA: { className: 'SlowObject', useSQLite: true } },
    })
    await mf.ready
  }, 60_000)
  afterAll(async () => {
    await mf?.dispose()
  })

  const send = (path: string, headers: Record<string, string> = {}) =>
    mf.dispatchFetch(`http://late.test${path}`, { headers: { 'X-Tenant-ID': 'acme', ...headers } })
  const state = async () =>
    (await (await send('/state')).json()) as {
      slowAnswers: number
      inFlight: number
      used: { requests: number; tokens: number }
    }

  it('releases a slot acquired after the timeout, though the invocation has answered', async () => {
    await (await send('/delay?ms=300')).text()
    const refused = await send('/concurrency')
    expect(refused.status).toBe(503)
    await refused.text()
    // The object's answer lands 300 ms after the acquire; the release follows it.
    await vi.waitFor(async () => expect(await state()).toMatchObject({ slowAnswers: 1, inFlight: 0 }), {
      timeout: 10_000,
      interval: 50,
    })
    await (await send('/delay?ms=0')).text()
    expect((await send('/concurrency')).status).toBe(200)
  }, 30_000)

  it("refunds a late admission's tokens, though the invocation has answered", async () => {
    await (await send('/delay?ms=300')).text()
    const refused = await send('/quota', { 'X-Token-Count': '400' })
    expect(refused.status).toBe(503)
    await refused.text()
    // The late admission is charged (the request count stays: it has no refund), its tokens given back.
    await vi.waitFor(
      async () => expect(await state()).toMatchObject({ slowAnswers: 2, used: { requests: 1, tokens: 0 } }),
      { timeout: 10_000, interval: 50 },
    )
    await (await send('/delay?ms=0')).text()
  }, 30_000)
})
