import {
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

  it('releases when the client aborts (request.signal), before or during the handler', async () => {
    const abort = new AbortController()
    let entered!: () => void
    const inHandler = new Promise<void>((resolve) => {
      entered = resolve
    })
    const never: Next = () => {
      entered()
      return new Promise<Response>(() => {})
    }
    void chain()(req('/', { tenant: 'acme', signal: abort.signal }), never)
    await inHandler
    expect(await limiter.inFlight('acme')).toBe(1)
    abort.abort()
    await settle()
    expect(await limiter.inFlight('acme')).toBe(0)

    // Already aborted when it arrives: admitted and released at once.
    const gone = new AbortController()
    gone.abort()
    await chain()(req('/', { tenant: 'acme', signal: gone.signal }), streaming().next)
    await settle()
    expect(await limiter.inFlight('acme')).toBe(0)
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
