import { runUntilSignal } from './main-module'
import { type RunningServer, type StartServerOptions, startServer } from './server'

// The little of Bun's API this entry uses (the app does not depend on bun-types).
declare const Bun: {
  serve(options: {
    fetch: (request: Request) => Response | Promise<Response>
    port: number
    hostname: string
  }): {
    readonly port: number
    stop(closeActiveConnections?: boolean): Promise<void> | void
  }
}
declare global {
  interface ImportMeta {
    /** Bun: true when this module is the program being run. */
    readonly main?: boolean
  }
}

/**
 * The Bun entry: the same composition as Node (`createServer`: libSQL or PostgreSQL, memory or
 * Redis), served by `Bun.serve`. Bun reads `.env` by itself.
 *
 * @example
 * ```ts
 * const { url, stop } = await startBun({ env: { PORT: '0' } })
 * ```
 */
export function startBun(options: StartServerOptions = {}): Promise<RunningServer> {
  return startServer(options, async (app, settings) => {
    const server = Bun.serve({ fetch: app.fetch, port: settings.PORT, hostname: settings.HOST })
    return { port: server.port, close: async () => server.stop(true) }
  })
}

if (import.meta.main) runUntilSignal(() => startBun())
