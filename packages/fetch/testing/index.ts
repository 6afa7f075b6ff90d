/**
 * `@tenant/fetch/testing`: the runtime-portable middleware suite. Plain async functions with their
 * own assertions (no test framework, no Node modules), so the same cases run under vitest on Node,
 * `bun test`, `deno test` and inside a workerd Worker, and on any other Fetch runtime you deploy
 * to. Each case builds a real chain (`withTenancy` over core's in-memory managers) and talks to it
 * through the transport the runtime offers: a real HTTP server where there is one, a direct call
 * in a Worker.
 *
 * @example
 * ```ts
 * import { inProcess, portableCases, runCases } from '@tenant/fetch/testing'
 * const results = await runCases(portableCases, inProcess)
 * ```
 *
 * @module @tenant/fetch/testing
 */
import {
  ConfigPolicyEvaluator,
  InMemoryConfigManager,
  InMemoryQuotaManager,
  ManualClock,
  type QuotaManager,
  TokenBucketRateLimiter,
} from '@tenant/core'
import {
  currentTenantId,
  getTenant,
  getTenantId,
  type TenancyHooks,
  type TenancyOptions,
  withTenancy,
} from '@tenant/fetch'

/** A handler served for one case. */
export type Handler = (request: Request) => Promise<Response>

/** Sends a request (a path and init) to the served handler. */
export type Send = (path: string, init?: RequestInit) => Promise<Response>

/** How a runtime serves a handler: over HTTP, or by calling it. */
export interface Transport {
  readonly name: string
  /** Serves `handler` and returns how to send it requests and how to stop serving. */
  serve(handler: Handler): Promise<{
    send: Send
    /** Stops serving. */
    close(): Promise<void>
  }>
}

/** One portable test case. */
export interface PortableCase {
  readonly name: string
  /** Runs the case on `transport`; rejects with the failure. */
  run(transport: Transport): Promise<void>
}

/** Calls the handler directly, as a Worker's fetch is called. */
export const inProcess: Transport = {
  name: 'in-process',
  async serve(handler) {
    return {
      send: (path, init) => handler(new Request(`http://tenant.test${path}`, init)),
      close: async () => {},
    }
  },
}

/**
 * Throws `message`: the suite's assertion failure.
 *
 * @example
 * ```ts
 * if (response.status !== 200) fail(`expected 200, got ${response.status}`)
 * ```
 */
export function fail(message: string): never {
  throw new Error(message)
}

/**
 * Asserts that `actual` and `expected` have the same JSON form.
 *
 * @example
 * ```ts
 * equal(response.headers.get('Retry-After'), '45', 'Retry-After')
 * ```
 */
export function equal(actual: unknown, expected: unknown, label: string): void {
  const a = JSON.stringify(actual)
  const e = JSON.stringify(expected)
  if (a !== e) fail(`${label}: expected ${e}, got ${a}`)
}

/**
 * Asserts a problem+json refusal with `status` and `code`; returns its body.
 *
 * @example
 * ```ts
 * const body = await expectProblem(await send('/v1/chat', t('acme')), 429, 'tenant_quota_exceeded')
 * ```
 */
export async function expectProblem(
  response: Response,
  status: number,
  code: string,
): Promise<Record<string, unknown>> {
  equal(response.status, status, `status of ${code}`)
  equal(response.headers.get('Content-Type'), 'application/problem+json', `content type of ${code}`)
  const body = (await response.json()) as Record<string, unknown>
  equal(
    [body.status, body.code, body.type],
    [status, code, `urn:tenant-toolkit:error:${code}`],
    'problem body',
  )
  if (typeof body.title !== 'string' || typeof body.detail !== 'string')
    fail('problem body lacks title or detail')
  return body
}

// 15 s into a minute of a fixed day, so windows and Retry-After are exact.
const START = Date.UTC(2026, 2, 10, 9, 30, 15)

async function world() {
  const clock = new ManualClock(START)
  const configs = new InMemoryConfigManager({ clock })
  await configs.setTenantConfig({
    id: 'acme',
    metadata: { plan: 'pro' },
    quota: { limits: [{ window: 'minute', requests: 3, tokens: 1000 }] },
    rateLimit: { requestsPerSecond: 1, burst: 5 },
    policy: { allowedModels: ['small'], allowedTools: [], allowedMethods: [], allowedPaths: [] },
  })
  await configs.setTenantConfig({ id: 'globex', rateLimit: { requestsPerSecond: 0.5, burst: 1 } })
  await configs.setTenantConfig({ id: 'frozen', status: 'suspended' })
  const quotas = new InMemoryQuotaManager(configs, { clock })
  const options: TenancyOptions = {
    configManager: configs,
    policy: new ConfigPolicyEvaluator(configs),
    rateLimit: new TokenBucketRateLimiter(configs, { clock }),
    quota: quotas,
    clock,
  }
  return { clock, configs, quotas, options }
}

