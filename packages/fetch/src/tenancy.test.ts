import {
  ConfigPolicyEvaluator,
  InMemoryConcurrencyLimiter,
  InMemoryConfigManager,
  InMemoryQuotaManager,
  ManualClock,
  QuotaExceededError,
  type QuotaManager,
  RateLimitExceededError,
  TokenBucketRateLimiter,
} from '@tenant/core'
import { beforeEach, describe, expect, it } from 'vitest'
import { expectInvalidOption, failing, okHandler, problem, recorder, req } from '../test/helpers'
import {
  compose,
  currentTenantId,
  getTenant,
  getTenantId,
  type Next,
  type TenancyHooks,
  type TenancyOptions,
  tenancy,
  tenantPolicy,
  tenantQuota,
  tenantRateLimit,
  tenantResolver,
  withTenancy,
} from './index'

describe('tenancy', () => {
  let clock: ManualClock
  let configs: InMemoryConfigManager
  let quotas: InMemoryQuotaManager
  let options: TenancyOptions
  beforeEach(async () => {
    clock = new ManualClock(Date.UTC(2026, 0, 1, 12))
    configs = new InMemoryConfigManager({ clock })
    quotas = new InMemoryQuotaManager(configs, { clock })
    await configs.setTenantConfig({
      id: 'acme',
      quota: { limits: [{ window: 'minute', requests: 3 }] },
      rateLimit: { requestsPerSecond: 1, burst: 2 },
      policy: { allowedModels: ['small'], allowedTools: [], allowedMethods: [], allowedPaths: [] },
    })
    options = {
      configManager: configs,
      policy: new ConfigPolicyEvaluator(configs),
      rateLimit: new TokenBucketRateLimiter(configs, { clock }),
      quota: quotas,
      clock,
    }
  })

  const used = async () => (await quotas.peek('acme')).windows[0]!.used.requests

  it('runs resolve -> policy -> rate limit -> quota and fires the hooks in that order', async () => {
    const { hooks, events } = recorder()
    const { calls, next } = okHandler()
    const response = await tenancy({ ...options, hooks })(
      req('/', { tenant: 'acme', headers: { 'X-Model': 'small' } }),
      next,
    )
    expect(response.status).toBe(200)
    expect(events.map((e) => e.hook)).toEqual(['onResolve', 'onPolicy', 'onRateLimit', 'onQuota'])
    expect(getTenant(calls[0]!)?.id).toBe('acme')
    expect(response.headers.get('RateLimit-Policy')).toBe('"minute";q=3;w=60, "rate";q=2')
    expect(response.headers.get('RateLimit')).toBe('"minute";r=2;t=60, "rate";r=1;t=1')
  })

  it('writes the same response headers as the stages composed one by one', async () => {
    // tenancy() merges the stages' headers into one write; compose() of the single stages writes
    // them stage by stage. Two identical sets of stores, driven in lockstep, must answer alike.
    const build = async () => {
      const c = new InMemoryConfigManager({ clock })
      await c.setTenantConfig(
        await configs.getTenantConfig('acme').then(({ createdAt, updatedAt, ...rest }) => rest),
      )
      return {
        configManager: c,
        policy: new ConfigPolicyEvaluator(c),
        rateLimit: new TokenBucketRateLimiter(c, { clock }),
        quota: new InMemoryQuotaManager(c, { clock }),
        clock,
      }
    }
    const a = await build()
    const b = await build()
    const merged = tenancy(a)
    const single = compose(
      tenantResolver({ configManager: b.configManager }),
      tenantPolicy({ evaluator: b.policy }),
      tenantRateLimit({ limiter: b.rateLimit, clock }),
      tenantQuota({ manager: b.quota, clock }),
    )
    const downstreams: Next[] = [
      async () => new Response('ok'),
      // Immutable headers: the response is copied once to add the stages' headers.
      async () => Response.redirect('https://example.com/next', 302),
      // The handler's own fields come first; the stages' items are appended after them.
      async () =>
        new Response('ok', {
          headers: { 'RateLimit-Policy': '"upstream";q=5', 'X-Quota-Remaining-Requests': '999' },
        }),
    ]
    const seen: number[] = []
    for (let i = 0; i < 6; i++) {
      const next = downstreams[i % downstreams.length]!
      const x = await merged(req('/', { tenant: 'acme' }), next)
      const y = await single(req('/', { tenant: 'acme' }), next)
      seen.push(x.status)
      expect(x.status).toBe(y.status)
      expect([...x.headers]).toEqual([...y.headers])
      if (x.status !== 429) expect(x.headers.get('RateLimit-Policy')).toContain('"rate";q=2')
      clock.advance(1_000) // the bucket refills; the quota (3 a minute) does not
    }
    expect(seen).toEqual([200, 302, 200, 429, 429, 429])
  })

  it('charges no quota and no rate limit for a request denied by policy', async () => {
    const { hooks, events } = recorder()
    for (let i = 0; i < 5; i++) {
      const response = await tenancy({ ...options, hooks })(
        req('/', { tenant: 'acme', headers: { 'X-Model': 'big' } }),
        okHandler().next,
      )
      expect(response.status).toBe(403)
    }
    expect(await used()).toBe(0)
    expect(events.map((e) => e.hook)).not.toContain('onQuota')
    expect(events.map((e) => e.hook)).not.toContain('onRateLimit')
    // The rate limit still has its full burst.
    const chain = tenancy(options)
    expect((await chain(req('/', { tenant: 'acme' }), okHandler().next)).status).toBe(200)
    expect((await chain(req('/', { tenant: 'acme' }), okHandler().next)).status).toBe(200)
  })

  it('charges no quota for a request refused by the rate limit', async () => {
    const chain = tenancy(options)
    await chain(req('/', { tenant: 'acme' }), okHandler().next)
    await chain(req('/', { tenant: 'acme' }), okHandler().next)
    const limited = await chain(req('/', { tenant: 'acme' }), okHandler().next)
    expect(limited.status).toBe(429)
    expect((await problem(limited)).code).toBe('tenant_rate_limited')
    expect(await used()).toBe(2)
  })

  it('refuses an unknown tenant before any stage', async () => {
    const { hooks, events } = recorder()
    const response = await tenancy({ ...options, hooks })(req('/', { tenant: 'nobody' }), okHandler().next)
    expect(response.status).toBe(403)
    expect((await problem(response)).code).toBe('tenant_unknown')
    expect(events.map((e) => e.hook)).toEqual(['onResolve'])
  })

  it('leaves out stages without a store', async () => {
    const { hooks, events } = recorder()
    const response = await tenancy({ quota: { manager: undefined }, hooks })(
      req('/', { tenant: 'anyone' }),
      okHandler().next,
    )
    expect(response.status).toBe(200)
    expect(events.map((e) => e.hook)).toEqual(['onResolve'])
  })

  it('accepts stage options objects and passes failOpen, hooks and timeouts down', async () => {
    const shared = recorder()
    const own = recorder()
    const dead = failing()
    const broken: QuotaManager = { consume: dead.call, adjust: dead.call, peek: dead.call }
    const chain = tenancy({
      ...options,
      failOpen: true,
      hooks: shared.hooks,
      quota: { manager: broken, hooks: own.hooks },
    })
    const response = await chain(
      req('/', { tenant: 'acme', headers: { 'X-Model': 'small' } }),
      okHandler().next,
    )
    expect(response.status).toBe(200)
    // Both the chain-wide and the stage's own hooks saw the quota event and the error.
    expect(shared.events.map((e) => e.hook)).toEqual(['onResolve', 'onPolicy', 'onRateLimit', 'onQuota'])
    expect(own.events.map((e) => e.hook)).toEqual(['onQuota'])
    expect(shared.errors.map((e) => e.error)).toEqual([dead.error])
    expect(own.errors.map((e) => e.error)).toEqual([dead.error])

    const strict = tenancy({
      ...options,
      failOpen: true,
      quota: { manager: broken, failOpen: false, hooks: own.hooks },
    })
    expect((await strict(req('/', { tenant: 'acme' }), okHandler().next)).status).toBe(503)
  })

  it('passes resolver options through', async () => {
    const chain = tenancy({ resolver: { allowMissing: true }, quota: quotas })
    const { calls, next } = okHandler()
    expect((await chain(req('/'), next)).status).toBe(200)
    expect(getTenantId(calls[0]!)).toBeUndefined()
  })

  it('rejects options that are not an object with the typed config error', () => {
    for (const options of [null, 'x', 42]) {
      expectInvalidOption(() => tenancy(options as never), 'tenancy', /^options must be an object$/)
    }
    expect(() => tenancy(null as never)).toThrow(
      expect.objectContaining({
        code: 'tenant_invalid_config',
        issues: [expect.objectContaining({ code: 'invalid_option' })],
      }),
    )
  })
})

