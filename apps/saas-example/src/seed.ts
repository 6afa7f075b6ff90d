import { appAdminService } from './admin'
import { seedReport } from './banner'
import { seedDemoTenants } from './demo-tenants'
import { jsonLogger } from './logger'
import { isMainModule, loadDotEnv } from './main-module'
import { openStores } from './server'
import { parseSettings, SettingsError, serverSettingsSchema } from './settings'

/**
 * `pnpm seed`: migrates the database of `DATABASE_URL` and creates the demo plans and tenants that
 * are missing (idempotent), then prints the tenants' ids. It needs no running server. It opens
 * the stores as the server does (Redis too, with `REDIS_URL`) and creates tenants through the
 * admin plane's service (`appAdminService`), so a demo tenant re-created under the id of a
 * deleted one starts with none of its rows or (Redis) usage.
 */
export async function seed(env: Record<string, string | undefined>): Promise<string> {
  const settings = parseSettings(serverSettingsSchema, env)
  const stores = await openStores(settings, jsonLogger({ level: settings.LOG_LEVEL }))
  try {
    const results = await seedDemoTenants(appAdminService(stores.admin))
    return `Seeded ${stores.database.description}\n${seedReport(
      results,
      settings.ADMIN_TOKEN === undefined
        ? 'set ADMIN_TOKEN (or use the token the server prints at start) for /admin'
        : 'Authorization: Bearer $ADMIN_TOKEN',
    )}`
  } finally {
    await stores.close()
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
