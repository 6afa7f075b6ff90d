import { InMemoryConfigManager, ManualClock, type RateLimiter, TokenBucketRateLimiter } from '@tenant/core'
import { beforeEach, describe, expect, it } from 'vitest'
import { expectInvalidOption, failing, okHandler, problem, recorder, req } from '../test/helpers'
import { compose, type RateLimitOptions, tenantRateLimit, tenantResolver } from './index'

describe('tenantRateLimit', () => {
  let clock: ManualClock
  let configs: InMemoryConfigManager
  let limiter: TokenBucketRateLimiter
  beforeEach(async () => {
    clock = new ManualClock(Date.UTC(2026, 0, 1))
    configs = new InMemoryConfigManager({ clock })
    limiter = new TokenBucketRateLimiter(configs, { clock })
    await configs.setTenantConfig({ id: 'acme', rateLimit: { requestsPerSecond: 0.5, burst: 2 } })
    await configs.setTenantConfig({ id: 'free' })
  })

  const send = (options: Partial<RateLimitOptions> = {}, tenant = 'acme') =>
    compose(tenantResolver(), tenantRateLimit({ limiter, clock, ...options }))(
      req('/', { tenant }),
      okHandler().next,
    )

  it('admits the burst, then answers 429 tenant_rate_limited with Retry-After', async () => {
    const first = await send()
    expect(first.status).toBe(200)
    expect(first.headers.get('RateLimit-Policy')).toBe('"rate";q=2')
    expect(first.headers.get('RateLimit')).toBe('"rate";r=1;t=2')
    expect((await send()).headers.get('RateLimit')).toBe('"rate";r=0;t=4')
    const { hooks, events } = recorder()
    const limited = await send({ hooks })
    expect(limited.status).toBe(429)
    // One token at 0.5/s takes 2 s.
    expect(limited.headers.get('Retry-After')).toBe('2')
    expect(limited.headers.get('RateLimit')).toBe('"rate";r=0;t=4')
    expect(await problem(limited)).toMatchObject({
      code: 'tenant_rate_limited',
      tenantId: 'acme',
      title: 'Tenant rate limit exceeded',
    })
    expect(events.find((e) => e.hook === 'onRateLimit')!.event).toMatchObject({
      allowed: false,
      status: 429,
      code: 'tenant_rate_limited',
      decision: { allowed: false, limit: 2, remaining: 0 },
    })
    clock.advance(2000)
    expect((await send()).status).toBe(200)
  })

  it('rounds a sub-second wait up to Retry-After: 1', async () => {
    await configs.setTenantConfig({ id: 'acme', rateLimit: { requestsPerSecond: 4, burst: 1 } })
    await send()
    expect((await send()).headers.get('Retry-After')).toBe('1')
  })

  it('sends no RateLimit fields for a tenant without a rate limit', async () => {
    const { hooks, events } = recorder()
    const response = await send({ hooks }, 'free')
    expect(response.status).toBe(200)
    expect(response.headers.get('RateLimit')).toBeNull()
    expect(events.find((e) => e.hook === 'onRateLimit')!.event).toMatchObject({ allowed: true, status: 200 })
  })

  it('sends the onRejected response with the headers added', async () => {
    await send()
    await send()
    const response = await send({
      onRejected: (_request, decision) => new Response(`slow down ${decision.tenantId}`, { status: 503 }),
    })
    expect(response.status).toBe(503)
    expect(await response.text()).toBe('slow down acme')
    expect(response.headers.get('Retry-After')).toBe('2')
    expect(response.headers.get('RateLimit')).toBe('"rate";r=0;t=4')
  })

  it('answers 503 when the limiter fails, never 429, and passes under failOpen', async () => {
    const dead = failing()
    const broken: RateLimiter = { consume: dead.call }
    const response = await send({ limiter: broken, hooks: recorder().hooks })
    expect(response.status).toBe(503)
    expect((await problem(response)).code).toBe('tenant_backend_unavailable')
    const { hooks, events } = recorder()
    expect((await send({ limiter: broken, failOpen: true, hooks })).status).toBe(200)
    expect(events.find((e) => e.hook === 'onRateLimit')!.event).toMatchObject({
      allowed: true,
      failedOpen: true,
    })
  })

  it('is a pass-through without a limiter', async () => {
    const { calls, next } = okHandler()
    expect((await tenantRateLimit()(req('/'), next)).status).toBe(200)
    expect(calls).toHaveLength(1)
  })

  it('rejects bad options when created', () => {
    expectInvalidOption(() => tenantRateLimit({ limiter: {} as never }), 'tenantRateLimit.limiter', /consume/)
    expectInvalidOption(
      () => tenantRateLimit({ limiter, onRejected: 1 as never }),
      'tenantRateLimit.onRejected',
      /function/,
    )
  })
})
