import { TenantBackendError } from '@tenant/core'
import type { ConnectionState, RedisScriptClient } from './client'
import { afterRunning, nextTurn, withBackendTimeout } from './script'

/** Default {@link RedisStoreOptions.maxInFlight}. */
export const DEFAULT_MAX_IN_FLIGHT = 64
/** Default {@link RedisStoreOptions.maxQueue}. */
export const DEFAULT_MAX_QUEUE = 10_000
/**
 * Default {@link RedisStoreOptions.queueTimeoutMs}, in units of `timeoutMs`: a store given a
 * generous timeout for a slow network lets a burst wait proportionally longer to be sent.
 */
export const QUEUE_TIMEOUTS_PER_TIMEOUT = 20

// How often a call held back for a client's first connection looks at it again. Polling rather
// than a 'ready' listener: node-redis clusters emit none, and no listener is left on the user's
// client. It only runs while calls wait for a first connection.
const CONNECTION_POLL_MS = 5

/** The gate's bounds, validated. */
export interface GateLimits {
  timeoutMs: number
  maxInFlight: number
  maxQueue: number
  queueTimeoutMs: number
}

/** What a store does about a sent command whose caller was told it failed. */
export interface AfterFailure<T> {
  /** The command's value, when it succeeded after its caller was told it timed out. */
  late?: (value: T) => void
  /** The caller was told the sent command failed; it may have run on the server all the same. */
  failed?: () => void
}

interface Waiter {
  /** performance.now() after which it fails. */
  deadline: number
  start(): void
  /** Rejects the call with `TenantBackendError`: `redis: <what> not sent: <reason>`. */
  fail(reason: string): void
}

function notSent(what: string, reason: string, tenantId: string | undefined): TenantBackendError {
  return new TenantBackendError(`redis: ${what} not sent: ${reason}`, { tenantId })
}

/**
 * Sends a store's commands to the client at a bounded pace and times each one from the moment it
 * is sent, so `timeoutMs` measures Redis's answer, not the wait for a connection or a queue.
 *
 * - At most `maxInFlight` commands are sent and unanswered at once. A command holds its place
 *   until the client settles it, even after its caller timed out: the pipeline is only as free as
 *   the server has made it. A command its client never settles is given up `queueTimeoutMs` after
 *   its caller timed out.
 * - Calls beyond that wait here, first come first served: at most `maxQueue` of them (a call
 *   finding the queue full fails at once), each at most `queueTimeoutMs`.
 * - While a client that has never been ready is connecting, calls wait here too, instead of in the
 *   client's offline queue. A client that was ready and lost its connection gets calls as before,
 *   and fails or queues them its own way: an outage must be a quick 503, not a wait.
 * - When a command times out and nothing at all is answered for another `timeoutMs` either, Redis
 *   is not answering: until it answers again, waiting calls and new ones fail at once rather than
 *   queue behind it.
 *
 * A call that fails before it is sent was never sent: it cannot have charged anything.
 */
