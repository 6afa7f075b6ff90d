// How each runtime's server process is started for the scenario: the test entries of test/entries
// (the real entries of src/ plus a ManualClock and its route), on a temporary database.
import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import { describe, expect, it } from 'vitest'
import { createPostgresSandbox, createRedisSandbox, postgresRedisUnavailable } from './backends'
import { appDir, bin, childEnv, freePort, runToEnd, startChild } from './process'
import { describeScenario, type RunningServer, type Target } from './scenario'

/** Generous bounds for a cold start on a busy 2-core machine; a healthy start takes a few seconds. */
const START_TIMEOUT_MS = 60_000

function token(): string {
  return randomBytes(24).toString('base64url')
}

type Runtime = 'node' | 'bun'

/** The command that runs a test entry under `runtime`, on the TypeScript sources. */
function command(runtime: Runtime): [string, string[]] {
  return runtime === 'node'
    ? [bin('tsx'), ['--conditions=@tenant/source', 'test/entries/node.ts']]
    : [bin('bun'), ['--conditions=@tenant/source', 'test/entries/bun.ts']]
}

/** Starts a Node or Bun server on port 0 and reads its URL from the banner. */
async function startServer(runtime: Runtime, env: Record<string, string>, cleanup: () => Promise<void>) {
  const adminToken = token()
  const [cmd, args] = command(runtime)
  const child = startChild(cmd, args, {
    cwd: appDir,
    env: childEnv({ PORT: '0', HOST: '127.0.0.1', ADMIN_TOKEN: adminToken, LOG_LEVEL: 'info', ...env }),
  })
  try {
    const [, url] = await child.waitFor(/listening on (http:\/\/\S+)/, START_TIMEOUT_MS)
    return {
      url: url!,
      adminToken,
      child,
      stop: async () => {
        await child.stop()
        await cleanup()
      },
    } satisfies RunningServer
  } catch (error) {
    await child.stop()
    await cleanup()
    throw error
  }
}

/** Node or Bun on an embedded libSQL file in a temporary folder, with in-process limits. */
export function libsqlTarget(runtime: Runtime): Target {
  return {
    name: `${runtime}: libSQL file, in-process limits`,
    async start() {
      const dir = await mkdtemp(join(tmpdir(), `saas-e2e-${runtime}-`))
      return startServer(runtime, { DATABASE_URL: `file:${join(dir, 'data', 'app.db')}` }, () =>
        rm(dir, { recursive: true, force: true }),
      )
    },
  }
}

/**
 * Node or Bun on PostgreSQL (own schema; migrated by the owner, served by a non-owner role under
 * row-level security) with quotas and rate limits in Redis (own prefix), decided on the app's
 * ManualClock instead of Redis TIME.
 */
