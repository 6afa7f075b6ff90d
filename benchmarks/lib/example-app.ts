// The example app (apps/saas-example) for the HTTP section, built by its own composition root
// (`createServer`) on a libSQL file in a temp directory, with in-process limits, silent logs, and
// benchmark tenants whose limits the load never reaches (plus a `check` tenant limited to
// `checkLimit` requests a minute for the same-decision check). Tenants are created through the
// app's admin API and each gets resources through its own API, as a client would.
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { BuiltApp } from './http-apps'

const SERVER_MODULE = new URL('../../apps/saas-example/src/server.ts', import.meta.url)
const ADMIN_TOKEN = 'benchmark-admin-token-0123456789'
/** Path of the measured route. */
export const EXAMPLE_PATH = '/api/v1/resources'
const TENANTS = Array.from({ length: 8 }, (_, i) => `bench-${i}`)
const RESOURCES_PER_TENANT = 25

/** The example app ready to serve, or why it cannot be measured. */
export type ExampleApp =
  | { ok: true; app: BuiltApp; path: string; tenants: readonly string[] }
  | { ok: false; reason: string }

interface ExampleServer {
  app: { fetch: (request: Request, env?: unknown) => Response | Promise<Response> }
  close(): Promise<void>
}

async function call(
  app: ExampleServer['app'],
  method: string,
  path: string,
  body: unknown,
  headers: Record<string, string>,
) {
  const response = await app.fetch(
    new Request(`http://localhost${path}`, {
      method,
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    }),
  )
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`)
}

/** Builds the example app, or says why not (for example: it does not exist in this checkout). */
export async function loadExampleApp(checkLimit = 100): Promise<ExampleApp> {
  if (!existsSync(SERVER_MODULE)) {
    return { ok: false, reason: 'apps/saas-example/src/server.ts does not exist in this checkout' }
  }
  let createServer: (env: Record<string, string | undefined>) => Promise<ExampleServer>
  try {
    ;({ createServer } = (await import(SERVER_MODULE.href)) as { createServer: typeof createServer })
  } catch (error) {
    return { ok: false, reason: `apps/saas-example/src/server.ts did not load: ${String(error)}` }
  }
  if (typeof createServer !== 'function') {
    return { ok: false, reason: 'apps/saas-example/src/server.ts exports no createServer(env)' }
  }
  const dir = mkdtempSync(join(tmpdir(), 'tenant-bench-'))
  const server = await createServer({
    DATABASE_URL: `file:${join(dir, 'bench.db')}`,
    LOG_LEVEL: 'silent',
    ADMIN_TOKEN,
    CONFIG_CACHE_TTL_MS: '3600000',
  })
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}` }
  for (const id of [...TENANTS, 'check']) {
    const requests = id === 'check' ? checkLimit : 1e12
    await call(
      server.app,
      'POST',
      '/admin/tenants',
      {
        id,
        quota: { limits: [{ window: 'minute', requests, tokens: 1e12 }] },
        rateLimit: { requestsPerSecond: 1e9, burst: 1e12 },
      },
      admin,
    )
  }
  for (const id of TENANTS) {
    for (let i = 0; i < RESOURCES_PER_TENANT; i++) {
      await call(
        server.app,
        'POST',
        EXAMPLE_PATH,
        { name: `resource ${i} of ${id}`, data: { i } },
        { 'x-tenant-id': id },
      )
    }
  }
  return {
    ok: true,
    app: {
      fetch: server.app.fetch,
      close: async () => {
        await server.close()
        rmSync(dir, { recursive: true, force: true })
      },
    },
    path: EXAMPLE_PATH,
    tenants: TENANTS,
  }
}
