import { InMemoryConfigManager, InMemoryQuotaManager, ManualClock } from '@tenant/core'
import { Hono } from 'hono'
import { describe, expect, it } from 'vitest'
import { type TenantEnv, tenancy, tenantQuota, tenantResolver } from './index'

describe('hono tenantQuota / tenancy subject option', () => {
  async function setup() {
    const clock = new ManualClock(Date.UTC(2026, 0, 15, 10, 20, 30))
    const configs = new InMemoryConfigManager({ clock })
    await configs.setTenantConfig({
      id: 'acme',
      quota: {
        limits: [{ window: 'minute', requests: 10 }],
        subjects: [{ match: 'model:*', limits: [{ window: 'minute', requests: 1 }] }],
      },
    })
    const quotas = new InMemoryQuotaManager(configs, { clock })
    const subject = (request: Request) => {
      const model = request.headers.get('X-Model')
      return model === null ? undefined : `model:${model}`
    }
    return { clock, configs, quotas, subject }
  }
  const get = (app: Hono<TenantEnv>, model: string) =>
    app.request('/v1/chat', { headers: { 'X-Tenant-ID': 'acme', 'X-Model': model } })

  it('charges the subject with the tenant and answers 429 / 400 like @tenant/fetch', async () => {
    const { clock, configs, quotas, subject } = await setup()
    const app = new Hono<TenantEnv>()
    app.use('*', tenantResolver({ configManager: configs }), tenantQuota({ manager: quotas, clock, subject }))
    app.get('/v1/chat', (c) => c.text('ok'))
    const first = await get(app, 'large')
    expect(first.status).toBe(200)
    expect(first.headers.get('RateLimit-Policy')).toBe('"minute";q=10;w=60, "subject-minute";q=1;w=60')
    expect(first.headers.get('X-Quota-Remaining-Requests')).toBe('0')
    expect((await get(app, 'large')).status).toBe(429)
    expect((await get(app, 'small')).status).toBe(200)
    const bad = await get(app, 'a b')
    expect(bad.status).toBe(400)
    expect(((await bad.json()) as { code: string }).code).toBe('invalid_subject')
    expect((await quotas.peek('acme')).windows[0]!.used.requests).toBe(2)
  })

  it('takes it through tenancy({ quota: { manager, subject } })', async () => {
    const { clock, configs, quotas, subject } = await setup()
    const app = new Hono<TenantEnv>()
    app.use('*', tenancy({ configManager: configs, quota: { manager: quotas, clock, subject } }))
    app.get('/v1/chat', (c) => c.text('ok'))
    expect((await get(app, 'large')).status).toBe(200)
    expect((await get(app, 'large')).status).toBe(429)
  })
})