export function postgresRedisTarget(runtime: Runtime): Target {
  let sandbox: Awaited<ReturnType<typeof createPostgresSandbox>> | undefined
  let redis: Awaited<ReturnType<typeof createRedisSandbox>> | undefined
  return {
    name: `${runtime}: PostgreSQL with RLS, Redis limits`,
    async start() {
      sandbox = await createPostgresSandbox()
      try {
        redis = await createRedisSandbox()
      } catch (error) {
        await sandbox.drop()
        throw error
      }
      const pg = sandbox
      const keys = redis
      return startServer(
        runtime,
        {
          DATABASE_URL: pg.appUrl,
          MIGRATION_DATABASE_URL: pg.ownerUrl,
          DATABASE_SCHEMA: pg.schema,
          REDIS_URL: keys.url,
          REDIS_PREFIX: keys.prefix,
        },
        async () => {
          await Promise.all([pg.drop(), keys.drop()])
        },
      )
    },
    extra() {
      it('kept the tables in its own schema, and row-level security hides rows without a tenant', async () => {
        const pg = sandbox!
        const tables = await pg.admin<{ name: string }[]>`
          select table_name as name from information_schema.tables where table_schema = ${pg.schema} order by 1`
        expect(tables.map((t) => t.name)).toEqual([
          '__app_migrations',
          '__tenant_migrations',
          'plan_audit_log',
          'plans',
          'resources',
          'tenant_audit_log',
          'tenants',
        ])
        // The superuser sees every tenant's rows; the app's role sees none without a tenant set,
        // and only that tenant's with one: the second barrier behind the scoped queries.
        const [all] = await pg.admin.unsafe(`select count(*)::int as n from "${pg.schema}".resources`)
        expect(all!.n).toBe(3)
        const app = postgres(pg.appUrl, {
          max: 1,
          onnotice: () => {},
          connection: { search_path: pg.schema },
        })
        try {
          const [none] = await app`select count(*)::int as n from resources`
          expect(none!.n).toBe(0)
          const rows = await app.begin(async (tx) => {
            await tx`select set_config('app.tenant_id', 'beta', true)`
            return tx`select name from resources`
          })
          expect(rows.map((r) => r.name)).toEqual(['beta only'])
          await expect(
            app.begin(async (tx) => {
              await tx`select set_config('app.tenant_id', 'beta', true)`
              await tx`insert into resources (id, tenant_id, name, data, created_at, updated_at)
                       values ('res_x', 'alpha', 'forged', '{}', now(), now())`
            }),
          ).rejects.toThrow(/row-level security/)
        } finally {
          await app.end({ timeout: 1 })
        }
      })

      it('kept the quota and rate-limit counters in Redis under its own prefix', async () => {
        // Fixed-window state of the tenants with quotas (their own or their plan's; chatter's
        // per-model subject too), the token bucket of the one with a rate limit; beside them, the receipts of recent admissions
        // (`<state key>:op:<id>`, 15 s), each next to a state key of the list; and the reset
        // stamps that creating a tenant (which resets its usage) leaves, one per tenant's quota.
        const p = redis!.prefix
        const keys = await redis!.keys()
        const receipts = keys.filter((key) => key.includes(':op:'))
        const markers = keys.filter((key) => !key.includes(':op:') && key.endsWith(':reset'))
        const state = keys.filter((key) => !key.includes(':op:') && !key.endsWith(':reset'))
        expect(receipts.length).toBeGreaterThan(0)
        for (const receipt of receipts) expect(state).toContain(receipt.slice(0, receipt.indexOf(':op:')))
        for (const marker of markers)
          expect(marker).toMatch(new RegExp(`^\\{${p}:quota:[A-Za-z0-9._-]+\\}:f:reset$`))
        expect(state).toEqual([
          `{${p}:quota:beta}:f`,
          `{${p}:quota:chatter}:f`,
          `{${p}:quota:chatter}:f:subject:model:small-model`,
          `{${p}:quota:chatter}:f:subjects`,
          `{${p}:quota:metered}:f`,
          `{${p}:quota:on-plan-2}:f`,
          `{${p}:quota:on-plan}:f`,
          `{${p}:quota:streamer}:f`,
          `{${p}:rate:bursty}:b`,
        ])
      })
    },
  }
}

/**
 * Registers `target`'s scenario, or, when its backends are missing: a skip outside CI, a failing
 * test under CI (a variant that did not run is not a pass).
 */
export function describeWithBackends(target: Target): void {
  const reason = postgresRedisUnavailable()
  if (reason === undefined) describeScenario(target)
  else if (process.env.CI) {
    describe(target.name, () => {
      it('needs PostgreSQL and Redis under CI', () => {
        throw new Error(`${target.name} is required under CI: ${reason}`)
      })
    })
  } else describe.skip(`${target.name} (skipped: ${reason})`, () => it('needs its backends', () => {}))
}

/**
 * workerd through `wrangler dev --local`: the app's wrangler.toml with the test entry as `main`,
 * D1 migrated by `wrangler d1 migrations apply --local`, quotas and rate limits in the tenants'
 * Durable Objects (the ManualClock's time is sent with every call).
 *
 * The Worker is bundled once by `wrangler deploy --dry-run` (the deployable bundle) and served with
 * `no_bundle`: `wrangler dev` would otherwise rebuild, and restart the isolate with its clock and
 * metrics, whenever a source file of the toolkit changes during the run.
 */
