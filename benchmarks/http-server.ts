// Child process of the HTTP section: serves one app variant on loopback, with @hono/node-server on
// Node and Bun.serve under Bun, so the load generator (autocannon, in the parent) and the server do
// not share an event loop. Protocol (IPC, Node's fork channel, which Bun speaks too): argv[2] =
// variant, argv[3] = Redis key prefix; sends { type: 'listening', port }; answers { type: 'start' }
// and { type: 'stop' } (with CPU used and requests handled since the start); closes and exits on
// { type: 'close' }.
import { loadExampleApp } from './lib/example-app'
import { type BuiltApp, buildApp, HTTP_TENANTS, type HttpVariant } from './lib/http-apps'

declare const Bun:
  | {
      serve(options: {
        fetch: (request: Request) => Response | Promise<Response>
        port: number
        hostname: string
      }): { port: number; stop(closeActiveConnections?: boolean): void }
    }
  | undefined

const variant = process.argv[2] as HttpVariant
const prefix = process.argv[3] ?? `bench:http:${process.pid}:`

let app: BuiltApp
if (variant === 'example-app') {
  const example = await loadExampleApp()
  if (!example.ok) throw new Error(example.reason)
  app = example.app
} else {
  app = await buildApp(variant, { limit: 1e12, tenants: HTTP_TENANTS, prefix })
}

// Requests handled and CPU time used between a 'start' and a 'stop' message: CPU per request is
// steadier than req/s on a machine shared with other work.
let handled = 0
let cpuAtStart = process.cpuUsage()
// The adapter's bindings go through too: under @hono/node-server they carry the Node
// request and response (c.env.outgoing), which the chain reads to learn when a response is over.
const fetch = (request: Request, env?: unknown) => {
  handled++
  return app.fetch(request, env)
}

let close: () => void
if (typeof Bun !== 'undefined') {
  const server = Bun.serve({ fetch, port: 0, hostname: '127.0.0.1' })
  close = () => server.stop(true)
  process.send?.({ type: 'listening', port: server.port })
} else {
  const { serve } = await import('@hono/node-server')
  const server = serve({ fetch, port: 0, hostname: '127.0.0.1' }, (info) => {
    process.send?.({ type: 'listening', port: info.port })
  })
  close = () => server.close()
}

process.on('message', (message: { type: string }) => {
  if (message.type === 'start') {
    handled = 0
    cpuAtStart = process.cpuUsage()
    process.send?.({ type: 'started' })
  } else if (message.type === 'stop') {
    const used = process.cpuUsage(cpuAtStart)
    process.send?.({ type: 'stats', cpuMicros: used.user + used.system, userMicros: used.user, handled })
  } else if (message.type === 'close') {
    close()
    void app.close().finally(() => process.exit(0))
  }
})
process.on('disconnect', () => process.exit(0))
