import {
  ConfigPolicyEvaluator,
  InMemoryConfigManager,
  InMemoryQuotaManager,
  type PolicyEvaluator,
} from '@tenant/core'
import { applyMiddleware, withTenancy } from '@tenant/fetch'
import { describe, expect, it } from 'vitest'
import { tenantMetricsHooks, tenantMetricsMiddleware } from './fetch-metrics'
import { TenantMetrics } from './tenant-metrics'

// No `configManager` on the resolver (an allowed setup): it takes any well-formed id it is sent,
// and a later stage is the one that finds out the id is no tenant.
async function quotaOnlyChain(options: { hooks: boolean }) {
  const configs = new InMemoryConfigManager()
  await configs.setTenantConfig({ id: 'acme', quota: { limits: [{ window: 'minute', requests: 100 }] } })
  const metrics = new TenantMetrics({ maxTenants: 5 })
  const app = withTenancy(() => new Response('ok'), {
    quota: new InMemoryQuotaManager(configs), // refuses an unknown id: 403 tenant_unknown
    ...(options.hooks ? { hooks: tenantMetricsHooks(metrics) } : {}),
  })
  return { metrics, serve: applyMiddleware(tenantMetricsMiddleware(metrics), app) }
}

/** The response, its body read to the end as a server sends it (the middleware records then). */
async function sent(response: Promise<Response>): Promise<Response> {
  const done = await response
  await done.clone().arrayBuffer()
  return done
}

const as = (tenantId: string) => new Request('http://x/', { headers: { 'X-Tenant-ID': tenantId } })

function series(text: string, prefix: string): string[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith(prefix))
    .sort()
}

describe('tenantMetricsMiddleware: claimed ids never use up maxTenants', () => {
  for (const hooks of [true, false]) {
    it(`labels ids a later stage refused as unknown (none) ${hooks ? 'with' : 'without'} the hooks`, async () => {
      const { metrics, serve } = await quotaOnlyChain({ hooks })
      for (let i = 0; i < 20; i++) expect((await sent(serve(as(`junk-${i}`)))).status).toBe(403)
      expect((await sent(serve(as('acme')))).status).toBe(200)
      expect(metrics.tenantLabel('acme')).toBe('acme')
      const text = await metrics.registry.metrics()
      expect(series(text, 'tenant_requests_total')).toEqual([
        'tenant_requests_total{tenant="(none)",outcome="client_error",code="403"} 20',
        'tenant_requests_total{tenant="acme",outcome="success",code="200"} 1',
      ])
      expect(series(text, 'tenant_metrics_tracked_tenants')).toEqual(['tenant_metrics_tracked_tenants 1'])
    })
  }

  it('sees a refusal an override hook answered with its own response, through the hooks', async () => {
    const metrics = new TenantMetrics({ maxTenants: 5 })
    // Denies every id, with a plain-text refusal instead of a problem response.
    const denyAll: PolicyEvaluator = {
      evaluate: async () => ({ allowed: false, rule: 'model', reason: 'no' }),
    }
    const app = withTenancy(() => new Response('ok'), {
      policy: { evaluator: denyAll, onDenied: () => new Response('nope', { status: 403 }) },
      hooks: tenantMetricsHooks(metrics),
    })
    const serve = applyMiddleware(tenantMetricsMiddleware(metrics), app)
    for (let i = 0; i < 10; i++) expect(await (await sent(serve(as(`junk-${i}`)))).text()).toBe('nope')
    const text = await metrics.registry.metrics()
    expect(series(text, 'tenant_requests_total')).toEqual([
      'tenant_requests_total{tenant="(none)",outcome="client_error",code="403"} 10',
    ])
    // The hooks' own counters do not give the claimed ids a label either.
    expect(series(text, 'tenant_policy_denials_total')).toEqual([
      'tenant_policy_denials_total{tenant="(none)",rule="model"} 10',
    ])
    expect(series(text, 'tenant_metrics_tracked_tenants')).toEqual(['tenant_metrics_tracked_tenants 0'])
  })

  it('keeps the label of an unverified id the chain admitted before, on its later refusals', async () => {
    const metrics = new TenantMetrics({ maxTenants: 5 })
    let deny = false
    const policy: PolicyEvaluator = {
      evaluate: async () => (deny ? { allowed: false, rule: 'tool', reason: 'no' } : { allowed: true }),
    }
    const serve = applyMiddleware(
      tenantMetricsMiddleware(metrics),
      withTenancy(() => new Response('ok'), { policy, hooks: tenantMetricsHooks(metrics) }),
    )
    expect((await sent(serve(as('acme')))).status).toBe(200)
    deny = true
    expect((await sent(serve(as('acme')))).status).toBe(403)
    const text = await metrics.registry.metrics()
    expect(series(text, 'tenant_requests_total')).toEqual([
      'tenant_requests_total{tenant="acme",outcome="client_error",code="403"} 1',
      'tenant_requests_total{tenant="acme",outcome="success",code="200"} 1',
    ])
    expect(series(text, 'tenant_policy_denials_total')).toEqual([
      'tenant_policy_denials_total{tenant="acme",rule="tool"} 1',
    ])
  })

  it('labels a tenant the resolver read from its configManager, refused or not', async () => {
    const configs = new InMemoryConfigManager()
    await configs.setTenantConfig({ id: 'acme', policy: { allowedModels: ['gpt-4o'] } })
    const metrics = new TenantMetrics({ maxTenants: 5 })
    const serve = applyMiddleware(
      tenantMetricsMiddleware(metrics),
      withTenancy(() => new Response('ok'), {
        configManager: configs,
        policy: new ConfigPolicyEvaluator(configs),
        hooks: tenantMetricsHooks(metrics),
      }),
    )
    const request = new Request('http://x/', { headers: { 'X-Tenant-ID': 'acme', 'X-Model': 'claude' } })
    expect((await sent(serve(request))).status).toBe(403)
    const text = await metrics.registry.metrics()
    expect(series(text, 'tenant_requests_total')).toEqual([
      'tenant_requests_total{tenant="acme",outcome="client_error",code="403"} 1',
    ])
    expect(series(text, 'tenant_policy_denials_total')).toEqual([
      'tenant_policy_denials_total{tenant="acme",rule="model"} 1',
    ])
  })
})
