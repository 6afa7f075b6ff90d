import {
  ConfigPolicyEvaluator,
  InMemoryConcurrencyLimiter,
  InMemoryConfigManager,
  InMemoryQuotaManager,
  ManualClock,
  TokenBucketRateLimiter,
} from '@tenant/core'
import { expectInvalidOption } from '@tenant/core/testing'
import { applyMiddleware, withTenancy } from '@tenant/fetch'
import { describe, expect, it } from 'vitest'
import { tenantMetricsHooks, tenantMetricsMiddleware } from './fetch-metrics'
import { metricsHandler } from './metrics-handler'
import { TenantMetrics } from './tenant-metrics'

const T0 = Date.UTC(2026, 0, 1, 12)

async function setup() {
  const clock = new ManualClock(T0)
  const configs = new InMemoryConfigManager({ clock })
  await configs.setTenantConfig({
    id: 'acme',
    quota: { limits: [{ window: 'day', requests: 3, tokens: 1000 }] },
    policy: { allowedModels: ['gpt-4o'] },
  })
  await configs.setTenantConfig({ id: 'beta', rateLimit: { requestsPerSecond: 1, burst: 1 } })
  await configs.setTenantConfig({ id: 'gone', status: 'suspended' })
  const metrics = new TenantMetrics()
  // The upstream: takes 20 ms (on the manual clock) and reports the tokens it really used.
  const upstream = async (request: Request) => {
    clock.advance(20)
    const used = request.headers.get('X-Really-Used')
    return new Response('ok', { headers: used === null ? {} : { 'X-Usage-Tokens': used } })
  }
  const tenancyHandler = withTenancy(upstream, {
    configManager: configs,
    policy: new ConfigPolicyEvaluator(configs),
    rateLimit: new TokenBucketRateLimiter(configs, { clock }),
    quota: {
      manager: new InMemoryQuotaManager(configs, { clock }),
      actualTokens: (response) => {
        const header = response.headers.get('X-Usage-Tokens')
        return header === null ? undefined : Number(header)
      },
    },
    clock,
    hooks: tenantMetricsHooks(metrics),
  })
  const serve = applyMiddleware(tenantMetricsMiddleware(metrics, { clock }), tenancyHandler)
  // Read to the end, as a server sends it: the middleware records a request when its body ends.
  const send = async (headers: Record<string, string>) => {
    const response = await serve(new Request('http://x/v1/chat', { headers }))
    await response.arrayBuffer()
    return response.status
  }
  return { metrics, send, clock }
}

