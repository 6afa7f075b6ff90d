// A refusal by a later stage carries the earlier stages' RateLimit items after its own, the same on
// the Fetch host, Hono's app.request() and @hono/node-server (Hono's c.res setter copies the
// context's headers over the refusal's; the host puts the refusal's back).
import type { AddressInfo } from 'node:net'
import { type ServerType, serve } from '@hono/node-server'
import {
  InMemoryConfigManager,
  InMemoryQuotaManager,
  ManualClock,
  TokenBucketRateLimiter,
} from '@tenant/core'
import {
  compose,
  tenantQuota as fQuota,
  tenantRateLimit as fRate,
  tenantResolver as fResolver,
} from '@tenant/fetch'
import { Hono } from 'hono'
import { afterEach, describe, expect, it } from 'vitest'
import { tenantQuota, tenantRateLimit, tenantResolver } from './index'

const servers: ServerType[] = []
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise<void>((r) => s.close(() => r()))
})
async function listen(app: Hono<any>): Promise<string> {
  const server = await new Promise<ServerType>((resolve) => {
    const started = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(started))
  })
  servers.push(server)
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

async function fixtures() {
  const clock = new ManualClock(Date.UTC(2026, 0, 1, 12, 0, 15))
  const configs = new InMemoryConfigManager({ clock })
  await configs.setTenantConfig({
    id: 'acme',
    quota: { limits: [{ window: 'minute', requests: 1 }] },
    rateLimit: { requestsPerSecond: 10, burst: 10 },
  })
  return {
    clock,
    configs,
    quotas: new InMemoryQuotaManager(configs, { clock }),
    limiter: new TokenBucketRateLimiter(configs, { clock }),
  }
}
async function honoApp() {
  const { clock, configs, quotas, limiter } = await fixtures()
  return new Hono()
    .use(tenantResolver({ configManager: configs }))
    .use(tenantRateLimit({ limiter, clock }))
    .use(tenantQuota({ manager: quotas, clock }))
    .get('/', (c) => c.text('ok'))
}
const H = { 'X-Tenant-ID': 'acme' }
const pick = (r: Response) => ({
  status: r.status,
  policy: r.headers.get('ratelimit-policy'),
  rl: r.headers.get('ratelimit'),
})

describe('split stages: a quota refusal after a separate rate-limit middleware', () => {
  it('carries the same headers on Fetch compose, Hono app.request and node-server', async () => {
    const f = await fixtures()
    const chain = compose(
      fResolver({ configManager: f.configs }),
      fRate({ limiter: f.limiter, clock: f.clock }),
      fQuota({ manager: f.quotas, clock: f.clock }),
    )
    const fetchSide = async () =>
      chain(new Request('http://x/', { headers: H }), async () => new Response('ok'))
    await fetchSide()
    const viaFetch = pick(await fetchSide())

    const a = await honoApp()
    await a.request('/', { headers: H })
    const viaRequest = pick(await a.request('/', { headers: H }))

    const base = await listen(await honoApp())
    await (await fetch(base, { headers: H })).arrayBuffer()
    const rn = await fetch(base, { headers: H })
    await rn.arrayBuffer()
    const viaNode = pick(rn)
    expect(viaFetch.status).toBe(429)
    expect(viaFetch.policy).toContain('"minute";q=1')
    expect(viaRequest).toEqual(viaFetch)
    expect(viaNode).toEqual(viaFetch)
  })
})