/**
 * Serves `handler` on `transport` for the duration of `body`, then closes it.
 *
 * @example
 * ```ts
 * await serving(inProcess, withTenancy(handler, options), async (send) => {
 *   equal((await send('/v1/chat', t('acme'))).status, 200, 'status')
 * })
 * ```
 */
export async function serving(
  transport: Transport,
  handler: Handler,
  body: (send: Send) => Promise<void>,
): Promise<void> {
  const served = await transport.serve(handler)
  try {
    await body(served.send)
  } finally {
    await served.close()
  }
}

const echo = async (request: Request) => {
  // Across a timer and a microtask, the tenant context must still be there.
  await new Promise((resolve) => setTimeout(resolve, 1))
  await Promise.resolve()
  return Response.json({
    tenantId: getTenantId(request),
    current: currentTenantId(),
    plan: getTenant(request)?.metadata.plan,
  })
}

/**
 * Request init naming `tenant` in `X-Tenant-ID`, with more headers if given.
 *
 * @example
 * ```ts
 * await send('/v1/chat', t('acme', { 'X-Token-Count': '100' })) // X-Tenant-ID: acme
 * ```
 */
export const t = (tenant: string, headers: Record<string, string> = {}): RequestInit => ({
  headers: { 'X-Tenant-ID': tenant, ...headers },
})

/** OpenAI-style chat completion chunks, one per word, then the usage chunk (if any) and `[DONE]`. */
function sseEvents(words: string[], usage?: Record<string, number>): string[] {
  const chunk = (body: object) => `data: ${JSON.stringify({ object: 'chat.completion.chunk', ...body })}\n\n`
  const events = words.map((word) => chunk({ choices: [{ delta: { content: word } }], usage: null }))
  if (usage) events.push(chunk({ choices: [], usage }))
  events.push('data: [DONE]\n\n')
  return events
}

/** A `text/event-stream` response giving one event per read; `hold` leaves it open after them. */
function sseResponse(events: string[], hold = false): Response {
  const encoder = new TextEncoder()
  let next = 0
  const body = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        const event = events[next++]
        if (event !== undefined) controller.enqueue(encoder.encode(event))
        else if (!hold) controller.close()
        // Held: a pull that enqueues nothing is not called again, so the stream stays open.
      },
    },
    { highWaterMark: 0 },
  )
  return new Response(body, { headers: { 'Content-Type': 'text/event-stream' } })
}

/** Makes the quota manager under test over the case's configs and clock. */
export type QuotaManagerFactory = (
  configs: InMemoryConfigManager,
  clock: ManualClock,
) => QuotaManager | Promise<QuotaManager>

const inMemoryQuotas: QuotaManagerFactory = (configs, clock) => new InMemoryQuotaManager(configs, { clock })

// Ahead of the wall clock, as core's conformance suites are: a store that expires its state by the
// real time (a Durable Object's storage) would drop windows from the past.
const STREAM_START = Date.UTC(2030, 2, 14, 9, 26, 15)

async function streamWorld(make: QuotaManagerFactory, hooks?: TenancyHooks) {
  const clock = new ManualClock(STREAM_START)
  const configs = new InMemoryConfigManager({ clock })
  // A tenant of its own: a shared store (Redis, a Durable Object) keeps other cases' usage.
  const tenant = `stream-${crypto.randomUUID().slice(0, 8)}`
  await configs.setTenantConfig({ id: tenant, quota: { limits: [{ window: 'minute', tokens: 1000 }] } })
  const quotas = await make(configs, clock)
  const options: TenancyOptions = {
    configManager: configs,
    quota: { manager: quotas, streamUsage: true },
    clock,
    ...(hooks && { hooks }),
  }
  const used = async () => (await quotas.peek(tenant)).windows[0]?.used.tokens
  return { tenant, options, used }
}

/**
 * The quota stage's `streamUsage` cases over a quota manager (core's in-memory one by default):
 * a streamed response settled at its usage event once read, and an aborted one settled at what was
 * sent under the Workers `ctx.waitUntil`. Stores run them with their own manager.
 *
 * @example
 * ```ts
 * for (const testCase of streamUsageCases((configs, clock) => new RedisQuotaManager(configs, { redis, clock })))
 *   it(testCase.name, () => testCase.run(inProcess))
 * ```
 */
