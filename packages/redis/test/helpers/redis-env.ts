import { randomUUID } from 'node:crypto'
import { Redis, type RedisOptions } from 'ioredis'
import { createClient } from 'redis'
import { afterAll, beforeAll } from 'vitest'
import { RedisServerProcess } from './redis-server'

/**
 * The Redis the integration tests use: `TEST_REDIS_URL`, or the local server at
 * redis://127.0.0.1:6379 when that variable is unset and the server answers. Under `CI` an
 * unreachable server fails the run (this module throws at import) instead of skipping.
 */
const DEFAULT_URL = 'redis://127.0.0.1:6379'

/** Options that make a client fail fast instead of queueing commands while disconnected. */
export const fastFailOptions: RedisOptions = {
  maxRetriesPerRequest: 1,
  enableOfflineQueue: false,
  connectTimeout: 1000,
  lazyConnect: true,
}

async function reachable(url: string): Promise<boolean> {
  const client = new Redis(url, { ...fastFailOptions, retryStrategy: () => null })
  client.on('error', () => {})
  try {
    await client.connect()
    return (await client.ping()) === 'PONG'
  } catch {
    return false
  } finally {
    client.disconnect()
  }
}

async function resolveUrl(): Promise<string | undefined> {
  const explicit = process.env.TEST_REDIS_URL
  const url = explicit || DEFAULT_URL
  if (await reachable(url)) return url
  if (process.env.CI || explicit) {
    throw new Error(
      `Redis at ${url} is unreachable (TEST_REDIS_URL=${explicit ?? '(unset)'}, CI=${process.env.CI})`,
    )
  }
  return undefined
}

/** The test server's URL; undefined only outside CI when no server is around (suites skip). */
export const REDIS_URL: string | undefined = await resolveUrl()

/** A key prefix no other test run shares: `test-<uuid>` plus `name`. */
export function uniquePrefix(name: string): string {
  return `test-${randomUUID().slice(0, 8)}:${name}`
}

/** A connected ioredis client for the test server, failing fast. */
export async function connectIoredis(url = REDIS_URL!, options: RedisOptions = {}): Promise<Redis> {
  const client = new Redis(url, { ...fastFailOptions, ...options })
  await client.connect()
  return client
}

/** Every key whose name starts with `{prefix` (the stores' hash tags) or with `prefix`. */
export async function keysUnder(client: Redis, prefix: string): Promise<string[]> {
  const found = new Set<string>()
  for (const pattern of [`{${prefix}*`, `${prefix}*`]) {
    let cursor = '0'
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
      cursor = next
      for (const key of keys) found.add(key)
    } while (cursor !== '0')
  }
  return [...found]
}

/** Deletes {@link keysUnder} `prefix`. */
export async function deleteKeys(client: Redis, prefix: string): Promise<number> {
  const keys = await keysUnder(client, prefix)
  return keys.length === 0 ? 0 : client.del(...keys)
}

/**
 * Inside a `describe`: a client for the test server (connected before the tests run) and a key
 * prefix unique to this run. After the tests it checks that every key under the prefix has a TTL
 * (failing the file otherwise), then deletes them.
 */
export function useTestRedis(name: string): { client: Redis; prefix: string } {
  const prefix = uniquePrefix(name)
  const client = new Redis(REDIS_URL ?? DEFAULT_URL, fastFailOptions)
  beforeAll(async () => {
    await client.connect()
  })
  afterAll(async () => {
    if (client.status !== 'ready') return
    try {
      // Every key the stores wrote must expire: memory stays bounded.
      const keys = await keysUnder(client, prefix)
      const ttls = await Promise.all(keys.map((key) => client.pttl(key)))
      const immortal = keys.filter((_, i) => ttls[i] === -1)
      if (immortal.length > 0) throw new Error(`keys without a TTL: ${immortal.slice(0, 5).join(', ')}`)
    } finally {
      await deleteKeys(client, prefix)
      client.disconnect()
    }
  })
  return { client, prefix }
}

/**
 * Inside a `describe`: a node-redis client for the test server, connected before the tests run and
 * closed after them, for suites that check both client libraries.
 */
export function useNodeRedis() {
  const client = createClient({ url: REDIS_URL ?? DEFAULT_URL })
  beforeAll(async () => {
    await client.connect()
  })
  afterAll(async () => {
    if (client.isOpen) await client.close()
  })
  return client
}

/**
 * Inside a `describe`: a private `redis-server` child process (started before the tests, killed
 * after) with two connected ioredis clients, `client` for the code under test and `admin` for
 * the test's own commands. For tests that pause, flush or stop their server, which must never
 * happen to the shared one. Its fields are read inside the tests, once `beforeAll` has run.
 */
export function usePrivateRedis(): { readonly url: string; readonly client: Redis; readonly admin: Redis } {
  let server: RedisServerProcess | undefined
  let client: Redis | undefined
  let admin: Redis | undefined
  beforeAll(async () => {
    server = await RedisServerProcess.launch()
    client = await connectIoredis(server.url)
    admin = await connectIoredis(server.url)
  })
  afterAll(async () => {
    client?.disconnect()
    admin?.disconnect()
    await server?.stop()
  })
  return {
    get url() {
      return server!.url
    },
    get client() {
      return client!
    },
    get admin() {
      return admin!
    },
  }
}
