import {
  type ConcurrencyDecision,
  type ConcurrencyLimiter,
  InMemoryConcurrencyLimiter,
  InMemoryConfigManager,
  InMemoryQuotaManager,
  ManualClock,
  TokenBucketRateLimiter,
} from '@tenant/core'
import { beforeEach, describe, expect, it } from 'vitest'
import { expectInvalidOption, failing, okHandler, problem, req } from '../test/helpers'
import {
  type ConcurrencyEvent,
  compose,
  type Next,
  type TenancyOptions,
  tenancy,
  tenantConcurrency,
  tenantResolver,
} from './index'

const START = Date.UTC(2026, 0, 15, 10, 20, 30)

/** A handler whose response body streams until the test ends it. */
function streaming() {
  const ends: (() => void)[] = []
  const next: Next = async () => {
    let controller!: ReadableStreamDefaultController<Uint8Array>
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        controller = c
        c.enqueue(new TextEncoder().encode('chunk;'))
      },
    })
    ends.push(() => {
      controller.enqueue(new TextEncoder().encode('end'))
      controller.close()
    })
    return new Response(body, { status: 200, headers: { 'Content-Type': 'text/plain' } })
  }
  return { next, ends }
}

/** A response whose body streams one chunk and stays open. */
function streamingResponse(): Response {
  return new Response(
    new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('chunk;'))
      },
    }),
  )
}

/** An in-memory limiter that counts the release() calls of each lease it handed out. */
class CountingLimiter extends InMemoryConcurrencyLimiter {
  readonly releases: number[] = []

  override async acquire(tenantId: string, maxInFlight: number): Promise<ConcurrencyDecision> {
    const decision = await super.acquire(tenantId, maxInFlight)
    const lease = decision.lease
    if (lease === undefined) return decision
    const at = this.releases.push(0) - 1
    return {
      ...decision,
      lease: {
        id: lease.id,
        release: () => {
          this.releases[at]!++
          return lease.release()
        },
      },
    }
  }
}

// Lets queued microtasks and stream pulls run (no timers, no sleeping).
const settle = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve()
}

