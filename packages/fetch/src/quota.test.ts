import {
  InMemoryConfigManager,
  InMemoryQuotaManager,
  ManualClock,
  type QuotaManager,
  SlidingWindowQuotaManager,
} from '@tenant/core'
import { beforeEach, describe, expect, it } from 'vitest'
import { expectInvalidOption, failing, okHandler, problem, recorder, req } from '../test/helpers'
import {
  type AdjustEvent,
  compose,
  type QuotaOptions,
  requestTokenCount,
  tenantQuota,
  tenantResolver,
} from './index'

// 30 s into a minute, so the minute window resets in 30 s.
const START = Date.UTC(2026, 0, 15, 10, 20, 30)

describe('tenantQuota', () => {
  let clock: ManualClock
  let configs: InMemoryConfigManager
  let manager: InMemoryQuotaManager
  beforeEach(async () => {
    clock = new ManualClock(START)
    configs = new InMemoryConfigManager({ clock })
    manager = new InMemoryQuotaManager(configs, { clock })
    await configs.setTenantConfig({ id: 'free' })
    await configs.setTenantConfig({
      id: 'acme',
      quota: {
        limits: [
          { window: 'minute', requests: 2, tokens: 1000 },
          { window: 'day', tokens: 5000 },
        ],
      },
    })
  })

  const chain = (options: QuotaOptions = {}) =>
    compose(tenantResolver(), tenantQuota({ manager, clock, ...options }))
  const send = (options: QuotaOptions, init: RequestInit & { tenant?: string } = {}) =>
    chain(options)(req('/v1/chat', { tenant: 'acme', ...init }), okHandler().next)

  it('lets an unlimited tenant through without quota headers', async () => {
    for (let i = 0; i < 5; i++) {
      const response = await chain()(
        req('/', { tenant: 'free', headers: { 'X-Token-Count': '100000' } }),
        okHandler().next,
      )
      expect(response.status).toBe(200)
      expect(response.headers.get('RateLimit')).toBeNull()
      expect(response.headers.get('RateLimit-Policy')).toBeNull()
      expect(response.headers.get('X-Quota-Remaining-Requests')).toBeNull()
      expect(response.headers.get('X-Quota-Remaining-Tokens')).toBeNull()
    }
  })

  it('puts the IETF RateLimit fields and remaining headers on every allowed response', async () => {
    const response = await send({}, { headers: { 'X-Token-Count': '300' } })
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('ok')
    expect(response.headers.get('RateLimit-Policy')).toBe(
      '"minute";q=2;w=60, "minute-tokens";q=1000;w=60;qu="tokens", "day-tokens";q=5000;w=86400;qu="tokens"',
    )
    expect(response.headers.get('RateLimit')).toBe(
      '"minute";r=1;t=30, "minute-tokens";r=700;t=30, "day-tokens";r=4700;t=49170',
    )
    expect(response.headers.get('X-Quota-Remaining-Requests')).toBe('1')
    expect(response.headers.get('X-Quota-Remaining-Tokens')).toBe('700')
  })

  it('refuses with 429, Retry-After rounded up to whole seconds, and charges nothing', async () => {
    const { hooks, events } = recorder()
    expect((await send({})).status).toBe(200)
    expect((await send({})).status).toBe(200)
    clock.advance(500) // 29.5 s left in the minute
    const denied = await send({ hooks })
    expect(denied.status).toBe(429)
    expect(denied.headers.get('Retry-After')).toBe('30')
    expect(denied.headers.get('RateLimit')).toContain('"minute";r=0;t=30')
    expect(denied.headers.get('X-Quota-Remaining-Requests')).toBe('0')
    const body = await problem(denied)
    expect(body).toMatchObject({
      code: 'tenant_quota_exceeded',
      status: 429,
      tenantId: 'acme',
      title: 'Tenant quota exceeded',
    })
    expect(events.find((e) => e.hook === 'onQuota')!.event).toMatchObject({
      allowed: false,
      status: 429,
      code: 'tenant_quota_exceeded',
      cost: { requests: 1, tokens: 0 },
      decision: { allowed: false },
    })
    // Nothing was charged by the denial: the day's tokens are untouched.
    const usage = await manager.peek('acme')
    expect(usage.windows.find((w) => w.window === 'minute')!.used).toEqual({ requests: 2, tokens: 0 })
    clock.advance(29_500)
    expect((await send({})).status).toBe(200)
  })

  it('says Retry-After: 1 when less than a second is left', async () => {
    await send({})
    await send({})
    clock.advance(29_999)
    expect((await send({})).headers.get('Retry-After')).toBe('1')
  })

  it('charges the X-Token-Count header and refuses a request whose tokens do not fit', async () => {
    expect((await send({}, { headers: { 'X-Token-Count': '900' } })).status).toBe(200)
    const denied = await send({}, { headers: { 'X-Token-Count': '200' } })
    expect(denied.status).toBe(429)
    expect(denied.headers.get('X-Quota-Remaining-Tokens')).toBe('100')
  })

  it.each([['-5'], ['1.5'], ['abc'], [''], ['1e3'], ['0x10'], ['99999999999999999999']])(
    'refuses X-Token-Count %j with 400 invalid_cost and charges nothing',
    async (value) => {
      const { hooks, events } = recorder()
      const response = await send({ hooks }, { headers: { 'X-Token-Count': value } })
      expect(response.status).toBe(400)
      expect((await problem(response)).code).toBe('invalid_cost')
      expect(events.find((e) => e.hook === 'onQuota')!.event).toMatchObject({
        allowed: false,
        status: 400,
        code: 'invalid_cost',
      })
      expect((await manager.peek('acme')).windows.every((w) => w.used.requests === 0)).toBe(true)
    },
  )

  it('reads a custom token header', async () => {
    const response = await send(
      { tokenHeader: 'X-Prompt-Tokens' },
      { headers: { 'X-Prompt-Tokens': '250', 'X-Token-Count': '999' } },
    )
    expect(response.headers.get('X-Quota-Remaining-Tokens')).toBe('750')
  })

  it('charges what the token estimator says', async () => {
    const tokenEstimator = async (request: Request) => (await request.clone().text()).length
    const response = await send({ tokenEstimator }, { method: 'POST', body: 'x'.repeat(123) })
    expect(response.status).toBe(200)
    expect(response.headers.get('X-Quota-Remaining-Tokens')).toBe(String(1000 - 123))
  })

  it.each([[-1], [2.5], [Number.NaN], [Number.POSITIVE_INFINITY], ['12' as unknown as number]])(
    'refuses an estimate of %s with 400 invalid_cost',
    async (estimate) => {
      const response = await send({ tokenEstimator: () => estimate })
      expect(response.status).toBe(400)
      expect((await problem(response)).code).toBe('invalid_cost')
    },
  )

  it('requestTokenCount reads the header as the stage does, for estimators that combine it with their own', async () => {
    const tokenEstimator = async (request: Request) =>
      Math.max(requestTokenCount(request), (await request.clone().text()).length)
    const larger = await send(
      { tokenEstimator },
      { method: 'POST', body: 'x'.repeat(10), headers: { 'X-Token-Count': '300' } },
    )
    expect(larger.headers.get('X-Quota-Remaining-Tokens')).toBe('700')
    for (const value of ['-5', '1.5', '1e3', '0x10', '', '99999999999999999999']) {
      const response = await send(
        { tokenEstimator },
        { method: 'POST', body: 'x', headers: { 'X-Token-Count': value } },
      )
      expect(response.status).toBe(400)
      expect((await problem(response)).code).toBe('invalid_cost')
    }
    expect(requestTokenCount(new Request('http://x/'))).toBe(0)
    expect(requestTokenCount(new Request('http://x/', { headers: { 'X-Prompt': '42' } }), 'X-Prompt')).toBe(
      42,
    )
    expect(() => requestTokenCount(new Request('http://x/'), 'bad header')).toThrow(
      expect.objectContaining({ code: 'tenant_invalid_config' }),
    )
  })

  it('sends the onRejected response, with Retry-After and RateLimit fields added', async () => {
    const { hooks, events } = recorder()
    await send({})
    await send({})
    const onRejected = (_request: Request, decision: { retryAfterMs: number; tenantId: string }) =>
      Response.json({ wait: decision.retryAfterMs, tenant: decision.tenantId }, { status: 402 })
    const response = await send({ onRejected, hooks })
    expect(response.status).toBe(402)
    expect(await response.json()).toEqual({ wait: 30_000, tenant: 'acme' })
    expect(response.headers.get('Retry-After')).toBe('30')
    expect(response.headers.get('RateLimit')).toContain('"minute";r=0')
    expect(events.find((e) => e.hook === 'onQuota')!.event).toMatchObject({ allowed: false, status: 402 })
  })

  it('keeps headers an onRejected response set itself', async () => {
    await send({})
    await send({})
    const response = await send({
      onRejected: () => new Response('later', { status: 429, headers: { 'Retry-After': '3600' } }),
    })
    expect(response.headers.get('Retry-After')).toBe('3600')
  })

  it('fires onQuota with cost and decision for every request', async () => {
    const { hooks, events } = recorder()
    await send({ hooks }, { headers: { 'X-Token-Count': '10' } })
    const event = events.find((e) => e.hook === 'onQuota')!.event
    expect(event).toMatchObject({
      allowed: true,
      status: 200,
      tenantId: 'acme',
      cost: { requests: 1, tokens: 10 },
      decision: { allowed: true, remaining: { requests: 1, tokens: 990 } },
    })
    expect(event.code).toBeUndefined()
  })

  it('is a pass-through without a manager', async () => {
    const { calls, next } = okHandler()
    const response = await compose(tenantResolver(), tenantQuota())(
      req('/', { tenant: 'acme', headers: { 'X-Token-Count': 'junk' } }),
      next,
    )
    expect(response.status).toBe(200)
    expect(calls).toHaveLength(1)
  })

  it('answers 403 tenant_unknown for a tenant the manager does not know', async () => {
    const response = await chain()(req('/', { tenant: 'nobody' }), okHandler().next)
    expect(response.status).toBe(403)
    expect((await problem(response)).code).toBe('tenant_unknown')
  })

  it('answers 503 when the store fails, never 429, and passes under failOpen', async () => {
    const dead = failing("READONLY You can't write against a read only replica.")
    const broken: QuotaManager = { consume: dead.call, adjust: dead.call, peek: dead.call }
    const closed = recorder()
    const response = await send({ manager: broken, hooks: closed.hooks })
    expect(response.status).toBe(503)
    expect(response.headers.get('Retry-After')).toBeNull()
    expect((await problem(response)).code).toBe('tenant_backend_unavailable')
    expect(closed.events.find((e) => e.hook === 'onQuota')!.event).toMatchObject({
      allowed: false,
      status: 503,
      error: dead.error,
    })
    expect(closed.errors.map((e) => e.error)).toEqual([dead.error])

    const open = recorder()
    const passed = await send({ manager: broken, failOpen: true, hooks: open.hooks })
    expect(passed.status).toBe(200)
    expect(passed.headers.get('RateLimit')).toBeNull()
    expect(open.events.find((e) => e.hook === 'onQuota')!.event).toMatchObject({
      allowed: true,
      failedOpen: true,
      error: dead.error,
    })
  })

  describe('actualTokens', () => {
    const usageHeader = (response: Response) => {
      const value = response.headers.get('X-Usage-Tokens')
      return value === null ? undefined : Number(value)
    }
    const upstream = (tokens: string) => async () =>
      new Response('answer', { headers: { 'X-Usage-Tokens': tokens } })

    it('charges the difference once the upstream said what it used, and reports it', async () => {
      const { hooks, events } = recorder()
      const quota = chain({ actualTokens: usageHeader, hooks })
      const response = await quota(
        req('/', { tenant: 'acme', headers: { 'X-Token-Count': '100' } }),
        upstream('350'),
      )
      expect(response.status).toBe(200)
      expect(response.headers.get('X-Quota-Remaining-Tokens')).toBe('650')
      expect(response.headers.get('RateLimit')).toContain('"minute-tokens";r=650')
      const minute = (await manager.peek('acme')).windows.find((w) => w.window === 'minute')!
      expect(minute.used).toEqual({ requests: 1, tokens: 350 })
      expect(events.find((e) => e.hook === 'onAdjust')!.event).toMatchObject({
        tenantId: 'acme',
        estimatedTokens: 100,
        actualTokens: 350,
        usage: { tenantId: 'acme' },
      })
    })

    // A Clock may answer fractions of a ms (the decision carries it as decidedAt, which adjust
    // refused), and a hook may rewrite the decision it is handed (for a log line): neither may lose
    // the refund, nor move it to other windows.
    it('refunds an over-estimate under a clock with fractions, whatever a hook did to the decision', async () => {
      clock.set(START + 0.25)
      const onQuota = (event: { decision?: { decidedAt?: number } }) => {
        if (event.decision) event.decision.decidedAt = Number.NaN
      }
      const { hooks, errors } = recorder()
      const quota = chain({ actualTokens: usageHeader, hooks: [hooks, { onQuota }] })
      await quota(req('/', { tenant: 'acme', headers: { 'X-Token-Count': '800' } }), upstream('50'))
      expect(errors).toEqual([])
      const minute = (await manager.peek('acme')).windows.find((w) => w.window === 'minute')!
      expect(minute.used).toEqual({ requests: 1, tokens: 50 })
    })

    it('refunds an over-estimate', async () => {
      const quota = chain({ actualTokens: usageHeader })
      const response = await quota(
        req('/', { tenant: 'acme', headers: { 'X-Token-Count': '800' } }),
        upstream('50'),
      )
      expect(response.headers.get('X-Quota-Remaining-Tokens')).toBe('950')
    })

    it('keeps the estimate when actualTokens returns undefined or the same number', async () => {
      const { hooks, events } = recorder()
      const quota = chain({ actualTokens: usageHeader, hooks })
      await quota(
        req('/', { tenant: 'acme', headers: { 'X-Token-Count': '100' } }),
        async () => new Response('no usage'),
      )
      await quota(req('/', { tenant: 'acme', headers: { 'X-Token-Count': '100' } }), upstream('100'))
      expect(events.filter((e) => e.hook === 'onAdjust')).toEqual([])
      const minute = (await manager.peek('acme')).windows.find((w) => w.window === 'minute')!
      expect(minute.used.tokens).toBe(200)
    })

    it('settles from the cost it charged, whatever an onQuota hook does to the event', async () => {
      const { hooks, errors } = recorder()
      const seen: unknown[] = []
      const meddling = {
        onQuota: (event: { cost?: { tokens: number } }) => {
          seen.push(event.cost)
          // Throws (the cost is frozen), and the throw goes to onError like any failing hook.
          event.cost!.tokens = 5000
        },
      }
      const quota = chain({ actualTokens: usageHeader, hooks: [hooks, meddling] })
      const response = await quota(
        req('/', { tenant: 'acme', headers: { 'X-Token-Count': '1000' } }),
        upstream('10'),
      )
      expect(response.status).toBe(200)
      expect(Object.isFrozen(seen[0])).toBe(true)
      expect(seen[0]).toEqual({ requests: 1, tokens: 1000 })
      const minute = (await manager.peek('acme')).windows.find((w) => w.window === 'minute')!
      // Charged 1000, settled at 10: a refund of 990, not 4990 off a 5000 estimate.
      expect(minute.used).toEqual({ requests: 1, tokens: 10 })
      expect(response.headers.get('X-Quota-Remaining-Tokens')).toBe('990')
      expect(errors.map((e) => [e.info.hook, e.error instanceof TypeError])).toEqual([['onQuota', true]])
    })

    it('sends the adjusted headers whatever an onAdjust hook does to the usage it gets', async () => {
      const { hooks, errors } = recorder()
      const vandals = {
        raise: (event: AdjustEvent) => {
          for (const window of event.usage!.windows) {
            ;(window.remaining as { tokens?: number }).tokens = 999_999
            ;(window.remaining as { requests?: number }).requests = 999_999
          }
        },
        erase: (event: AdjustEvent) => {
          ;(event.usage as { windows?: unknown }).windows = undefined
        },
      }
      for (const [name, onAdjust] of Object.entries(vandals)) {
        clock.advance(86_400_000)
        const seen: AdjustEvent[] = []
        const quota = chain({
          actualTokens: usageHeader,
          hooks: [hooks, { onAdjust }, { onAdjust: (e) => seen.push(e) }],
        })
        const response = await quota(
          req('/', { tenant: 'acme', headers: { 'X-Token-Count': '100' } }),
          upstream('350'),
        )
        // Served, with the headers of the adjusted usage; the hook's attempt is its own failure.
        expect(response.status, name).toBe(200)
        expect(response.headers.get('X-Quota-Remaining-Tokens'), name).toBe('650')
        expect(response.headers.get('X-Quota-Remaining-Requests'), name).toBe('1')
        expect(response.headers.get('RateLimit'), name).toContain('"minute-tokens";r=650')
        expect(errors.at(-1), name).toMatchObject({ info: { hook: 'onAdjust', stage: 'quota' } })
        expect(errors.at(-1)!.error, name).toBeInstanceOf(TypeError)
        // The next hook sees the usage as the store answered it.
        const minute = seen[0]!.usage!.windows.find((w) => w.window === 'minute')!
        expect(minute.remaining, name).toEqual({ requests: 1, tokens: 650 })
        expect((await manager.peek('acme')).windows.find((w) => w.window === 'minute')!.used, name).toEqual({
          requests: 1,
          tokens: 350,
        })
      }
    })

    it('reports an invalid actual count and a failing adjust, and still returns the response', async () => {
      const { hooks, events, errors } = recorder()
      const bad = await chain({ actualTokens: () => -3, hooks })(req('/', { tenant: 'acme' }), upstream('0'))
      expect(bad.status).toBe(200)
      expect(await bad.text()).toBe('answer')
      expect(String(errors[0]!.error)).toMatch(/actualTokens\(\) must be a whole number/)
      expect(events.find((e) => e.hook === 'onAdjust')!.event.actualTokens).toBeUndefined()

      const dead = failing()
      const flaky: QuotaManager = {
        consume: (id, cost) => manager.consume(id, cost),
        adjust: dead.call,
        peek: dead.call,
      }
      const response = await chain({ manager: flaky, actualTokens: () => 500, hooks })(
        req('/', { tenant: 'acme' }),
        upstream('0'),
      )
      expect(response.status).toBe(200)
      // The headers show the state the request was admitted with.
      expect(response.headers.get('X-Quota-Remaining-Tokens')).toBe('1000')
      expect(errors.at(-1)!.error).toBe(dead.error)
    })
  })

  it('works the same with the sliding window manager', async () => {
    const sliding = new SlidingWindowQuotaManager(configs, { clock })
    const quota = compose(tenantResolver(), tenantQuota({ manager: sliding, clock }))
    expect((await quota(req('/', { tenant: 'acme' }), okHandler().next)).status).toBe(200)
    expect((await quota(req('/', { tenant: 'acme' }), okHandler().next)).status).toBe(200)
    const denied = await quota(req('/', { tenant: 'acme' }), okHandler().next)
    expect(denied.status).toBe(429)
    expect(Number(denied.headers.get('Retry-After'))).toBeGreaterThanOrEqual(1)
    expect(denied.headers.get('RateLimit-Policy')).toContain('"minute";q=2;w=60')
  })

  // The t of an exhausted sliding window is the wait until it admits again: what Retry-After says,
  // not the time until every bucket has aged out.
  it("gives an exhausted sliding window's RateLimit t as the time until the next admission", async () => {
    const sliding = new SlidingWindowQuotaManager(configs, { clock })
    const quota = compose(tenantResolver(), tenantQuota({ manager: sliding, clock }))
    const send = () => quota(req('/', { tenant: 'acme' }), okHandler().next)
    expect((await send()).status).toBe(200)
    clock.advance(20_000)
    const filling = await send()
    clock.advance(1_000)
    const denied = await send()
    expect(denied.status).toBe(429)
    const retryAfter = Number(denied.headers.get('Retry-After'))
    expect(denied.headers.get('RateLimit')).toContain(`"minute";r=0;t=${retryAfter}`)
    // The request that filled the window already said when the next one fits.
    expect(filling.headers.get('RateLimit')).toContain(`"minute";r=0;t=${retryAfter + 1}`)
    clock.advance(retryAfter * 1000 - 1)
    expect((await send()).status).toBe(429)
    clock.advance(1)
    expect((await send()).status).toBe(200)
  })

  it('rejects bad options when created', () => {
    expectInvalidOption(() => tenantQuota({ manager: {} as never }), 'tenantQuota.manager', /consume/)
    expectInvalidOption(
      () => tenantQuota({ manager: { consume: manager.consume } as never, actualTokens: () => 1 }),
      'tenantQuota.manager',
      /adjust/,
    )
    expectInvalidOption(
      () => tenantQuota({ manager, tokenHeader: 'a b' }),
      'tenantQuota.tokenHeader',
      /HTTP header name/,
    )
    expectInvalidOption(() => tenantQuota({ manager, clock: {} as never }), 'tenantQuota.clock', /now/)
  })
})