describe('tenantMetricsHooks + tenantMetricsMiddleware on a scripted run', () => {
  it('exposes the expected series and values', async () => {
    const { metrics, send } = await setup()
    const acme = (model: string, tokens: number, used?: number) => ({
      'X-Tenant-ID': 'acme',
      'X-Model': model,
      'X-Token-Count': String(tokens),
      ...(used === undefined ? {} : { 'X-Really-Used': String(used) }),
    })
    const statuses = [
      await send(acme('gpt-4o', 100, 60)), // 200, 100 charged then 40 refunded
      await send(acme('gpt-4o', 200, 250)), // 200, 200 charged then 50 more
      await send(acme('claude', 10)), // 403 policy (model)
      await send(acme('gpt-4o', 5)), // 200, the third request of the day
      await send(acme('gpt-4o', 5)), // 429 quota
      await send({ 'X-Tenant-ID': 'beta' }), // 200
      await send({ 'X-Tenant-ID': 'beta' }), // 429 rate limit (burst 1)
      await send({}), // 401 tenant_required
      await send({ 'X-Tenant-ID': 'gone' }), // 403 tenant_suspended
    ]
    expect(statuses).toEqual([200, 200, 403, 200, 429, 200, 429, 401, 403])

    const text = await metricsHandler(metrics)(new Request('http://x/metrics')).then((r) => r.text())
    const series = text.split('\n').filter((line) => line !== '' && !line.startsWith('#'))
    const pick = (prefix: string) => series.filter((line) => line.startsWith(prefix)).sort()

    expect(pick('tenant_requests_total')).toEqual(
      [
        'tenant_requests_total{tenant="(none)",outcome="client_error",code="401"} 1',
        'tenant_requests_total{tenant="acme",outcome="client_error",code="403"} 1',
        'tenant_requests_total{tenant="acme",outcome="client_error",code="429"} 1',
        'tenant_requests_total{tenant="acme",outcome="success",code="200"} 3',
        'tenant_requests_total{tenant="beta",outcome="client_error",code="429"} 1',
        'tenant_requests_total{tenant="beta",outcome="success",code="200"} 1',
        // Refused by the resolver (suspended): no tenant was resolved, so no tenant label is spent.
        'tenant_requests_total{tenant="(none)",outcome="client_error",code="403"} 1',
      ].sort(),
    )
    expect(pick('tenant_quota_rejections_total')).toEqual(['tenant_quota_rejections_total{tenant="acme"} 1'])
    expect(pick('tenant_rate_limited_total')).toEqual(['tenant_rate_limited_total{tenant="beta"} 1'])
    expect(pick('tenant_policy_denials_total')).toEqual([
      'tenant_policy_denials_total{tenant="acme",rule="model"} 1',
    ])
    // 100 + 200 + 5 charged at admission, +50 adjusted up; 40 refunded.
    expect(pick('tenant_tokens_consumed_total')).toEqual(['tenant_tokens_consumed_total{tenant="acme"} 355'])
    expect(pick('tenant_tokens_refunded_total')).toEqual(['tenant_tokens_refunded_total{tenant="acme"} 40'])
    // Only requests that reached the upstream took 20 ms; refusals took none on the manual clock.
    expect(pick('tenant_request_duration_seconds_sum')).toEqual(
      [
        'tenant_request_duration_seconds_sum{tenant="(none)"} 0',
        'tenant_request_duration_seconds_sum{tenant="acme"} 0.06',
        'tenant_request_duration_seconds_sum{tenant="beta"} 0.02',
      ].sort(),
    )
    expect(pick('tenant_request_duration_seconds_count{tenant="acme"}')).toEqual([
      'tenant_request_duration_seconds_count{tenant="acme"} 5',
    ])
    expect(pick('tenant_request_duration_seconds_bucket{le="0.025",tenant="acme"}')).toEqual([
      'tenant_request_duration_seconds_bucket{le="0.025",tenant="acme"} 5',
    ])
    expect(pick('tenant_request_duration_seconds_bucket{le="0.01",tenant="acme"}')).toEqual([
      'tenant_request_duration_seconds_bucket{le="0.01",tenant="acme"} 2',
    ])
    expect(pick('tenant_metrics_tracked_tenants')).toEqual(['tenant_metrics_tracked_tenants 2'])
  })

  it('records a handler that throws as a 500 and rethrows', async () => {
    const metrics = new TenantMetrics()
    const failure = new Error('upstream exploded')
    const serve = applyMiddleware(tenantMetricsMiddleware(metrics), async () => {
      throw failure
    })
    await expect(serve(new Request('http://x/'))).rejects.toBe(failure)
    expect(await metrics.registry.metrics()).toContain(
      'tenant_requests_total{tenant="(none)",outcome="server_error",code="500"} 1',
    )
  })

  it('does not count a store failure as a denial', async () => {
    const clock = new ManualClock(T0)
    const configs = new InMemoryConfigManager({ clock })
    await configs.setTenantConfig({ id: 'acme', quota: { limits: [{ window: 'day', requests: 5 }] } })
    const metrics = new TenantMetrics()
    const broken = {
      consume: async () => {
        throw new Error('redis down')
      },
      adjust: async () => {
        throw new Error('redis down')
      },
      peek: async () => {
        throw new Error('redis down')
      },
    }
    const serve = applyMiddleware(
      tenantMetricsMiddleware(metrics, { clock }),
      withTenancy(async () => new Response('ok'), {
        configManager: configs,
        quota: broken,
        hooks: [tenantMetricsHooks(metrics), { onError: () => {} }],
      }),
    )
    const response = await serve(new Request('http://x/', { headers: { 'X-Tenant-ID': 'acme' } }))
    expect(response.status).toBe(503)
    await response.arrayBuffer()
    const text = await metrics.registry.metrics()
    expect(text).toContain('tenant_requests_total{tenant="acme",outcome="server_error",code="503"} 1')
    expect(text).not.toMatch(/^tenant_quota_rejections_total\{/m)
  })
})

describe('tenantMetricsHooks and the concurrency stage', () => {
  it('counts requests refused for too many in flight in tenant_concurrency_rejections_total', async () => {
    const configs = new InMemoryConfigManager()
    await configs.setTenantConfig({ id: 'acme', concurrency: { maxInFlight: 1 } })
    const metrics = new TenantMetrics()
    const handler = withTenancy(async () => new Response('streaming'), {
      configManager: configs,
      concurrency: new InMemoryConcurrencyLimiter(),
      hooks: tenantMetricsHooks(metrics),
    })
    const request = () => new Request('https://api.example.com/', { headers: { 'X-Tenant-ID': 'acme' } })
    // The first response's body is not read yet, so its request still holds the only slot.
    const held = await handler(request())
    expect((await handler(request())).status).toBe(429)
    expect((await handler(request())).status).toBe(429)
    await held.text()
    const text = await metrics.registry.metrics()
    expect(text).toContain('tenant_concurrency_rejections_total{tenant="acme"} 2')
  })
})

describe('metricsHandler', () => {
  it('serves the registry as Prometheus text on GET and HEAD, 405 otherwise', async () => {
    const metrics = new TenantMetrics()
    metrics.recordRateLimited('acme')
    const serve = metricsHandler(metrics.registry)
    const get = await serve(new Request('http://x/metrics'))
    expect(get.status).toBe(200)
    expect(get.headers.get('Content-Type')).toBe('text/plain; version=0.0.4; charset=utf-8')
    expect(await get.text()).toContain('tenant_rate_limited_total{tenant="acme"} 1')
    const head = await serve(new Request('http://x/metrics', { method: 'HEAD' }))
    expect(head.status).toBe(200)
    expect(await head.text()).toBe('')
    const post = await serve(new Request('http://x/metrics', { method: 'POST' }))
    expect(post.status).toBe(405)
    expect(post.headers.get('Allow')).toBe('GET, HEAD')
  })

  it('refuses something that is not a registry, with the typed config error', () => {
    for (const source of [{}, null, undefined, 'registry']) {
      expectInvalidOption(
        () => metricsHandler(source as never),
        'metricsHandler',
        /^pass a TenantMetrics or a prom-client Registry$/,
      )
    }
  })
})