describe('tenantConcurrency', () => {
  let configs: InMemoryConfigManager
  let limiter: InMemoryConcurrencyLimiter
  let clock: ManualClock
  beforeEach(async () => {
    clock = new ManualClock(START)
    configs = new InMemoryConfigManager({ clock })
    limiter = new InMemoryConcurrencyLimiter()
    await configs.setTenantConfig({ id: 'acme', concurrency: { maxInFlight: 2 } })
    await configs.setTenantConfig({ id: 'free' })
  })

  const chain = (options: Partial<TenancyOptions> = {}) =>
    tenancy({ configManager: configs, concurrency: limiter, ...options })

  it('admits up to maxInFlight, then answers 429 tenant_concurrency_limited with Retry-After: 1', async () => {
    const events: ConcurrencyEvent[] = []
    const mw = chain({ hooks: { onConcurrency: (e) => events.push(e) } })
    const { next } = streaming()
    const first = await mw(req('/', { tenant: 'acme' }), next)
    const second = await mw(req('/', { tenant: 'acme' }), next)
    expect([first.status, second.status]).toEqual([200, 200])
    expect(await limiter.inFlight('acme')).toBe(2)
    const third = await mw(req('/', { tenant: 'acme' }), next)
    expect(third.status).toBe(429)
    expect(third.headers.get('Retry-After')).toBe('1')
    expect(third.headers.get('Content-Type')).toBe('application/problem+json')
    expect(await problem(third)).toMatchObject({
      code: 'tenant_concurrency_limited',
      status: 429,
      tenantId: 'acme',
      limit: 2,
      inFlight: 2,
    })
    expect(events.map((e) => [e.allowed, e.status, e.decision?.inFlight, e.limit])).toEqual([
      [true, 200, 1, 2],
      [true, 200, 2, 2],
      [false, 429, 2, 2],
    ])
    expect(events[2]!.code).toBe('tenant_concurrency_limited')
  })

  // A limiter written in JavaScript whose release() answers no promise: the release's then() threw
  // inside the body's pull, and the client's body failed.
  it('sends the body of a lease whose release() answers no promise, and releases it', async () => {
    const plain: ConcurrencyLimiter = {
      acquire: async (tenantId, maxInFlight) => {
        const decision = await limiter.acquire(tenantId, maxInFlight)
        const lease = decision.lease
        if (lease === undefined) return decision
        return { ...decision, lease: { id: lease.id, release: () => void lease.release() as never } }
      },
      inFlight: (tenantId) => limiter.inFlight(tenantId),
      reset: (tenantId) => limiter.reset(tenantId),
    }
    const errors: unknown[] = []
    const mw = chain({ concurrency: plain, hooks: { onError: (error) => errors.push(error) } })
    const response = await mw(req('/', { tenant: 'acme' }), async () => new Response('hello'))
    expect(await response.text()).toBe('hello')
    await settle()
    expect(await limiter.inFlight('acme')).toBe(0)
    expect(errors).toEqual([])
  })

  it('takes one slot for a request through two chains with the same limiter, and one per request', async () => {
    await configs.setTenantConfig({ id: 'acme', concurrency: { maxInFlight: 1 } })
    const seen: number[] = []
    const mw = compose(chain(), tenantConcurrency({ limiter, provider: configs }))
    const response = await mw(req('/', { tenant: 'acme' }), async () => {
      seen.push(await limiter.inFlight('acme'))
      return new Response('ok')
    })
    expect([response.status, seen]).toEqual([200, [1]])
    await response.text()
    await settle()
    expect(await limiter.inFlight('acme')).toBe(0)
    // One Request object run twice at once is two requests: the second is refused, not let through
    // on the first one's slot.
    const shared = req('/', { tenant: 'acme' })
    let release!: () => void
    const held = new Promise<Response>((resolve) => {
      release = () => resolve(new Response('first'))
    })
    const first = mw(shared, () => held)
    await settle()
    expect((await mw(shared, async () => new Response('second'))).status).toBe(429)
    release()
    expect((await first).status).toBe(200)
  })

  it('holds the slot while a streamed body is sent and releases it when the body ends', async () => {
    const { next, ends } = streaming()
    const response = await chain()(req('/', { tenant: 'acme' }), next)
    const reader = response.body!.getReader()
    expect(new TextDecoder().decode((await reader.read()).value)).toBe('chunk;')
    expect(await limiter.inFlight('acme')).toBe(1)
    ends[0]!()
    expect(new TextDecoder().decode((await reader.read()).value)).toBe('end')
    expect(await limiter.inFlight('acme')).toBe(1)
    expect((await reader.read()).done).toBe(true)
    await settle()
    expect(await limiter.inFlight('acme')).toBe(0)
  })

  it('passes the body through unchanged and keeps status and headers', async () => {
    const { next, ends } = streaming()
    const response = await chain()(req('/', { tenant: 'acme' }), next)
    ends[0]!()
    expect(response.headers.get('Content-Type')).toBe('text/plain')
    expect(await response.text()).toBe('chunk;end')
    await settle()
    expect(await limiter.inFlight('acme')).toBe(0)
  })

  it('releases at once for a response without a body', async () => {
    const next: Next = async () => new Response(null, { status: 204 })
    const response = await chain()(req('/', { tenant: 'acme' }), next)
    expect(response.status).toBe(204)
    await settle()
    expect(await limiter.inFlight('acme')).toBe(0)
  })

  it('releases when the client cancels the body mid-stream', async () => {
    const { next } = streaming()
    const response = await chain()(req('/', { tenant: 'acme' }), next)
    const reader = response.body!.getReader()
    await reader.read()
    await reader.cancel('client gone')
    await settle()
    expect(await limiter.inFlight('acme')).toBe(0)
  })

  it('keeps the slot of a client that aborts while the handler runs until the handler answers', async () => {
    // The cap bounds the handlers running: a client leaving early must not let another one in.
    const gates: ((response: Response) => void)[] = []
    let entered!: () => void
    const slow: Next = () =>
      new Promise<Response>((resolve) => {
        gates.push(resolve)
        entered()
      })
    const running = () =>
      new Promise<void>((resolve) => {
        entered = resolve
      })
    const mw = chain()
    const abort = new AbortController()
    let inHandler = running()
    const first = mw(req('/', { tenant: 'acme', signal: abort.signal }), slow)
    await inHandler
    abort.abort()
    await settle()
    expect(await limiter.inFlight('acme')).toBe(1)
    inHandler = running()
    const second = mw(req('/', { tenant: 'acme' }), slow)
    await inHandler
    expect((await mw(req('/', { tenant: 'acme' }), okHandler().next)).status).toBe(429)

    // The aborted request's handler answers: its slot is given back, its body never read.
    gates[0]!(new Response('late'))
    expect((await first).status).toBe(200)
    await settle()
    expect(await limiter.inFlight('acme')).toBe(1)
    gates[1]!(new Response(null, { status: 204 }))
    await second
    await settle()
    expect(await limiter.inFlight('acme')).toBe(0)

    // Already aborted when it arrives: the slot is held while its handler runs all the same.
    const gone = new AbortController()
    gone.abort()
    inHandler = running()
    const orphan = mw(req('/', { tenant: 'acme', signal: gone.signal }), slow)
    await inHandler
    expect(await limiter.inFlight('acme')).toBe(1)
    gates[2]!(streamingResponse())
    await orphan
    await settle()
    expect(await limiter.inFlight('acme')).toBe(0)
  })

  it('releases at once when the client aborts after the answer, mid-stream', async () => {
    const abort = new AbortController()
    const { next } = streaming()
    const response = await chain()(req('/', { tenant: 'acme', signal: abort.signal }), next)
    await response.body!.getReader().read()
    expect(await limiter.inFlight('acme')).toBe(1)
    abort.abort()
    await settle()
    expect(await limiter.inFlight('acme')).toBe(0)
  })

  it('cancels the body of a HEAD and releases once the cancel has gone through: no body goes out', async () => {
    let cancels = 0
    let cancelled!: () => void
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => controller.enqueue(new TextEncoder().encode('x'.repeat(100))),
      // A proxied upstream's cancel: done once its connection is closed.
      cancel: () => {
        cancels++
        return new Promise<void>((resolve) => {
          cancelled = resolve
        })
      },
    })
    const upstream = new Response(body, { status: 203, headers: { 'Content-Type': 'text/plain' } })
    const mw = chain()
    const response = await mw(req('/', { tenant: 'acme', method: 'HEAD' }), async () => upstream)
    // The head as the handler made it, without a body (none goes out for a HEAD).
    expect([response.status, response.headers.get('Content-Type'), response.body]).toEqual([
      203,
      'text/plain',
      null,
    ])
    expect(cancels).toBe(1)
    await settle()
    expect(await limiter.inFlight('acme')).toBe(1)
    cancelled()
    await settle()
    expect(await limiter.inFlight('acme')).toBe(0)
    // A HEAD without a body gives its slot back at the answer.
    await mw(req('/', { tenant: 'acme', method: 'HEAD' }), async () => new Response(null, { status: 204 }))
    await settle()
    expect(await limiter.inFlight('acme')).toBe(0)
    expect((await mw(req('/', { tenant: 'acme' }), okHandler().next)).status).toBe(200)
  })

  it('tells the producer of a HEAD body that nobody reads it, instead of letting it run unseen', async () => {
    await configs.setTenantConfig({ id: 'acme', concurrency: { maxInFlight: 1 } })
    // A push producer writing from the handler (what Hono's streamSSE() does): with nothing
    // reading, its writes would wait forever while the slot was already given back.
    let producing = 0
    let stopped = 0
    const handler: Next = async () => {
      const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>()
      const writer = writable.getWriter()
      producing++
      void (async () => {
        try {
          for (;;) await writer.write(new TextEncoder().encode('data: x\n\n'))
        } catch {
          stopped++
          producing--
        }
      })()
      return new Response(readable, { headers: { 'Content-Type': 'text/event-stream' } })
    }
    const mw = chain()
    for (let i = 0; i < 3; i++) {
      const response = await mw(req('/', { tenant: 'acme', method: 'HEAD' }), handler)
      expect(response.status).toBe(200)
      await settle()
      // Told at once: the producer stopped, and only then is the next HEAD admitted.
      expect([producing, stopped]).toEqual([0, i + 1])
      expect(await limiter.inFlight('acme')).toBe(0)
    }
  })

  it('releases each slot exactly once, whatever way the request ends', async () => {
    await configs.setTenantConfig({
      id: 'acme',
      concurrency: { maxInFlight: 5 },
      rateLimit: { requestsPerSecond: 1, burst: 1 },
      quota: { limits: [{ window: 'minute', requests: 2 }] },
    })
    const counting = new CountingLimiter()
    const broken = {
      consume: failing().call,
      adjust: failing().call,
      peek: failing().call,
    }
    const rateLimit = new TokenBucketRateLimiter(configs, { clock })
    const quota = new InMemoryQuotaManager(configs, { clock })
    const hooks = { onError: () => {} }
    const mw = chain({ concurrency: counting, rateLimit, quota, clock, hooks })
    const send = (next: Next, init: RequestInit = {}) => mw(req('/', { tenant: 'acme', ...init }), next)
    const status = async (sent: Promise<Response>) => (await sent).status
    // Each path starts in a new minute (the quota's window) with the rate limit's token back.
    const paths: Record<string, () => Promise<unknown>> = {
      'body read to its end': async () => expect(await (await send(okHandler().next)).text()).toBe('ok'),
      'rate limit refusal': async () => {
        await (await send(okHandler().next)).text()
        expect(await status(send(okHandler().next))).toBe(429)
      },
      'quota refusal': async () => {
        await (await send(okHandler().next)).text()
        clock.advance(1_000)
        await (await send(okHandler().next)).text()
        clock.advance(1_000)
        const refused = await send(okHandler().next)
        expect((await problem(refused)).code).toBe('tenant_quota_exceeded')
      },
      'quota store failure': async () => {
        const failed = chain({ concurrency: counting, rateLimit, quota: broken, clock, hooks })
        expect(await status(failed(req('/', { tenant: 'acme' }), okHandler().next))).toBe(503)
      },
      'handler throws': async () => {
        await expect(send(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom')
      },
      'body errors': async () => {
        const failingBody = new ReadableStream<Uint8Array>({
          pull: (controller) => controller.error(new Error('upstream reset')),
        })
        const response = await send(async () => new Response(failingBody))
        await expect(response.text()).rejects.toThrow()
      },
      'client cancels mid-stream, then aborts': async () => {
        const abort = new AbortController()
        const response = await send(streaming().next, { signal: abort.signal })
        const reader = response.body!.getReader()
        await reader.read()
        await reader.cancel()
        abort.abort()
      },
      'client aborts in the handler, then it answers': async () => {
        const abort = new AbortController()
        const answered = async () => {
          abort.abort()
          return new Response('late')
        }
        expect(await (await send(answered, { signal: abort.signal })).text()).toBe('late')
      },
      'stream ends, then the client aborts': async () => {
        const abort = new AbortController()
        const { next, ends } = streaming()
        const response = await send(next, { signal: abort.signal })
        ends[0]!()
        expect(await response.text()).toBe('chunk;end')
        abort.abort()
      },
      'HEAD, body read after all': async () => {
        // The stage cancelled it (no body goes out for a HEAD): a reader finds it empty.
        expect(await (await send(okHandler().next, { method: 'HEAD' })).text()).toBe('')
      },
    }
    for (const [path, run] of Object.entries(paths)) {
      clock.advance(60_000)
      const before = counting.releases.length
      await run()
      await settle()
      expect(counting.releases.length, path).toBeGreaterThan(before)
      expect(counting.releases.slice(before), path).toEqual(counting.releases.slice(before).map(() => 1))
      expect(await counting.inFlight('acme'), path).toBe(0)
    }
  })

  it('releases when the handler throws', async () => {
    const boom = new Error('handler failed')
    const next: Next = async () => {
      throw boom
    }
    await expect(chain()(req('/', { tenant: 'acme' }), next)).rejects.toBe(boom)
    await settle()
    expect(await limiter.inFlight('acme')).toBe(0)
  })

  it('releases when next() throws synchronously, and serves a next() that answers a Response', async () => {
    await configs.setTenantConfig({ id: 'acme', concurrency: { maxInFlight: 1 } })
    const boom = new Error('thrown before answering')
    const throwing = (() => {
      throw boom
    }) as Next
    const alone = compose(tenantResolver({ configManager: configs }), (request, next) =>
      tenantConcurrency({ limiter, provider: configs })(request, (handed) => next(handed)),
    )
    for (const mw of [chain(), compose(chain())]) {
      await expect(mw(req('/', { tenant: 'acme' }), throwing)).rejects.toBe(boom)
      await settle()
      expect(await limiter.inFlight('acme')).toBe(0)
    }
    // The stage on its own, called with a next() that throws.
    const direct = compose(tenantResolver({ configManager: configs }), (request) =>
      tenantConcurrency({ limiter, provider: configs })(request, throwing),
    )
    await expect(direct(req('/', { tenant: 'acme' }), okHandler().next)).rejects.toBe(boom)
    await settle()
    expect(await limiter.inFlight('acme')).toBe(0)
    expect(await (await alone(req('/', { tenant: 'acme' }), okHandler().next)).text()).toBe('ok')
    await settle()
    // A next() that answers a Response rather than a promise: served, and the slot is held until
    // its body has been read, as for any answer.
    const sync = (() => new Response('sync')) as unknown as Next
    const served = await chain()(req('/', { tenant: 'acme' }), sync)
    expect(await limiter.inFlight('acme')).toBe(1)
    expect(await served.text()).toBe('sync')
    await settle()
    expect(await limiter.inFlight('acme')).toBe(0)
  })

  it('releases when a later stage (rate limit, quota) refuses the request', async () => {
    await configs.setTenantConfig({
      id: 'acme',
      concurrency: { maxInFlight: 1 },
      rateLimit: { requestsPerSecond: 1, burst: 1 },
      quota: { limits: [{ window: 'minute', requests: 2 }] },
    })
    const rateLimit = new TokenBucketRateLimiter(configs, { clock })
    const quota = new InMemoryQuotaManager(configs, { clock })
    const mw = chain({ rateLimit, quota, clock })
    // The body is read, as a client would: that ends the request and frees its slot.
    const admitted = async () => {
      const response = await mw(req('/', { tenant: 'acme' }), okHandler().next)
      expect(await response.text()).toBe('ok')
      await settle()
      return response.status
    }
    expect(await admitted()).toBe(200)
    const limited = await mw(req('/', { tenant: 'acme' }), okHandler().next)
    expect((await problem(limited)).code).toBe('tenant_rate_limited')
    await settle()
    expect(await limiter.inFlight('acme')).toBe(0)
    clock.advance(1_000)
    expect(await admitted()).toBe(200)
    clock.advance(1_000)
    const exhausted = await mw(req('/', { tenant: 'acme' }), okHandler().next)
    expect((await problem(exhausted)).code).toBe('tenant_quota_exceeded')
    await settle()
    expect(await limiter.inFlight('acme')).toBe(0)
  })

  it('keeps the slot while only a finisher (actualTokens reading a clone) has read the body', async () => {
    await configs.setTenantConfig({
      id: 'acme',
      concurrency: { maxInFlight: 1 },
      quota: { limits: [{ window: 'minute', tokens: 1000 }] },
    })
    const quota = {
      manager: new InMemoryQuotaManager(configs, { clock }),
      actualTokens: async (response: Response) => Number(await response.clone().text()),
    }
    const mw = chain({ quota, clock })
    const response = await mw(req('/', { tenant: 'acme' }), async () => new Response('7'))
    await settle()
    expect(await limiter.inFlight('acme')).toBe(1)
    expect(await response.text()).toBe('7')
    await settle()
    expect(await limiter.inFlight('acme')).toBe(0)
  })

  it('does not count tenants without a cap', async () => {
    const { next } = streaming()
    for (let i = 0; i < 5; i++) expect((await chain()(req('/', { tenant: 'free' }), next)).status).toBe(200)
    expect(await limiter.inFlight('free')).toBe(0)
  })

  it('reads caps from its provider when the resolver read another store', async () => {
    const other = new InMemoryConfigManager()
    await other.setTenantConfig({ id: 'acme' })
    const mw = compose(
      tenantResolver({ configManager: other }),
      tenantConcurrency({ limiter, provider: configs }),
    )
    const { next } = streaming()
    await mw(req('/', { tenant: 'acme' }), next)
    await mw(req('/', { tenant: 'acme' }), next)
    expect((await mw(req('/', { tenant: 'acme' }), next)).status).toBe(429)
  })

  it('answers 503 when the limiter fails, or passes under failOpen', async () => {
    const broken: ConcurrencyLimiter = {
      acquire: failing().call,
      inFlight: async () => 0,
      reset: async () => undefined,
    }
    const errors: unknown[] = []
    const hooks = { onError: (e: unknown) => errors.push(e) }
    const closed = await chain({ concurrency: broken, hooks })(req('/', { tenant: 'acme' }), okHandler().next)
    expect(closed.status).toBe(503)
    expect((await problem(closed)).code).toBe('tenant_backend_unavailable')
    const open = await chain({ concurrency: { limiter: broken, failOpen: true }, hooks })(
      req('/', { tenant: 'acme' }),
      okHandler().next,
    )
    expect(open.status).toBe(200)
    expect(errors).toHaveLength(2)
  })

  it('uses onRejected for the response and still adds Retry-After', async () => {
    const mw = chain({
      concurrency: {
        limiter,
        onRejected: (_request, decision) =>
          new Response(`busy ${decision.inFlight}/${decision.limit}`, { status: 503 }),
      },
    })
    const { next } = streaming()
    await mw(req('/', { tenant: 'acme' }), next)
    await mw(req('/', { tenant: 'acme' }), next)
    const refused = await mw(req('/', { tenant: 'acme' }), next)
    expect(refused.status).toBe(503)
    expect(await refused.text()).toBe('busy 2/2')
    expect(refused.headers.get('Retry-After')).toBe('1')
  })

  it('validates its options when built', () => {
    expectInvalidOption(
      () => tenantConcurrency({ limiter: {} as ConcurrencyLimiter }),
      'tenantConcurrency.limiter',
      /acquire/,
    )
    expectInvalidOption(
      () => tenantConcurrency({ limiter, provider: {} as never }),
      'tenantConcurrency.provider',
      /concurrencyConfig/,
    )
    expectInvalidOption(
      () => tenantConcurrency({ limiter, onRejected: 1 as never }),
      'tenantConcurrency.onRejected',
      /function/,
    )
  })
})
