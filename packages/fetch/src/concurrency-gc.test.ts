import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { InMemoryConcurrencyLimiter, InMemoryConfigManager } from '@tenant/core'
import { beforeEach, describe, expect, it } from 'vitest'
import { req } from '../test/helpers'
import { type Next, tenancy } from './index'

// The collector, exposed in this worker: a context made after the flag is set has `gc`.
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

/**
 * Collects until `done()` holds, at most `rounds` times; a FinalizationRegistry callback runs in a
 * task after the collection, hence the turn of the event loop (a yield, not a wait for a time).
 */
async function collectUntil(done: () => Promise<boolean>, rounds = 50): Promise<boolean> {
  for (let i = 0; i < rounds; i++) {
    if (await done()) return true
    gc()
    await new Promise((resolve) => setImmediate(resolve))
  }
  return done()
}

describe('tenantConcurrency: a wrapped body dropped unread', () => {
  let configs: InMemoryConfigManager
  let limiter: InMemoryConcurrencyLimiter
  beforeEach(async () => {
    configs = new InMemoryConfigManager()
    limiter = new InMemoryConcurrencyLimiter()
    await configs.setTenantConfig({ id: 'acme', concurrency: { maxInFlight: 2 } })
  })

  // In a function of its own, so that nothing on the test's stack keeps the response.
  async function dropUnread(next: Next): Promise<number> {
    const response = await tenancy({ configManager: configs, concurrency: limiter })(
      req('/', { tenant: 'acme' }),
      next,
    )
    return response.status
  }

  it('frees its slot once the runtime has collected the body (FinalizationRegistry)', async () => {
    expect(await dropUnread(async () => new Response('x'.repeat(1000)))).toBe(200)
    expect(
      await dropUnread(
        async () =>
          new Response(
            new ReadableStream<Uint8Array>({
              start: (controller) => controller.enqueue(new Uint8Array(8)),
            }),
          ),
      ),
    ).toBe(200)
    expect(await limiter.inFlight('acme')).toBe(2)
    expect(await collectUntil(async () => (await limiter.inFlight('acme')) === 0)).toBe(true)
  })

  it('never frees the slot of a body still being read, however often the collector runs', async () => {
    let controller!: ReadableStreamDefaultController<Uint8Array>
    const upstream = new ReadableStream<Uint8Array>({
      start(c) {
        controller = c
        c.enqueue(new TextEncoder().encode('a'))
      },
    })
    const response = await tenancy({ configManager: configs, concurrency: limiter })(
      req('/', { tenant: 'acme' }),
      async () => new Response(upstream),
    )
    // Only the reader is kept, as a server keeps it while it sends the body.
    const reader = response.body!.getReader()
    await reader.read()
    const pending = reader.read()
    expect(await collectUntil(async () => false, 10)).toBe(false)
    expect(await limiter.inFlight('acme')).toBe(1)
    controller.enqueue(new TextEncoder().encode('b'))
    controller.close()
    expect(new TextDecoder().decode((await pending).value)).toBe('b')
    expect((await reader.read()).done).toBe(true)
    await new Promise((resolve) => setImmediate(resolve))
    expect(await limiter.inFlight('acme')).toBe(0)
  })
})