describe('withTenancy', () => {
  it('wraps a Workers-style fetch(request, env, ctx) handler', async () => {
    const configs = new InMemoryConfigManager()
    await configs.setTenantConfig({ id: 'acme' })
    const env = { GREETING: 'hello' }
    const ctx = { waitUntil: (_: Promise<unknown>) => {} }
    const handler = withTenancy(
      async (request: Request, e: typeof env, c: typeof ctx) =>
        Response.json({
          tenant: getTenantId(request),
          current: currentTenantId(),
          greeting: e.GREETING,
          ctx: c === ctx,
        }),
      { configManager: configs },
    )
    const response = await handler(req('/', { tenant: 'acme' }), env, ctx)
    expect(await response.json()).toEqual({ tenant: 'acme', current: 'acme', greeting: 'hello', ctx: true })
    expect((await handler(req('/', { tenant: 'nobody' }), env, ctx)).status).toBe(403)
  })

  it('builds the chain from per-request bindings once per options object', async () => {
    const configs = new InMemoryConfigManager()
    await configs.setTenantConfig({ id: 'acme', quota: { limits: [{ window: 'day', requests: 1 }] } })
    const built = new Map<object, TenancyOptions>()
    const optionsFor = (_request: Request, env: { DB: object }) => {
      let options = built.get(env.DB)
      if (!options) {
        options = { configManager: configs, quota: new InMemoryQuotaManager(configs) }
        built.set(env.DB, options)
      }
      return options
    }
    const handler = withTenancy((_request: Request, _env: { DB: object }) => new Response('ok'), optionsFor)
    const env = { DB: {} }
    expect((await handler(req('/', { tenant: 'acme' }), env)).status).toBe(200)
    // Same options object, same chain, same quota state.
    expect((await handler(req('/', { tenant: 'acme' }), env)).status).toBe(429)
  })

  it('rejects a handler that is not a function', () => {
    expectInvalidOption(() => withTenancy('x' as never), 'withTenancy.handler', /must be a function/)
  })
})

