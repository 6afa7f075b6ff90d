/**
 * The @tenant/hono cases of the runtime matrix (run by packages/fetch/test/runtimes on Node, Bun,
 * Deno and workerd): a Hono app behind the adapter, served like any fetch handler. They cover what
 * the adapter adds on each runtime: context variables, the hono/jwt principal (WebCrypto), the
 * headers on Hono's responses.
 */
import { InMemoryConfigManager, InMemoryQuotaManager, ManualClock } from '@tenant/core'
import { equal, expectProblem, type PortableCase, serving, t } from '@tenant/fetch/testing'
import { Hono } from 'hono'
import { jwt, sign } from 'hono/jwt'
import { currentTenantId, type TenantEnv, tenancy } from '../../src/index'

const SECRET = 'portable-suite-secret-of-32-bytes!'

async function app() {
  const clock = new ManualClock(Date.UTC(2026, 2, 10, 9, 30, 15))
  const configs = new InMemoryConfigManager({ clock })
  await configs.setTenantConfig({
    id: 'acme',
    metadata: { plan: 'pro' },
    quota: { limits: [{ window: 'minute', requests: 2 }] },
  })
  await configs.setTenantConfig({ id: 'globex' })
  const api = new Hono<TenantEnv>()
    .use(tenancy({ configManager: configs, quota: new InMemoryQuotaManager(configs, { clock }), clock }))
    .get('/me', async (c) => {
      await new Promise((resolve) => setTimeout(resolve, 1))
      return c.json({
        tenantId: c.var.tenantId,
        plan: c.var.tenant?.metadata.plan,
        current: currentTenantId(),
      })
    })
    .get('/moved', () => Response.redirect('https://example.com/elsewhere', 302))
  const secured = new Hono<TenantEnv>()
    .use(jwt({ secret: SECRET, alg: 'HS256' }), tenancy({ configManager: configs }))
    .get('/me', (c) => c.text(c.var.tenantId))
  const root = new Hono()
  root.get('/health', (c) => c.text('ok'))
  root.route('/api', api)
  root.route('/secure', secured)
  return (request: Request) => Promise.resolve(root.fetch(request))
}

export const honoCases: PortableCase[] = [
  {
    name: 'hono: tenancy() sets c.var.tenantId, c.var.tenant and currentTenantId(); health stays outside',
    async run(transport) {
      await serving(transport, await app(), async (send) => {
        const response = await send('/api/me', t('acme'))
        equal(await response.json(), { tenantId: 'acme', plan: 'pro', current: 'acme' }, 'body')
        equal(response.headers.get('RateLimit'), '"minute";r=1;t=45', 'RateLimit')
        equal(await (await send('/health')).text(), 'ok', 'health without a tenant')
        await expectProblem(await send('/api/me'), 401, 'tenant_required')
      })
    },
  },
  {
    name: 'hono: quota headers reach a response with immutable headers, and a refusal',
    async run(transport) {
      await serving(transport, await app(), async (send) => {
        const moved = await send('/api/moved', { ...t('acme'), redirect: 'manual' })
        equal([moved.status, moved.headers.get('X-Quota-Remaining-Requests')], [302, '1'], 'redirect')
        await send('/api/me', t('acme'))
        const over = await send('/api/me', t('acme'))
        await expectProblem(over.clone(), 429, 'tenant_quota_exceeded')
        equal(over.headers.get('Retry-After'), '45', 'Retry-After')
      })
    },
  },
  {
    name: 'hono: the tenant_id claim of a hono/jwt token is the principal; another header is a mismatch',
    async run(transport) {
      const token = await sign({ sub: 'u1', tenant_id: 'acme' }, SECRET, 'HS256')
      const auth = { Authorization: `Bearer ${token}` }
      await serving(transport, await app(), async (send) => {
        equal(await (await send('/secure/me', { headers: auth })).text(), 'acme', 'tenant from the token')
        await expectProblem(await send('/secure/me', t('globex', auth)), 403, 'tenant_mismatch')
      })
    },
  },
]