export function workerdTarget(): Target {
  let persist = ''
  return {
    name: 'workerd (wrangler dev): D1, Durable Object limits',
    extra() {
      it('kept the quota and rate-limit state in one Durable Object per tenant', async () => {
        // beta, metered, streamer, chatter and the two tenants on a plan have quotas, bursty a rate limit;
        // alpha has neither, so no request of it calls one. Its object exists all the same:
        // AdminService.create resets a new tenant's usage (an id may be a deleted tenant's, whose
        // counts must not carry over), one call when the tenant is created.
        const objects = await readdir(join(persist, 'v3/do/saas-example-TenantQuotaObject'))
        expect(objects.filter((f) => /^[0-9a-f]{64}\.sqlite$/.test(f))).toHaveLength(8)
      })
    },
    async start() {
      const dir = await mkdtemp(join(tmpdir(), 'saas-e2e-workerd-'))
      // The configs live next to the shipped one: the paths inside are relative to the app.
      const id = randomBytes(4).toString('hex')
      const buildConfig = join(appDir, `.wrangler-e2e-${id}-build.toml`)
      const serveConfig = join(appDir, `.wrangler-e2e-${id}-serve.toml`)
      const cleanup = async () => {
        await Promise.all([rm(buildConfig, { force: true }), rm(serveConfig, { force: true })])
        await rm(dir, { recursive: true, force: true })
      }
      try {
        const shipped = await readFile(join(appDir, 'wrangler.toml'), 'utf8')
        const bundle = join(dir, 'bundle')
        await writeFile(buildConfig, shipped.replace(/^main = .*$/m, 'main = "test/entries/worker.ts"'))
        await writeFile(
          serveConfig,
          shipped.replace(
            /^main = .*$/m,
            `main = ${JSON.stringify(join(bundle, 'worker.js'))}\nno_bundle = true`,
          ),
        )
        persist = join(dir, 'state')
        const wrangler = (args: string[]) =>
          runToEnd(bin('wrangler'), args, { cwd: appDir, env: childEnv(), timeoutMs: START_TIMEOUT_MS })
        const [build, migrate] = await Promise.all([
          wrangler(['deploy', '--dry-run', '--outdir', bundle, '-c', buildConfig]),
          wrangler([
            'd1',
            'migrations',
            'apply',
            'DB',
            '--local',
            '--persist-to',
            persist,
            '-c',
            buildConfig,
          ]),
        ])
        if (build.code !== 0) throw new Error(`wrangler deploy --dry-run failed:\n${build.output}`)
        if (migrate.code !== 0) throw new Error(`wrangler d1 migrations apply failed:\n${migrate.output}`)

        const [adminToken, metricsToken] = [token(), token()]
        const [port, inspector] = [await freePort(), await freePort()]
        const child = startChild(
          bin('wrangler'),
          [
            'dev',
            '-c',
            serveConfig,
            '--local',
            '--ip',
            '127.0.0.1',
            '--port',
            String(port),
            '--inspector-port',
            String(inspector),
            '--persist-to',
            persist,
            '--var',
            `ADMIN_TOKEN:${adminToken}`,
            '--var',
            `METRICS_TOKEN:${metricsToken}`,
            '--show-interactive-dev-session=false',
          ],
          { cwd: appDir, env: childEnv() },
        )
        const url = `http://127.0.0.1:${port}`
        try {
          await child.waitForHttp(`${url}/health`, START_TIMEOUT_MS)
        } catch (error) {
          await child.stop()
          throw error
        }
        return {
          url,
          adminToken,
          metricsToken,
          child,
          stop: async () => {
            await child.stop()
            await cleanup()
          },
        }
      } catch (error) {
        await cleanup()
        throw error
      }
    },
  }
}
