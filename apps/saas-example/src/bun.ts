import type { App } from './app'
import { banner, displayUrl } from './banner'
import { runUntilSignal } from './main-module'
import { type CreateServerOptions, createServer, type Server } from './server'

// The little of Bun's API this entry uses (the app does not depend on bun-types).
interface BunServer {
  readonly port: number
  stop(closeActiveConnections?: boolean): Promise<void> | void
}
declare const Bun: {
  serve(options: {
    fetch: (request: Request) => Response | Promise<Response>
    port: number
    hostname: string
  }): BunServer
}
declare global {
  interface ImportMeta {
    /** Bun: true when this module is the program being run. */
    readonly main?: boolean
  }
}

/** Options of {@link startBun}. */
export interface StartBunOptions extends CreateServerOptions {
  /** @default process.env (Bun loads `.env` itself) */
  env?: Record<string, string | undefined>
  /** `--seed` creates the demo tenants before listening. @default process.argv.slice(2) */
  args?: readonly string[]
  /** Adds routes before the app serves (the e2e entry mounts its clock control here). */
  extend?: (app: App) => void
}

/**
 * The Bun entry: the same composition as Node (`createServer`), served by `Bun.serve`.
 *
 * @example
 * ```ts
 * const { url, stop } = await startBun({ env: { PORT: '0' } })
 * ```
 */
export async function startBun(
  options: StartBunOptions = {},
): Promise<{ server: Server; url: string; stop(): Promise<void> }> {
  const server = await createServer(options.env ?? process.env, options)
  try {
    const seeded = (options.args ?? process.argv.slice(2)).includes('--seed')
      ? await server.seed()
      : undefined
    options.extend?.(server.app)
    const http = Bun.serve({
      fetch: server.app.fetch,
      port: server.settings.PORT,
      hostname: server.settings.HOST,
    })
    const url = displayUrl(server.settings.HOST, http.port)
    console.log(banner(server, url, seeded))
    return {
      server,
      url,
      stop: async () => {
        await http.stop(true)
        await server.close()
      },
    }
  } catch (error) {
    await server.close()
    throw error
  }
}

if (import.meta.main) runUntilSignal(() => startBun())
