import { connect, createServer, type Server, type Socket } from 'node:net'

/**
 * A TCP proxy in front of a real Redis that can lose replies the way a dropped connection does:
 * `swallowReplies()` lets commands through to Redis (which runs them) and drops what Redis
 * answers; `cut()` then closes every client connection, so the client learns nothing of those
 * commands but that its connection is gone. Later connections pass everything again.
 */
export class ReplyProxy {
  readonly #server: Server
  readonly #pairs = new Set<{ client: Socket; upstream: Socket }>()
  #swallow = false
  /** Bytes of replies dropped while swallowing. */
  swallowed = 0

  private constructor(server: Server) {
    this.#server = server
  }

  /** Starts a proxy on a free loopback port in front of `target` (host and port). */
  static async start(target: { host: string; port: number }): Promise<ReplyProxy> {
    let proxy: ReplyProxy | undefined
    const server = createServer((client) => proxy!.#accept(client, target))
    proxy = new ReplyProxy(server)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return proxy
  }

  /** The port clients connect to. */
  get port(): number {
    const address = this.#server.address()
    if (address === null || typeof address === 'string') throw new Error('proxy not listening')
    return address.port
  }

  /** From now on, Redis's replies on the open connections are dropped. */
  swallowReplies(): void {
    this.#swallow = true
  }

  /** Closes every open connection; new ones pass replies again. */
  cut(): void {
    this.#swallow = false
    for (const { client, upstream } of this.#pairs) {
      client.destroy()
      upstream.destroy()
    }
    this.#pairs.clear()
  }

  async close(): Promise<void> {
    this.cut()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }

  #accept(client: Socket, target: { host: string; port: number }): void {
    const upstream = connect(target.port, target.host)
    const pair = { client, upstream }
    this.#pairs.add(pair)
    const end = () => {
      this.#pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    client.on('error', end).on('close', end)
    upstream.on('error', end).on('close', end)
    client.on('data', (chunk) => upstream.write(chunk))
    upstream.on('data', (chunk) => {
      if (this.#swallow) this.swallowed += chunk.length
      else client.write(chunk)
    })
  }
}
