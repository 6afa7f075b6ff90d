import { request as httpRequest } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { allCases } from '../portable/all-cases'
import { bin, freePort, packageDir, type Service, startService } from './spawn'

// `wrangler dev` serves two Workers in workerd (wrangler bundles them with esbuild, our packages
// aliased to their sources): one with nodejs_compat that runs the portable suite inside workerd
// and a withTenancy handler for end-to-end requests, one without nodejs_compat. A wrangler that
// does not start fails every test here.
describe('runtime: workerd (wrangler dev)', () => {
  let wrangler: Service
  let origin: string

  beforeAll(async () => {
    const [port, inspectorPort] = [await freePort(), await freePort()]
    origin = `http://127.0.0.1:${port}`
    wrangler = startService(
      bin('wrangler'),
      [
        'dev',
        '-c',
        'test/runtimes/workerd/wrangler.toml',
        '-c',
        'test/runtimes/workerd/nocompat.toml',
        '--ip',
        '127.0.0.1',
        '--port',
        String(port),
        '--inspector-port',
        String(inspectorPort),
        '--persist-to',
        'node_modules/.cache/wrangler-runtime-test',
        '--show-interactive-dev-session=false',
      ],
      packageDir,
    )
    await wrangler.waitUntilReady(`${origin}/__ready`, 45_000)
  }, 60_000)

  afterAll(async () => {
    await wrangler?.stop()
  })

  it(`passes the portable suite (${allCases.length} cases) inside workerd`, async () => {
    const results = (await (await fetch(`${origin}/__suite`)).json()) as {
      name: string
      ok: boolean
      error?: string
    }[]
    const failures = results.filter((r) => !r.ok).map((r) => `${r.name}\n${r.error}`)
    expect(failures, failures.join('\n\n')).toEqual([])
    expect(results.map((r) => r.name)).toEqual(allCases.map((c) => c.name))
    console.log(`workerd: ${results.length} passed, ${failures.length} failed`)
  })

  it('resolves the tenant end to end through withTenancy(handler) with env, ctx and currentTenantId', async () => {
    const response = await fetch(`${origin}/me`, { headers: { 'X-Tenant-ID': 'acme' } })
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({
      tenantId: 'acme',
      current: 'acme',
      plan: 'pro',
      greeting: 'hello from workerd',
      waitUntil: 'function',
      contextAvailable: true,
    })
    expect(response.headers.get('RateLimit-Policy')).toBe('"day";q=2;w=86400')
    expect(response.headers.get('X-Quota-Remaining-Requests')).toBe('1')
  })

  it('answers refusals over HTTP as problem+json', async () => {
    const missing = await fetch(`${origin}/me`)
    expect(missing.status).toBe(401)
    expect(missing.headers.get('Content-Type')).toBe('application/problem+json')
    expect(await missing.json()).toMatchObject({ code: 'tenant_required', status: 401 })
    const unknown = await fetch(`${origin}/me`, { headers: { 'X-Tenant-ID': 'nobody' } })
    expect(await unknown.json()).toMatchObject({ code: 'tenant_unknown', status: 403 })
    // The second request used the last of the day's quota above; this one is over it.
    await fetch(`${origin}/me`, { headers: { 'X-Tenant-ID': 'acme' } })
    const over = await fetch(`${origin}/me`, { headers: { 'X-Tenant-ID': 'acme' } })
    expect(over.status).toBe(429)
    expect(Number(over.headers.get('Retry-After'))).toBeGreaterThanOrEqual(1)
    expect(await over.json()).toMatchObject({ code: 'tenant_quota_exceeded' })
  })

  it.each(['/stream', '/hono-stream'])(
    "gives a streamed response's concurrency slot back when the client leaves mid-stream (%s)",
    async (path) => {
      // The client reads a little of an endless stream, then closes its connection. workerd drops a
      // JavaScript response body unseen then; the chain's body goes out through a pipe under
      // ctx.waitUntil, which sees the cancel and releases the slot.
      await new Promise<void>((resolve, reject) => {
        const request = httpRequest(
          `${origin}/stream`,
          { headers: { 'X-Tenant-ID': 'streamer' } },
          (response) => {
            expect(response.statusCode).toBe(200)
            let got = 0
            response.on('data', (chunk: Buffer) => {
              got += chunk.length
              if (got > 4_000) {
                request.destroy()
                resolve()
              }
            })
          },
        )
        request.on('error', (error) => (request.destroyed ? undefined : reject(error)))
        request.end()
      })
      const inFlight = async () =>
        ((await (await fetch(`${origin}${path}/in-flight`)).json()) as { inFlight: number }).inFlight
      await expect.poll(inFlight, { timeout: 10_000, interval: 100 }).toBe(0)
    },
  )

  it('loads and resolves without nodejs_compat, where currentTenantId() explains itself', async () => {
    const response = await fetch(`${origin}/nocompat/me`, { headers: { 'X-Tenant-ID': 'acme' } })
    expect(response.status).toBe(200)
    const body = (await response.json()) as { tenantId: string; contextAvailable: boolean; current: string }
    expect(body.tenantId).toBe('acme')
    expect(body.contextAvailable).toBe(false)
    expect(body.current).toMatch(/^error: currentTenantId\(\) needs AsyncLocalStorage.*nodejs_compat/)
  })
})
