// Run by deno.test.ts under `deno run`: Deno.serve hands the raw request-target to the handler as
// request.url (`http://host/v1/../admin`); the path policy must see the path the app routes on.
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
// The app routes as most do: on new URL(request.url).pathname.
const app = async (request: Request) => {
  const path = new URL(request.url).pathname
  return new Response(path === '/admin' ? 'ADMIN' : `route ${path}`)
}
const server = Deno.serve(
  { port: 0, hostname: '127.0.0.1', onListen: () => {} },
  withTenancy(app, { configManager: configs, policy: new ConfigPolicyEvaluator(configs) }),
)

async function raw(target: string): Promise<{ target: string; status: number; body: string }> {
  const connection = await Deno.connect({ hostname: '127.0.0.1', port: server.addr.port })
  await connection.write(
    new TextEncoder().encode(
      `GET ${target} HTTP/1.1\r\nHost: api.example.com\r\nX-Tenant-ID: acme\r\nConnection: close\r\n\r\n`,
    ),
  )
  const text = await new Response(connection.readable).text()
  const [head = '', body = ''] = text.split('\r\n\r\n')
  return {
    target,
    status: Number(head.split(' ')[1]),
    body: body.includes('ADMIN') ? 'ADMIN' : body.slice(0, 80),
  }
}

const results = []
for (const target of ['/v1/chat', '/admin', '/v1/../admin', '/v1/%2e%2e/admin', '/v1/%2E%2e/admin']) {
  results.push(await raw(target))
}
await server.shutdown()
console.log(JSON.stringify(results))
