// Run by deno-raw-target.test.ts under `deno run`: Deno.serve hands the raw request-target and Host
// header to the handler as request.url (`http://host/v1/../admin`, `http://host\v1/admin`). A URL
// parser and a router that slices the text (Hono's getPath) read different paths from such a URL,
// so the policy must refuse it rather than check either reading.
// Prints one JSON line: the status and body each raw request got.
import { ConfigPolicyEvaluator, InMemoryConfigManager } from '@tenant/core'
import { withTenancy } from '@tenant/fetch'

declare const Deno: {
  serve(
    options: { port: number; hostname: string; onListen?: () => void },
    handler: (request: Request) => Promise<Response>,
  ): { addr: { port: number }; shutdown(): Promise<void> }
  connect(options: { hostname: string; port: number }): Promise<{
    write(bytes: Uint8Array): Promise<number>
    readable: ReadableStream<Uint8Array>
  }>
}

const configs = new InMemoryConfigManager()
await configs.setTenantConfig({
  id: 'acme',
  policy: { allowedModels: [], allowedTools: [], allowedMethods: [], allowedPaths: ['/v1/*'] },
})
// The app routes on new URL(request.url).pathname, or on the text after the host as Hono does:
// either reading reaching /admin is a bypass.
const app = async (request: Request) => {
  const { url } = request
  const parsed = new URL(url).pathname
  const sliced = url.slice(url.indexOf('/', url.indexOf(':') + 3)).split(/[?#]/)[0]!
  const admin = parsed.startsWith('/admin') || sliced.startsWith('/admin')
  return new Response(admin ? 'ADMIN' : `route ${parsed}`)
}
const server = Deno.serve(
  { port: 0, hostname: '127.0.0.1', onListen: () => {} },
  withTenancy(app, { configManager: configs, policy: new ConfigPolicyEvaluator(configs) }),
)

async function raw(
  target: string,
  host = 'api.example.com',
): Promise<{ target: string; status: number; body: string }> {
  const connection = await Deno.connect({ hostname: '127.0.0.1', port: server.addr.port })
  await connection.write(
    new TextEncoder().encode(
      `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nX-Tenant-ID: acme\r\nConnection: close\r\n\r\n`,
    ),
  )
  const text = await new Response(connection.readable).text()
  const [head = '', body = ''] = text.split('\r\n\r\n')
  return {
    target: host === 'api.example.com' ? target : `${host} ${target}`,
    status: Number(head.split(' ')[1]),
    body: body.includes('ADMIN') ? 'ADMIN' : body.slice(0, 80),
  }
}

const results = []
for (const target of [
  '/v1/chat',
  '/admin',
  '/v1/../admin',
  '/v1/%2e%2e/admin',
  '/v1/%2E%2e/admin',
  '/admin/../v1/chat',
]) {
  results.push(await raw(target))
}
// `/v1`: an empty authority before the path; URL and Hono read /admin/keys, with v1 as the host.
for (const host of ['api.example.com\\v1', 'api.example.com?', 'api.example.com#', '/v1']) {
  results.push(await raw('/admin/keys', host))
}
await server.shutdown()
console.log(JSON.stringify(results))