export class CommandGate {
  readonly #client: RedisScriptClient
  readonly #limits: GateLimits
  /** Sent and not yet settled by the client. */
  #inFlight = 0
  /** Commands plus refunds not yet settled, and queued calls: what {@link drain} waits for. */
  #pending = 0
  /** Counts the client's answers (and failures): how the gate tells a stalled Redis from a slow one. */
  #answers = 0
  /** Set when nothing was answered for twice timeoutMs after a command was sent; cleared by the next answer. */
  #stalled = false
  #everReady = false
  readonly #queue: (Waiter | undefined)[] = []
  #head = 0
  #queueTimer: ReturnType<typeof setTimeout> | undefined
  #poll: ReturnType<typeof setTimeout> | undefined
  #drained: (() => void)[] = []
  /** Timers of commands handed over in this event-loop turn, started together at its end. */
  #toStart: (() => void)[] = []
  readonly #deferStart = (start: () => void): void => {
    if (this.#toStart.push(start) === 1) nextTurn(this.#startTimers)
  }
  readonly #startTimers = (): void => {
    const starts = this.#toStart
    this.#toStart = []
    for (const start of starts) start()
  }

  constructor(client: RedisScriptClient, limits: GateLimits) {
    this.#client = client
    this.#limits = limits
  }

  /** Calls waiting to be sent. */
  get queued(): number {
    return this.#queue.length - this.#head
  }

  /** Commands sent and not yet settled by the client (timed-out ones included). */
  get inFlight(): number {
    return this.#inFlight
  }

  /**
   * Sends `send()` when the gate allows, and settles with its value, or rejects with
   * `TenantBackendError` (not sent in time, queue full, Redis stalled, failed, or no answer within
   * `timeoutMs` of sending). `after.late` gets the value of a command that succeeded after its
   * caller was told it timed out; `after.failed` is called when the caller is told a command that
   * was sent failed (it may have run all the same). A call that fails before it is sent calls
   * neither.
   */
  run<T>(send: () => Promise<T>, what: string, tenantId?: string, after?: AfterFailure<T>): Promise<T> {
    if (this.queued === 0 && this.#inFlight < this.#limits.maxInFlight && this.#canSend()) {
      return this.#send(send, what, tenantId, after)
    }
    const refusal = this.#refusal()
    if (refusal) return Promise.reject(notSent(what, refusal, tenantId))
    this.#pending++
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({
        deadline: performance.now() + this.#limits.queueTimeoutMs,
        start: () => {
          this.#pending--
          this.#send(send, what, tenantId, after).then(resolve, reject)
        },
        fail: (reason) => {
          this.#pending--
          reject(notSent(what, reason, tenantId))
          this.#settledOne()
        },
      })
      this.#armQueueTimer()
      this.#pump()
    })
  }

  /** Counts `work` (a refund) in what {@link drain} waits for. */
  track(work: Promise<unknown>): void {
    this.#pending++
    const done = () => {
      this.#pending--
      this.#settledOne()
    }
    work.then(done, done)
  }

  /** Resolves once nothing is queued, in flight, or being refunded. */
  drain(): Promise<void> {
    if (this.#pending === 0) return Promise.resolve()
    return new Promise((resolve) => this.#drained.push(resolve))
  }

  #send<T>(send: () => Promise<T>, what: string, tenantId?: string, after?: AfterFailure<T>): Promise<T> {
    const answersBefore = this.#answers
    this.#inFlight++
    this.#pending++
    let held = true
    const release = () => {
      if (!held) return
      held = false
      this.#inFlight--
      this.#pending--
      this.#pump()
      this.#settledOne()
    }
    let work: Promise<T>
    try {
      work = send()
    } catch (error) {
      work = Promise.reject(error)
    }
    return withBackendTimeout(work, this.#limits.timeoutMs, what, tenantId, {
      // node-redis writes the commands of a turn at its end (setImmediate, queued before this):
      // the timer starts after that, so a process that falls behind does not count the wait.
      deferStart: this.#deferStart,
      onLate: after?.late,
      onFailed: after?.failed,
      onSettled: () => {
        this.#answers++
        this.#stalled = false
        release()
      },
      onTimeout: () => {
        // A client may never settle a command whose connection dropped (ioredis with
        // autoResendUnfulfilledCommands: false forgets it on reconnecting): its place, and drain(),
        // would wait forever. queueTimeoutMs after its caller timed out, it is given up.
        afterRunning(this.#limits.queueTimeoutMs, release)
        // Nothing was answered since this command went out. If nothing is answered for another
        // timeoutMs either, Redis has stopped answering (paused, blocked by a slow script, cut
        // off): until it answers again, waiting calls and new ones fail at once rather than queue
        // behind it. A shorter hiccup only costs the commands that timed out.
        if (this.#answers !== answersBefore) return
        afterRunning(this.#limits.timeoutMs, () => {
          if (this.#answers !== answersBefore || this.#inFlight === 0) return
          this.#stalled = true
          this.#failQueue()
        })
      },
    })
  }

  #canSend(): boolean {
    const state: ConnectionState = this.#client.connectionState?.() ?? 'ready'
    if (state === 'ready') {
      this.#everReady = true
      return true
    }
    return state === 'down' || this.#everReady
  }

  /** Why a call that cannot be sent now is not queued either, if it is not. */
  #refusal(): string | undefined {
    if (this.#stalled) return this.#stallReason()
    if (this.queued >= this.#limits.maxQueue) {
      return `${this.queued} calls already wait to be sent (maxQueue ${this.#limits.maxQueue})`
    }
    return undefined
  }

  #stallReason(): string {
    return `Redis has answered none of the ${this.#inFlight} commands in flight for over ${2 * this.#limits.timeoutMs} ms`
  }

  /** Sends waiting calls while there is room and the client can take them. */
  #pump(): void {
    while (this.queued > 0 && this.#inFlight < this.#limits.maxInFlight) {
      if (!this.#canSend()) {
        this.#pollConnection()
        return
      }
      this.#shift()!.start()
    }
  }

  #shift(): Waiter | undefined {
    const waiter = this.#queue[this.#head]
    this.#queue[this.#head++] = undefined
    if (this.queued === 0) {
      this.#queue.length = 0
      this.#head = 0
      clearTimeout(this.#queueTimer)
      this.#queueTimer = undefined
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      // Reclaim the consumed front now and then rather than shifting the array on every call.
      this.#queue.splice(0, this.#head)
      this.#head = 0
    }
    return waiter
  }

  #pollConnection(): void {
    if (this.#poll !== undefined) return
    this.#poll = setTimeout(() => {
      this.#poll = undefined
      this.#pump()
    }, CONNECTION_POLL_MS)
  }

  /** One timer for the whole queue: waiters share one timeout and leave in order, so the head expires first. */
  #armQueueTimer(): void {
    if (this.#queueTimer !== undefined || this.queued === 0) return
    const delay = Math.max(0, this.#queue[this.#head]!.deadline - performance.now())
    this.#queueTimer = setTimeout(() => {
      this.#queueTimer = undefined
      const now = performance.now()
      while (this.queued > 0 && this.#queue[this.#head]!.deadline <= now) {
        this.#shift()!.fail(
          `waited ${this.#limits.queueTimeoutMs} ms (queueTimeoutMs): ${this.#waitReason()}`,
        )
      }
      this.#armQueueTimer()
    }, delay)
  }

  #waitReason(): string {
    if (!this.#canSend()) return 'the client has not connected yet'
    return `${this.#inFlight} commands in flight (maxInFlight ${this.#limits.maxInFlight})`
  }

  #failQueue(): void {
    const reason = this.#stallReason()
    while (this.queued > 0) this.#shift()!.fail(reason)
  }

  #settledOne(): void {
    if (this.#pending !== 0 || this.#drained.length === 0) return
    const resolvers = this.#drained
    this.#drained = []
    for (const resolve of resolvers) resolve()
  }
}
