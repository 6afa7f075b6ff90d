import {
  AdminService,
  InMemoryConcurrencyLimiter,
  InMemoryQuotaManager,
  InvalidTenantConfigError,
  isTenantError,
  ManualClock,
  type TenantChange,
  type TenantConfig,
  type TenantConfigInput,
  TenantNotFoundError,
  toTenantConfigInput,
} from '@tenant/core'
import { sql } from 'drizzle-orm'
import { beforeEach, describe, expect, it } from 'vitest'
import { describeEachDatabase, type SharedDatabase, withD1 } from '../test/databases'
import { DrizzleAuditLog } from './audit-log'
import { DrizzleConfigManager } from './config-manager'
import { TenantRowDecodeError } from './tenant-row'

const T0 = Date.UTC(2026, 0, 1)

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error('expected a rejection')
}

/** A JSON column as a value, whether the driver parsed it (jsonb) or not (SQLite text). */
function json(value: unknown): unknown {
  return typeof value === 'string' ? JSON.parse(value) : value
}

/** Makes every insert into `table` fail inside the database, as a constraint or bug would. */
async function failInserts(
  database: SharedDatabase,
  table: string,
  when = 'insert',
): Promise<() => Promise<void>> {
  const { dialect } = database.current
  const trigger = sql.identifier(`fail_${table}`)
  if (dialect === 'pg') {
    await database.current.query(
      sql.raw(
        `create or replace function fail_write() returns trigger language plpgsql as $$ begin raise exception 'refused by test trigger'; end $$`,
      ),
    )
    await database.current.query(
      sql`create trigger ${trigger} before ${sql.raw(when)} on ${sql.identifier(table)} for each row execute function fail_write()`,
    )
    return async () => {
      await database.current.query(sql`drop trigger ${trigger} on ${sql.identifier(table)}`)
    }
  }
  await database.current.query(
    sql`create trigger ${trigger} before ${sql.raw(when)} on ${sql.identifier(table)} begin select raise(abort, 'refused by test trigger'); end`,
  )
  return async () => {
    await database.current.query(sql`drop trigger ${trigger}`)
  }
}

describe('DrizzleConfigManager construction', () => {
  it('refuses what is not a Drizzle database, and bad options, when constructed', async () => {
    for (const make of [
      () => new DrizzleConfigManager({} as never),
      () => new DrizzleAuditLog({ select: () => undefined } as never),
    ]) {
      expect(make).toThrow(InvalidTenantConfigError)
      expect(make).toThrow(/db: expected a Drizzle database/)
    }
    const { drizzle } = await import('drizzle-orm/libsql')
    const db = drizzle({ connection: { url: ':memory:' } })
    for (const [options, path] of [
      [{ cache: { ttl: 0 } }, 'ttl'],
      [{ cache: { max: -1 } }, 'max'],
      [{ cache: { staleTtl: 'long' } }, 'staleTtl'],
      [{ cache: 'yes' }, 'cache'],
      [{ clock: {} }, 'clock'],
    ] as const) {
      const error = (() => {
        try {
          new DrizzleConfigManager(db, options as never)
        } catch (e) {
          return e
        }
      })()
      expect(error, JSON.stringify(options)).toBeInstanceOf(InvalidTenantConfigError)
      expect((error as InvalidTenantConfigError).issues[0]!.path).toEqual([path])
    }
    expect(new DrizzleConfigManager(db).dialect).toBe('sqlite')
    db.$client.close()
  })
})

