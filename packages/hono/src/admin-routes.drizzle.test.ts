// The admin routes over the real Drizzle stores: libSQL (in memory), PGlite, and a PostgreSQL
// server when TEST_DATABASE_URL is set (required under CI), each in a database or schema of its own.
import { PGlite } from '@electric-sql/pglite'
import { createClient } from '@libsql/client'
import { AdminService, InMemoryQuotaManager, ManualClock, withPlans } from '@tenant/core'
import {
  DrizzleAuditLog,
  DrizzleConfigManager,
  DrizzlePlanStore,
  migrate,
  type TenantDatabase,
} from '@tenant/drizzle'
import { drizzle as drizzleLibsql } from 'drizzle-orm/libsql'
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite'
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js'
import { Hono } from 'hono'
import postgres from 'postgres'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { adminClient, expectOneAuditRecordPerChange, expectProblem } from '../test/admin-routes-helpers'
import { adminRoutes } from './admin-routes'

const T0 = Date.UTC(2026, 0, 1)
const TOKEN = 'drizzle-admin-token-0123456789'

interface Opened {
  db: TenantDatabase
  dialect: 'sqlite' | 'pg'
  /** Runs raw SQL (DDL for fault injection, counts for checks). */
  exec(statement: string): Promise<void>
  count(table: 'tenants' | 'tenant_audit_log' | 'plan_audit_log'): Promise<number>
  close(): Promise<void>
}

async function openLibsql(): Promise<Opened> {
  const client = createClient({ url: ':memory:' })
  const db = drizzleLibsql({ client })
  return {
    db,
    dialect: 'sqlite',
    exec: async (statement) => {
      await client.execute(statement)
    },
    count: async (table) => Number((await client.execute(`select count(*) as n from ${table}`)).rows[0]!.n),
    close: async () => client.close(),
  }
}

async function openPglite(): Promise<Opened> {
  const client = new PGlite()
  await client.waitReady
  return {
    db: drizzlePglite({ client }),
    dialect: 'pg',
    exec: async (statement) => {
      await client.exec(statement)
    },
    count: async (table) =>
      Number((await client.query<{ n: number }>(`select count(*)::int as n from ${table}`)).rows[0]!.n),
    close: () => client.close(),
  }
}

async function openPostgres(url: string): Promise<Opened> {
  const schema = `admin_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`
  const admin = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 5 })
  await admin.unsafe(`create schema "${schema}"`)
  const client = postgres(url, { max: 4, onnotice: () => {}, connection: { search_path: schema } })
  return {
    db: drizzlePostgres({ client }),
    dialect: 'pg',
    exec: async (statement) => {
      await client.unsafe(statement)
    },
    count: async (table) => Number((await client.unsafe(`select count(*)::int as n from ${table}`))[0]!.n),
    close: async () => {
      await client.end({ timeout: 1 })
      await admin.unsafe(`drop schema if exists "${schema}" cascade`)
      await admin.end({ timeout: 1 })
    },
  }
}

// A real fault inside the transaction: the tenant row is written, then the audit insert fails.
const failAudit = {
  sqlite: {
    on: `create trigger fail_audit before insert on tenant_audit_log begin select raise(abort, 'forced audit failure'); end`,
    off: 'drop trigger fail_audit',
  },
  pg: {
    on: `create function fail_audit() returns trigger language plpgsql as $$ begin raise exception 'forced audit failure'; end $$;
         create trigger fail_audit before insert on tenant_audit_log for each row execute function fail_audit()`,
    off: 'drop trigger fail_audit on tenant_audit_log; drop function fail_audit()',
  },
}

const postgresUrl = process.env.TEST_DATABASE_URL
const kinds: [name: string, open: (() => Promise<Opened>) | string][] = [
  ['libsql', openLibsql],
  ['pglite', openPglite],
  ['postgres', postgresUrl ? () => openPostgres(postgresUrl) : 'TEST_DATABASE_URL is not set'],
]

