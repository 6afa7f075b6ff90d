import { type Clock, ConfigPolicyEvaluator, systemClock, withPlans } from '@tenant/core'
import { DrizzleAuditLog, DrizzleConfigManager, DrizzlePlanStore } from '@tenant/drizzle'
import { TenantMetrics } from '@tenant/prometheus'
import { Redis } from 'ioredis'
import { Registry } from 'prom-client'
import { type AdminDeps, appAdminService } from './admin'
import { type App, createApp } from './app'
import { banner, displayUrl } from './banner'
import { type OpenDatabase, openDatabase } from './db/open'
import { DrizzleResourceStore } from './db/resource-store'
import { type SeedResult, seedDemoTenants } from './demo-tenants'
import { type Limits, memoryLimits, redisLimits } from './limits'
import { jsonLogger, type Logger } from './logger'
import { metricsAccess, parseSettings, type ServerSettings, serverSettingsSchema } from './settings'

/** Options of {@link createServer}, for tests and embedding. */
export interface CreateServerOptions {
  /**
   * The time of every decision, timestamp and log line. Tests pass a `ManualClock`; it then also
   * replaces the Redis server's time.
   * @default systemClock
   */
  clock?: Clock
  /**
   * Where log lines go.
   * @default console.log
   */
  write?: (line: string) => void
}

/** A composed server: the app and what it runs on, not yet listening. */
export interface Server {
  app: App
  settings: ServerSettings
  logger: Logger
  /** The admin token, and whether it was generated for this run because ADMIN_TOKEN was unset. */
  admin: { token: string; generated: boolean }
  /** One line per backing store, for the banner. */
  storage: { database: string; limits: string }
  /** Creates the demo plans and tenants that are missing (see `demoPlans`, `demoTenants`). */
  seed(): Promise<SeedResult[]>
  /** Closes the database and Redis connections. */
  close(): Promise<void>
}

/** 32 random bytes, base64url: a bearer token for a development run. */
export function generateToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32))
  return btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '')
}

/** The stores of the Node/Bun server and of `pnpm seed`: one database, one limits backend. */
export interface Stores {
  database: OpenDatabase
  configs: DrizzleConfigManager
  plans: DrizzlePlanStore
  /** What every stage decides by: each tenant's own config over its plan's. */
  tenants: ReturnType<typeof withPlans>
  auditLog: DrizzleAuditLog
  limits: Limits
  resources: DrizzleResourceStore
  /** The connected Redis client, with `REDIS_URL`. */
  redis: Redis | undefined
  /** What the app's admin service is built from (see `appAdminService`): every store it resets. */
  admin: AdminDeps
  /** One line per backing store, for the banner. */
  storage: { database: string; limits: string }
  /** Closes the database and Redis connections. */
  close(): Promise<void>
}

/**
 * Opens and migrates the database (libSQL file by default, PostgreSQL with
 * `DATABASE_URL=postgres://`) and picks in-process or Redis limits (`REDIS_URL`), connecting to
 * Redis at once. `clock` is the time of the stores; without one Redis decides by its own time.
 * What {@link createServer} and `pnpm seed` share, so both create tenants with the same resets.
 */
export async function openStores(settings: ServerSettings, logger: Logger, clock?: Clock): Promise<Stores> {
  const database = await openDatabase(settings, logger)
  let redis: Redis | undefined
  try {
    const cache = { ttl: settings.CONFIG_CACHE_TTL_MS }
    const storeClock = clock ?? systemClock
    const configs = new DrizzleConfigManager(database.db, { clock: storeClock, cache })
    const plans = new DrizzlePlanStore(database.db, { clock: storeClock, cache })
    const tenants = withPlans(configs, plans)
    const auditLog = new DrizzleAuditLog(database.db)
    let limits: Limits
    if (settings.REDIS_URL !== undefined) {
      redis = new Redis(settings.REDIS_URL, {
        lazyConnect: true,
        maxRetriesPerRequest: 1,
        connectTimeout: 5_000,
      })
      // Fail at start, not on the first request, when Redis is unreachable.
      await redis.connect()
      limits = redisLimits(tenants, {
        redis,
        prefix: settings.REDIS_PREFIX,
        algorithm: settings.QUOTA_ALGORITHM,
        ...(clock ? { clock } : {}),
      })
    } else {
      limits = memoryLimits(tenants, { algorithm: settings.QUOTA_ALGORITHM, clock: storeClock })
    }
    const resources = new DrizzleResourceStore(database.db, { clock: storeClock })
    const connectedRedis = redis
    return {
      database,
      configs,
      plans,
      tenants,
      auditLog,
      limits,
      resources,
      redis: connectedRedis,
      admin: { configs, plans, auditLog, ...limits, resources, clock: storeClock },
      storage: {
        database: database.description,
        limits: connectedRedis
          ? `Redis ${settings.QUOTA_ALGORITHM} windows (prefix ${settings.REDIS_PREFIX})`
          : `in process, ${settings.QUOTA_ALGORITHM} windows`,
      },
      close: async () => {
        await Promise.all([database.close(), connectedRedis?.quit()])
      },
    }
  } catch (error) {
    redis?.disconnect()
    await database.close()
    throw error
  }
}

