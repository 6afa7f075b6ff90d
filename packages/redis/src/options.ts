import { assertMethods, type Clock, systemClock } from '@tenant/core'
import { type RedisClientInput, type RedisScriptClient, toScriptClient } from './client'
import { validatePrefix } from './keys'
import { LocalDenyCache, type LocalDenyOptions } from './local-deny'
import { optionError } from './option-error'
import { validateTimeout } from './script'

/** The options every store of this package shares. */
export interface RedisStoreOptions {
  /** An ioredis or node-redis client (or Cluster), or any {@link RedisScriptClient}. */
  redis: RedisClientInput
  /** Start of every key, inside the Cluster hash tag. 1 to 128 characters of `[A-Za-z0-9:._-]`. */
  prefix?: string
  /**
   * Per-call timeout in ms; a slower Redis rejects with `TenantBackendError`.
   * @default 50
   */
  timeoutMs?: number
  /**
   * Decide with this clock instead of the Redis server's `TIME`: for tests (`ManualClock`) and
   * single hosts. Several hosts should keep the default, which makes their clock skew irrelevant.
   * @default undefined (Redis TIME)
   */
  clock?: Clock
}

/** {@link RedisStoreOptions}, validated. */
export interface ResolvedStoreOptions {
  redis: RedisScriptClient
  prefix: string
  timeoutMs: number
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
  return {
    redis: toScriptClient(options.redis),
    prefix: validatePrefix(options.prefix, defaultPrefix),
    timeoutMs: validateTimeout(options.timeoutMs),
    clock: options.clock,
    localClock: options.clock ?? systemClock,
  }
}

/** The `localDeny` option as a cache, or undefined when off. */
export function localDenyCache<D>(
  option: boolean | LocalDenyOptions | undefined,
): LocalDenyCache<D> | undefined {
  if (option === undefined || option === false) return undefined
  return new LocalDenyCache<D>(option === true ? {} : option)
}