describe('a response object handed to every request', () => {
  // A handler may return one Response object to all requests (a module-level 204, a cached reply
  // without a body). Each request must leave with its own tenant's headers only.
  async function scenario(shared: Response) {
    const configs = new InMemoryConfigManager()
    await configs.setTenantConfig({ id: 'acme', quota: { limits: [{ window: 'minute', requests: 100 }] } })
    await configs.setTenantConfig({
      id: 'globex',
      quota: { limits: [{ window: 'minute', requests: 50, tokens: 1_000 }] },
    })
    await configs.setTenantConfig({ id: 'initech' }) // no limits: the chain writes no headers
    const handler = withTenancy(() => shared, {
      configManager: configs,
      quota: new InMemoryQuotaManager(configs),
    })
    const seen: Record<string, string>[] = []
    for (const tenant of ['acme', 'globex', 'initech', 'acme', 'acme', 'globex', 'initech']) {
      const response = await handler(req('/', { tenant, headers: { 'X-Token-Count': '7' } }))
      seen.push({ tenant, ...Object.fromEntries(response.headers) })
    }
    return seen
  }

  for (const [title, make] of [
    ['a 204 without a body', () => new Response(null, { status: 204 })],
    [
      'a 200 without a body, with a RateLimit item of its own',
      () => new Response(null, { status: 200, headers: { RateLimit: '"upstream";r=5;t=1' } }),
    ],
  ] as const) {
    it(`${title}: no tenant's numbers reach another, and nothing accumulates`, async () => {
      const shared = make()
      const own = shared.headers.get('RateLimit')
      const before = [...shared.headers]
      const seen = await scenario(shared)
      for (const headers of seen) {
        const items = (headers.ratelimit ?? '').split(', ').filter((item) => item !== '')
        const ours = items.filter((item) => item !== own)
        if (own !== null) expect(items).toContain(own)
        if (headers.tenant === 'initech') {
          expect(ours).toEqual([])
          expect(headers['x-quota-remaining-requests']).toBeUndefined()
        } else {
          // One item per limited dimension of this tenant, none of another request's.
          expect(ours.map((item) => item.split(';')[0])).toEqual(
            headers.tenant === 'acme' ? ['"minute"'] : ['"minute"', '"minute-tokens"'],
          )
        }
        expect(headers['x-quota-remaining-tokens'] !== undefined).toBe(headers.tenant === 'globex')
      }
      expect(seen.filter((h) => h.tenant === 'acme').map((h) => h['x-quota-remaining-requests'])).toEqual([
        '99',
        '98',
        '97',
      ])
      // The handler's object is never written into: another route may send it outside any chain.
      expect([...shared.headers]).toEqual(before)
    })
  }
})

