/**
 * The @tenant/hono cases of the runtime matrix (run by packages/fetch/test/runtimes on Node, Bun,
 * Deno and workerd): a Hono app behind the adapter, served like any fetch handler. They cover what
 * the adapter adds on each runtime: context variables, the hono/jwt principal (WebCrypto), the
 * headers on Hono's responses.
 */
import {
  InMemoryConcurrencyLimiter,
  InMemoryConfigManager,
  InMemoryQuotaManager,
  ManualClock,
} from '@tenant/core'
import { equal, expectProblem, type PortableCase, serving, t } from '@tenant/fetch/testing'
import { Hono } from 'hono'
import { jwt, sign } from 'hono/jwt'
import { streamSSE } from 'hono/streaming'
import { currentTenantId, type TenantEnv, tenancy, tenantResolver } from '../../src/index'

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

/** A Hono app streaming an OpenAI-style completion with `streamSSE`, its quota settled by streamUsage. */
async function streamingApp() {
  const clock = new ManualClock(Date.UTC(2026, 2, 10, 9, 30, 15))
  const configs = new InMemoryConfigManager({ clock })
  await configs.setTenantConfig({ id: 'acme', quota: { limits: [{ window: 'minute', tokens: 1000 }] } })
  const quotas = new InMemoryQuotaManager(configs, { clock })
  const app = new Hono<TenantEnv>()
    .use(tenancy({ configManager: configs, quota: { manager: quotas, streamUsage: true }, clock }))
    .post('/v1/chat/completions', (c) =>
      streamSSE(c, async (stream) => {
        for (const word of ['Hel', 'lo'])
          await stream.writeSSE({ data: JSON.stringify({ choices: [{ delta: { content: word } }] }) })
        await stream.writeSSE({
          data: JSON.stringify({
            choices: [],
            usage: { prompt_tokens: 40, completion_tokens: 2, total_tokens: 42 },
          }),
        })
        await stream.writeSSE({ data: '[DONE]' })
      }),
    )
  return { app, quotas }
}

