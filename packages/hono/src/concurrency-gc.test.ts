import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { InMemoryConcurrencyLimiter, InMemoryConfigManager } from '@tenant/core'
import { Hono } from 'hono'
import { expect, it } from 'vitest'
import { tenancy } from './index'

// The collector, exposed in this worker: a context made after the flag is set has `gc`.
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

/** Collects until `done()` holds, at most 50 times (a FinalizationRegistry callback runs in a later task). */
async function collectUntil(done: () => Promise<boolean>): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    if (await done()) return true
    gc()
    await new Promise((resolve) => setImmediate(resolve))
  }
  return done()
}

// Where the adapter watches the body (app.request, Bun, Workers), an outer middleware that puts
// another response in c.res drops the chain's wrapped body without cancelling it. The slot comes
// back once the runtime collects that body, not only when its lease expires.
it('frees the slot of a response an outer middleware replaced, once its body is collected', async () => {
  const configs = new InMemoryConfigManager()
  await configs.setTenantConfig({ id: 'acme', concurrency: { maxInFlight: 2 } })
  const limiter = new InMemoryConcurrencyLimiter()
  const app = new Hono()
  app.use('*', async (c, next) => {
    await next()
    // Normalises upstream failures, without cancelling the body it replaces.
    if (c.res.status >= 500) c.res = c.json({ error: 'upstream failed' }, 502)
  })
  app.use('*', tenancy({ configManager: configs, concurrency: limiter }))
  app.get('/x', (c) => c.text('upstream exploded', 500))
  const send = async () => {
    const response = await app.request('/x', { headers: { 'X-Tenant-ID': 'acme' } })
    expect(await response.json()).toEqual({ error: 'upstream failed' })
    return response.status
  }
  expect([await send(), await send()]).toEqual([502, 502])
  expect(await collectUntil(async () => (await limiter.inFlight('acme')) === 0)).toBe(true)
  expect(await send()).toBe(502)
})
