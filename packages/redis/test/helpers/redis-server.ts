import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * Whether the outage and Cluster tests can start their own servers: `redis-server` and
 * `redis-cli` on PATH. Under `CI` they must be, so the tests run (and fail) regardless.
 */
export const CAN_SPAWN_REDIS: boolean =
  Boolean(process.env.CI) ||
  (spawnSync('redis-server', ['--version']).status === 0 &&
    spawnSync('redis-cli', ['--version']).status === 0)

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
  readonly #extraArgs: string[]
  #child: ChildProcess | undefined

  constructor(port: number, extraArgs: string[] = []) {
    this.port = port
    this.#extraArgs = extraArgs
  }

  /** Starts a server on a free port. */
  static async launch(extraArgs: string[] = []): Promise<RedisServerProcess> {
    const server = new RedisServerProcess(await freePort(), extraArgs)
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
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        ...this.#extraArgs,
      ],
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

/**
 * A throw-away Redis Cluster of three masters (no replicas), slots spread by `redis-cli --cluster
 * create`. Each node's cluster bus is its port + 10000.
 */
export class RedisClusterProcess {
  readonly nodes: RedisServerProcess[]
  readonly #dir: string

  private constructor(nodes: RedisServerProcess[], dir: string) {
    this.nodes = nodes
    this.#dir = dir
  }

  /** `host:port` of every node. */
  get addresses(): { host: string; port: number }[] {
    return this.nodes.map((n) => ({ host: '127.0.0.1', port: n.port }))
  }

  static async launch(): Promise<RedisClusterProcess> {
    const dir = await mkdtemp(join(tmpdir(), 'redis-cluster-'))
    const nodes: RedisServerProcess[] = []
    const cluster = new RedisClusterProcess(nodes, dir)
    try {
      for (let i = 0; i < 3; i++) {
        const port = await freePort()
        const node = new RedisServerProcess(port, [
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(dir, `nodes-${port}.conf`),
          '--dir',
          dir,
        ])
        await node.start()
        nodes.push(node)
      }
      const create = spawn(
        'redis-cli',
        [
          '--cluster',
          'create',
          ...nodes.map((n) => `127.0.0.1:${n.port}`),
          '--cluster-replicas',
          '0',
          '--cluster-yes',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      )
      let output = ''
      create.stdout?.on('data', (c: Buffer) => {
        output += c.toString()
      })
      create.stderr?.on('data', (c: Buffer) => {
        output += c.toString()
      })
      const [code] = await once(create, 'exit')
      if (code !== 0 || !output.includes('All 16384 slots covered')) {
        throw new Error(`redis-cli --cluster create failed (${code}): ${output}`)
      }
      return cluster
    } catch (error) {
      await cluster.stop()
      throw error
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()))
    await rm(this.#dir, { recursive: true, force: true })
  }
}
