import { assertMethods, type Clock, MAX_TIMER_MS, systemClock } from '@tenant/core'
import { type RedisClientInput, type RedisScriptClient, toScriptClient } from './client'
import {
  CommandGate,
  DEFAULT_MAX_IN_FLIGHT,
  DEFAULT_MAX_QUEUE,
  QUEUE_TIMEOUTS_PER_TIMEOUT,
} from './command-gate'
import { validatePrefix } from './keys'
import { LocalDenyCache, type LocalDenyOptions } from './local-deny'
import { optionError, wholeNumberOption } from './option-error'
import { OwedCommands, RECEIPT_TTL_MS, RECEIPT_TTL_RANGE_MS, ReceiptIds } from './receipts'
import { validateTimeout } from './script'

/** The options every store of this package shares. */
export interface RedisStoreOptions {
  /** An ioredis or node-redis client (or Cluster), or any {@link RedisScriptClient}. */
  redis: RedisClientInput
  /** Start of every key, inside the Cluster hash tag. 1 to 128 characters of `[A-Za-z0-9:._-]`. */
  prefix?: string
  /**
   * How long a call waits for Redis's answer once its command is sent, in ms; a slower Redis
   * rejects with `TenantBackendError`. It does not count the wait for the client's first
   * connection or for a place among `maxInFlight` (that is `queueTimeoutMs`), nor time this
   * process could not run. An admission whose answer comes later is refunded.
   * @default 50
   */
  timeoutMs?: number
  /**
   * How many of this store's commands may be sent and unanswered at once; more calls wait in the
   * store's queue, so a burst does not pile up in the client's pipeline where each command's
   * timer would count the whole burst ahead of it.
   * @default 64
   */
  maxInFlight?: number
  /**
   * How many calls may wait to be sent (for a place among `maxInFlight`, or for the client's
   * first connection). A call that finds the queue full fails at once with `TenantBackendError`
   * (503 at the HTTP edge). 0: no queue.
   * @default 10000
   */
  maxQueue?: number
  /**
   * How long a call may wait to be sent, in ms, before it fails with `TenantBackendError`. A call
   * that fails before it is sent has charged nothing.
   * @default 20 * timeoutMs (1000 with the default timeoutMs)
   */
  queueTimeoutMs?: number
  /**
   * Decide with this clock instead of the Redis server's `TIME`: for tests (`ManualClock`) and
   * single hosts. Several hosts should keep the default, which makes their clock skew irrelevant.
   * @default undefined (Redis TIME)
   */
  clock?: Clock
  /**
   * Give every admission a receipt in Redis (one small key for `receiptTtlMs`), so that a
   * decision is charged at most once however often its command runs (a client re-sends commands
   * whose replies a dropped connection lost), and a decision whose caller was told it failed is
   * taken back, whether its reply came late, was lost, or the command ran after the timeout.
   * `false` saves that write (7 to 10 µs of Redis time per admission, and 200 bytes for 15 s; see
   * the README):
   * only a reply that arrives late is refunded, and a command re-sent after a lost reply charges
   * again. The concurrency limiter and the cache store ignore it.
   * @default true
   */
  receipts?: boolean
  /**
   * How long a receipt lives in Redis, in ms (1,000 to 600,000): a client's re-send, or a void
   * after a failed call, must reach Redis within it, and memory holds about 200 bytes for each
   * admission of this span. Failed calls' voids are tried for as long.
   * @default 15000 (`RECEIPT_TTL_MS`)
   */
  receiptTtlMs?: number
}

/** {@link RedisStoreOptions}, validated. */
export interface ResolvedStoreOptions {
  redis: RedisScriptClient
  prefix: string
  timeoutMs: number
  /** Sends the store's commands: bounds, timeouts, waiting for a first connection. */
  gate: CommandGate
  /** What the store still owes Redis after a call failed on its caller (voids, releases). */
  owed: OwedCommands
  /** The store's receipt keys (see `receiptScript`); undefined with `receipts: false`. */
  receipts: ReceiptIds | undefined
  /** The clock whose time goes into the scripts; undefined for Redis TIME. */
  clock: Clock | undefined
  /** The clock for what happens in this process (the local-deny cache, unlimited tenants). */
  localClock: Clock
}

/**
 * Checks, at construction, that `provider` has the method the store calls. Throws
 * `InvalidTenantConfigError`, like core's managers.
 */
export function checkProvider(provider: unknown, method: string): void {
  assertMethods(provider, 'provider', [method])
}

/**
 * Validates the shared options once, at construction. Throws `InvalidTenantConfigError` naming
 * the option, so a misconfiguration never surfaces per request.
 */
export function resolveStoreOptions(
  owner: string,
  options: RedisStoreOptions,
  defaultPrefix: string,
): ResolvedStoreOptions {
  if (typeof options !== 'object' || options === null) {
    throw optionError('options', `${owner} needs an options object with a redis client`)
  }
  if (options.clock !== undefined) assertMethods(options.clock, 'options.clock', ['now'])
  const redis = toScriptClient(options.redis)
  const timeoutMs = validateTimeout(options.timeoutMs)
  const gate = new CommandGate(redis, {
    timeoutMs,
    maxInFlight: wholeNumberOption('maxInFlight', options.maxInFlight, DEFAULT_MAX_IN_FLIGHT, 1),
    maxQueue: wholeNumberOption('maxQueue', options.maxQueue, DEFAULT_MAX_QUEUE, 0),
    queueTimeoutMs: wholeNumberOption(
      'queueTimeoutMs',
      options.queueTimeoutMs,
      Math.min(QUEUE_TIMEOUTS_PER_TIMEOUT * timeoutMs, MAX_TIMER_MS),
      1,
      MAX_TIMER_MS,
    ),
  })
  const receiptTtlMs = wholeNumberOption(
    'receiptTtlMs',
    options.receiptTtlMs,
    RECEIPT_TTL_MS,
    RECEIPT_TTL_RANGE_MS.min,
  )
  if (receiptTtlMs > RECEIPT_TTL_RANGE_MS.max) {
    throw optionError('receiptTtlMs', `must be at most ${RECEIPT_TTL_RANGE_MS.max}, got ${receiptTtlMs}`)
  }
  return {
    redis,
    prefix: validatePrefix(options.prefix, defaultPrefix),
    timeoutMs,
    gate,
    owed: new OwedCommands(gate, receiptTtlMs),
    receipts: receiptsOption(options.receipts) ? new ReceiptIds(receiptTtlMs) : undefined,
    clock: options.clock,
    localClock: options.clock ?? systemClock,
  }
}

function receiptsOption(value: unknown): boolean {
  if (value === undefined) return true
  if (typeof value !== 'boolean') throw optionError('receipts', `must be true or false, got ${String(value)}`)
  return value
}

/** The `localDeny` option as a cache, or undefined when off. */
export function localDenyCache<D>(
  option: boolean | LocalDenyOptions | undefined,
): LocalDenyCache<D> | undefined {
  if (option === undefined || option === false) return undefined
  if (option === true) return new LocalDenyCache<D>({})
  if (typeof option !== 'object' || option === null || Array.isArray(option)) {
    throw optionError(
      'localDeny',
      `must be true, false or { maxEntries?, maxHoldMs? }, got ${option === null ? 'null' : typeof option}`,
    )
  }
  return new LocalDenyCache<D>(option)
}
