import { MAX_TIMER_MS, TenantBackendError } from '@tenant/core'
import type { RedisScriptClient } from './client'
import { wholeNumberOption } from './option-error'

/** Default per-call timeout of every store, in ms. */
export const DEFAULT_TIMEOUT_MS = 50

async function sha1Hex(text: string): Promise<string> {
  // Web Crypto rather than node:crypto: the same code runs on Node, Bun and Deno.
  const digest = await globalThis.crypto.subtle.digest('SHA-1', new TextEncoder().encode(text))
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('')
}

function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.includes('NOSCRIPT')
}

/**
 * A Lua script run with `EVALSHA`, falling back to `EVAL` (which also caches it on the server)
 * when the server answers `NOSCRIPT` (after a restart, `SCRIPT FLUSH` or a failover to a replica
 * that never saw it). One round trip in the common case, two right after a flush.
 *
 * A burst that meets a server without the script gets one `NOSCRIPT` per command in flight. Only
 * the first of them resends the source; the others wait for that `EVAL` (which caches the script)
 * and try the SHA again, so a fresh server is not sent the source a hundred times at once.
 */
export class LuaScript {
  readonly source: string
  #sha: string | undefined
  #shaPromise: Promise<string> | undefined
  /** The `EVAL` under way after a `NOSCRIPT`, if any. */
  #loading: Promise<unknown> | undefined

  constructor(source: string) {
    this.source = source
  }

  /** The script's SHA-1 as Redis computes it. */
  sha(): Promise<string> {
    if (this.#sha !== undefined) return Promise.resolve(this.#sha)
    this.#shaPromise ??= sha1Hex(this.source).then((sha) => {
      this.#sha = sha
      return sha
    })
    return this.#shaPromise
  }

  /** Runs the script, loading it on `NOSCRIPT`. Errors are the client's, unchanged. */
  async run(client: RedisScriptClient, keys: string[], args: string[]): Promise<unknown> {
    const sha = this.#sha ?? (await this.sha())
    try {
      return await client.evalScriptSha(sha, keys, args)
    } catch (error) {
      if (!isNoScript(error)) throw error
    }
    const loading = this.#loading
    if (loading !== undefined) {
      await loading.catch(() => {})
      try {
        return await client.evalScriptSha(sha, keys, args)
      } catch (error) {
        // Still unknown: that EVAL went to another server (a Cluster node, a new master).
        if (!isNoScript(error)) throw error
      }
    }
    const evaluated = client.evalScript(this.source, keys, args)
    const settled = evaluated.then(
      () => undefined,
      () => undefined,
    )
    this.#loading = settled
    void settled.then(() => {
      if (this.#loading === settled) this.#loading = undefined
    })
    return evaluated
  }
}

/**
 * Validates a `timeoutMs` option: a whole number of ms > 0, at most core's `MAX_TIMER_MS` (a
 * longer timer fires at once). Throws `InvalidTenantConfigError` at construction so a typo never
 * becomes a per-request failure.
 */
export function validateTimeout(timeoutMs: number | undefined): number {
  return wholeNumberOption('timeoutMs', timeoutMs, DEFAULT_TIMEOUT_MS, 1, MAX_TIMER_MS)
}

/** Runs `callback` after the I/O of the current event-loop turn (setImmediate; a timer where there is none). */
export const nextTurn: (callback: () => void) => void =
  typeof setImmediate === 'function' ? setImmediate : (callback) => setTimeout(callback, 0)

// How late a timer may fire before the delay counts as this process's, not Redis's.
const LAG_SLACK_MS = 5

/**
 * Calls `callback` once `ms` of this process's running time have passed: a timer that fires more
 * than a few ms late means the process could not run (busy, or not scheduled), and the lateness
 * is added back, since the process could neither write a command nor read an answer meanwhile.
 * Returns a function that cancels it.
 */
export function afterRunning(ms: number, callback: () => void): () => void {
  let timer: ReturnType<typeof setTimeout>
  const arm = (wait: number) => {
    const due = performance.now() + wait
    timer = setTimeout(() => {
      const late = performance.now() - due
      if (late > LAG_SLACK_MS) arm(late)
      else callback()
    }, wait)
  }
  arm(ms)
  return () => clearTimeout(timer)
}

/** What {@link withBackendTimeout} tells its caller besides the answer. */
export interface TimeoutHooks<T> {
  /** The value of a `work` that succeeded after the caller was told it timed out. */
  onLate?: (value: T) => void
  /** `work` settled (before or after the timeout), whichever way. */
  onSettled?: () => void
  /** The caller was just told `work` timed out. */
  onTimeout?: () => void
  /**
   * The caller was just told `work` failed (timed out, or rejected in time): the command may have
   * run on the server all the same, so what it did is unknown to the caller.
   */
  onFailed?: () => void
  /**
   * Starts the timer later: `start` is to be called once the command is really on its way (a
   * client may write it only at the end of the event-loop turn). Default: the timer starts now.
   */
  deferStart?: (start: () => void) => void
}

/**
 * Settles with `work`, or rejects with {@link TenantBackendError} when it fails or takes longer
 * than `timeoutMs` from this call (the caller makes it when the command is sent). The command may
 * still run on the server after a timeout: `hooks.onLate` receives the value of a `work` that
 * succeeds after its caller was told it timed out, so the store can take back what it charged.
 *
 * The timeout counts this process's running time: when the timer fires more than a few ms late
 * (the process was busy or not scheduled), the lateness is added back, and when it fires, the
 * answer gets one more turn of the event loop (`setImmediate`), so a reply that reached the socket
 * in time but waited behind other JavaScript is not a timeout.
 */
export function withBackendTimeout<T>(
  work: Promise<T>,
  timeoutMs: number,
  what: string,
  tenantId?: string,
  hooks: TimeoutHooks<T> = {},
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false
    let timedOut = false
    let cancel: (() => void) | undefined
    const start = () => {
      if (settled) return
      cancel = afterRunning(timeoutMs, () =>
        nextTurn(() => {
          if (settled) return
          timedOut = true
          reject(new TenantBackendError(`redis: ${what} timed out after ${timeoutMs} ms`, { tenantId }))
          hooks.onTimeout?.()
          hooks.onFailed?.()
        }),
      )
    }
    if (hooks.deferStart) hooks.deferStart(start)
    else start()
    work.then(
      (value) => {
        settled = true
        cancel?.()
        hooks.onSettled?.()
        if (!timedOut) resolve(value)
        else hooks.onLate?.(value)
      },
      (error: unknown) => {
        settled = true
        cancel?.()
        hooks.onSettled?.()
        if (timedOut) return
        const message = error instanceof Error ? error.message : String(error)
        reject(new TenantBackendError(`redis: ${what} failed: ${message}`, { cause: error, tenantId }))
        hooks.onFailed?.()
      },
    )
  })
}