for (const [kind, open] of kinds) {
  if (typeof open === 'string') {
    // Outside CI a missing server skips the suite; under CI it fails it.
    if (process.env.CI) {
      it(`admin routes on Drizzle [${kind}] need their database under CI`, () => {
        throw new Error(`${kind}: ${open}`)
      })
    } else {
      describe.skip(`admin routes on Drizzle [${kind}] (skipped: ${open})`, () => {
        it('needs its database', () => {})
      })
    }
    continue
  }

  describe(`admin routes on Drizzle [${kind}]`, { timeout: 30_000 }, () => {
    let database: Opened
    let clock: ManualClock
    let configs: DrizzleConfigManager
    let plans: DrizzlePlanStore
    let auditLog: DrizzleAuditLog
    let quotas: InMemoryQuotaManager
    let app: Hono
    const call = adminClient(() => app, TOKEN)

    beforeAll(async () => {
      database = await open()
      await migrate(database.db)
    }, 60_000)
    afterAll(async () => {
      await database?.close()
    })
    beforeEach(async () => {
      for (const table of ['tenant_audit_log', 'plan_audit_log', 'tenants', 'plans']) {
        await database.exec(`delete from ${table}`)
      }
      clock = new ManualClock(T0)
      configs = new DrizzleConfigManager(database.db, { clock })
      plans = new DrizzlePlanStore(database.db, { clock })
      auditLog = new DrizzleAuditLog(database.db)
      quotas = new InMemoryQuotaManager(withPlans(configs, plans), { clock })
      app = new Hono()
      app.route(
        '/admin',
        adminRoutes(new AdminService({ store: configs, plans, auditLog, quotas }), { token: TOKEN }),
      )
    })

    it('runs the tenant lifecycle through the HTTP routes', async () => {
      const created = await call('POST', '/tenants', {
        body: { id: 'acme', quota: { limits: [{ window: 'day', requests: 10 }] }, metadata: { plan: 'pro' } },
        headers: { 'X-Request-ID': 'req-create' },
      })
      expect(created.status).toBe(201)
      expect(created.response.headers.get('Location')).toBe('/admin/tenants/acme')
      expect(created.json).toMatchObject({ id: 'acme', status: 'active', createdAt: T0, updatedAt: T0 })
      expect((await call('GET', '/tenants/acme')).json).toEqual(created.json)
      expectProblem(await call('POST', '/tenants', { body: { id: 'acme' } }), 409, 'tenant_already_exists')

      clock.advance(1000)
      const replaced = await call('PUT', '/tenants/acme', {
        body: { quota: { limits: [{ window: 'day', requests: 10 }] }, metadata: { plan: 'team' } },
      })
      expect(replaced.json).toMatchObject({ metadata: { plan: 'team' }, createdAt: T0, updatedAt: T0 + 1000 })
      expect(
        (await call('PUT', '/tenants/acme/policy', { body: { allowedModels: ['gpt-4o'] } })).json.policy,
      ).toEqual({
        allowedModels: ['gpt-4o'],
        allowedTools: [],
        allowedMethods: [],
        allowedPaths: [],
      })
      expect((await call('POST', '/tenants/acme/suspend')).json.status).toBe('suspended')
      expect((await configs.getTenantConfig('acme')).status).toBe('suspended')
      expect((await call('POST', '/tenants/acme/activate')).json.status).toBe('active')

      await quotas.consume('acme', { requests: 4 })
      const usage = await call('GET', '/tenants/acme/usage')
      expect(usage.json.windows[0]).toMatchObject({
        window: 'day',
        used: { requests: 4 },
        remaining: { requests: 6 },
      })

      for (const id of ['beta', 'gamma']) await call('POST', '/tenants', { body: { id } })
      const page1 = await call('GET', '/tenants?limit=2')
      expect(page1.json.items.map((t: { id: string }) => t.id)).toEqual(['acme', 'beta'])
      const page2 = await call('GET', `/tenants?limit=2&after=${page1.json.next}`)
      expect(page2.json.items.map((t: { id: string }) => t.id)).toEqual(['gamma'])
      expect(page2.json.next).toBeUndefined()

      expect((await call('DELETE', '/tenants/acme')).status).toBe(204)
      expectProblem(await call('GET', '/tenants/acme'), 404, 'tenant_not_found')
      expect(await database.count('tenants')).toBe(2)

      const audit = await call('GET', '/tenants/acme/audit?limit=3')
      expect(audit.json.items.map((r: { action: string }) => r.action)).toEqual([
        'tenant.delete',
        'tenant.activate',
        'tenant.suspend',
      ])
      const rest = await call('GET', `/tenants/acme/audit?limit=10&before=${audit.json.next}`)
      expect(rest.json.items.map((r: { action: string }) => r.action)).toEqual([
        'tenant.policy.update',
        'tenant.update',
        'tenant.create',
      ])
      expect(rest.json.items[2]).toMatchObject({
        actor: 'admin',
        requestId: 'req-create',
        before: null,
        at: T0,
      })
    })

    it('runs the plan lifecycle through the HTTP routes; a plan change reaches its tenants', async () => {
      const pro = await call('POST', '/plans', {
        body: { id: 'pro', quota: { limits: [{ window: 'day', requests: 3 }] } },
      })
      expect(pro.status).toBe(201)
      expect(pro.response.headers.get('Location')).toBe('/admin/plans/pro')
      expectProblem(await call('POST', '/plans', { body: { id: 'pro' } }), 409, 'plan_already_exists')
      const missing = await call('POST', '/tenants', { body: { id: 'acme', plan: 'ghost' } })
      expectProblem(missing, 400, 'tenant_invalid_config')
      expect(missing.json.issues).toEqual([
        { path: ['plan'], message: 'plan "ghost" does not exist', code: 'invalid_value' },
      ])
      expect((await call('POST', '/tenants', { body: { id: 'acme', plan: 'pro' } })).json.plan).toBe('pro')
      expect((await quotas.consume('acme', { requests: 3 })).allowed).toBe(true)
      expect((await quotas.consume('acme', {})).allowed).toBe(false)

      clock.advance(1000)
      const raised = await call('PUT', '/plans/pro', {
        body: { quota: { limits: [{ window: 'day', requests: 5 }] } },
      })
      expect(raised.json).toMatchObject({ id: 'pro', createdAt: T0, updatedAt: T0 + 1000 })
      expect((await quotas.consume('acme', {})).allowed).toBe(true)
      expect((await configs.getTenantConfig('acme')).updatedAt).toBe(T0)

      const inUse = await call('DELETE', '/plans/pro')
      expectProblem(inUse, 409, 'plan_in_use')
      expect(inUse.json.planId).toBe('pro')
      await call('PUT', '/tenants/acme', { body: { plan: null } })
      expect((await call('DELETE', '/plans/pro')).status).toBe(204)
      expectProblem(await call('GET', '/plans/pro'), 404, 'plan_not_found')
      const audit = await call('GET', '/plans/pro/audit')
      expect(audit.json.items.map((r: { action: string; planId: string }) => [r.action, r.planId])).toEqual([
        ['plan.delete', 'pro'],
        ['plan.update', 'pro'],
        ['plan.create', 'pro'],
      ])
      expect(await database.count('plan_audit_log')).toBe(3)
    })

    it('requires the token', async () => {
      expectProblem(
        await call('POST', '/tenants', { body: { id: 'acme' }, token: null }),
        401,
        'admin_unauthorized',
      )
      expectProblem(
        await call('POST', '/tenants', { body: { id: 'acme' }, token: 'wrong' }),
        401,
        'admin_unauthorized',
      )
      expect(await database.count('tenants')).toBe(0)
      expect(await database.count('tenant_audit_log')).toBe(0)
    })

    it('refuses invalid input with the issues, writing nothing', async () => {
      const result = await call('POST', '/tenants', {
        body: { id: 'acme', quota: { limits: [{ window: 'day', requests: -1 }] } },
      })
      expectProblem(result, 400, 'tenant_invalid_config')
      expect(result.json.issues[0].path).toEqual(['quota', 'limits', 0, 'requests'])
      expect(await database.count('tenants')).toBe(0)
      expect(await database.count('tenant_audit_log')).toBe(0)
    })

    it('writes an audit row for every mutation and none for failed ones', async () => {
      await expectOneAuditRecordPerChange(call, auditLog)
      expect(await database.count('tenant_audit_log')).toBe(7)
      expect(await database.count('plan_audit_log')).toBe(0)
    })

    it('leaves neither the change nor its record when the audit write fails before commit', async () => {
      await call('POST', '/tenants', { body: { id: 'acme', metadata: { v: 1 } } })
      const before = (await call('GET', '/tenants/acme')).json
      await database.exec(failAudit[database.dialect].on)
      try {
        clock.advance(1000)
        expectProblem(
          await call('POST', '/tenants', { body: { id: 'beta' } }),
          503,
          'tenant_backend_unavailable',
        )
        expectProblem(
          await call('PUT', '/tenants/acme/quota', { body: { limits: [{ window: 'day', requests: 1 }] } }),
          503,
          'tenant_backend_unavailable',
        )
        expectProblem(await call('DELETE', '/tenants/acme'), 503, 'tenant_backend_unavailable')
      } finally {
        await database.exec(failAudit[database.dialect].off)
      }
      // Read through the routes (the manager's cache) and straight from the tables.
      expectProblem(await call('GET', '/tenants/beta'), 404, 'tenant_not_found')
      expect((await call('GET', '/tenants/acme')).json).toEqual(before)
      const fresh = new DrizzleConfigManager(database.db, { cache: false })
      expect(await fresh.getTenantConfig('acme')).toEqual(before)
      expect(await database.count('tenants')).toBe(1)
      expect(await database.count('tenant_audit_log')).toBe(1)
      // With the fault gone, the same change goes through with its record.
      expect((await call('POST', '/tenants', { body: { id: 'beta' } })).status).toBe(201)
      expect(await database.count('tenant_audit_log')).toBe(2)
    })

    // Postgres cannot store U+0000 (nor an unpaired surrogate in jsonb): the routes refuse such
    // text with the same 400 on every database, instead of a 503 here and a 201 on SQLite.
    it('answers 400 for text a database cannot store, keeping nothing', async () => {
      for (const body of [
        { id: 'z1', policy: { allowedModels: ['gpt\u00004o'] } },
        { id: 'z2', policy: { allowedTools: ['lone \ud800'] } },
        { id: 'z3', metadata: { 'k\u0000': 1 } },
        { id: 'z4', metadata: { k: '\udc00' } },
      ]) {
        expectProblem(await call('POST', '/tenants', { body }), 400, 'tenant_invalid_config')
      }
      expect(await database.count('tenants')).toBe(0)
      await call('POST', '/tenants', { body: { id: 'acme' } })
      for (const policy of [{ allowedPaths: ['/v1/\u0000'] }, { allowedMethods: ['GET\ud800'] }]) {
        expectProblem(
          await call('PUT', '/tenants/acme/policy', { body: policy }),
          400,
          'tenant_invalid_config',
        )
      }
      for (const path of ['/tenants', '/plans']) {
        for (const query of ['after=%00', 'after=a%00b']) {
          expectProblem(await call('GET', `${path}?${query}`), 400, 'tenant_invalid_config')
        }
        // Not UTF-8, so URL decoding already made it U+FFFD: an ordinary cursor.
        expect((await call('GET', `${path}?after=%ED%A0%80`)).status).toBe(200)
      }
      expect(await database.count('tenant_audit_log')).toBe(1)
    })

    it('refuses a "__proto__" metadata key with 400 instead of dropping it', async () => {
      const result = await call('POST', '/tenants', {
        body: '{"id":"acme","metadata":{"__proto__":{"isAdmin":true},"x":1}}',
      })
      expectProblem(result, 400, 'tenant_invalid_config')
      expect(result.json.issues[0].path).toEqual(['metadata', '__proto__'])
      expect(await database.count('tenants')).toBe(0)
    })
  })
}
