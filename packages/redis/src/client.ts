import { optionError } from './option-error'

/**
 * The two Redis commands the stores need: run a Lua script by its SHA-1, or by its source.
 *
 * Every store in this package does all its work in scripts (one round trip per decision), so this
 * is the whole surface a client has to offer. ioredis and node-redis clients are accepted as they
 * are (see {@link toScriptClient}); implement this interface to use any other client.
 *
 * @example
 * ```ts
 * const client: RedisScriptClient = {
 *   evalScriptSha: (sha, keys, args) => myClient.command('EVALSHA', sha, keys.length, ...keys, ...args),
 *   evalScript: (src, keys, args) => myClient.command('EVAL', src, keys.length, ...keys, ...args),
 * }
 * ```
 */
export interface RedisScriptClient {
  /**
   * `EVALSHA sha numkeys ...keys ...args`. Must reject with an error whose message contains
   * `NOSCRIPT` when the server does not have the script cached.
   */
  evalScriptSha(sha: string, keys: string[], args: string[]): Promise<unknown>
  /** `EVAL script numkeys ...keys ...args`. */
  evalScript(script: string, keys: string[], args: string[]): Promise<unknown>
  /**
   * Optional: the state of the client's connection (see {@link ConnectionState}). While a client
   * that has never been ready is `'connecting'`, the stores hold their calls back and send them
   * once it is ready, so `timeoutMs` never counts connection set-up and no call waits in the
   * client's own queue. Without it the client is taken to be ready.
   */
  connectionState?(): ConnectionState
}

/**
 * A client's connection as the stores see it. `'ready'`: a command sent now goes to the server at
 * once. `'connecting'`: the client is connecting and will be ready by itself. `'down'`: anything
 * else (closed, or between reconnection attempts): calls go to the client, which fails or queues
 * them its own way.
 */
export type ConnectionState = 'ready' | 'connecting' | 'down'

/** The part of an ioredis `Redis` or `Cluster` instance the stores use. */
export interface IoredisLike {
  /** ioredis `evalsha(sha, numkeys, ...keys, ...args)`. */
  evalsha(sha: string, numkeys: number, ...keysAndArgs: string[]): Promise<unknown>
  /** ioredis `eval(script, numkeys, ...keys, ...args)`. */
  eval(script: string, numkeys: number, ...keysAndArgs: string[]): Promise<unknown>
  /** ioredis `status` (`'wait'`, `'connecting'`, `'connect'`, `'ready'`, `'reconnecting'`, `'end'`, ...). */
  readonly status?: string
  /** ioredis `connect()`: what a command sent to a `lazyConnect` client that never connected does first. */
  connect?(): Promise<unknown>
}

/** The part of a node-redis (`redis` package, v4 and later) client or cluster the stores use. */
export interface NodeRedisLike {
  /** node-redis `evalSha(sha, { keys, arguments })`. */
  evalSha(sha: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>
  /** node-redis `eval(script, { keys, arguments })`. */
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>
  /** node-redis `isOpen`: `connect()` was called and the client was not closed since. */
  readonly isOpen?: boolean
  /** node-redis `isReady`: connected, commands go to the server at once. */
  readonly isReady?: boolean
}

/** ioredis `status` as a {@link ConnectionState}. */
function ioredisState(client: IoredisLike): ConnectionState {
  switch (client.status) {
    case 'ready':
      return 'ready'
    case 'wait':
      // A lazyConnect client nobody connected yet: the first command would connect it (ioredis's
      // sendCommand does exactly this), and holding commands back must not leave it unconnected.
      client.connect?.().catch(() => {})
      return 'connecting'
    case 'connecting':
    case 'connect':
    case 'close': // between a failed attempt and the next one (or 'end')
    case 'reconnecting':
      return 'connecting'
    default:
      return 'down'
  }
}

/** What the `redis` option of every store accepts. */
export type RedisClientInput = RedisScriptClient | IoredisLike | NodeRedisLike

/**
 * Wraps an ioredis `Redis` or `Cluster` instance. Commands are sent as plain `EVALSHA` / `EVAL`,
 * so the client's own options (timeouts, offline queue, retries) apply unchanged; its `status`
 * becomes {@link RedisScriptClient.connectionState}.
 *
 * @example
 * ```ts
 * import { Redis } from 'ioredis'
 * const redis = ioredisClient(new Redis(process.env.REDIS_URL!))
 * ```
 */
export function ioredisClient(client: IoredisLike): RedisScriptClient {
  return {
    evalScriptSha: (sha, keys, args) => client.evalsha(sha, keys.length, ...keys, ...args),
    evalScript: (script, keys, args) => client.eval(script, keys.length, ...keys, ...args),
    ...(typeof client.status === 'string' && { connectionState: () => ioredisState(client) }),
  }
}

/**
 * Wraps a node-redis client (`createClient()` / `createCluster()` from the `redis` package); its
 * `isReady` and `isOpen` become {@link RedisScriptClient.connectionState}.
 *
 * @example
 * ```ts
 * import { createClient } from 'redis'
 * const redis = nodeRedisClient(await createClient({ url }).connect())
 * ```
 */
export function nodeRedisClient(client: NodeRedisLike): RedisScriptClient {
  return {
    evalScriptSha: (sha, keys, args) => client.evalSha(sha, { keys, arguments: args }),
    evalScript: (script, keys, args) => client.eval(script, { keys, arguments: args }),
    ...(typeof client.isReady === 'boolean' && {
      connectionState: () => (client.isReady ? 'ready' : client.isOpen ? 'connecting' : 'down'),
    }),
  }
}

const NOT_A_CLIENT = 'expected an ioredis or node-redis client, or a RedisScriptClient'

function hasFunction(value: object, name: string): boolean {
  return typeof (value as Record<string, unknown>)[name] === 'function'
}

/**
 * Normalises the `redis` option: a {@link RedisScriptClient} is used as is, an ioredis or
 * node-redis client is wrapped. Throws `InvalidTenantConfigError` at construction for anything
 * else, so a * misconfiguration never surfaces per request.
 *
 * @example
 * ```ts
 * const client = toScriptClient(new Redis(process.env.REDIS_URL!)) // ioredis, node-redis or RedisScriptClient
 * await client.evalScript('return 1', [], [])
 * ```
 */
export function toScriptClient(input: RedisClientInput): RedisScriptClient {
  if (typeof input !== 'object' || input === null) {
    throw optionError('redis', NOT_A_CLIENT)
  }
  if (hasFunction(input, 'evalScriptSha') && hasFunction(input, 'evalScript')) {
    return input as RedisScriptClient
  }
  // node-redis clients have camel-case `evalSha`; ioredis only the lower-case command names.
  if (hasFunction(input, 'evalSha') && hasFunction(input, 'eval')) {
    return nodeRedisClient(input as NodeRedisLike)
  }
  if (hasFunction(input, 'evalsha') && hasFunction(input, 'eval')) {
    return ioredisClient(input as IoredisLike)
  }
  throw optionError('redis', NOT_A_CLIENT)
}