export const honoCases: PortableCase[] = [
  {
    name: 'hono: streamUsage settles a streamSSE response at its usage event, under c.executionCtx.waitUntil',
    async run(transport) {
      const { app, quotas } = await streamingApp()
      const init = { method: 'POST', ...t('acme', { 'X-Token-Count': '100' }) }
      const used = async () => (await quotas.peek('acme')).windows[0]?.used.tokens
      // Over the runtime's server: no execution context (c.executionCtx throws; the adapter copes).
      await serving(
        transport,
        (request) => Promise.resolve(app.fetch(request)),
        async (send) => {
          const response = await send('/v1/chat/completions', init)
          equal(response.headers.get('Content-Type'), 'text/event-stream', 'content type')
          equal((await response.text()).includes('"total_tokens":42'), true, 'usage event passed through')
        },
      )
      // A Workers-style call: the settlement goes to ctx.waitUntil.
      const waited: Promise<unknown>[] = []
      const ctx = {
        waitUntil: (p: Promise<unknown>) => void waited.push(p),
        passThroughOnException() {},
        props: {},
      }
      const response = await app.fetch(new Request('http://tenant.test/v1/chat/completions', init), {}, ctx)
      await response.text()
      // The settlement, and the pipe the body goes out through (see pipedUnder in @tenant/fetch).
      equal(waited.length, 2, 'settlement and body pipe handed to waitUntil')
      await Promise.all(waited)
      // Both settled at 42 (the first one's settlement ran as its body was read).
      equal(await used(), 84, 'charged tokens')
    },
  },
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
    name: "hono: a Response object the handler hands to every request never leaves the chain with a tenant's numbers",
    async run(transport) {
      const configs = new InMemoryConfigManager()
      await configs.setTenantConfig({ id: 'acme', quota: { limits: [{ window: 'minute', requests: 5 }] } })
      const shared = new Response(null, { status: 200 })
      const root = new Hono()
        .get('/public', () => shared)
        .use('/api/*', tenancy({ configManager: configs, quota: new InMemoryQuotaManager(configs) }))
        .get('/api/shared', () => shared)
      const stageHeaders = (response: Response) =>
        ['X-Quota-Remaining-Requests', 'RateLimit', 'RateLimit-Policy'].map((name) =>
          response.headers.get(name),
        )
      await serving(
        transport,
        (request) => Promise.resolve(root.fetch(request)),
        async (send) => {
          equal(stageHeaders(await send('/api/shared', t('acme')))[0], '4', 'acme through the chain')
          equal(stageHeaders(await send('/public')), [null, null, null], 'the same object outside the chain')
          equal(stageHeaders(await send('/api/shared', t('acme')))[0], '3', 'acme again')
          equal(stageHeaders(await send('/public')), [null, null, null], 'outside the chain again')
        },
      )
    },
  },
  {
    name: 'hono: a HEAD request gives its concurrency slot back (Hono drops the GET body unread)',
    async run(transport) {
      const configs = new InMemoryConfigManager()
      await configs.setTenantConfig({ id: 'acme', concurrency: { maxInFlight: 2 } })
      const limiter = new InMemoryConcurrencyLimiter()
      const app = new Hono<TenantEnv>()
        .use(tenancy({ configManager: configs, concurrency: limiter }))
        .get('/x', (c) => c.text('hello'))
      await serving(
        transport,
        (request) => Promise.resolve(app.fetch(request)),
        async (send) => {
          for (let i = 0; i < 2; i++) {
            const head = await send('/x', { method: 'HEAD', ...t('acme') })
            equal([head.status, await head.text()], [200, ''], 'HEAD')
          }
          equal(await limiter.inFlight('acme'), 0, 'slots held after two HEAD requests')
          const get = await send('/x', t('acme'))
          equal([get.status, await get.text()], [200, 'hello'], 'GET after them')
        },
      )
    },
  },
  {
    name: 'hono: a HEAD on a streamSSE route tells its producer (the body is cancelled) and gives the slot back',
    async run(transport) {
      const configs = new InMemoryConfigManager()
      await configs.setTenantConfig({ id: 'acme', concurrency: { maxInFlight: 1 } })
      const limiter = new InMemoryConcurrencyLimiter()
      const stats = { started: 0, told: 0, ended: 0 }
      const app = new Hono<TenantEnv>()
        .use(tenancy({ configManager: configs, concurrency: limiter }))
        .get('/chat', (c) =>
          streamSSE(c, async (stream) => {
            stats.started++
            stream.onAbort(() => {
              stats.told++
            })
            try {
              for (let i = 0; i < 3 && !stream.aborted; i++) await stream.writeSSE({ data: `token ${i}` })
            } finally {
              stats.ended++
            }
          }),
        )
      await serving(
        transport,
        (request) => Promise.resolve(app.fetch(request)),
        async (send) => {
          for (let i = 1; i <= 3; i++) {
            const head = await send('/chat', { method: 'HEAD', ...t('acme') })
            equal([head.status, await head.text()], [200, ''], 'HEAD')
            // Hono drops the GET handler's body unread: the producer learns nobody reads it.
            await until(() => stats.told === i && stats.ended === i, `producer ${i} told and ended`)
            await until(async () => (await limiter.inFlight('acme')) === 0, `slot ${i} given back`)
          }
          const get = await send('/chat', t('acme'))
          equal(await get.text(), 'data: token 0\n\ndata: token 1\n\ndata: token 2\n\n', 'GET streams')
          equal(stats.told, 3, 'a GET read to its end is not told')
        },
      )
    },
  },
  {
    name: "hono: a sub-app's resolver confirms the app-wide one's tenant across a new Request (mount(), a replaced c.req.raw)",
    async run(transport) {
      const configs = new InMemoryConfigManager()
      await configs.setTenantConfig({ id: 'acme' })
      await configs.setTenantConfig({ id: 'globex' })
      const sub = () =>
        new Hono<TenantEnv>()
          .use(tenancy({ configManager: configs }))
          .get('/data', (c) => c.json({ tenant: c.var.tenantId, current: currentTenantId() }))
      const session = tenantResolver({
        principal: (c) => c.req.header('X-Session-Tenant'),
        configManager: configs,
      })
      const mounted = new Hono().use(session)
      mounted.mount('/api', sub().fetch)
      // What bodyLimit() does to a chunked upload: the same request, a new Request object.
      const replaced = new Hono()
        .use(session)
        .use(async (c, next) => {
          c.req.raw = new Request(c.req.raw)
          await next()
        })
        .route('/api', sub())
      for (const [wiring, app] of [
        ['mount()', mounted],
        ['c.req.raw replaced', replaced],
      ] as const) {
        await serving(
          transport,
          (request) => Promise.resolve(app.fetch(request)),
          async (send) => {
            const other = await send('/api/data', t('globex', { 'X-Session-Tenant': 'acme' }))
            await expectProblem(other, 403, 'tenant_mismatch')
            const own = await send('/api/data', t('acme', { 'X-Session-Tenant': 'acme' }))
            equal(await own.json(), { tenant: 'acme', current: 'acme' }, `${wiring}: served as acme`)
          },
        )
      }
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

/** Waits for `check` to hold while streams finish (a few event-loop turns), or fails with `label`. */
async function until(check: () => boolean | Promise<boolean>, label: string): Promise<void> {
  for (let turn = 0; turn < 400; turn++) {
    if (await check()) return
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  throw new Error(`${label}: not after 2 s`)
}