export function streamUsageCases(make: QuotaManagerFactory = inMemoryQuotas): PortableCase[] {
  return [
    {
      name: 'settles a streamed (SSE) response at its usage event once the body was read',
      async run(transport) {
        let settled!: (tokens: number | undefined) => void
        const settlement = new Promise<number | undefined>((resolve) => {
          settled = resolve
        })
        const { tenant, options, used } = await streamWorld(make, {
          onSettle: (event) => settled(event.tokens),
        })
        const events = sseEvents(['Hel', 'lo'], {
          prompt_tokens: 120,
          completion_tokens: 30,
          total_tokens: 150,
        })
        await serving(
          transport,
          withTenancy(async () => sseResponse(events), options),
          async (send) => {
            const response = await send('/v1/chat/completions', t(tenant, { 'X-Token-Count': '100' }))
            equal(response.headers.get('Content-Type'), 'text/event-stream', 'content type')
            equal(response.headers.get('X-Quota-Remaining-Tokens'), '900', 'the estimate charged up front')
            equal(await response.text(), events.join(''), 'body passed through unchanged')
            equal(await settlement, 150, 'settled at the usage event')
            equal(await used(), 150, 'charged tokens')
          },
        )
      },
    },
    {
      name: 'settles an aborted stream at what was sent, under the Workers ctx.waitUntil',
      async run() {
        const { tenant, options, used } = await streamWorld(make)
        const waited: Promise<unknown>[] = []
        const ctx = { waitUntil: (promise: Promise<unknown>) => void waited.push(promise) }
        // A model still generating: three deltas, then nothing until the client goes away.
        const held = async (_request: Request, _env: object, _ctx: typeof ctx) =>
          sseResponse(sseEvents(['a', 'b', 'c']).slice(0, 3), true)
        const request = new Request(
          'http://tenant.test/v1/chat/completions',
          t(tenant, { 'X-Token-Count': '100' }),
        )
        const response = await withTenancy(held, options)(request, {}, ctx)
        // The settlement, and the pipe the body goes out through (see pipedUnder).
        equal(waited.length, 2, 'settlement and body pipe handed to waitUntil')
        const reader = response.body!.getReader()
        for (let i = 0; i < 3; i++) await reader.read()
        await reader.cancel('client went away')
        await Promise.all(waited)
        equal(await used(), 103, 'estimate plus one token per event')
      },
    },
  ]
}

