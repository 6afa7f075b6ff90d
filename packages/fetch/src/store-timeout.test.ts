import {
  type ConcurrencyDecision,
  InMemoryConfigManager,
  InMemoryQuotaManager,
  type QuotaManager,
  type RateLimiter,
  TenantBackendError,
  TokenBucketRateLimiter,
} from '@tenant/core'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { okHandler, problem, recorder, req } from '../test/helpers'
import { tenancy } from './index'

/** A store method whose answer the test releases by hand, after the stage's timeout fired. */
function delayed<A extends unknown[], T>(call: (...args: A) => Promise<T>) {
  const held: (() => void)[] = []
  const method = (...args: A) =>
    new Promise<T>((resolve, reject) => {
      held.push(() => call(...args).then(resolve, reject))
    })
  return {
    method,
    land: () => {
      for (const go of held.splice(0)) go()
    },
  }
}

// A store call that outlives timeoutMs is answered 503, but the store still does what it was
// asked when it lands. What can be compensated through the public interfaces is.
describe('a store answer that lands after the stage timeout', () => {
  let configs: InMemoryConfigManager
  beforeEach(async () => {
    vi.useFakeTimers()
    configs = new InMemoryConfigManager()
    await configs.setTenantConfig({
      id: 'acme',
      quota: { limits: [{ window: 'day', requests: 3, tokens: 1000 }] },
      rateLimit: { requestsPerSecond: 1, burst: 5 },
      concurrency: { maxInFlight: 1 },
    })
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  async function timedOut(
    run: (request: Request, next: ReturnType<typeof okHandler>['next']) => Promise<Response>,
    land: () => void,
    headers = {},
  ) {
    const { calls, next } = okHandler()
    const pending = run(req('/', { tenant: 'acme', headers }), next)
    await vi.advanceTimersByTimeAsync(10)
    const response = await pending
    land()
    await vi.advanceTimersByTimeAsync(0)
    return { response, calls }
  }

  it('quota: refunds the tokens of a late admission, reports the late charge with the tenant, and names it on the 503', async () => {
    const quotas = new InMemoryQuotaManager(configs)
    const consume = delayed(quotas.consume.bind(quotas))
    const slow: QuotaManager = {
      consume: consume.method,
      adjust: quotas.adjust.bind(quotas),
      peek: quotas.peek.bind(quotas),
    }
    const { hooks, errors, events } = recorder()
    const run = tenancy({ configManager: configs, quota: slow, timeoutMs: 10, hooks })
    for (let i = 0; i < 3; i++) {
      const { response, calls } = await timedOut(run, consume.land, { 'X-Token-Count': '300' })
      expect((await problem(response)).code).toBe('tenant_backend_unavailable')
      expect(calls).toHaveLength(0)
    }
    // The requests stay counted (the interface cannot refund them); the tokens are given back.
    expect((await quotas.peek('acme')).windows[0]!.used).toEqual({ requests: 3, tokens: 0 })
    const timeouts = errors.filter((e) => String(e.error).includes('no answer within 10 ms'))
    expect(timeouts).toHaveLength(3)
    for (const { error, info } of timeouts) {
      expect(error).toBeInstanceOf(TenantBackendError)
      expect((error as TenantBackendError).tenantId).toBe('acme')
      expect(info).toMatchObject({ stage: 'quota', tenantId: 'acme' })
    }
    const late = errors.filter((e) => String(e.error).includes('after the 10 ms timeout'))
    expect(late).toHaveLength(3)
    expect((late[0]!.error as TenantBackendError).tenantId).toBe('acme')
    expect(String(late[0]!.error)).toContain('1 request and 300 tokens')
    expect(late[0]!.info).toMatchObject({ stage: 'quota', tenantId: 'acme' })
    expect(events.find((e) => e.hook === 'onQuota')!.event.error.tenantId).toBe('acme')
  })

  it('quota under failOpen: the request was served, so the late charge stands and nothing is refunded', async () => {
    const quotas = new InMemoryQuotaManager(configs)
    const consume = delayed(quotas.consume.bind(quotas))
    const slow: QuotaManager = {
      consume: consume.method,
      adjust: quotas.adjust.bind(quotas),
      peek: quotas.peek.bind(quotas),
    }
    const { hooks, errors } = recorder()
    const run = tenancy({ configManager: configs, quota: slow, timeoutMs: 10, failOpen: true, hooks })
    const { response, calls } = await timedOut(run, consume.land, { 'X-Token-Count': '300' })
    expect(response.status).toBe(200)
    expect(calls).toHaveLength(1)
    expect((await quotas.peek('acme')).windows[0]!.used).toEqual({ requests: 1, tokens: 300 })
    expect(errors.filter((e) => String(e.error).includes('after the 10 ms timeout'))).toEqual([])
  })

  it('quota: a late denial charged nothing, and nothing is refunded or reported', async () => {
    const quotas = new InMemoryQuotaManager(configs)
    const consume = delayed(quotas.consume.bind(quotas))
    const adjust = vi.fn(quotas.adjust.bind(quotas))
    const { hooks, errors } = recorder()
    const run = tenancy({
      configManager: configs,
      quota: { consume: consume.method, adjust, peek: quotas.peek.bind(quotas) },
      timeoutMs: 10,
      hooks,
    })
    await timedOut(run, consume.land, { 'X-Token-Count': '5000' })
    expect(adjust).not.toHaveBeenCalled()
    expect(errors.filter((e) => String(e.error).includes('after the 10 ms timeout'))).toEqual([])
  })

  it('rate limit: reports a late token taken from a refused request with the tenant (no refund exists)', async () => {
    const limiter = new TokenBucketRateLimiter(configs)
    const consume = delayed(limiter.consume.bind(limiter))
    const slow: RateLimiter = { consume: consume.method }
    const { hooks, errors } = recorder()
    const { response } = await timedOut(
      tenancy({ configManager: configs, rateLimit: slow, timeoutMs: 10, hooks }),
      consume.land,
    )
    expect(response.status).toBe(503)
    const late = errors.filter((e) => String(e.error).includes('after the 10 ms timeout'))
    expect(late).toHaveLength(1)
    expect(late[0]!.info).toMatchObject({ stage: 'rateLimit', tenantId: 'acme' })
    expect((late[0]!.error as TenantBackendError).tenantId).toBe('acme')
  })

  it('concurrency: releases a slot acquired after the timeout, which no request holds', async () => {
    const release = vi.fn(async () => {})
    const held: ((decision: ConcurrencyDecision) => void)[] = []
    const limiter = {
      acquire: () => new Promise<ConcurrencyDecision>((resolve) => held.push(resolve)),
      reset: async () => {},
    }
    const run = tenancy({
      configManager: configs,
      concurrency: limiter as never,
      timeoutMs: 10,
      hooks: recorder().hooks,
    })
    const { response } = await timedOut(run, () => {
      for (const resolve of held.splice(0)) {
        resolve({ allowed: true, inFlight: 1, limit: 1, lease: { id: 'slot-1', release } })
      }
    })
    expect(response.status).toBe(503)
    expect(release).toHaveBeenCalledTimes(1)
  })
})