describe('a response object an override hook hands to every refusal', () => {
  it("never carries one tenant's refusal headers to another's refusal", async () => {
    const configs = new InMemoryConfigManager()
    await configs.setTenantConfig({ id: 'acme', rateLimit: { requestsPerSecond: 1, burst: 1 } })
    await configs.setTenantConfig({
      id: 'globex',
      policy: { allowedModels: ['small'], allowedTools: [], allowedMethods: [], allowedPaths: [] },
    })
    const shared = new Response('no', { status: 429 })
    const handler = withTenancy(() => new Response('ok'), {
      configManager: configs,
      policy: { evaluator: new ConfigPolicyEvaluator(configs), onDenied: () => shared },
      rateLimit: { limiter: new TokenBucketRateLimiter(configs), onRejected: () => shared },
    })
    expect((await handler(req('/', { tenant: 'acme' }))).status).toBe(200)
    // acme's second request is rate limited: its RateLimit and Retry-After go on the refusal.
    const limited = await handler(req('/', { tenant: 'acme' }))
    expect(limited.headers.get('RateLimit')).toMatch(/^"rate";r=0;t=1$/)
    expect(limited.headers.get('Retry-After')).toBe('1')
    // globex is denied by policy, which adds no headers: none of acme's may come with it.
    const denied = await handler(req('/', { tenant: 'globex', headers: { 'X-Model': 'large' } }))
    expect(denied.status).toBe(429)
    expect(denied.headers.get('RateLimit')).toBeNull()
    expect(denied.headers.get('RateLimit-Policy')).toBeNull()
    expect(denied.headers.get('Retry-After')).toBeNull()
  })
})

describe('a stage header written by a chain on another Request object of the same request', () => {
  // The headers a chain writes into a response are marked as its request's, so that a response
  // object handed to many requests never carries one request's numbers to another. A chain
  // further in, on a Request made from this one (compose() handing a new one on, a sub-handler
  // called with a new one), is the same request: what it wrote stays.
  it("keeps the inner chain's headers, with compose() and with a sub-handler", async () => {
    const configs = new InMemoryConfigManager()
    await configs.setTenantConfig({ id: 'acme', quota: { limits: [{ window: 'minute', requests: 10 }] } })
    const quotas = new InMemoryQuotaManager(configs)
    const ok = async () => new Response('ok')
    const handedOn = compose(
      tenantResolver({ configManager: configs }),
      (request, next) => next(new Request(request)),
      tenantQuota({ manager: quotas }),
    )
    const sub = withTenancy(ok, { configManager: configs, quota: quotas })
    const subHandler = compose(tenantResolver({ configManager: configs }), (request) =>
      sub(new Request(request)),
    )
    let left = 10
    for (const [name, mw] of [
      ['compose', handedOn],
      ['sub-handler', subHandler],
    ] as const) {
      const response = await mw(req('/', { tenant: 'acme' }), ok)
      left--
      expect(response.headers.get('X-Quota-Remaining-Requests'), name).toBe(String(left))
      expect(response.headers.get('RateLimit'), name).toMatch(new RegExp(`^"minute";r=${left};t=\\d+$`))
    }
  })
})

