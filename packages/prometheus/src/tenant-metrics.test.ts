import { expectInvalidOption } from '@tenant/core/testing'
import { register as globalRegistry, Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { TenantMetrics, type TenantMetricsOptions } from './tenant-metrics'

type Labels = Record<string, string | number>

/** The value of one series, read through prom-client's own JSON view. */
async function value(metrics: TenantMetrics, name: string, labels: Labels): Promise<number | undefined> {
  const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name)
  return metric?.values.find(
    (v) =>
      ((v as { metricName?: string }).metricName ?? name) === name &&
      Object.keys(labels).length === Object.keys(v.labels).length &&
      Object.entries(labels).every(([k, l]) => String(v.labels[k]) === String(l)),
  )?.value
}

/** Distinct values of `label` across the samples of a metric. */
async function labelValues(metrics: TenantMetrics, name: string, label: string): Promise<Set<string>> {
  const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name)
  return new Set((metric?.values ?? []).map((v) => String(v.labels[label])))
}

describe('TenantMetrics recording', () => {
  it('counts requests by tenant, outcome and status code, and observes durations in seconds', async () => {
    const metrics = new TenantMetrics()
    metrics.recordRequest('acme', { status: 200, durationMs: 30 })
    metrics.recordRequest('acme', { status: 200, durationMs: 70 })
    metrics.recordRequest('acme', { status: 429, durationMs: 1 })
    metrics.recordRequest('beta', { status: 503, durationMs: 2 })
    expect(
      await value(metrics, 'tenant_requests_total', { tenant: 'acme', outcome: 'success', code: 200 }),
    ).toBe(2)
    expect(
      await value(metrics, 'tenant_requests_total', { tenant: 'acme', outcome: 'client_error', code: 429 }),
    ).toBe(1)
    expect(
      await value(metrics, 'tenant_requests_total', { tenant: 'beta', outcome: 'server_error', code: 503 }),
    ).toBe(1)
    const text = await metrics.registry.metrics()
    expect(text).toContain('tenant_request_duration_seconds_count{tenant="acme"} 3')
    expect(text).toContain('tenant_request_duration_seconds_sum{tenant="acme"} 0.101')
    expect(text).toContain('tenant_request_duration_seconds_bucket{le="0.05",tenant="acme"} 2')
    expect(text).toContain('tenant_request_duration_seconds_bucket{le="0.1",tenant="acme"} 3')
  })

  it('counts a body that failed as a server error and one cancelled as cancelled, with the status sent', async () => {
    const metrics = new TenantMetrics()
    metrics.recordRequest('acme', { status: 200, durationMs: 5, end: 'errored' })
    metrics.recordRequest('acme', { status: 200, durationMs: 5, end: 'cancelled' })
    metrics.recordRequest('acme', { status: 429, durationMs: 5, end: 'complete' })
    for (const [outcome, code] of [
      ['server_error', 200],
      ['cancelled', 200],
      ['client_error', 429],
    ] as const) {
      expect(await value(metrics, 'tenant_requests_total', { tenant: 'acme', outcome, code })).toBe(1)
    }
  })

  it('reserves the tenants of any iterable (a Set, a generator), not only of an array', () => {
    function* generated() {
      yield 'vip-1'
      yield 'vip-2'
      yield 'vip-1'
    }
    const iterables: Iterable<string>[] = [
      new Set(['vip-1', 'vip-2']),
      new Map([
        ['vip-1', 1],
        ['vip-2', 2],
      ]).keys(),
      generated(),
    ]
    for (const tenants of iterables) {
      const metrics = new TenantMetrics({ maxTenants: 3, tenants })
      expect([metrics.hasLabel('vip-1'), metrics.hasLabel('vip-2')]).toEqual([true, true])
      // Two of the three labels are reserved (the duplicate counts once).
      metrics.recordRateLimited('first')
      expect(metrics.tenantLabel('second')).toBe('(other)')
    }
    expectInvalidOption(
      () => new TenantMetrics({ maxTenants: 1, tenants: new Set(['a', 'b']) }),
      'TenantMetrics.tenants',
      /2 tenants listed, more than maxTenants \(1\)/,
    )
  })

  it('tells which ids have a label already, without taking one', () => {
    const metrics = new TenantMetrics({ maxTenants: 2, tenants: ['big'] })
    expect([metrics.hasLabel('big'), metrics.hasLabel('acme')]).toEqual([true, false])
    metrics.recordRateLimited('acme')
    expect(metrics.hasLabel('acme')).toBe(true)
  })

  it('never throws on a bad status or duration: the request is still counted', async () => {
    const metrics = new TenantMetrics()
    metrics.recordRequest('acme', { status: Number.NaN, durationMs: Number.NaN })
    metrics.recordRequest('acme', { status: 42, durationMs: -5 })
    expect(
      await value(metrics, 'tenant_requests_total', { tenant: 'acme', outcome: 'server_error', code: 0 }),
    ).toBe(2)
    expect(await metrics.registry.metrics()).not.toContain(
      'tenant_request_duration_seconds_count{tenant="acme"}',
    )
  })

  it('counts quota rejections, rate-limited requests and policy denials by rule', async () => {
    const metrics = new TenantMetrics()
    metrics.recordQuotaRejection('acme')
    metrics.recordQuotaRejection('acme')
    metrics.recordRateLimited('acme')
    metrics.recordConcurrencyRejection('acme')
    metrics.recordConcurrencyRejection(undefined)
    metrics.recordPolicyDenial('acme', 'model')
    metrics.recordPolicyDenial('acme', 'model')
    metrics.recordPolicyDenial('acme', 'path')
    metrics.recordPolicyDenial('acme')
    metrics.recordPolicyDenial('acme', 'bogus' as never)
    expect(await value(metrics, 'tenant_quota_rejections_total', { tenant: 'acme' })).toBe(2)
    expect(await value(metrics, 'tenant_rate_limited_total', { tenant: 'acme' })).toBe(1)
    expect(await value(metrics, 'tenant_concurrency_rejections_total', { tenant: 'acme' })).toBe(1)
    expect(await value(metrics, 'tenant_concurrency_rejections_total', { tenant: '(none)' })).toBe(1)
    expect(await value(metrics, 'tenant_policy_denials_total', { tenant: 'acme', rule: 'model' })).toBe(2)
    expect(await value(metrics, 'tenant_policy_denials_total', { tenant: 'acme', rule: 'path' })).toBe(1)
    expect(await value(metrics, 'tenant_policy_denials_total', { tenant: 'acme', rule: 'unknown' })).toBe(2)
  })

  it('counts tokens charged, and refunds separately since counters only go up', async () => {
    const metrics = new TenantMetrics()
    metrics.recordTokens('acme', 500)
    metrics.recordTokens('acme', 250)
    metrics.recordTokens('acme', -100)
    metrics.recordTokens('acme', 0)
    metrics.recordTokens('acme', Number.POSITIVE_INFINITY)
    expect(await value(metrics, 'tenant_tokens_consumed_total', { tenant: 'acme' })).toBe(750)
    expect(await value(metrics, 'tenant_tokens_refunded_total', { tenant: 'acme' })).toBe(100)
  })

  it('labels requests without a tenant as missing, and invalid ids as overflow', async () => {
    const metrics = new TenantMetrics()
    metrics.recordRequest(undefined, { status: 401, durationMs: 1 })
    metrics.recordRequest('bad id/with slash', { status: 400, durationMs: 1 })
    expect(await labelValues(metrics, 'tenant_requests_total', 'tenant')).toEqual(
      new Set(['(none)', '(other)']),
    )
    expect(await value(metrics, 'tenant_metrics_tracked_tenants', {})).toBe(0)
  })

  it('honours prefix, custom labels and buckets', async () => {
    const metrics = new TenantMetrics({
      prefix: 'gw_',
      overflowLabel: '*other*',
      missingLabel: '*anon*',
      maxTenants: 0,
      buckets: [1, 2],
    })
    metrics.recordRequest('acme', { status: 200, durationMs: 1500 })
    metrics.recordRequest(undefined, { status: 200, durationMs: 1 })
    const text = await metrics.registry.metrics()
    expect(text).toContain('gw_requests_total{tenant="*other*",outcome="success",code="200"} 1')
    expect(text).toContain('gw_requests_total{tenant="*anon*",outcome="success",code="200"} 1')
    expect(text).toContain('gw_request_duration_seconds_bucket{le="1",tenant="*other*"} 0')
    expect(text).toContain('gw_request_duration_seconds_bucket{le="2",tenant="*other*"} 1')
  })
})

