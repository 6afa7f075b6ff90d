import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'

/** A port nobody listens on right now, chosen by the OS. */
export async function freePort(): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  server.close()
  await once(server, 'close')
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

/**
 * A throw-away `redis-server` child process (no persistence) that a test can stop and start again
 * on the same port, to produce real outages.
 */
export class RedisServerProcess {
  readonly port: number
  #child: ChildProcess | undefined

  constructor(port: number) {
    this.port = port
  }

  /** Starts a server on a free port. */
  static async launch(): Promise<RedisServerProcess> {
    const server = new RedisServerProcess(await freePort())
    await server.start()
    return server
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`
  }

  /** Starts the server and resolves once it accepts connections. */
  async start(): Promise<void> {
    if (this.#child) throw new Error('already running')
    const child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    this.#child = child
    let output = ''
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        output += chunk.toString()
        if (output.includes('Ready to accept connections')) {
          child.stdout?.off('data', onData)
          child.stdout?.resume()
          resolve()
        }
      }
      child.stdout?.on('data', onData)
      child.stderr?.resume()
      child.once('error', reject)
      child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${output}`)))
    })
  }

  /** Kills the server (SIGKILL: an abrupt outage, not a graceful shutdown) and waits for exit. */
  async stop(): Promise<void> {
    const child = this.#child
    if (!child) return
    this.#child = undefined
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGKILL')
    await exited
  }
}