describe('event hooks that change the events they get', () => {
  // Hooks observe: whatever one does to its event, the response sent, what the stores hold and
  // what the next request gets stay as they would be without it.
  function vandalize(value: unknown, depth = 0): void {
    if (typeof value !== 'object' || value === null || depth > 8) return
    if (value instanceof Request || value instanceof Error) return
    for (const key of Object.keys(value)) {
      const record = value as Record<string, unknown>
      const current = record[key]
      try {
        if (typeof current === 'number') record[key] = 999_999
        else if (typeof current === 'string') record[key] = 'vandal'
        else if (typeof current === 'boolean') record[key] = !current
        else if (key !== 'request') vandalize(current, depth + 1)
      } catch {
        // Frozen: the attempt fails, as it should.
      }
    }
    if (Array.isArray(value)) {
      try {
        value.length = 0
      } catch {
        // Frozen.
      }
    }
  }
  const vandal = (event: unknown) => vandalize(event)

  async function run(hooks: TenancyHooks | undefined) {
    const clock = new ManualClock(Date.UTC(2026, 0, 1, 12))
    const configs = new InMemoryConfigManager({ clock })
    await configs.setTenantConfig({
      id: 'acme',
      quota: { limits: [{ window: 'minute', requests: 4, tokens: 1000 }] },
      rateLimit: { requestsPerSecond: 1, burst: 3 },
      concurrency: { maxInFlight: 2 },
      policy: { allowedModels: ['small'], allowedTools: [], allowedMethods: [], allowedPaths: [] },
    })
    const quotas = new InMemoryQuotaManager(configs, { clock })
    const limiter = new InMemoryConcurrencyLimiter()
    const mw = tenancy({
      configManager: configs,
      policy: new ConfigPolicyEvaluator(configs),
      concurrency: limiter,
      rateLimit: new TokenBucketRateLimiter(configs, { clock }),
      quota: { manager: quotas, actualTokens: (response) => Number(response.headers.get('X-Used')) },
      clock,
      hooks: [hooks ?? {}, { onError: () => {} }],
    })
    const next: Next = async () => new Response('ok', { headers: { 'X-Used': '300' } })
    const send = (model: string, tokens = '100') =>
      mw(req('/', { tenant: 'acme', headers: { 'X-Model': model, 'X-Token-Count': tokens } }), next)
    const seen: unknown[] = []
    const record = async (response: Response) => {
      seen.push([response.status, Object.fromEntries(response.headers), await response.text()])
    }
    // Two held open (the concurrency cap), a third refused; a policy denial; then the rate
    // limit's and the quota's refusals.
    const held = [await send('small'), await send('small')]
    await record(await send('small'))
    await record(await send('large'))
    for (const response of held) await record(response)
    await record(await send('small', '900'))
    await record(await send('small'))
    clock.advance(2_000)
    await record(await send('small'))
    await record(await send('small'))
    return {
      seen,
      usage: await quotas.peek('acme'),
      inFlight: await limiter.inFlight('acme'),
    }
  }

  it('cannot change what is sent or stored', async () => {
    const expected = await run(undefined)
    const hooks = {
      onResolve: vandal,
      onPolicy: vandal,
      onConcurrency: vandal,
      onRateLimit: vandal,
      onQuota: vandal,
      onAdjust: vandal,
      onSettle: vandal,
    }
    expect(await run(hooks)).toEqual(expected)
    // The scenario covers every refusal: concurrency, policy, then (after the two held ones)
    // the quota's (900 tokens do not fit) and the rate limit's.
    const codes = expected.seen.map((entry) => {
      const [status, , body] = entry as [number, unknown, string]
      return status === 200 ? 200 : (JSON.parse(body) as { code: string }).code
    })
    expect(codes).toEqual([
      'tenant_concurrency_limited',
      'tenant_policy_denied',
      200,
      200,
      'tenant_quota_exceeded',
      'tenant_rate_limited',
      200,
      200,
    ])
  })
})

