import {
  ConfigPolicyEvaluator,
  InMemoryConfigManager,
  isTenantError,
  memoryCacheStore,
  TenantCache,
} from '@tenant/core'

const configs = new InMemoryConfigManager()
await configs.setTenantConfig({
  id: 'acme',
  quota: { limits: [{ window: 'day', requests: 10_000, tokens: 2_000_000 }] },
  rateLimit: { requestsPerSecond: 5, burst: 20 },
  policy: { allowedModels: ['gpt-4o-mini'], allowedMethods: ['POST'], allowedPaths: ['/v1/*'] },
  metadata: { plan: 'pro' },
})

const policy = new ConfigPolicyEvaluator(configs)
console.log(await policy.evaluate('acme', { model: 'gpt-4o-mini', method: 'post', path: '/v1/chat' }))
// { allowed: true }
console.log(await policy.evaluate('acme', { model: 'gpt-4o', method: 'POST', path: '/v1/chat' }))
// { allowed: false, rule: 'model', reason: 'model "gpt-4o" is not allowed' }

const cache = new TenantCache(memoryCacheStore({ max: 10_000 }), { ttlMs: 60_000 })
await cache.set('acme', 'profile:42', { name: 'Ada' })
console.log(await cache.get('acme', 'profile:42')) // { name: 'Ada' }
console.log(await cache.get('globex', 'profile:42')) // undefined: another tenant's entry

const page = await configs.listTenants({ limit: 100 })
console.log(
  page.items.map((t) => t.id),
  page.next,
) // [ 'acme' ] undefined

try {
  await configs.setTenantConfig({ id: 'acme', quota: { limits: [{ window: 'day', requests: -1 }] } })
} catch (error) {
  if (isTenantError(error)) console.log(error.code, error.status) // tenant_invalid_config 400
}
