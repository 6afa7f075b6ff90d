// TenantMetrics.forget: a deleted tenant gives its label back, and a tenant created again under its
// id starts from zero instead of continuing the deleted customer's counters.
import {
  AdminService,
  auditedStore,
  InMemoryAuditLog,
  InMemoryConfigManager,
  InMemoryQuotaManager,
  InvalidTenantIdError,
  type QuotaCost,
  type QuotaManager,
} from '@tenant/core'
import { applyMiddleware, withTenancy } from '@tenant/fetch'
import { describe, expect, it } from 'vitest'
import { tenantMetricsHooks, tenantMetricsMiddleware } from './fetch-metrics'
import { TenantMetrics } from './tenant-metrics'

/** The exposition lines of every metric of `metrics` that name `tenant`. */
async function seriesOf(metrics: TenantMetrics, tenant: string): Promise<string[]> {
  const text = await metrics.registry.metrics()
  return text.split('\n').filter((line) => line.includes(`tenant="${tenant}"`))
}

/** Records one of everything for `tenantId`. */
function recordAll(metrics: TenantMetrics, tenantId: string): void {
  metrics.recordRequest(tenantId, { status: 200, durationMs: 5 })
  metrics.recordRequest(tenantId, { status: 429, durationMs: 1 })
  metrics.recordRequest(tenantId, { status: 200, durationMs: 5, end: 'cancelled' })
  metrics.recordQuotaRejection(tenantId)
  metrics.recordRateLimited(tenantId)
  metrics.recordConcurrencyRejection(tenantId)
  metrics.recordPolicyDenial(tenantId, 'model')
  metrics.recordPolicyDenial(tenantId)
  metrics.recordTokens(tenantId, 100)
  metrics.recordTokens(tenantId, -10)
}

