import {
  ConfigPolicyEvaluator,
  InMemoryConfigManager,
  InMemoryQuotaManager,
  TokenBucketRateLimiter,
} from '@tenant/core'
import { type TenantEnv, tenancy } from '@tenant/hono'
import { Hono } from 'hono'

const configs = new InMemoryConfigManager() // DrizzleConfigManager(db) in production
await configs.setTenantConfig({
  id: 'acme',
  quota: { limits: [{ window: 'minute', requests: 100, tokens: 50_000 }] },
  rateLimit: { requestsPerSecond: 5, burst: 10 },
  policy: { allowedModels: ['gpt-4o-mini'] },
})

const app = new Hono<TenantEnv>()
app.get('/health', (c) => c.text('ok')) // outside the tenant chain
app.use(
  '/v1/*',
  tenancy({
    configManager: configs, // unknown tenants: 403 tenant_unknown
    policy: new ConfigPolicyEvaluator(configs),
    rateLimit: new TokenBucketRateLimiter(configs),
    quota: new InMemoryQuotaManager(configs),
  }),
)
app.post('/v1/chat', (c) => c.json({ tenant: c.var.tenantId }))

export default app // Bun, Deno, Workers; on Node: serve(app) from @hono/node-server
