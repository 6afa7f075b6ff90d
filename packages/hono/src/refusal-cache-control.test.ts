// Every refusal carries Cache-Control: no-store, whatever an earlier middleware set for the response.
import { InMemoryConfigManager, InMemoryQuotaManager } from '@tenant/core'
import { Hono } from 'hono'
import { describe, expect, it } from 'vitest'
import { tenancy } from './index'

describe('a refusal after a middleware that set Cache-Control with c.header()', () => {
  it('keeps Cache-Control: no-store on the 429 problem', async () => {
    const configs = new InMemoryConfigManager()
    await configs.setTenantConfig({ id: 'acme', quota: { limits: [{ window: 'minute', requests: 1 }] } })
    const app = new Hono()
      .use(async (c, next) => {
        c.header('Cache-Control', 'public, max-age=600')
        await next()
      })
      .use(tenancy({ configManager: configs, quota: new InMemoryQuotaManager(configs) }))
      .get('/', (c) => c.text('ok'))
    await app.request('/', { headers: { 'X-Tenant-ID': 'acme' } })
    const r = await app.request('/', { headers: { 'X-Tenant-ID': 'acme' } })
    expect(r.status).toBe(429)
    expect(r.headers.get('Cache-Control')).toBe('no-store')
  })
})
