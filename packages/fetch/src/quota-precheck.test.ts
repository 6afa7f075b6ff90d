import {
  ConfigPolicyEvaluator,
  InMemoryConcurrencyLimiter,
  InMemoryConfigManager,
  InMemoryQuotaManager,
  ManualClock,
  TenantBackendError,
  TokenBucketRateLimiter,
} from '@tenant/core'
import { beforeEach, describe, expect, it } from 'vitest'
import { okHandler, problem, recorder, req } from '../test/helpers'
import { type QuotaOptions, tenancy } from './index'

// A request refused for its cost charges nothing anywhere: the quota's cost check runs before the
// stages that consume (concurrency, rate limit), while the stage order stays resolve -> policy ->
// concurrency -> rate limit -> quota for everything that is charged.
describe('tenancy(): the quota cost is checked before anything is consumed', () => {
  let clock: ManualClock
  let configs: InMemoryConfigManager
  let limiter: TokenBucketRateLimiter
  let quotas: InMemoryQuotaManager
  beforeEach(async () => {
    clock = new ManualClock(Date.UTC(2026, 2, 10, 9, 30, 15))
    configs = new InMemoryConfigManager({ clock })
    await configs.setTenantConfig({
      id: 'acme',
      quota: {
        limits: [{ window: 'day', requests: 100, tokens: 10_000 }],
        subjects: [{ match: 'key:*', limits: [{ window: 'day', requests: 10 }] }],
      },
      rateLimit: { requestsPerSecond: 1, burst: 5 },
      policy: { allowedModels: ['small'], allowedTools: [], allowedMethods: [], allowedPaths: [] },
    })
    limiter = new TokenBucketRateLimiter(configs, { clock })
    quotas = new InMemoryQuotaManager(configs, { clock })
  })

  const rateLeft = async () => {
    // A consume of no token reads what is left (the clock stands still: nothing refills).
    const decision = await limiter.consume('acme', { cost: 0 })
    return decision.remaining
  }

  function chain(quota: Partial<QuotaOptions> = {}, hooks = recorder().hooks) {
    return tenancy({
      configManager: configs,
      policy: new ConfigPolicyEvaluator(configs),
      rateLimit: limiter,
      quota: { manager: quotas, ...quota },
      clock,
      hooks,
    })
  }

  it('a bad X-Token-Count is 400 invalid_cost and takes no rate-limit token', async () => {
    const { hooks, events } = recorder()
    const run = chain({}, hooks)
    for (const bad of ['-1', '1.5', 'lots', '1e3', '']) {
      const { calls, next } = okHandler()
      const response = await run(req('/', { tenant: 'acme', headers: { 'X-Token-Count': bad } }), next)
      expect(response.status, bad).toBe(400)
      expect((await problem(response)).code, bad).toBe('invalid_cost')
      expect(calls).toHaveLength(0)
    }
    expect(await rateLeft()).toBe(5)
    expect((await quotas.peek('acme')).windows[0]!.used).toEqual({ requests: 0, tokens: 0 })
    // The rate limit never ran for them; the quota event carries the 400.
    expect(events.map((e) => e.hook)).not.toContain('onRateLimit')
    expect(events.filter((e) => e.hook === 'onQuota').map((e) => e.event.status)).toEqual([
      400, 400, 400, 400, 400,
    ])
    // A good request is charged once everywhere, in the stage order.
    expect(
      (await run(req('/', { tenant: 'acme', headers: { 'X-Token-Count': '7' } }), okHandler().next)).status,
    ).toBe(200)
    expect(await rateLeft()).toBe(4)
    expect((await quotas.peek('acme')).windows[0]!.used).toEqual({ requests: 1, tokens: 7 })
  })

  it('a bad estimate or a refusing estimator is 400 / its code, and the estimator runs once per request', async () => {
    let calls = 0
    const estimates: unknown[] = [-1, Number.NaN, '5', 12]
    const run = chain({
      tokenEstimator: () => {
        calls++
        return estimates.shift() as number
      },
    })
    for (let i = 0; i < 3; i++) {
      const response = await run(req('/', { tenant: 'acme' }), okHandler().next)
      expect((await problem(response)).code).toBe('invalid_cost')
    }
    expect(await rateLeft()).toBe(5)
    expect((await run(req('/', { tenant: 'acme' }), okHandler().next)).status).toBe(200)
    expect(calls).toBe(4)
    expect((await quotas.peek('acme')).windows[0]!.used).toEqual({ requests: 1, tokens: 12 })
    expect(await rateLeft()).toBe(4)

    const down = chain({
      tokenEstimator: async () => {
        throw new TenantBackendError('tokenizer down')
      },
    })
    const response = await down(req('/', { tenant: 'acme' }), okHandler().next)
    expect((await problem(response)).code).toBe('tenant_backend_unavailable')
    expect(await rateLeft()).toBe(4)
  })

  it('a bad subject is 400 invalid_subject and takes no rate-limit token; a good one is charged to it', async () => {
    const run = chain({ subject: async (request) => request.headers.get('X-Key') ?? undefined })
    const bad = await run(
      req('/', { tenant: 'acme', headers: { 'X-Key': 'key with spaces' } }),
      okHandler().next,
    )
    expect((await problem(bad)).code).toBe('invalid_subject')
    expect(await rateLeft()).toBe(5)
    expect(
      (await run(req('/', { tenant: 'acme', headers: { 'X-Key': 'key:1' } }), okHandler().next)).status,
    ).toBe(200)
    expect((await quotas.peek('acme', { subject: 'key:1' })).windows[0]!.used.requests).toBe(1)
    expect(await rateLeft()).toBe(4)
  })

  it('keeps policy first: a denied request with a bad cost is 403, not 400', async () => {
    const response = await chain()(
      req('/', { tenant: 'acme', headers: { 'X-Model': 'large', 'X-Token-Count': '-1' } }),
      okHandler().next,
    )
    expect((await problem(response)).code).toBe('tenant_policy_denied')
  })

  it('takes no concurrency slot for a bad cost either', async () => {
    await configs.setTenantConfig({ id: 'capped', concurrency: { maxInFlight: 1 } })
    const concurrency = new InMemoryConcurrencyLimiter()
    const seen: number[] = []
    const run = tenancy({
      configManager: configs,
      concurrency,
      quota: quotas,
      clock,
      hooks: { onConcurrency: (event) => void seen.push(event.status) },
    })
    const response = await run(
      req('/', { tenant: 'capped', headers: { 'X-Token-Count': 'x' } }),
      okHandler().next,
    )
    expect(response.status).toBe(400)
    expect(seen).toEqual([])
    expect((await run(req('/', { tenant: 'capped' }), okHandler().next)).status).toBe(200)
    expect(seen).toEqual([200])
  })

  it('charges the header cost it checked, whatever a hook does to the header after the check', async () => {
    // Read again at charge time, a header an event hook changed was charged unchecked: 9000
    // tokens for a request checked at 10, or a 400 invalid_cost after the slot and the rate-limit
    // token were taken.
    await configs.setTenantConfig({
      id: 'capped',
      quota: { limits: [{ window: 'day', requests: 100, tokens: 10_000 }] },
      concurrency: { maxInFlight: 1 },
    })
    const concurrency = new InMemoryConcurrencyLimiter()
    for (const [hook, value] of [
      ['onConcurrency', 'lots'],
      ['onConcurrency', '9000'],
    ] as const) {
      const run = tenancy({
        configManager: configs,
        concurrency,
        quota: quotas,
        clock,
        hooks: { [hook]: (event: { request: Request }) => event.request.headers.set('X-Token-Count', value) },
      })
      const before = (await quotas.peek('capped')).windows[0]!.used.tokens
      const response = await run(
        req('/', { tenant: 'capped', headers: { 'X-Token-Count': '10' } }),
        okHandler().next,
      )
      expect(response.status).toBe(200)
      await response.text() // the slot goes back when the body ends
      expect((await quotas.peek('capped')).windows[0]!.used.tokens).toBe(before + 10)
    }
    const rated = chain(
      {},
      {
        onRateLimit: (event) => event.request.headers.set('X-Token-Count', '9000'),
      },
    )
    const response = await rated(
      req('/', { tenant: 'acme', headers: { 'X-Token-Count': '10' } }),
      okHandler().next,
    )
    expect(response.status).toBe(200)
    expect((await quotas.peek('acme')).windows[0]!.used.tokens).toBe(10)
    // The slot went back after each request.
    expect(await concurrency.inFlight('capped')).toBe(0)
  })
})
