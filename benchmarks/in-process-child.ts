// Child process of the HTTP section: the cost of one request through one app variant in process,
// with no load generator. On Node each request goes through @hono/node-server's request listener
// with a real IncomingMessage and ServerResponse, whose bytes go to a socket that drops them: what
// the server does per request (the Request it builds, the head and body it writes) counts, the
// kernel does not. On Bun, whose server cannot be driven without a socket, each request is
// `app.fetch()` followed by one pass over the response headers.
//
// One variant per process, as in the load runs: what one variant turns on for the whole process
// (the tenant context's AsyncLocalStorage makes Node 20 run hooks on every promise and async
// resource of the process from its first use) must not be charged to the others. The parent keeps
// one child per variant and asks them for rounds in turn, keeping each one's least time per
// request: what a busy machine adds comes and goes, so the least of many short rounds stays close
// to the real cost while autocannon's req/s swings.
//
// Protocol (IPC): argv[2] = variant, argv[3] = requests per round; runs a warm-up round and sends
// { type: 'ready' }; answers { type: 'round' } with { type: 'round', nanos } (ns per request);
// exits on { type: 'close' }.
import { type BuiltApp, buildApp, HTTP_PATH, HTTP_TENANTS, type HttpVariant } from './lib/http-apps'

declare const Bun: unknown

const variant = process.argv[2] as Exclude<HttpVariant, 'example-app'>
const perRound = Number(process.argv[3])

type Serve = (tenantId: string) => Promise<number>

/** One request through @hono/node-server's listener, on a socket that drops what it is sent. */
async function nodeServer(fetch: BuiltApp['fetch']): Promise<Serve> {
  const { IncomingMessage, ServerResponse } = await import('node:http')
  const { Duplex } = await import('node:stream')
  const { getRequestListener } = await import('@hono/node-server')
  const listener = getRequestListener(fetch)
  const socket = new Duplex({
    read() {},
    write(_chunk, _encoding, done) {
      done()
    },
    writev(_chunks, done) {
      done()
    },
  })
  return async (tenantId) => {
    const request = new IncomingMessage(socket as never)
    request.method = 'GET'
    request.url = HTTP_PATH
    request.httpVersion = '1.1'
    request.httpVersionMajor = 1
    request.httpVersionMinor = 1
    request.headers = { host: 'localhost', 'x-tenant-id': tenantId }
    request.rawHeaders = ['host', 'localhost', 'x-tenant-id', tenantId]
    request.complete = true
    request.push(null)
    const response = new ServerResponse(request)
    response.assignSocket(socket as never)
    const finished = new Promise<void>((resolve) => response.once('finish', resolve))
    await listener(request, response)
    await finished
    response.detachSocket(socket as never)
    return response.statusCode
  }
}

/** One request through `app.fetch()`, then one pass over its headers as a server would make. */
function fetchOnly(fetch: BuiltApp['fetch']): Serve {
  const url = `http://localhost${HTTP_PATH}`
  return async (tenantId) => {
    const response = await fetch(new Request(url, { headers: { 'x-tenant-id': tenantId } }))
    const written: Record<string, string> = {}
    for (const [name, value] of response.headers) written[name] = value
    return response.status
  }
}

const app = await buildApp(variant, { limit: 1e12, tenants: HTTP_TENANTS, prefix: 'unused:' })
const serve = typeof Bun === 'undefined' ? await nodeServer(app.fetch) : fetchOnly(app.fetch)

async function round(serve: Serve, count: number): Promise<number> {
  const started = process.hrtime.bigint()
  for (let i = 0; i < count; i++) {
    const status = await serve(HTTP_TENANTS[i % HTTP_TENANTS.length]!)
    if (status !== 200) throw new Error(`in process: status ${status}`)
  }
  return Number(process.hrtime.bigint() - started) / count
}

// A first round settles the JIT (see HTTP_WARMUP) before anything counts.
await round(serve, perRound)
process.on('message', async (message: { type: string }) => {
  if (message.type === 'round') process.send?.({ type: 'round', nanos: await round(serve, perRound) })
  else if (message.type === 'close') process.exit(0)
})
process.on('disconnect', () => process.exit(0))
process.send?.({ type: 'ready' })
