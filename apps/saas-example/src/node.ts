import { type ServerType, serve } from '@hono/node-server'
import { isMainModule, loadDotEnv, runUntilSignal } from './main-module'
import { type RunningServer, type StartServerOptions, startServer } from './server'

/**
 * The Node entry: composes the server from the environment, seeds when asked, listens with
 * `@hono/node-server`, and prints the URL and the first curl commands.
 *
 * @example
 * ```ts
 * const { url, stop } = await startNode({ env: { PORT: '0', DATABASE_URL: 'file:/tmp/app.db' } })
 * ```
 */
export function startNode(options: StartServerOptions = {}): Promise<RunningServer> {
  return startServer(
    options,
    (app, settings) =>
      new Promise((resolve, reject) => {
        const http: ServerType = serve(
          { fetch: app.fetch, port: settings.PORT, hostname: settings.HOST },
          (info) =>
            resolve({
              port: info.port,
              close: () => new Promise<void>((done) => http.close(() => done())),
            }),
        )
        http.once('error', reject)
      }),
  )
}

if (isMainModule(import.meta.url)) {
  loadDotEnv()
  runUntilSignal(() => startNode())
}
