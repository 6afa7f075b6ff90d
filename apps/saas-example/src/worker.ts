import {
  DurableObjectConcurrencyLimiter,
  DurableObjectQuotaManager,
  DurableObjectRateLimiter,
  TenantQuotaObject,
} from '@tenant/cloudflare'
import { type Clock, ConfigPolicyEvaluator, systemClock, withPlans } from '@tenant/core'
import { DrizzleAuditLog, DrizzleConfigManager, DrizzlePlanStore } from '@tenant/drizzle'
import { TenantMetrics } from '@tenant/prometheus'
import { drizzle } from 'drizzle-orm/d1'
import { Registry } from 'prom-client'
import { type App, createApp } from './app'
import { DrizzleResourceStore } from './db/resource-store'
import { problem } from './http'
import { jsonLogger } from './logger'
import { MAX_BODY_BYTES } from './routes/resources'
import { appSettingsSchema, parseSettings } from './settings'

// The Durable Object class must be exported by the main module under its wrangler.toml name.
export { TenantQuotaObject }

/** The bindings, vars and secrets of wrangler.toml / .dev.vars. */
export interface Env {
  /** D1: tenant configs, the audit log and resources (migrations in drizzle/d1). */
  DB: D1Database
  /** One TenantQuotaObject per tenant: its quota windows and its token bucket. */
  TENANT_QUOTA: DurableObjectNamespace<TenantQuotaObject>
  ADMIN_TOKEN?: string
  METRICS_TOKEN?: string
  JWT_SECRET?: string
  QUOTA_ALGORITHM?: string
  CONFIG_CACHE_TTL_MS?: string
  LOG_LEVEL?: string
}

/** Options of {@link createWorker}, for tests. */
export interface WorkerOptions {
  /**
   * The time of every decision; sent to the Durable Objects with each call when given. Leave it
   * unset in production (the objects then use Workers time).
   * @default systemClock (and the objects' own time)
   */
  clock?: Clock
  /** Adds routes before the app serves (the e2e entry mounts its clock control here). */
  extend?: (app: App) => void
}

/**
 * The app on Workers bindings: D1 through Drizzle for configs, plans, the audit log and resources; quotas
 * and rate limits in the tenant's Durable Object, exact across every isolate and location. Throws
 * `SettingsError` for invalid vars.
 *
 * @example
 * ```ts
 * export default { fetch: (request: Request, env: Env) => workerApp(env).fetch(request, env) }
 * ```
 */
export function workerApp(env: Env, options: WorkerOptions = {}): App {
  const settings = parseSettings(appSettingsSchema, env as unknown as Record<string, unknown>)
  const clock = options.clock ?? systemClock
  const db = drizzle(env.DB)
  const cache = { ttl: settings.CONFIG_CACHE_TTL_MS }
  const configs = new DrizzleConfigManager(db, { clock, cache })
  const plans = new DrizzlePlanStore(db, { clock, cache })
  // What every stage decides by: each tenant's own config over its plan's.
  const tenants = withPlans(configs, plans)
  const objectClock = options.clock === undefined ? {} : { clock: options.clock }
  const resources = new DrizzleResourceStore(db, { clock })
  const app = createApp({
    configs,
    plans,
    auditLog: new DrizzleAuditLog(db),
    quotas: new DurableObjectQuotaManager(tenants, {
      namespace: env.TENANT_QUOTA,
      algorithm: settings.QUOTA_ALGORITHM,
      ...objectClock,
    }),
    rateLimiter: new DurableObjectRateLimiter(tenants, { namespace: env.TENANT_QUOTA, ...objectClock }),
    concurrency: new DurableObjectConcurrencyLimiter({ namespace: env.TENANT_QUOTA, ...objectClock }),
    policy: new ConfigPolicyEvaluator(tenants),
    resources,
    // Counts what this isolate served: Workers run many isolates, so for fleet-wide numbers send
    // these to your metrics pipeline (or Workers Analytics Engine) instead of scraping one.
    metrics: new TenantMetrics({ registry: new Registry() }),
    clock,
    logger: jsonLogger({ level: settings.LOG_LEVEL, clock }),
    adminToken: settings.ADMIN_TOKEN,
    // A Worker is on the internet: without METRICS_TOKEN, /metrics is off (never openMetrics).
    ...(settings.METRICS_TOKEN === undefined ? {} : { metricsToken: settings.METRICS_TOKEN }),
    ...(settings.JWT_SECRET === undefined ? {} : { jwtSecret: settings.JWT_SECRET }),
    health: { database: () => resources.ping() },
  })
  options.extend?.(app)
  return app
}

/**
 * Reads what a handler left unread of a request body of at most {@link MAX_BODY_BYTES} (a refusal:
 * 401, 403, 415, 429 ...). `wrangler dev`'s local proxy otherwise stalls the requests that follow
 * one whose body was left unread (cloudflare/workers-sdk#5095, #15203); cancelling the body or
 * reading it after the response does not help. On the platform it costs reading a few KiB that
 * have arrived already; larger or unsized bodies are left alone.
 */
async function drainSmallBody(request: Request): Promise<void> {
  if (request.body === null || request.bodyUsed) return
  const length = Number(request.headers.get('Content-Length') ?? Number.NaN)
  if (Number.isInteger(length) && length <= MAX_BODY_BYTES) await request.arrayBuffer().catch(() => {})
}

/**
 * The Workers entry: one app per set of bindings (the same object for the life of an isolate), so
 * caches and metrics live as long as the isolate. A configuration error answers 500 and is logged.
 *
 * @example
 * ```ts
 * export default createWorker()
 * ```
 */
export function createWorker(options: WorkerOptions = {}): ExportedHandler<Env> {
  const apps = new WeakMap<Env, App>()
  return {
    async fetch(request, env, ctx) {
      let app = apps.get(env)
      if (app === undefined) {
        try {
          app = workerApp(env, options)
        } catch (error) {
          console.error(JSON.stringify({ level: 'error', msg: 'cannot start', error: String(error) }))
          return problem(500, 'internal_error', 'the service is misconfigured; see its logs')
        }
        apps.set(env, app)
      }
      const response = await app.fetch(request as unknown as Request, env, ctx)
      await drainSmallBody(request as unknown as Request)
      return response
    },
  }
}

export default createWorker()
