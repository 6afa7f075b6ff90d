// Child process of the HTTP section: serves one app variant on loopback with @hono/node-server, so
// the load generator (autocannon, in the parent) and the server do not share an event loop.
// Protocol: argv[2] = variant, argv[3] = Redis key prefix; sends { port } over IPC when listening,
// closes and exits on the message 'close'.
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

const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) => {
  process.send?.({ port: info.port })
})

process.on('message', (message) => {
  if (message !== 'close') return
  server.close()
  void app.close().finally(() => process.exit(0))
})
process.on('disconnect', () => process.exit(0))