describe('TenantMetrics label cardinality', () => {
  it('holds at most maxTenants tenant labels with 10k tenant ids, counting the rest as overflow', async () => {
    const metrics = new TenantMetrics({ maxTenants: 100 })
    for (let i = 0; i < 10_000; i++) {
      const id = `tenant-${i}`
      metrics.recordRequest(id, { status: 200, durationMs: 5 })
      metrics.recordQuotaRejection(id)
      metrics.recordTokens(id, 1)
    }
    for (const name of [
      'tenant_requests_total',
      'tenant_quota_rejections_total',
      'tenant_tokens_consumed_total',
    ]) {
      const labels = await labelValues(metrics, name, 'tenant')
      expect(labels.size).toBe(101)
      expect(labels.has('(other)')).toBe(true)
      expect(labels.has('tenant-0') && labels.has('tenant-99')).toBe(true)
      expect(labels.has('tenant-100')).toBe(false)
    }
    expect(
      await value(metrics, 'tenant_requests_total', { tenant: '(other)', outcome: 'success', code: 200 }),
    ).toBe(9_900)
    expect(await value(metrics, 'tenant_quota_rejections_total', { tenant: '(other)' })).toBe(9_900)
    expect(await value(metrics, 'tenant_tokens_consumed_total', { tenant: 'tenant-42' })).toBe(1)
    expect(await value(metrics, 'tenant_metrics_tracked_tenants', {})).toBe(100)
    // The exposition itself stays bounded: 101 tenant values x (1 counter + 17 histogram lines).
    const text = await metrics.registry.metrics()
    const requestSeries = text.split('\n').filter((line) => line.startsWith('tenant_requests_total{'))
    expect(requestSeries).toHaveLength(101)
    // Tenants seen before the cap keep their own label afterwards.
    metrics.recordRateLimited('tenant-7')
    expect(await value(metrics, 'tenant_rate_limited_total', { tenant: 'tenant-7' })).toBe(1)
  })

  it('always labels reserved tenants, even after a flood, and keeps them across reset', async () => {
    const metrics = new TenantMetrics({ maxTenants: 3, tenants: ['vip-1', 'vip-2'] })
    for (let i = 0; i < 50; i++) metrics.recordRateLimited(`t${i}`)
    metrics.recordRateLimited('vip-2')
    expect(await labelValues(metrics, 'tenant_rate_limited_total', 'tenant')).toEqual(
      new Set(['t0', '(other)', 'vip-2']),
    )
    metrics.reset()
    expect(await value(metrics, 'tenant_metrics_tracked_tenants', {})).toBe(2)
    expect(await labelValues(metrics, 'tenant_rate_limited_total', 'tenant')).toEqual(new Set())
    metrics.recordRateLimited('t1')
    metrics.recordRateLimited('t2')
    expect(await labelValues(metrics, 'tenant_rate_limited_total', 'tenant')).toEqual(
      new Set(['t1', '(other)']),
    )
  })
})

