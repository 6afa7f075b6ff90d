// Child processes for the e2e suites: a server started as its real runtime would start it, its
// output captured (and shown only when a test fails), stopped with its whole process group.
import { type ChildProcess, spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import { serverSettingsSchema } from '../../src/settings'

/** The app's folder and the repository root. */
export const appDir = fileURLToPath(new URL('../../', import.meta.url))
export const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url))

/** A binary from the root node_modules (tsx, bun, wrangler). */
export function bin(name: string): string {
  return `${repoRoot}node_modules/.bin/${name}`
}

/** The environment of every child: no telemetry, no colours, no update checks. */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NO_COLOR: '1',
    FORCE_COLOR: '0',
    DO_NOT_TRACK: '1',
    BUN_DISABLE_TELEMETRY: '1',
    WRANGLER_SEND_METRICS: 'false',
    WRANGLER_HIDE_BANNER: 'true',
    // Miniflare otherwise fetches a sample Request.cf object from workers.cloudflare.com.
    CLOUDFLARE_CF_FETCH_ENABLED: 'false',
    NO_UPDATE_NOTIFIER: '1',
    ...extra,
  }
  // The app's own settings come only from `extra`, never from the developer's shell or a .env
  // file: an empty value counts as unset for the app, and .env loading never overrides one.
  for (const key of Object.keys(serverSettingsSchema.shape)) {
    if (!(key in extra)) env[key] = ''
  }
  return env
}

/** A TCP port that was free a moment ago (for wrangler, which cannot report a port 0 choice). */
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

const ESC = String.fromCharCode(27)
const ANSI = new RegExp(`${ESC}\\[[0-9;?]*[A-Za-z]`, 'g')

/** A long-running child in its own process group. */
export interface Child {
  /** Everything it wrote to stdout and stderr so far, without colour codes. */
  output(): string
  /** The JSON objects among its output lines (the app's logs). */
  jsonLines(): Record<string, unknown>[]
  /** Resolves with the first match of `pattern` in the output; rejects if the child exits first. */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray>
  /** Resolves when `url` answers 2xx; rejects if the child exits first or `timeoutMs` passes. */
  waitForHttp(url: string, timeoutMs: number): Promise<void>
  /** Resolves with the exit code once the child has exited. */
  exited(): Promise<number | null>
  /** Stops the child and everything it started (SIGTERM, then SIGKILL after 5 s). */
  stop(): Promise<void>
}

/**
 * Starts `command` with `args` in `cwd`. A start failure (missing binary) and an exit before the
 * awaited readiness make the waits reject with the captured output, so a runtime that does not
 * start fails its tests.
 */
export function startChild(
  command: string,
  args: string[],
  options: { cwd: string; env: NodeJS.ProcessEnv },
): Child {
  const child: ChildProcess = spawn(command, args, {
    cwd: options.cwd,
    env: options.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  })
  let output = ''
  let exitCode: number | null | undefined
  let startError: Error | undefined
  const listeners = new Set<() => void>()
  const changed = () => {
    for (const l of listeners) l()
  }
  child.stdout?.on('data', (chunk) => {
    output += chunk
    changed()
  })
  child.stderr?.on('data', (chunk) => {
    output += chunk
    changed()
  })
  child.on('error', (error) => {
    startError = error
    changed()
  })
  const closed = new Promise<number | null>((resolve) =>
    child.on('close', (code) => {
      exitCode = code
      changed()
      resolve(code)
    }),
  )
  const clean = () => output.replace(ANSI, '')
  const failure = (what: string) =>
    new Error(
      startError ? `could not start ${command}: ${startError.message}` : `${command} ${what}:\n${clean()}`,
    )

  return {
    output: clean,
    jsonLines() {
      const lines: Record<string, unknown>[] = []
      for (const line of clean().split('\n')) {
        const trimmed = line.trim()
        if (!trimmed.startsWith('{')) continue
        try {
          lines.push(JSON.parse(trimmed) as Record<string, unknown>)
        } catch {
          // a line that only looks like JSON (a pretty-printed object from a runtime)
        }
      }
      return lines
    },
    waitFor(pattern, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = pattern.exec(clean())
          if (match) return done(() => resolve(match))
          if (startError || exitCode !== undefined)
            return done(() => reject(failure('exited before it was ready')))
        }
        const timer = setTimeout(
          () => done(() => reject(failure(`printed no ${pattern} within ${timeoutMs} ms`))),
          timeoutMs,
        )
        const done = (settle: () => void) => {
          clearTimeout(timer)
          listeners.delete(check)
          settle()
        }
        listeners.add(check)
        check()
      })
    },
    async waitForHttp(url, timeoutMs) {
      const deadline = Date.now() + timeoutMs
      // Polls the server's readiness route: a bounded wait for a process to listen, not for time to pass.
      while (Date.now() < deadline) {
        if (startError || exitCode !== undefined) throw failure('exited before it was ready')
        try {
          const response = await fetch(url)
          if (response.ok) return
        } catch {
          // not listening yet
        }
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      throw failure(`did not answer ${url} within ${timeoutMs} ms`)
    },
    exited: () => closed,
    async stop() {
      if (child.pid === undefined || exitCode !== undefined) return
      try {
        process.kill(-child.pid, 'SIGTERM')
      } catch {
        return
      }
      const timer = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL')
        } catch {
          // already gone
        }
      }, 5_000)
      await closed
      clearTimeout(timer)
    },
  }
}

/** Runs a command to completion, with stdout and stderr merged; kills it after `timeoutMs`. */
export async function runToEnd(
  command: string,
  args: string[],
  options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<{ code: number | null; output: string }> {
  const child = startChild(command, args, options)
  const timer = setTimeout(() => void child.stop(), options.timeoutMs)
  const code = await child.exited()
  clearTimeout(timer)
  return { code, output: child.output() }
}
