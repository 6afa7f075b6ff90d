// Child process of the HTTP section: the cost of one request through each app variant in process,
// with no socket and no load generator. Each request is `app.fetch()` followed by one pass over the
// response headers (what the server adapter does to write them), one after another; the variants
// take turns round by round and each keeps its least time per request. What a busy machine adds
// comes and goes, so the least of many short rounds stays close to the real cost while autocannon's
// req/s swings: this table is the steady one of the section.
//
// Protocol (IPC): argv[2] = comma-separated variants, argv[3] = rounds, argv[4] = requests per
// round; sends { type: 'costs', nanos: { [variant]: ns per request } } and exits.
import { buildApp, HTTP_PATH, HTTP_TENANTS, type HttpVariant } from './lib/http-apps'

declare const Bun: unknown

const variants = process.argv[2]!.split(',') as Exclude<HttpVariant, 'example-app'>[]
const rounds = Number(process.argv[3])
const perRound = Number(process.argv[4])

if (typeof Bun === 'undefined') {
  // The Request and Response classes @hono/node-server installs when it serves (lighter than
  // undici's, with a fast path for bodies known in full): the ones the Node servers run with.
  const { getRequestListener } = await import('@hono/node-server')
  getRequestListener(() => new Response(null))
}

const apps = new Map<string, (request: Request) => Response | Promise<Response>>()
for (const variant of variants) {
  apps.set(
    variant,
    (await buildApp(variant, { limit: 1e12, tenants: HTTP_TENANTS, prefix: 'unused:' })).fetch,
  )
}
const url = `http://localhost${HTTP_PATH}`

async function round(
  fetch: (request: Request) => Response | Promise<Response>,
  count: number,
): Promise<number> {
  const started = process.hrtime.bigint()
  for (let i = 0; i < count; i++) {
    const request = new Request(url, { headers: { 'x-tenant-id': HTTP_TENANTS[i % HTTP_TENANTS.length]! } })
    const response = await fetch(request)
    if (response.status !== 200) throw new Error(`in process: status ${response.status}`)
    const written: Record<string, string> = {}
    for (const [name, value] of response.headers) written[name] = value
  }
  return Number(process.hrtime.bigint() - started) / count
}

const nanos: Record<string, number> = {}
// A first pass settles the JIT (see HTTP_WARMUP) before anything counts.
for (const [, fetch] of apps) await round(fetch, perRound)
for (let r = 0; r < rounds; r++) {
  for (const [variant, fetch] of apps)
    nanos[variant] = Math.min(nanos[variant] ?? Infinity, await round(fetch, perRound))
}
process.send?.({ type: 'costs', nanos }, () => process.exit(0))
