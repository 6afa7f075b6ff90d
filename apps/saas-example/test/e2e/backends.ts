// The PostgreSQL and Redis of the e2e variants: TEST_DATABASE_URL and TEST_REDIS_URL. Each run
// gets its own schema and application role, or its own key prefix, and removes them afterwards.
// Unset outside CI, the variants are skipped with the reason; under CI they must be reachable.
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import postgres from 'postgres'

/** Why the Postgres + Redis variant cannot run here, or undefined when it can. */
export function postgresRedisUnavailable(): string | undefined {
  const missing = ['TEST_DATABASE_URL', 'TEST_REDIS_URL'].filter((name) => !process.env[name])
  return missing.length === 0 ? undefined : `${missing.join(' and ')} not set`
}

function runId(): string {
  return `${Date.now().toString(36)}${randomBytes(4).toString('hex')}`
}

/** A schema and a login role of its own on the test server. */
export interface PostgresSandbox {
  /** The owner's URL (the test server's superuser): runs the migrations. */
  ownerUrl: string
  /** The application role's URL: no SUPERUSER, no BYPASSRLS, owns nothing. */
  appUrl: string
  schema: string
  role: string
  /** A superuser connection for the test's own checks. */
  admin: postgres.Sql
  drop(): Promise<void>
}

/**
 * Creates a schema and an application role (`LOGIN NOSUPERUSER NOBYPASSRLS`) for one run. The app
 * migrates as the owner (MIGRATION_DATABASE_URL) and grants the role what it needs, the set-up the
 * README describes. The local server trusts local connections, so the role has no password.
 */
export async function createPostgresSandbox(): Promise<PostgresSandbox> {
  const ownerUrl = process.env.TEST_DATABASE_URL!
  const id = runId()
  const schema = `saas_e2e_${id}`
  const role = `saas_e2e_app_${id}`
  const admin = postgres(ownerUrl, { max: 1, onnotice: () => {}, connect_timeout: 5 })
  try {
    await admin.unsafe(`create role "${role}" login nosuperuser nobypassrls`)
  } catch (error) {
    await admin.end({ timeout: 1 })
    throw new Error(`PostgreSQL at TEST_DATABASE_URL is unusable: ${String(error)}`, { cause: error })
  }
  const app = new URL(ownerUrl)
  app.username = role
  app.password = ''
  return {
    ownerUrl,
    appUrl: app.toString(),
    schema,
    role,
    admin,
    async drop() {
      await admin.unsafe(`drop schema if exists "${schema}" cascade`)
      await admin.unsafe(`drop owned by "${role}"`)
      await admin.unsafe(`drop role if exists "${role}"`)
      await admin.end({ timeout: 1 })
    },
  }
}

/** A key prefix of its own on the test Redis. */
export interface RedisSandbox {
  url: string
  prefix: string
  /** Keys of this run (the stores put the prefix inside a Cluster hash tag: `{prefix:...}`). */
  keys(): Promise<string[]>
  drop(): Promise<void>
}

/** Connects to TEST_REDIS_URL (failing when unreachable) and picks a prefix for one run. */
export async function createRedisSandbox(): Promise<RedisSandbox> {
  const url = process.env.TEST_REDIS_URL!
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null })
  client.on('error', () => {})
  try {
    await client.connect()
  } catch (error) {
    client.disconnect()
    throw new Error(`Redis at TEST_REDIS_URL is unreachable: ${String(error)}`, { cause: error })
  }
  const prefix = `saas-e2e-${runId()}`
  const keys = async () => {
    const found: string[] = []
    let cursor = '0'
    do {
      const [next, batch] = await client.scan(cursor, 'MATCH', `{${prefix}*`, 'COUNT', 1000)
      cursor = next
      found.push(...batch)
    } while (cursor !== '0')
    return found.sort()
  }
  return {
    url,
    prefix,
    keys,
    async drop() {
      const all = await keys()
      if (all.length > 0) await client.del(...all)
      client.disconnect()
    },
  }
}
