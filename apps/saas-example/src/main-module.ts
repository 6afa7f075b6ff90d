import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { SettingsError } from './settings'

/**
 * True when the module at `url` is the program being run (`node src/node.ts`), false when it is
 * imported (by a test entry). Compares real paths, so symlinks and relative paths agree.
 */
export function isMainModule(url: string): boolean {
  const script = process.argv[1]
  if (script === undefined) return false
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(url))
  } catch {
    return false
  }
}

/** Loads `.env` from the working directory into `process.env` when there is one (Node >= 20.12). */
export function loadDotEnv(path = '.env'): void {
  try {
    process.loadEnvFile(path)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
}

/**
 * Starts a server and stops it on SIGINT / SIGTERM. A start that fails (bad settings, an
 * unreachable database) prints why and exits with 1.
 */
export function runUntilSignal(start: () => Promise<{ stop(): Promise<void> }>): void {
  const started = start()
  // The handlers go in before the start: a signal that came between the banner (which tells a
  // supervisor the server is up) and a handler added afterwards would kill the process with the
  // default action, without closing the server or the database (exit 143).
  let stopping = false
  const shutdown = () => {
    if (stopping) return
    stopping = true
    started
      .then((running) => running.stop())
      .then(
        () => process.exit(0),
        () => process.exit(1),
      )
  }
  process.once('SIGINT', shutdown)
  process.once('SIGTERM', shutdown)
  started.catch((error: unknown) => {
    console.error(error instanceof SettingsError ? error.message : error)
    process.exit(1)
  })
}
