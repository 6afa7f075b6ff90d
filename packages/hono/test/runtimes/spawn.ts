import { type ChildProcess, spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'

/** The repository root and the package directory. */
export const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url))
export const packageDir = fileURLToPath(new URL('../../', import.meta.url))

/** A binary installed from npm into the root node_modules (bun, deno, wrangler). */
export function bin(name: string): string {
  return `${repoRoot}node_modules/.bin/${name}`
}

/** Keeps the runtimes' own network chatter (telemetry, update checks) off. */
export const quietEnv: NodeJS.ProcessEnv = {
  ...process.env,
  NO_COLOR: '1',
  DENO_NO_UPDATE_CHECK: '1',
  DENO_NO_PROMPT: '1',
  BUN_DISABLE_TELEMETRY: '1',
  DO_NOT_TRACK: '1',
  WRANGLER_SEND_METRICS: 'false',
  WRANGLER_HIDE_BANNER: 'true',
  // Miniflare otherwise fetches a sample Request.cf object from workers.cloudflare.com.
  CLOUDFLARE_CF_FETCH_ENABLED: 'false',
  NO_UPDATE_NOTIFIER: '1',
}

export interface Finished {
  code: number | null
  output: string
}

const ESC = String.fromCharCode(27)
const ANSI = new RegExp(`${ESC}\\[[0-9;]*m`, 'g')

/** The text without colour codes: some runtimes colour their output whatever NO_COLOR says. */
export function stripAnsi(text: string): string {
  return text.replace(ANSI, '')
}

/** Runs a command to completion (killing it after `timeoutMs`), with stdout and stderr merged. */
export function run(
  command: string,
  args: string[],
  options: { cwd: string; timeoutMs: number },
): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: quietEnv, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (chunk) => {
      output += chunk
    })
    child.stderr.on('data', (chunk) => {
      output += chunk
    })
    const timer = setTimeout(() => {
      output += `\n[killed after ${options.timeoutMs} ms]`
      child.kill('SIGKILL')
    }, options.timeoutMs)
    child.on('error', (error) => {
      clearTimeout(timer)
      reject(new Error(`could not start ${command}: ${error.message}`))
    })
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, output: stripAnsi(output) })
    })
  })
}

/** A TCP port that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

/** A long-running child (a dev server) in its own process group, so stop() ends it and its children. */
export interface Service {
  readonly output: () => string
  /** Resolves once `ready` (an HTTP URL) answers 200, rejects if the process exits or `timeoutMs` passes. */
  waitUntilReady(url: string, timeoutMs: number): Promise<void>
  stop(): Promise<void>
}

export function startService(command: string, args: string[], cwd: string): Service {
  const child: ChildProcess = spawn(command, args, {
    cwd,
    env: quietEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  })
  let output = ''
  let exited: number | null | undefined
  let startError: Error | undefined
  child.stdout?.on('data', (chunk) => {
    output += chunk
  })
  child.stderr?.on('data', (chunk) => {
    output += chunk
  })
  child.on('error', (error) => {
    startError = error
  })
  const closed = new Promise<void>((resolve) =>
    child.on('close', (code) => {
      exited = code
      resolve()
    }),
  )
  return {
    output: () => stripAnsi(output),
    async waitUntilReady(url, timeoutMs) {
      const deadline = Date.now() + timeoutMs
      // Polls the server's own readiness route: a bounded wait for a process, not for a time window.
      while (Date.now() < deadline) {
        if (startError) throw new Error(`could not start ${command}: ${startError.message}`)
        if (exited !== undefined)
          throw new Error(`${command} exited with ${exited} before it was ready:\n${output}`)
        try {
          const response = await fetch(url)
          if (response.ok) return
        } catch {
          // not listening yet
        }
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
      throw new Error(`${command} was not ready after ${timeoutMs} ms:\n${output}`)
    },
    async stop() {
      if (child.pid === undefined || exited !== undefined) return
      try {
        process.kill(-child.pid, 'SIGTERM')
      } catch {
        return
      }
      const timer = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL')
        } catch {}
      }, 5000)
      await closed
      clearTimeout(timer)
    },
  }
}
