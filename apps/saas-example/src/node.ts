import { type ServerType, serve } from '@hono/node-server'
import type { App } from './app'
import { banner, displayUrl } from './banner'
import { isMainModule, loadDotEnv, runUntilSignal } from './main-module'
import { type CreateServerOptions, createServer, type Server } from './server'

/** Options of {@link startNode}. */
export interface StartNodeOptions extends CreateServerOptions {
  /** @default process.env */
  env?: Record<string, string | undefined>
  /** `--seed` creates the demo tenants before listening. @default process.argv.slice(2) */
  args?: readonly string[]
  /** Adds routes before the app serves (the e2e entry mounts its clock control here). */
  extend?: (app: App) => void
}

/** A listening Node server. */
export interface RunningNode {
  server: Server
  http: ServerType
  url: string
  stop(): Promise<void>
}

/**
 * The Node entry: composes the server from the environment, seeds when asked, listens with
 * `@hono/node-server`, and prints the URL and the first curl commands.
 *
 * @example
 * ```ts
 * const { url, stop } = await startNode({ env: { PORT: '0', DATABASE_URL: 'file:/tmp/app.db' } })
 * ```
 */
export async function startNode(options: StartNodeOptions = {}): Promise<RunningNode> {
  const server = await createServer(options.env ?? process.env, options)
  try {
    const seeded = (options.args ?? process.argv.slice(2)).includes('--seed')
      ? await server.seed()
      : undefined
    options.extend?.(server.app)
    const { http, port } = await new Promise<{ http: ServerType; port: number }>((resolve, reject) => {
      const http = serve(
        { fetch: server.app.fetch, port: server.settings.PORT, hostname: server.settings.HOST },
        (info) => resolve({ http, port: info.port }),
      )
      http.once('error', reject)
    })
    const url = displayUrl(server.settings.HOST, port)
    console.log(banner(server, url, seeded))
    return {
      server,
      http,
      url,
      stop: async () => {
        await new Promise<void>((resolve) => http.close(() => resolve()))
        await server.close()
      },
    }
  } catch (error) {
    await server.close()
    throw error
  }
}

if (isMainModule(import.meta.url)) {
  loadDotEnv()
  runUntilSignal(() => startNode())
}