describe('TenantMetrics registries', () => {
  it('uses a new registry by default, never the global one', async () => {
    const metrics = new TenantMetrics()
    metrics.recordRateLimited('acme')
    expect(metrics.registry).not.toBe(globalRegistry)
    expect(globalRegistry.getSingleMetric('tenant_rate_limited_total')).toBeUndefined()
    // A second instance does not collide with the first.
    expect(() => new TenantMetrics()).not.toThrow()
  })

  it('registers in the registry it is given, next to the app metrics', async () => {
    const registry = new Registry()
    registry.setDefaultLabels({ service: 'gateway' })
    const metrics = new TenantMetrics({ registry })
    metrics.recordRateLimited('acme')
    expect(metrics.registry).toBe(registry)
    expect(await registry.metrics()).toContain('tenant_rate_limited_total{tenant="acme",service="gateway"} 1')
    expect(() => new TenantMetrics({ registry })).toThrow(/already been registered/)
    expect(() => new TenantMetrics({ registry, prefix: 'other_' })).not.toThrow()
  })

  it('checks its options when constructed, with the typed config error naming the option', () => {
    const cases: [TenantMetricsOptions, string, RegExp][] = [
      [{ maxTenants: -1 }, 'TenantMetrics.maxTenants', /^must be a whole number >= 0, got -1$/],
      [{ maxTenants: 1.5 }, 'TenantMetrics.maxTenants', /got 1\.5/],
      [{ overflowLabel: 'other' }, 'TenantMetrics.overflowLabel', /not a valid tenant id/],
      [{ missingLabel: '' }, 'TenantMetrics.missingLabel', /not a valid tenant id/],
      [{ overflowLabel: '(x)', missingLabel: '(x)' }, 'TenantMetrics.missingLabel', /must differ/],
      [{ prefix: 'bad-prefix' }, 'TenantMetrics.prefix', /^"bad-prefix" is not a metric name$/],
      [{ prefix: 7 as never }, 'TenantMetrics.prefix', /not a metric name/],
      [{ buckets: [1, 1] }, 'TenantMetrics.buckets', /strictly increasing/],
      [{ buckets: [] }, 'TenantMetrics.buckets', /strictly increasing/],
      [{ buckets: 5 as never }, 'TenantMetrics.buckets', /strictly increasing/],
      [{ tenants: ['a b'] }, 'TenantMetrics.tenants', /^contains an invalid id "a b"$/],
      [{ tenants: 'acme' as never }, 'TenantMetrics.tenants', /^must be an iterable .* not a string$/],
      [{ tenants: new String('acme') as never }, 'TenantMetrics.tenants', /must be an iterable/],
      [{ tenants: 7 as never }, 'TenantMetrics.tenants', /must be an iterable/],
      [{ tenants: null as never }, 'TenantMetrics.tenants', /must be an iterable/],
      [{ tenants: { acme: true } as never }, 'TenantMetrics.tenants', /must be an iterable/],
      [{ tenants: new Set(['ok', 'a/b']) }, 'TenantMetrics.tenants', /^contains an invalid id "a\/b"$/],
      [{ tenants: new Set([7]) as never }, 'TenantMetrics.tenants', /^contains an invalid id "7"$/],
      [
        { maxTenants: 1, tenants: ['a', 'b'] },
        'TenantMetrics.tenants',
        /2 tenants listed, more than maxTenants \(1\)/,
      ],
    ]
    for (const [options, path, message] of cases) {
      const registry = new Registry()
      expectInvalidOption(() => new TenantMetrics({ ...options, registry }), path, message)
      // Refused before registering anything, so the corrected options can reuse the registry.
      expect(registry.getMetricsAsArray(), path).toEqual([])
    }
  })
})
