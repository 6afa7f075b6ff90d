// Child process of the HTTP section: serves one app variant on loopback with @hono/node-server, so
// the load generator (autocannon, in the parent) and the server do not share an event loop.
// Protocol (IPC): argv[2] = variant, argv[3] = Redis key prefix; sends { type: 'listening', port };
// answers { type: 'start' } and { type: 'stop' } (with CPU used and requests handled since the
// start); closes and exits on { type: 'close' }.
import { serve } from '@hono/node-server'
import { loadExampleApp } from './lib/example-app'
import { type BuiltApp, buildApp, HTTP_TENANTS, type HttpVariant } from './lib/http-apps'

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
const server = serve(
  {
    fetch: (request) => {
      handled++
      return app.fetch(request)
    },
    port: 0,
    hostname: '127.0.0.1',
  },
  (info) => {
    process.send?.({ type: 'listening', port: info.port })
  },
)

process.on('message', (message: { type: string }) => {
  if (message.type === 'start') {
    handled = 0
    cpuAtStart = process.cpuUsage()
    process.send?.({ type: 'started' })
  } else if (message.type === 'stop') {
    const used = process.cpuUsage(cpuAtStart)
    process.send?.({ type: 'stats', cpuMicros: used.user + used.system, handled })
  } else if (message.type === 'close') {
    server.close()
    void app.close().finally(() => process.exit(0))
  }
})
process.on('disconnect', () => process.exit(0))
