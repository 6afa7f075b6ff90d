import { AdminService } from '@tenant/core'
import { DrizzleAuditLog, DrizzleConfigManager, DrizzlePlanStore } from '@tenant/drizzle'
import { seedReport } from './banner'
import { openDatabase } from './db/open'
import { seedDemoTenants } from './demo-tenants'
import { jsonLogger } from './logger'
import { isMainModule, loadDotEnv } from './main-module'
import { parseSettings, SettingsError, serverSettingsSchema } from './settings'

/**
 * `pnpm seed`: migrates the database of `DATABASE_URL` and creates the demo plans and tenants that
 * are missing (idempotent), then prints the tenants' ids. It needs no running server.
 */
export async function seed(env: Record<string, string | undefined>): Promise<string> {
  const settings = parseSettings(serverSettingsSchema, env)
  const database = await openDatabase(settings, jsonLogger({ level: settings.LOG_LEVEL }))
  try {
    const configs = new DrizzleConfigManager(database.db, { cache: false })
    const plans = new DrizzlePlanStore(database.db, { cache: false })
    const results = await seedDemoTenants(
      new AdminService({ store: configs, plans, auditLog: new DrizzleAuditLog(database.db) }),
    )
    return `Seeded ${database.description}\n${seedReport(
      results,
      settings.ADMIN_TOKEN === undefined
        ? 'set ADMIN_TOKEN (or use the token the server prints at start) for /admin'
        : 'Authorization: Bearer $ADMIN_TOKEN',
    )}`
  } finally {
    await database.close()
  }
}

if (isMainModule(import.meta.url)) {
  loadDotEnv()
  seed(process.env).then(
    (report) => console.log(report),
    (error: unknown) => {
      console.error(error instanceof SettingsError ? error.message : error)
      process.exit(1)
    },
  )
}
