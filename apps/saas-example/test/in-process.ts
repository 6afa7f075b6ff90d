// The app in the test process, for the tests that need no server process: an in-memory libSQL
// database migrated like the real one, a ManualClock, in-process limits, and log lines collected.
import { createClient } from '@libsql/client'
import { ConfigPolicyEvaluator, ManualClock, withPlans } from '@tenant/core'
import { DrizzleAuditLog, DrizzleConfigManager, DrizzlePlanStore } from '@tenant/drizzle'
import { TenantMetrics } from '@tenant/prometheus'
import { drizzle, type LibSQLDatabase } from 'drizzle-orm/libsql'
import { Registry } from 'prom-client'
import { type App, type AppDeps, createApp } from '../src/app'
import { migrateDatabase } from '../src/db/migrate'
import { DrizzleResourceStore } from '../src/db/resource-store'
import { memoryLimits } from '../src/limits'
import { jsonLogger } from '../src/logger'

/** 09:00:00 UTC on 1 March 2030: the tests' start time. */
export const START = Date.UTC(2030, 2, 1, 9, 0, 0)

/** The admin token of {@link inProcessApp}. */
export const ADMIN_TOKEN = 'in-process-admin-token-0123456789'

/** An app over a fresh in-memory database. */
export interface InProcess {
  app: App
  db: LibSQLDatabase
  clock: ManualClock
  deps: AppDeps
  /** The JSON log lines written so far. */
  lines: Record<string, unknown>[]
  /** Closes the database for real: every later query fails. */
  close(): void
  /** `app.request` with the tenant header, JSON body and admin token filled in. */
  request(
    method: string,
    path: string,
    options?: { tenant?: string; body?: unknown; admin?: boolean; headers?: Record<string, string> },
  ): Promise<Response>
}

/** Builds the app over a new in-memory database; `overrides` replace single dependencies. */
export async function inProcessApp(overrides: Partial<AppDeps> = {}): Promise<InProcess> {
  const client = createClient({ url: ':memory:' })
  const db = drizzle({ client })
  await migrateDatabase({ dialect: 'sqlite', db })
  const clock = new ManualClock(START)
  const lines: Record<string, unknown>[] = []
  const configs = new DrizzleConfigManager(db, { clock })
  const plans = new DrizzlePlanStore(db, { clock })
  const tenants = withPlans(configs, plans)
  const resources = new DrizzleResourceStore(db, { clock })
  const deps: AppDeps = {
    configs,
    plans,
    auditLog: new DrizzleAuditLog(db),
    ...memoryLimits(tenants, { algorithm: 'fixed', clock }),
    policy: new ConfigPolicyEvaluator(tenants),
    resources,
    metrics: new TenantMetrics({ registry: new Registry() }),
    clock,
    logger: jsonLogger({ clock, write: (line) => lines.push(JSON.parse(line)) }),
    adminToken: ADMIN_TOKEN,
    health: { database: () => resources.ping() },
    ...overrides,
  }
  const app = createApp(deps)
  return {
    app,
    db,
    clock,
    deps,
    lines,
    close: () => client.close(),
    request(method, path, options = {}) {
      const headers: Record<string, string> = { ...options.headers }
      if (options.tenant !== undefined) headers['X-Tenant-ID'] = options.tenant
      if (options.admin) headers.Authorization = `Bearer ${ADMIN_TOKEN}`
      let body: string | undefined
      if (options.body !== undefined) {
        body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body)
        headers['Content-Type'] ??= 'application/json'
      }
      return Promise.resolve(app.request(path, { method, headers, body }))
    },
  }
}