describeEachDatabase(
  'DrizzleConfigManager',
  (database) => {
    let clock: ManualClock
    let manager: DrizzleConfigManager
    let auditLog: DrizzleAuditLog
    beforeEach(async () => {
      await database.current.reset()
      clock = new ManualClock(T0)
      manager = new DrizzleConfigManager(database.current.db, { clock, cache: false })
      auditLog = new DrizzleAuditLog(database.current.db)
    })

    describe('schema', () => {
      it('keeps the v1.1 columns and maps every quota window to its own columns', async () => {
        await manager.setTenantConfig({
          id: 'v11',
          quota: {
            limits: [
              { window: 'minute', requests: 60, tokens: 1000 },
              { window: 'month', tokens: 5 },
            ],
          },
          rateLimit: { requestsPerSecond: 0.5, burst: 2 },
          policy: {
            allowedModels: ['gpt-4o'],
            allowedTools: ['search'],
            allowedMethods: ['GET'],
            allowedPaths: ['/v1/*'],
          },
          metadata: { plan: 'pro' },
        })
        const [raw] = await database.current.query(sql`select * from tenants where id = 'v11'`)
        // postgres.js returns bigint columns as strings.
        const row = Object.fromEntries(
          Object.entries(raw!).map(([k, v]) => [k, typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v]),
        )
        expect(row).toMatchObject({
          id: 'v11',
          status: 'active',
          quota_requests_per_minute: 60,
          quota_tokens_per_minute: 1000,
          quota_requests_per_hour: null,
          quota_tokens_per_hour: null,
          quota_requests_per_day: null,
          quota_tokens_per_day: null,
          quota_requests_per_month: null,
          quota_tokens_per_month: 5,
          rate_limit_requests_per_second: 0.5,
          rate_limit_burst: 2,
        })
        // The concurrency token: a random whole number, drawn again on every write.
        expect(Number.isSafeInteger(row.revision) && (row.revision as number) > 0).toBe(true)
        expect(json(row.allowed_models)).toEqual(['gpt-4o'])
        expect(json(row.allowed_tools)).toEqual(['search'])
        expect(json(row.allowed_methods)).toEqual(['GET'])
        expect(json(row.allowed_paths)).toEqual(['/v1/*'])
        expect(json(row.metadata)).toEqual({ plan: 'pro' })
        expect(row.created_at).toBeDefined()
      })

      it('decodes a row inserted by hand with only an id to the defaults', async () => {
        await database.current.query(sql`insert into tenants (id) values ('by-hand')`)
        const config = await manager.getTenantConfig('by-hand')
        expect(config).toMatchObject({
          id: 'by-hand',
          status: 'active',
          quota: { limits: [] },
          rateLimit: null,
          policy: { allowedModels: [], allowedTools: [], allowedMethods: [], allowedPaths: [] },
          metadata: {},
        })
        // The database's clock stamped it: a plausible, recent time.
        expect(config.createdAt).toBeGreaterThan(Date.UTC(2024, 0, 1))
        expect(config.updatedAt).toBe(config.createdAt)
      })

      it('refuses invalid rows written by hand (CHECK constraints back the validation)', async () => {
        for (const statement of [
          sql`insert into tenants (id) values ('a/b')`,
          sql`insert into tenants (id) values ('')`,
          sql`insert into tenants (id, status) values ('s', 'deleted')`,
          sql`insert into tenants (id, quota_tokens_per_day) values ('q', -1)`,
          sql`insert into tenants (id, rate_limit_burst) values ('r', 3)`,
          sql`insert into tenants (id, rate_limit_requests_per_second, rate_limit_burst) values ('r', 0, 3)`,
        ]) {
          await expect(database.current.query(statement)).rejects.toThrow()
        }
        expect((await manager.listTenants()).items).toEqual([])
      })

      it('stores the largest counts the schema allows', async () => {
        const max = Number.MAX_SAFE_INTEGER
        const stored = await manager.setTenantConfig({
          id: 'big',
          quota: { limits: [{ window: 'month', requests: max, tokens: max }] },
          rateLimit: { requestsPerSecond: 1e9, burst: max },
        })
        expect(await manager.getTenantConfig('big')).toEqual(stored)
        expect(stored.quota.limits).toEqual([{ window: 'month', requests: max, tokens: max }])
      })
    })

    describe('writes', () => {
      it('upserts in one statement, keeping createdAt and drawing a new revision', async () => {
        const revision = async () =>
          Number(
            (await database.current.query(sql`select revision from tenants where id = 'u'`))[0]!.revision,
          )
        const before = database.current.queries
        await manager.setTenantConfig({ id: 'u', metadata: { v: 1 } })
        expect(database.current.queries - before).toBe(1)
        const first = await revision()
        clock.advance(10)
        const replaced = await manager.setTenantConfig({ id: 'u', metadata: { v: 2 } })
        expect(database.current.queries - before).toBe(3)
        expect(replaced).toMatchObject({ createdAt: T0, updatedAt: T0 + 10, metadata: { v: 2 } })
        expect(await revision()).not.toBe(first)
      })

      it('returns limits in window order, whatever order they were given in', async () => {
        const stored = await manager.setTenantConfig({
          id: 'order',
          quota: {
            limits: [
              { window: 'month', tokens: 4 },
              { window: 'minute', requests: 1 },
              { window: 'day', requests: 3 },
              { window: 'hour', requests: 2 },
            ],
          },
        })
        expect(stored.quota.limits.map((l) => l.window)).toEqual(['minute', 'hour', 'day', 'month'])
        expect(await manager.getTenantConfig('order')).toEqual(stored)
      })

      it('survives many concurrent upserts, deletes and reads of the same tenants', async () => {
        const ids = ['c0', 'c1', 'c2']
        const ops: Promise<unknown>[] = []
        for (let i = 0; i < 90; i++) {
          const id = ids[i % 3]!
          if (i % 10 === 9)
            ops.push(
              manager.deleteTenantConfig(id).catch((e) => expect(e).toBeInstanceOf(TenantNotFoundError)),
            )
          else ops.push(manager.setTenantConfig({ id, metadata: { i } }))
          ops.push(manager.getTenantConfig(id).catch((e) => expect(e).toBeInstanceOf(TenantNotFoundError)))
          ops.push(manager.listTenants({ limit: 2 }))
        }
        const results = await Promise.allSettled(ops)
        expect(results.filter((r) => r.status === 'rejected')).toEqual([])
      })
    })

    describe('listing', () => {
      it('pages with offsets and with cursors over the same order', async () => {
        const ids = Array.from({ length: 23 }, (_, i) => `id-${String(i).padStart(2, '0')}`).reverse()
        for (const id of ids) await manager.setTenantConfig({ id })
        const sorted = [...ids].sort()
        const byOffset: string[] = []
        for (let offset = 0; offset < 30; offset += 5) {
          byOffset.push(...(await manager.listTenants({ offset, limit: 5 })).items.map((t) => t.id))
        }
        const byCursor: string[] = []
        let page = await manager.listTenants({ limit: 5 })
        for (;;) {
          byCursor.push(...page.items.map((t) => t.id))
          if (page.next === undefined) break
          page = await manager.listTenants({ after: page.next, limit: 5 })
        }
        expect(byOffset).toEqual(sorted)
        expect(byCursor).toEqual(sorted)
        expect((await manager.listTenants({ offset: 20, limit: 5 })).next).toBeUndefined()
        expect((await manager.listTenants({ offset: 15, limit: 5 })).next).toBe('id-19')
      })

      it('visits every existing tenant once, in order, while others are inserted between pages', async () => {
        const even = Array.from({ length: 40 }, (_, i) => `k${String(i * 2).padStart(3, '0')}`)
        for (const id of even) await manager.setTenantConfig({ id })
        const seen: string[] = []
        let page = await manager.listTenants({ limit: 7 })
        let n = 1
        for (;;) {
          seen.push(...page.items.map((t) => t.id))
          // New ids behind the cursor, just ahead of it and far ahead, concurrently with the read.
          const inserts = [1, 41, 79].map((k) =>
            manager.setTenantConfig({ id: `k${String(k + n * 2).padStart(3, '0')}x` }),
          )
          if (page.next === undefined) break
          ;[page] = await Promise.all([manager.listTenants({ after: page.next, limit: 7 }), ...inserts])
          n += 1
        }
        expect(seen).toEqual([...seen].sort())
        expect(new Set(seen).size).toBe(seen.length)
        expect(seen.filter((id) => !id.endsWith('x'))).toEqual(even)
      })
    })

    describe('rows that do not decode', () => {
      it('fails loudly with the row id and the cause, on reads and on lists', async () => {
        await manager.setTenantConfig({ id: 'ok' })
        await manager.setTenantConfig({ id: 'broken', policy: { allowedModels: ['m'] } })
        await database.current.query(sql`update tenants set allowed_models = '["m", 5]' where id = 'broken'`)
        for (const call of [() => manager.getTenantConfig('broken'), () => manager.listTenants()]) {
          const error = await rejection(call())
          expect(error).toBeInstanceOf(TenantRowDecodeError)
          expect(error).toMatchObject({ table: 'tenants', rowId: 'broken', tenantId: 'broken' })
          expect(isTenantError(error) && error.code).toBe('tenant_backend_unavailable')
          const cause = (error as Error).cause as InvalidTenantConfigError
          expect(cause).toBeInstanceOf(InvalidTenantConfigError)
          expect(cause.issues[0]!.path).toEqual(['policy', 'allowedModels', 1])
        }
        expect((await manager.getTenantConfig('ok')).id).toBe('ok')
      })

      it('reports JSON of the wrong shape (jsonb) or text that is not JSON (SQLite)', async () => {
        await manager.setTenantConfig({ id: 'broken' })
        if (database.current.dialect === 'sqlite') {
          await database.current.query(sql`update tenants set metadata = '{"plan": pro' where id = 'broken'`)
          const error = await rejection(manager.getTenantConfig('broken'))
          expect(error).toBeInstanceOf(TenantRowDecodeError)
          expect((error as Error).cause).toBeInstanceOf(SyntaxError)
        } else {
          await database.current.query(sql`update tenants set metadata = '[1, 2]' where id = 'broken'`)
          const error = await rejection(manager.getTenantConfig('broken'))
          expect(error).toBeInstanceOf(TenantRowDecodeError)
          expect(((error as Error).cause as InvalidTenantConfigError).issues[0]!.path).toEqual(['metadata'])
        }
      })

      it('fails an audited change on a row that does not decode, writing nothing', async () => {
        await manager.setTenantConfig({ id: 'broken' })
        await database.current.query(sql`update tenants set allowed_tools = '{}' where id = 'broken'`)
        let called = false
        const error = await rejection(
          manager.applyChange({
            tenantId: 'broken',
            action: 'tenant.update',
            actor: 'alice',
            apply: () => {
              called = true
              return { id: 'broken' }
            },
          }),
        )
        expect(error).toBeInstanceOf(TenantRowDecodeError)
        expect(called).toBe(false)
        expect((await auditLog.list('broken')).items).toEqual([])
      })

      it('fails loudly on an audit record that does not decode', async () => {
        await manager.applyChange({
          tenantId: 'a',
          action: 'tenant.create',
          actor: 'alice',
          apply: () => ({ id: 'a' }),
        })
        await database.current.query(sql`update tenant_audit_log set after = '{"id": "a"}'`)
        const error = await rejection(auditLog.list('a'))
        expect(error).toBeInstanceOf(TenantRowDecodeError)
        expect(error).toMatchObject({ table: 'tenant_audit_log', rowId: '0000000000000001', tenantId: 'a' })
      })
    })

    describe('applyChange atomicity', () => {
      const update = (apply: TenantChange['apply']): TenantChange => ({
        tenantId: 'acme',
        action: 'tenant.update',
        actor: 'alice',
        requestId: 'req-1',
        apply,
      })
      const suspend = (current: TenantConfig | null): TenantConfigInput => ({
        ...toTenantConfigInput(current!),
        status: 'suspended',
      })

      beforeEach(async () => {
        await manager.applyChange({
          ...update(() => ({ id: 'acme', metadata: { v: 1 } })),
          action: 'tenant.create',
        })
      })

      it('leaves neither the change nor a record when the audit insert fails in the database', async () => {
        const before = await manager.getTenantConfig('acme')
        const [revisionBefore] = await database.current.query(
          sql`select revision from tenants where id = 'acme'`,
        )
        const restore = await failInserts(database, 'tenant_audit_log')
        try {
          clock.advance(1000)
          const error = await rejection(manager.applyChange(update(suspend)))
          expect(isTenantError(error) && error.code).toBe('tenant_backend_unavailable')
          expect(String(((error as Error).cause as Error)?.message ?? (error as Error).cause)).toBeTruthy()
          const created = await rejection(
            manager.applyChange({
              ...update(() => ({ id: 'new' })),
              tenantId: 'new',
              action: 'tenant.create',
            }),
          )
          expect(isTenantError(created) && created.code).toBe('tenant_backend_unavailable')
          const deleted = await rejection(
            manager.applyChange({ ...update(() => null), action: 'tenant.delete' }),
          )
          expect(isTenantError(deleted) && deleted.code).toBe('tenant_backend_unavailable')
        } finally {
          await restore()
        }
        expect(await manager.getTenantConfig('acme')).toEqual(before)
        await expect(manager.getTenantConfig('new')).rejects.toBeInstanceOf(TenantNotFoundError)
        expect((await auditLog.list('acme')).items.map((r) => r.action)).toEqual(['tenant.create'])
        expect((await auditLog.list('new')).items).toEqual([])
        const [row] = await database.current.query(sql`select revision from tenants where id = 'acme'`)
        expect(Number(row!.revision)).toBe(Number(revisionBefore!.revision))
      })

      it('leaves no record when the tenant write fails in the database', async () => {
        const before = await manager.getTenantConfig('acme')
        const restore = await failInserts(database, 'tenants', 'update')
        try {
          const error = await rejection(manager.applyChange(update(suspend)))
          expect(isTenantError(error) && error.code).toBe('tenant_backend_unavailable')
        } finally {
          await restore()
        }
        expect(await manager.getTenantConfig('acme')).toEqual(before)
        expect((await auditLog.list('acme')).items).toHaveLength(1)
      })

      it('writes nothing when apply throws, and rethrows its error unchanged', async () => {
        const boom = new Error('apply failed')
        expect(
          await rejection(
            manager.applyChange(
              update(() => {
                throw boom
              }),
            ),
          ),
        ).toBe(boom)
        expect((await manager.getTenantConfig('acme')).status).toBe('active')
        expect((await auditLog.list('acme')).items).toHaveLength(1)
      })

      it('gives apply a copy: mutating it changes neither the record nor the store', async () => {
        const result = await manager.applyChange(
          update((current) => {
            current!.metadata.v = 999
            return { ...toTenantConfigInput(current!), metadata: { v: 2 } }
          }),
        )
        expect(result.before!.metadata).toEqual({ v: 1 })
        expect(result.audit.before!.metadata).toEqual({ v: 1 })
        expect((await auditLog.list('acme')).items[0]).toEqual(result.audit)
      })

      it('applies racing creates of one tenant once, then the rest as updates', async () => {
        const bump = (current: TenantConfig | null): TenantConfigInput =>
          current === null
            ? { id: 'race', metadata: { n: 1 } }
            : { ...toTenantConfigInput(current), metadata: { n: (current.metadata.n as number) + 1 } }
        const other = new DrizzleConfigManager(database.current.db, { clock, cache: false })
        const results = await Promise.all(
          Array.from({ length: 8 }, (_, i) =>
            (i % 2 ? other : manager).applyChange({
              tenantId: 'race',
              action: 'tenant.update',
              actor: `w${i}`,
              apply: bump,
            }),
          ),
        )
        expect((await manager.getTenantConfig('race')).metadata).toEqual({ n: 8 })
        expect(results.filter((r) => r.before === null)).toHaveLength(1)
        const records = (await auditLog.list('race')).items
        expect(records).toHaveLength(8)
        expect(records.map((r) => r.after!.metadata.n)).toEqual([8, 7, 6, 5, 4, 3, 2, 1])
      })

      it('interleaves audited changes with reads and plain writes without errors', async () => {
        const cached = new DrizzleConfigManager(database.current.db, { clock })
        const ops: Promise<unknown>[] = []
        for (let i = 0; i < 20; i++) {
          ops.push(cached.applyChange(update((c) => ({ ...toTenantConfigInput(c!), metadata: { v: i } }))))
          ops.push(cached.getTenantConfig('acme'))
          ops.push(manager.setTenantConfig({ id: `plain-${i}` }))
          ops.push(auditLog.list('acme', { limit: 5 }))
        }
        const results = await Promise.allSettled(ops)
        expect(results.filter((r) => r.status === 'rejected')).toEqual([])
        expect((await auditLog.list('acme', { limit: 100 })).items).toHaveLength(21)
        // The cache holds what the last change wrote.
        expect(await cached.getTenantConfig('acme')).toEqual(await manager.getTenantConfig('acme'))
      })
    })
  },
  { kinds: withD1 },
)