describe('TenantMetrics.forget', () => {
  it('frees the label, so a new tenant gets its own instead of the overflow label', () => {
    const metrics = new TenantMetrics({ maxTenants: 2 })
    metrics.recordRateLimited('old-1')
    metrics.recordRateLimited('old-2')
    expect(metrics.tenantLabel('live')).toBe('(other)')
    expect(metrics.forget('old-1')).toBe(true)
    expect(metrics.hasLabel('old-1')).toBe(false)
    expect(metrics.tenantLabel('live')).toBe('live')
    // The slot is taken again: the cap still holds.
    expect(metrics.tenantLabel('another')).toBe('(other)')
  })

  it('removes every series of the tenant from every metric, and updates the tracked count', async () => {
    const metrics = new TenantMetrics()
    recordAll(metrics, 'acme')
    recordAll(metrics, 'globex')
    metrics.recordRequest(undefined, { status: 401, durationMs: 1 })
    const globex = await seriesOf(metrics, 'globex')
    // requests x3, duration buckets + sum + count, 2 policy rules, 5 single-label counters.
    expect(await seriesOf(metrics, 'acme')).toHaveLength(globex.length)
    expect(await metrics.registry.metrics()).toContain('tenant_metrics_tracked_tenants 2')

    expect(metrics.forget('acme')).toBe(true)
    const text = await metrics.registry.metrics()
    expect(text).not.toContain('acme')
    expect(await seriesOf(metrics, 'globex')).toEqual(globex)
    expect(text).toContain('tenant_requests_total{tenant="(none)",outcome="client_error",code="401"} 1')
    expect(text).toContain('tenant_metrics_tracked_tenants 1')
  })

  it('makes a tenant recorded again under the id start from zero', async () => {
    const metrics = new TenantMetrics()
    recordAll(metrics, 'acme')
    recordAll(metrics, 'acme')
    metrics.forget('acme')
    metrics.recordRequest('acme', { status: 200, durationMs: 20 })
    metrics.recordTokens('acme', 7)
    expect(await seriesOf(metrics, 'acme')).toEqual(
      expect.arrayContaining([
        'tenant_requests_total{tenant="acme",outcome="success",code="200"} 1',
        'tenant_request_duration_seconds_count{tenant="acme"} 1',
        'tenant_tokens_consumed_total{tenant="acme"} 7',
      ]),
    )
    const text = await metrics.registry.metrics()
    for (const gone of [
      'tenant_requests_total{tenant="acme",outcome="client_error"',
      'tenant_requests_total{tenant="acme",outcome="cancelled"',
      'tenant_quota_rejections_total{tenant="acme"}',
      'tenant_policy_denials_total{tenant="acme"',
      'tenant_tokens_refunded_total{tenant="acme"}',
    ]) {
      expect(text).not.toContain(gone)
    }
  })

  it('is a no-op for a tenant without a label (never seen, overflowed, or forgotten already)', async () => {
    const metrics = new TenantMetrics({ maxTenants: 1 })
    metrics.recordRateLimited('acme')
    metrics.recordRateLimited('beyond')
    const before = await metrics.registry.metrics()
    expect(metrics.forget('unknown')).toBe(false)
    expect(metrics.forget('beyond')).toBe(false)
    expect(await metrics.registry.metrics()).toBe(before)
    expect(metrics.forget('acme')).toBe(true)
    expect(metrics.forget('acme')).toBe(false)
  })

  it('refuses an invalid id, the overflow and missing labels included, with InvalidTenantIdError', async () => {
    const metrics = new TenantMetrics()
    metrics.recordRateLimited('a b')
    metrics.recordRateLimited(undefined)
    const before = await metrics.registry.metrics()
    for (const bad of ['a b', '', '..', '(other)', '(none)', 'x'.repeat(256), 7, undefined, null]) {
      expect(() => metrics.forget(bad as string), String(bad)).toThrow(InvalidTenantIdError)
    }
    let error: unknown
    try {
      metrics.forget('acme/eu')
    } catch (thrown) {
      error = thrown
    }
    expect(error).toMatchObject({ code: 'tenant_invalid_id', status: 400 })
    expect(await metrics.registry.metrics()).toBe(before)
  })

  it("removes a reserved tenant's series but keeps its reserved label", async () => {
    const metrics = new TenantMetrics({ maxTenants: 2, tenants: ['vip'] })
    metrics.recordTokens('vip', 50)
    expect(metrics.forget('vip')).toBe(true)
    expect(await seriesOf(metrics, 'vip')).toEqual([])
    expect(metrics.hasLabel('vip')).toBe(true)
    metrics.recordRateLimited('t1')
    expect(metrics.tenantLabel('t2')).toBe('(other)')
    expect(metrics.tenantLabel('vip')).toBe('vip')
  })

  it("as AdminService's freshStart: a re-created id is counted from zero, and deleted tenants free their labels", async () => {
    const configs = new InMemoryConfigManager()
    const auditLog = new InMemoryAuditLog()
    const metrics = new TenantMetrics({ maxTenants: 2 })
    const admin = new AdminService({
      store: auditedStore(configs, auditLog),
      auditLog,
      freshStart: async (tenantId) => {
        metrics.forget(tenantId)
      },
    })
    const context = { actor: 'test' }
    const serve = applyMiddleware(
      tenantMetricsMiddleware(metrics),
      withTenancy(() => new Response('ok'), { configManager: configs, hooks: tenantMetricsHooks(metrics) }),
    )
    const call = async (tenantId: string) => {
      const response = await serve(new Request('http://x/', { headers: { 'X-Tenant-ID': tenantId } }))
      await response.arrayBuffer()
      return response.status
    }

    for (const id of ['acme', 'old']) {
      await admin.create({ id }, context)
      expect(await call(id)).toBe(200)
    }
    expect(await call('acme')).toBe(200)
    await admin.delete('acme', context)
    await admin.create({ id: 'acme' }, context)
    expect(await call('acme')).toBe(200)
    expect(await metrics.registry.metrics()).toContain(
      'tenant_requests_total{tenant="acme",outcome="success",code="200"} 1',
    )

    // Both labels are taken (acme, old). 'new' is a free id, so its freshStart frees nothing:
    // deleting 'old' must forget it for 'new' to get a label of its own.
    await admin.delete('old', context)
    metrics.forget('old')
    await admin.create({ id: 'new' }, context)
    expect(await call('new')).toBe(200)
    expect(metrics.tenantLabel('new')).toBe('new')
  })

  it('counts a request that outlived its forgotten tenant under the missing label, not under the next tenant of its id', async () => {
    const configs = new InMemoryConfigManager()
    await configs.setTenantConfig({ id: 'acme' })
    const metrics = new TenantMetrics({ maxTenants: 1 })
    const streams: ReadableStreamDefaultController<Uint8Array>[] = []
    const serve = applyMiddleware(
      tenantMetricsMiddleware(metrics),
      withTenancy(
        () =>
          new Response(
            new ReadableStream<Uint8Array>({ start: (controller) => void streams.push(controller) }),
          ),
        { configManager: configs, hooks: tenantMetricsHooks(metrics) },
      ),
    )
    const call = () => serve(new Request('http://x/', { headers: { 'X-Tenant-ID': 'acme' } }))
    const old = await call()
    // Deleted and created again for another customer while the old answer still streams.
    await configs.deleteTenantConfig('acme')
    metrics.forget('acme')
    await configs.setTenantConfig({ id: 'acme' })
    const fresh = await call()
    for (const controller of streams) controller.close()
    await Promise.all([old.arrayBuffer(), fresh.arrayBuffer()])
    const text = await metrics.registry.metrics()
    expect(text).toContain('tenant_requests_total{tenant="acme",outcome="success",code="200"} 1')
    expect(text).toContain('tenant_requests_total{tenant="(none)",outcome="success",code="200"} 1')
    // The late record took no label: the new tenant holds the only one.
    expect(metrics.tenantLabel('acme')).toBe('acme')
  })

  it('does so for a handler that was still working (answering or throwing) when its tenant was forgotten', async () => {
    const configs = new InMemoryConfigManager()
    await configs.setTenantConfig({ id: 'acme' })
    const metrics = new TenantMetrics({ maxTenants: 1 })
    // The old customer's two requests wait on a slow upstream: one answers, one throws.
    const upstream: { release: () => void; fail: boolean }[] = []
    let entered!: () => void
    const bothEntered = new Promise<void>((resolve) => (entered = resolve))
    const serve = applyMiddleware(
      tenantMetricsMiddleware(metrics),
      withTenancy(
        async (request) => {
          const fail = request.headers.get('X-Fail') === '1'
          if (request.headers.get('X-Slow') === '1') {
            await new Promise<void>((release) => {
              if (upstream.push({ release, fail }) === 2) entered()
            })
          }
          if (fail) throw new Error('upstream failed')
          return new Response('ok')
        },
        { configManager: configs, hooks: tenantMetricsHooks(metrics) },
      ),
    )
    const call = (headers: Record<string, string> = {}) =>
      serve(new Request('http://x/', { headers: { 'X-Tenant-ID': 'acme', ...headers } }))
    const answered = call({ 'X-Slow': '1' })
    const thrown = call({ 'X-Slow': '1', 'X-Fail': '1' }).catch((error: unknown) => error)
    await bothEntered
    // Deleted and created again for another customer while both handlers still work.
    await configs.deleteTenantConfig('acme')
    metrics.forget('acme')
    await configs.setTenantConfig({ id: 'acme' })
    for (const { release } of upstream) release()
    await (await answered).arrayBuffer()
    expect(await thrown).toBeInstanceOf(Error)
    await (await call()).arrayBuffer()
    const text = await metrics.registry.metrics()
    expect(text).toContain('tenant_requests_total{tenant="acme",outcome="success",code="200"} 1')
    expect(text).toContain('tenant_requests_total{tenant="(none)",outcome="success",code="200"} 1')
    expect(text).toContain('tenant_requests_total{tenant="(none)",outcome="server_error",code="500"} 1')
    expect(text).not.toMatch(/tenant_requests_total\{tenant="acme",outcome="server_error"/)
    expect(metrics.tenantLabel('acme')).toBe('acme')
  })
})

describe('TenantMetrics.recordRequest', () => {
  it('never throws, even without a record (counted as a bad status)', async () => {
    const metrics = new TenantMetrics()
    for (const record of [undefined, null, 'x', { status: '200', durationMs: 5n }]) {
      expect(() => metrics.recordRequest('acme', record as never)).not.toThrow()
    }
    expect(await metrics.registry.metrics()).toContain(
      'tenant_requests_total{tenant="acme",outcome="server_error",code="0"} 4',
    )
  })
})

// The hooks recorded a store's answer (a consume, a policy decision, an actualTokens adjustment)
// that landed after its tenant was forgotten under the id, which then belonged to a new customer:
// the new customer got the old one's counts and its label back.
describe('tenantMetricsHooks and a tenant forgotten while its request runs', () => {
  const as = (tenantId: string) =>
    new Request('http://x/', { headers: { 'X-Tenant-ID': tenantId, 'X-Token-Count': '10' } })

  for (const stage of ['quota', 'policy', 'actualTokens'] as const) {
    it(`does not count the old customer's ${stage} answer under the id's next tenant`, async () => {
      const configs = new InMemoryConfigManager()
      const limits = { quota: { limits: [{ window: 'day' as const, tokens: 100_000 }] } }
      await configs.setTenantConfig({ id: 'acme', ...limits })
      const quotas = new InMemoryQuotaManager(configs)
      const metrics = new TenantMetrics({ maxTenants: 5 })
      let release!: () => void
      const gate = new Promise<void>((resolve) => (release = resolve))
      let entered!: () => void
      const inStore = new Promise<void>((resolve) => (entered = resolve))
      const held = async <T>(answer: () => Promise<T>): Promise<T> => {
        entered()
        await gate
        return answer()
      }
      const options =
        stage === 'quota'
          ? {
              quota: {
                consume: (id: string, cost?: QuotaCost) => held(() => quotas.consume(id, cost)),
                adjust: quotas.adjust.bind(quotas),
                peek: quotas.peek.bind(quotas),
              } as QuotaManager,
            }
          : stage === 'policy'
            ? {
                policy: {
                  evaluate: () =>
                    held(async () => ({ allowed: false, rule: 'model' as const, reason: 'no' })),
                },
              }
            : { quota: { manager: quotas, actualTokens: () => 5_000 } }
      const handler =
        stage === 'actualTokens' ? () => held(async () => new Response('ok')) : () => new Response('ok')
      const app = withTenancy(handler, {
        configManager: configs,
        ...options,
        hooks: tenantMetricsHooks(metrics),
      })
      const serve = applyMiddleware(tenantMetricsMiddleware(metrics), app)
      const old = serve(as('acme'))
      await inStore
      // The old customer is deleted and the id given to a new one (AdminService's order).
      await configs.deleteTenantConfig('acme')
      metrics.forget('acme')
      await configs.setTenantConfig({ id: 'acme', ...limits })
      release()
      await (await old).arrayBuffer()
      expect(await seriesOf(metrics, 'acme')).toEqual([])
      expect(metrics.hasLabel('acme')).toBe(false)
    })
  }

  // A Request object sent again: the refusal of its first run marked it refused for good.
  it('labels a Request object admitted on its second run after a refusal on its first', async () => {
    const configs = new InMemoryConfigManager()
    const metrics = new TenantMetrics({ maxTenants: 5 })
    const app = withTenancy(() => new Response('ok'), {
      quota: new InMemoryQuotaManager(configs),
      hooks: tenantMetricsHooks(metrics),
    })
    const serve = applyMiddleware(tenantMetricsMiddleware(metrics), app)
    // No tokens: a charge of tokens would give the id a label of its own, whatever the refusal.
    const request = new Request('http://x/', { headers: { 'X-Tenant-ID': 'acme' } })
    expect((await serve(request)).status).toBe(403)
    await configs.setTenantConfig({ id: 'acme', quota: { limits: [{ window: 'day', requests: 10 }] } })
    const second = await serve(request)
    await second.arrayBuffer()
    expect(second.status).toBe(200)
    expect(await seriesOf(metrics, 'acme')).toContain(
      'tenant_requests_total{tenant="acme",outcome="success",code="200"} 1',
    )
  })
})