describe('tenancy options that would leave a stage out or crash it', () => {
  let clock: ManualClock
  let configs: InMemoryConfigManager
  let quotas: InMemoryQuotaManager
  beforeEach(async () => {
    clock = new ManualClock(Date.UTC(2026, 0, 15, 10, 20, 30))
    configs = new InMemoryConfigManager({ clock })
    quotas = new InMemoryQuotaManager(configs, { clock })
    await configs.setTenantConfig({
      id: 'acme',
      concurrency: { maxInFlight: 1 },
      quota: { limits: [{ window: 'minute', requests: 1 }] },
    })
  })

  it('refuses a stage option that is neither a store nor options naming one (the stage was silently left out)', () => {
    expectInvalidOption(
      () => tenancy({ configManager: configs, quota: 5 as never }),
      'tenancy.quota',
      /got number/,
    )
    // A config manager given as the quota: an object without consume() or a manager.
    expectInvalidOption(
      () => tenancy({ configManager: configs, quota: configs as never }),
      'tenancy.quota',
      /manager/,
    )
    expectInvalidOption(
      () => tenancy({ configManager: configs, quota: { failOpen: true } as never }),
      'tenancy.quota',
      /manager/,
    )
    expectInvalidOption(
      () => tenancy({ configManager: configs, rateLimit: 'redis' as never }),
      'tenancy.rateLimit',
      /string/,
    )
    expectInvalidOption(
      () => tenancy({ configManager: configs, concurrency: true as never }),
      'tenancy.concurrency',
      /boolean/,
    )
    expectInvalidOption(
      () => tenancy({ configManager: configs, policy: [] as never }),
      'tenancy.policy',
      /evaluator/,
    )
    expectInvalidOption(
      () => tenancy({ configManager: configs, resolver: 5 as never }),
      'tenancy.resolver',
      /options/,
    )
    expectInvalidOption(() => tenancy({ configManager: configs, hooks: 'x' as never }), 'hooks', /object/)
    // Naming the store as undefined still leaves the stage out on purpose (wiring by environment).
    expect(() => tenancy({ configManager: configs, quota: { manager: undefined } })).not.toThrow()
  })

  it('refuses a concurrency stage with nowhere to read caps from', () => {
    const limiter = new InMemoryConcurrencyLimiter()
    expectInvalidOption(() => tenancy({ concurrency: limiter }), 'tenancy.concurrency', /configManager/)
    expect(() => tenancy({ concurrency: { limiter, provider: configs } })).not.toThrow()
  })

  it('serves a tenant whose config has no concurrency member as uncapped (it was a TypeError)', async () => {
    const custom = {
      getTenantConfig: async (id: string) => {
        const { concurrency: _none, ...rest } = await configs.getTenantConfig(id)
        return rest as never
      },
    }
    const chain = tenancy({ configManager: custom, concurrency: new InMemoryConcurrencyLimiter() })
    expect((await chain(req('/', { tenant: 'acme' }), okHandler().next)).status).toBe(200)
  })

  it("lets a handler's network error through as it is (copying it to add headers threw a RangeError)", async () => {
    const chain = tenancy({ configManager: configs, quota: quotas, clock })
    const response = await chain(req('/', { tenant: 'acme' }), async () => Response.error())
    expect(response.type).toBe('error')
  })

  it('gives a limit error thrown by a store or a callback its Retry-After', async () => {
    const fromEstimator = tenancy({
      configManager: configs,
      quota: {
        manager: quotas,
        tokenEstimator: () => {
          throw new QuotaExceededError('monthly budget spent', 5_000)
        },
      },
      clock,
    })
    const quota = await fromEstimator(req('/', { tenant: 'acme' }), okHandler().next)
    expect([quota.status, quota.headers.get('Retry-After'), (await problem(quota)).code]).toEqual([
      429,
      '5',
      'tenant_quota_exceeded',
    ])
    const fromStore = tenancy({
      configManager: configs,
      rateLimit: {
        consume: async () => {
          throw new RateLimitExceededError('slow down', 2_000)
        },
      },
      clock,
    })
    const rate = await fromStore(req('/', { tenant: 'acme' }), okHandler().next)
    expect([rate.status, rate.headers.get('Retry-After')]).toEqual([429, '2'])
  })
})