describeEachDatabase(
  'AdminService over DrizzleConfigManager: same answer on every database',
  (database) => {
    let clock: ManualClock
    let manager: DrizzleConfigManager
    let auditLog: DrizzleAuditLog
    let admin: AdminService
    const alice = { actor: 'alice' }

    beforeEach(async () => {
      await database.current.reset()
      clock = new ManualClock(T0)
      manager = new DrizzleConfigManager(database.current.db, { clock, cache: false })
      auditLog = new DrizzleAuditLog(database.current.db)
      admin = new AdminService({ store: manager, auditLog, clock })
    })

    it('records usage and in-flight resets at whole ms on a fractional clock, after the reset', async () => {
      clock.set(T0 + 0.25)
      const quotas = new InMemoryQuotaManager(manager, { clock })
      const limiter = new InMemoryConcurrencyLimiter()
      const service = new AdminService({ store: manager, auditLog, quotas, concurrency: limiter, clock })
      await service.create({ id: 'acme', quota: { limits: [{ window: 'hour', requests: 50 }] } }, alice)
      await quotas.consume('acme', { requests: 10 })
      await limiter.acquire('acme', 5)
      expect((await service.resetUsage('acme', alice)).windows[0]!.used.requests).toBe(0)
      expect((await service.resetInFlight('acme', alice)).inFlight).toBe(0)
      const records = (await auditLog.list('acme')).items
      expect(records.map((r) => [r.action, r.at])).toEqual([
        ['tenant.concurrency.reset', T0],
        ['tenant.usage.reset', T0],
        ['tenant.create', T0],
      ])
    })

    it("a create refused as a duplicate resets nothing, whatever another process's cache says", async () => {
      // Process B cached "acme not found" (a request for it came in); A then creates acme, which
      // is used. B's create of acme a second later must look it up past that cache, be refused
      // (409) and leave the live tenant's usage and the application's data alone.
      const cachingB = new DrizzleConfigManager(database.current.db, { clock })
      const quotas = new InMemoryQuotaManager(manager, { clock }) // a quota store both share
      const appData = new Map<string, string>()
      const shared = {
        auditLog,
        quotas,
        clock,
        freshStart: async (id: string) => {
          appData.delete(id)
        },
      }
      const adminA = new AdminService({ store: manager, ...shared })
      const adminB = new AdminService({ store: cachingB, ...shared })
      await cachingB.getTenantConfig('acme').catch(() => undefined)
      await adminA.create({ id: 'acme', quota: { limits: [{ window: 'month', requests: 100 }] } }, alice)
      appData.set('acme', 'rows')
      await quotas.consume('acme', { requests: 60 })
      clock.advance(1_000) // well inside the negative cache's 5 s
      const refused = await adminB.create({ id: 'acme' }, { actor: 'bob' }).then(
        () => undefined,
        (error: unknown) => error,
      )
      expect(isTenantError(refused) && refused.code).toBe('tenant_already_exists')
      expect((await quotas.peek('acme')).windows[0]!.used.requests).toBe(60)
      expect(appData.get('acme')).toBe('rows')
      expect((await auditLog.list('acme')).items.map((r) => r.action)).toEqual(['tenant.create'])
    })

    it('refuses text Postgres cannot store with 400 (not 503), keeping nothing', async () => {
      const bad = [
        { id: 'z1', policy: { allowedModels: ['gpt\u00004o'] } },
        { id: 'z2', policy: { allowedPaths: ['/v1/\ud800'] } },
        { id: 'z3', metadata: { 'k\u0000': 1 } },
        { id: 'z4', metadata: { k: 'lone \udc00' } },
      ]
      for (const input of bad) {
        const error = await rejection(admin.create(input, alice))
        expect(error, JSON.stringify(input)).toBeInstanceOf(InvalidTenantConfigError)
        await expect(manager.getTenantConfig(input.id)).rejects.toBeInstanceOf(TenantNotFoundError)
      }
      await admin.create({ id: 'acme' }, alice)
      for (const after of ['\u0000', 'a\ud800']) {
        expect(await rejection(admin.list({ after }))).toBeInstanceOf(InvalidTenantConfigError)
        expect(await rejection(manager.listTenants({ after }))).toBeInstanceOf(InvalidTenantConfigError)
      }
      expect(await rejection(admin.suspend('acme', { actor: 'al\u0000ice' }))).toBeInstanceOf(
        InvalidTenantConfigError,
      )
      // The store's own change path, called directly, applies the same rules to its record.
      for (const actor of ['al\u0000ice', '', 'a\ud800']) {
        const direct = manager.applyChange({
          tenantId: 'acme',
          action: 'tenant.suspend',
          actor,
          apply: (before) => ({ ...toTenantConfigInput(before!), status: 'suspended' }),
        })
        expect(await rejection(direct)).toBeInstanceOf(InvalidTenantConfigError)
      }
      expect((await manager.getTenantConfig('acme')).status).toBe('active')
      expect((await auditLog.list('acme')).items).toHaveLength(1)
    })

    it('refuses a top-level "__proto__" metadata key, and keeps a nested one as data', async () => {
      const top = JSON.parse('{"id":"p1","metadata":{"__proto__":{"isAdmin":true},"x":1}}')
      const error = await rejection(admin.create(top, alice))
      expect((error as InvalidTenantConfigError).issues.map((i) => i.path)).toEqual([
        ['metadata', '__proto__'],
      ])
      await expect(manager.getTenantConfig('p1')).rejects.toBeInstanceOf(TenantNotFoundError)
      const nested = JSON.parse('{"id":"p2","metadata":{"x":{"__proto__":{"isAdmin":true}}}}')
      await admin.create(nested, alice)
      const stored = (await manager.getTenantConfig('p2')).metadata.x as Record<string, unknown>
      expect(Object.keys(stored)).toEqual(['__proto__'])
      expect(Object.getPrototypeOf(stored)).toBe(Object.prototype)
    })
  },
  { kinds: withD1 },
)