/** The @tenant/fetch cases: resolution, refusals, stage order, headers, failures, adjustment, hooks. */
export const portableCases: PortableCase[] = [
  {
    name: 'resolves the X-Tenant-ID header; getTenantId, getTenant and currentTenantId see it',
    async run(transport) {
      const { options } = await world()
      await serving(transport, withTenancy(echo, options), async (send) => {
        const response = await send('/v1/me', t('acme'))
        equal(response.status, 200, 'status')
        equal(await response.json(), { tenantId: 'acme', current: 'acme', plan: 'pro' }, 'body')
      })
    },
  },
  {
    name: 'keeps concurrent requests apart in currentTenantId',
    async run(transport) {
      const { options } = await world()
      await serving(transport, withTenancy(echo, options), async (send) => {
        const answers = await Promise.all(
          ['acme', 'globex', 'acme'].map((id) => send('/', t(id)).then((r) => r.json())),
        )
        equal(
          answers.map((a) => (a as { current: string }).current),
          ['acme', 'globex', 'acme'],
          'current tenants',
        )
      })
    },
  },
  {
    name: 'refuses missing, invalid, unknown and suspended tenants with problem+json',
    async run(transport) {
      const { options } = await world()
      await serving(transport, withTenancy(echo, options), async (send) => {
        await expectProblem(await send('/'), 401, 'tenant_required')
        await expectProblem(await send('/', t('a/b')), 400, 'tenant_invalid_id')
        await expectProblem(await send('/', t('nobody')), 403, 'tenant_unknown')
        await expectProblem(await send('/', t('frozen')), 403, 'tenant_suspended')
      })
    },
  },
  {
    name: 'refuses a request naming another tenant than its principal (403 tenant_mismatch)',
    async run(transport) {
      const { options } = await world()
      const principal = (request: Request) => request.headers.get('Authorization')?.replace(/^Bearer /, '')
      const handler = withTenancy(echo, { ...options, resolver: { principal } })
      await serving(transport, handler, async (send) => {
        await expectProblem(
          await send('/', t('globex', { Authorization: 'Bearer acme' })),
          403,
          'tenant_mismatch',
        )
        equal(
          (await send('/', t('acme', { Authorization: 'Bearer acme' }))).status,
          200,
          'agreeing principal',
        )
      })
    },
  },
  {
    name: 'denies by policy without consuming quota',
    async run(transport) {
      const { options, quotas } = await world()
      await serving(transport, withTenancy(echo, options), async (send) => {
        const body = await expectProblem(
          await send('/', t('acme', { 'X-Model': 'large' })),
          403,
          'tenant_policy_denied',
        )
        equal(body.rule, 'model', 'rule')
        equal((await quotas.peek('acme')).windows[0]?.used, { requests: 0, tokens: 0 }, 'quota after denial')
      })
    },
  },
  {
    name: 'rate limits with 429, Retry-After and RateLimit fields',
    async run(transport) {
      const { options } = await world()
      await serving(transport, withTenancy(echo, options), async (send) => {
        const first = await send('/', t('globex'))
        equal(first.status, 200, 'first')
        equal(
          [first.headers.get('RateLimit-Policy'), first.headers.get('RateLimit')],
          ['"rate";q=1', '"rate";r=0;t=2'],
          'fields',
        )
        const limited = await send('/', t('globex'))
        await expectProblem(limited.clone(), 429, 'tenant_rate_limited')
        equal(limited.headers.get('Retry-After'), '2', 'Retry-After')
      })
    },
  },
  {
    name: 'charges the quota and refuses over it with 429, Retry-After and the IETF fields',
    async run(transport) {
      const { options, quotas } = await world()
      await serving(transport, withTenancy(echo, options), async (send) => {
        const ok = await send('/', t('acme', { 'X-Token-Count': '400' }))
        equal(ok.status, 200, 'admitted')
        equal(
          [
            ok.headers.get('RateLimit-Policy'),
            ok.headers.get('X-Quota-Remaining-Requests'),
            ok.headers.get('X-Quota-Remaining-Tokens'),
          ],
          ['"minute";q=3;w=60, "minute-tokens";q=1000;w=60;qu="tokens", "rate";q=5', '2', '600'],
          'quota headers',
        )
        const denied = await send('/', t('acme', { 'X-Token-Count': '700' }))
        await expectProblem(denied.clone(), 429, 'tenant_quota_exceeded')
        equal(denied.headers.get('Retry-After'), '45', 'Retry-After')
        equal(
          denied.headers.get('RateLimit')?.startsWith('"minute";r=2;t=45, "minute-tokens";r=600;t=45'),
          true,
          'RateLimit',
        )
        equal(
          (await quotas.peek('acme')).windows[0]?.used,
          { requests: 1, tokens: 400 },
          'nothing charged by the denial',
        )
      })
    },
  },
  {
    name: "never writes a tenant's headers into a Response object the handler hands to every request",
    async run(transport) {
      const { options } = await world()
      // One object, sent by the chain and by a route outside it: it must leave the second without
      // the first's numbers. It has no headers of its own: Bun.serve empties those of a Response
      // object it has sent.
      const shared = new Response(null, { status: 200 })
      const chained = withTenancy(async () => shared, options)
      const handler = (request: Request) =>
        new URL(request.url).pathname === '/public' ? Promise.resolve(shared) : chained(request)
      const stageHeaders = (response: Response) =>
        ['X-Quota-Remaining-Requests', 'RateLimit'].map((name) => response.headers.get(name))
      await serving(transport, handler, async (send) => {
        equal(stageHeaders(await send('/', t('acme')))[0], '2', 'acme through the chain')
        equal(stageHeaders(await send('/public')), [null, null], 'the same object outside the chain')
        equal(stageHeaders(await send('/', t('acme')))[0], '1', 'acme again')
        equal(stageHeaders(await send('/public')), [null, null], 'outside the chain again')
      })
    },
  },
  {
    name: 'refuses a negative or garbage X-Token-Count with 400 invalid_cost',
    async run(transport) {
      const { options } = await world()
      await serving(transport, withTenancy(echo, options), async (send) => {
        await expectProblem(await send('/', t('acme', { 'X-Token-Count': '-5' })), 400, 'invalid_cost')
        await expectProblem(await send('/', t('acme', { 'X-Token-Count': 'lots' })), 400, 'invalid_cost')
      })
    },
  },
  {
    name: 'answers 503 for a failing store, and passes under failOpen',
    async run(transport) {
      const { options } = await world()
      const dead = async (): Promise<never> => {
        throw new Error('connection reset')
      }
      const broken: QuotaManager = { consume: dead, adjust: dead, peek: dead }
      const errors: unknown[] = []
      const hooks: TenancyHooks = { onError: (error) => void errors.push(error) }
      await serving(transport, withTenancy(echo, { ...options, quota: broken, hooks }), async (send) => {
        await expectProblem(await send('/', t('acme')), 503, 'tenant_backend_unavailable')
      })
      await serving(
        transport,
        withTenancy(echo, { ...options, quota: broken, hooks, failOpen: true }),
        async (send) => {
          equal((await send('/', t('acme'))).status, 200, 'failOpen')
        },
      )
      equal(
        errors.map(String),
        ['Error: connection reset', 'Error: connection reset'],
        'errors seen by onError',
      )
    },
  },
  {
    name: 'adjusts the quota to the tokens the upstream reports',
    async run(transport) {
      const { options, quotas } = await world()
      const upstream = async () => new Response('answer', { headers: { 'X-Usage-Tokens': '250' } })
      const handler = withTenancy(upstream, {
        ...options,
        quota: {
          manager: quotas,
          actualTokens: (response) => Number(response.headers.get('X-Usage-Tokens')),
        },
      })
      await serving(transport, handler, async (send) => {
        const response = await send('/', t('acme', { 'X-Token-Count': '100' }))
        equal(await response.text(), 'answer', 'body')
        equal(response.headers.get('X-Quota-Remaining-Tokens'), '750', 'remaining after adjust')
        equal((await quotas.peek('acme')).windows[0]?.used.tokens, 250, 'charged tokens')
      })
    },
  },
  ...streamUsageCases(),
  {
    name: 'fires hooks with the status sent, and survives a throwing hook',
    async run(transport) {
      const { options } = await world()
      const seen: string[] = []
      const hooks: TenancyHooks[] = [
        {
          onResolve: (e) => void seen.push(`resolve:${e.status}`),
          onPolicy: (e) => void seen.push(`policy:${e.status}`),
          onRateLimit: (e) => void seen.push(`rateLimit:${e.status}`),
          onQuota: (e) => void seen.push(`quota:${e.status}`),
          onError: () => void seen.push('error'),
        },
        {
          onQuota: () => {
            throw new Error('hook bug')
          },
        },
      ]
      await serving(transport, withTenancy(echo, { ...options, hooks }), async (send) => {
        equal((await send('/', t('acme'))).status, 200, 'status despite the hook')
        await send('/', t('acme', { 'X-Model': 'large' }))
      })
      equal(
        seen,
        ['resolve:200', 'policy:200', 'rateLimit:200', 'quota:200', 'error', 'resolve:200', 'policy:403'],
        'events',
      )
    },
  },
  {
    name: 'withTenancy hands extra arguments (Workers env and ctx) to the handler',
    async run() {
      const { options } = await world()
      const env = { GREETING: 'hi' }
      const ctx = { waitUntil(_promise: Promise<unknown>) {} }
      const handler = withTenancy(
        async (request: Request, e: typeof env, c: typeof ctx) =>
          new Response(`${e.GREETING} ${getTenantId(request)} ${c === ctx}`),
        options,
      )
      const response = await handler(new Request('http://tenant.test/', t('acme')), env, ctx)
      equal(await response.text(), 'hi acme true', 'handler saw env and ctx')
    },
  },
]

/** The outcome of one case in {@link runCases}. */
export interface CaseResult {
  name: string
  ok: boolean
  /** The failure's stack, when it failed. */
  error?: string
}

/**
 * Runs cases one after the other on a transport and reports each, for runtimes without a test
 * runner (a Worker answering with the results).
 *
 * @example
 * ```ts
 * const failed = (await runCases(portableCases, inProcess)).filter((result) => !result.ok)
 * if (failed.length > 0) throw new Error(failed.map((result) => result.error).join('\n'))
 * ```
 */
export async function runCases(cases: readonly PortableCase[], transport: Transport): Promise<CaseResult[]> {
  const results: CaseResult[] = []
  for (const testCase of cases) {
    try {
      await testCase.run(transport)
      results.push({ name: testCase.name, ok: true })
    } catch (error) {
      const detail = error instanceof Error ? (error.stack ?? error.message) : String(error)
      results.push({ name: testCase.name, ok: false, error: detail })
    }
  }
  return results
}