/**
 * The composition root shared by the Node and Bun entries: validates the settings from `env`,
 * opens the stores ({@link openStores}), and wires them into {@link createApp}; without
 * METRICS_TOKEN on a HOST that is not loopback, `/metrics` is off (and a warning says so). Throws
 * `SettingsError` for bad settings and the driver's error when a backend is unreachable, before
 * anything listens.
 *
 * @example
 * ```ts
 * const server = await createServer(process.env)
 * Bun.serve({ fetch: server.app.fetch, port: server.settings.PORT })
 * ```
 */
export async function createServer(
  env: Record<string, string | undefined>,
  options: CreateServerOptions = {},
): Promise<Server> {
  const settings = parseSettings(serverSettingsSchema, env)
  const clock = options.clock ?? systemClock
  const logger = jsonLogger({
    level: settings.LOG_LEVEL,
    clock,
    ...(options.write ? { write: options.write } : {}),
  })
  const stores = await openStores(settings, logger, options.clock)
  try {
    const { configs, plans, tenants, auditLog, limits, resources, redis } = stores
    const admin = {
      token: settings.ADMIN_TOKEN ?? generateToken(),
      generated: settings.ADMIN_TOKEN === undefined,
    }
    const app = createApp({
      configs,
      plans,
      auditLog,
      ...limits,
      policy: new ConfigPolicyEvaluator(tenants),
      resources,
      metrics: new TenantMetrics({ registry: new Registry() }),
      clock,
      logger,
      adminToken: admin.token,
      ...(settings.METRICS_TOKEN === undefined ? {} : { metricsToken: settings.METRICS_TOKEN }),
      // Without a token, /metrics (every tenant's id and traffic) only for this machine.
      openMetrics: metricsAccess(settings) === 'open',
      ...(settings.JWT_SECRET === undefined ? {} : { jwtSecret: settings.JWT_SECRET }),
      health: {
        database: () => resources.ping(),
        ...(redis ? { redis: () => redis.ping() } : {}),
      },
    })
    if (metricsAccess(settings) === 'off') {
      logger.warn({
        msg: 'metrics disabled',
        reason: `METRICS_TOKEN is unset and HOST ${settings.HOST} is not a loopback address: /metrics would show every tenant's id and traffic to the network`,
        fix: 'set METRICS_TOKEN (16+ characters) and scrape with Authorization: Bearer, or listen on HOST=127.0.0.1',
      })
    }
    // The admin plane's wiring (appAdminService): a demo tenant re-created under the id of a
    // deleted one starts with none of its usage, slots, burst or rows.
    const seeder = appAdminService(stores.admin)
    return {
      app,
      settings,
      logger,
      admin,
      storage: stores.storage,
      seed: () => seedDemoTenants(seeder),
      close: () => stores.close(),
    }
  } catch (error) {
    stores.redis?.disconnect()
    await stores.database.close()
    throw error
  }
}

/** Options of {@link startServer}: what the Node and Bun entries accept. */
export interface StartServerOptions extends CreateServerOptions {
  /** @default process.env */
  env?: Record<string, string | undefined>
  /** `--seed` creates the demo tenants before listening. @default process.argv.slice(2) */
  args?: readonly string[]
  /** Adds routes before the app serves (the e2e entries mount their clock control here). */
  extend?: (app: App) => void
}

/** A runtime's listening socket: its port, and how to stop listening. */
export interface Listener {
  port: number
  close(): Promise<void>
}

/** A listening server. */
export interface RunningServer {
  server: Server
  /** The URL printed in the banner. */
  url: string
  /** Stops listening, then closes the database and Redis connections. */
  stop(): Promise<void>
}

/**
 * What the Node and Bun entries share: composes the server ({@link createServer}), seeds when
 * `--seed` is among the arguments, lets `listen` open the runtime's socket, and prints the banner
 * with the URL and the first curl commands. A failure after the database opened closes it.
 *
 * @example
 * ```ts
 * await startServer({}, async (app, { PORT, HOST }) => {
 *   const server = Bun.serve({ fetch: app.fetch, port: PORT, hostname: HOST })
 *   return { port: server.port, close: async () => server.stop() }
 * })
 * ```
 */
export async function startServer(
  options: StartServerOptions,
  listen: (app: App, settings: ServerSettings) => Promise<Listener>,
): Promise<RunningServer> {
  const server = await createServer(options.env ?? process.env, options)
  try {
    const seeded = (options.args ?? process.argv.slice(2)).includes('--seed')
      ? await server.seed()
      : undefined
    options.extend?.(server.app)
    const listener = await listen(server.app, server.settings)
    const url = displayUrl(server.settings.HOST, listener.port)
    console.log(banner(server, url, seeded))
    return {
      server,
      url,
      stop: async () => {
        await listener.close()
        await server.close()
      },
    }
  } catch (error) {
    await server.close()
    throw error
  }
}
