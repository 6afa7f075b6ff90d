// The concurrency token of audited changes (RowStore, shared by DrizzleConfigManager and
// DrizzlePlanStore) against a subject deleted and created again between a change's read and its
// write: the ABA case a per-row counter cannot see, because the new row starts where the old one did.
import {
  AdminService,
  type AuditRecord,
  InMemoryConcurrencyLimiter,
  InMemoryQuotaManager,
  InvalidTenantConfigError,
  ManualClock,
  type PlanConfig,
  type TenantConfig,
  toPlanConfigInput,
  toTenantConfigInput,
} from '@tenant/core'
import { sql } from 'drizzle-orm'
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js'
import postgres from 'postgres'
import { beforeEach, expect, it } from 'vitest'
import { type AnyTestDb, describeEachDatabase, type TestDatabase, withD1 } from '../test/databases'
import { DrizzleAuditLog } from './audit-log'
import { DrizzleConfigManager } from './config-manager'
import { DrizzlePlanStore } from './plan-store'

const T0 = Date.UTC(2026, 0, 1)
const bob = { actor: 'bob' }

type Batch = (...args: unknown[]) => Promise<unknown>

/**
 * Holds the next `batch` of the database's own client (libSQL, D1) until `until()` settles: the
 * network round trip between an optimistic change's read and its batch, which remote libSQL and D1
 * really have, made long enough for another writer to run in it. No store code is replaced.
 */
function holdNextBatch(db: AnyTestDb, until: () => Promise<unknown> | undefined): void {
  const client = (db as unknown as { $client: { batch: Batch } }).$client
  const original = client.batch
  client.batch = async function (this: unknown, ...args: unknown[]) {
    client.batch = original
    await until()
    return original.apply(this, args)
  }
}

/** Each record's `before` is the previous record's `after`: the log tells one consistent story. */
function expectUnbrokenChain(records: AuditRecord[]): void {
  const oldestFirst = [...records].reverse()
  for (let i = 1; i < oldestFirst.length; i++) {
    expect(oldestFirst[i]!.before, `record ${i} (${oldestFirst[i]!.action})`).toEqual(
      oldestFirst[i - 1]!.after,
    )
  }
}

async function revisionOf(database: TestDatabase, table: 'tenants' | 'plans', id: string): Promise<number> {
  const [row] = await database.query(sql`select revision from ${sql.identifier(table)} where id = ${id}`)
  return Number(row!.revision)
}

describeEachDatabase(
  'audited changes racing a delete and re-create',
  (database) => {
    let clock: ManualClock
    let configs: DrizzleConfigManager
    let plans: DrizzlePlanStore
    let auditLog: DrizzleAuditLog
    let admin: AdminService
    // Bob works in another process: stores of its own on the same database. (A store queues the
    // changes of one id made through it, so bob's change through alice's store would wait for hers.)
    let bobs: AdminService

    beforeEach(async () => {
      await database.current.reset()
      clock = new ManualClock(T0)
      configs = new DrizzleConfigManager(database.current.db, { clock, cache: false })
      plans = new DrizzlePlanStore(database.current.db, { clock, cache: false })
      auditLog = new DrizzleAuditLog(database.current.db)
      admin = new AdminService({ store: configs, plans, auditLog, clock })
      bobs = new AdminService({
        store: new DrizzleConfigManager(database.current.db, { clock, cache: false }),
        plans: new DrizzlePlanStore(database.current.db, { clock, cache: false }),
        auditLog,
        clock,
      })
    })

    // On libSQL and D1 the change's batch waits until the other writer is done (optimistic path);
    // on Postgres and synchronous SQLite the other writer waits for the change's transaction, which
    // holds the row. Either way the other writer starts after the change read the row.
    const interleave = (other: () => Promise<void>) => {
      let running: Promise<void> | undefined
      const start = () => {
        running ??= other()
      }
      if (database.current.dialect === 'sqlite') holdNextBatch(database.current.db, () => running)
      return { start, done: () => running }
    }

    it('a tenant change read before a delete and re-create is applied to the new tenant, or before the delete', async () => {
      await admin.create({ id: 'acme', metadata: { owner: 'old-customer' } }, { actor: 'alice' })
      const newCustomer = {
        id: 'acme',
        metadata: { owner: 'new-customer' },
        policy: { allowedModels: ['gpt-4o'] },
      }
      const bobRecreates = interleave(async () => {
        await bobs.delete('acme', bob)
        await bobs.create(newCustomer, bob)
      })
      // Alice suspends acme, as AdminService.suspend does; bob starts once she has read the row.
      const result = await configs.applyChange({
        tenantId: 'acme',
        action: 'tenant.suspend',
        actor: 'alice',
        apply: (before: TenantConfig | null) => {
          bobRecreates.start()
          return { ...toTenantConfigInput(before!), status: 'suspended' }
        },
      })
      await bobRecreates.done()

      const stored = await configs.getTenantConfig('acme')
      // The new customer's config is intact: never replaced by the deleted tenant's.
      expect(stored.metadata).toEqual({ owner: 'new-customer' })
      expect(stored.policy.allowedModels).toEqual(['gpt-4o'])
      const records = (await auditLog.list('acme')).items
      expect(records.map((r) => `${r.actor} ${r.action}`).sort()).toEqual([
        'alice tenant.create',
        'alice tenant.suspend',
        'bob tenant.create',
        'bob tenant.delete',
      ])
      expectUnbrokenChain(records)
      // Alice's record says what her write really changed.
      const suspend = records.find((r) => r.action === 'tenant.suspend')!
      expect(suspend.before).toEqual(result.before)
      expect(suspend.after).toEqual(result.after)
      expect(records[0]!.after).toEqual(stored)
    })

    it('a plan change read before a delete and re-create is applied to the new plan, or before the delete', async () => {
      await admin.createPlan({ id: 'pro', metadata: { tier: 'old' } }, { actor: 'alice' })
      const bobRecreates = interleave(async () => {
        await bobs.deletePlan('pro', bob)
        await bobs.createPlan(
          { id: 'pro', metadata: { tier: 'new' }, policy: { allowedTools: ['search'] } },
          bob,
        )
      })
      const result = await plans.applyPlanChange({
        planId: 'pro',
        action: 'plan.update',
        actor: 'alice',
        apply: (before: PlanConfig | null) => {
          bobRecreates.start()
          return { ...toPlanConfigInput(before!), quota: { limits: [{ window: 'day', requests: 5 }] } }
        },
      })
      await bobRecreates.done()

      const stored = await plans.getPlan('pro')
      expect(stored.metadata).toEqual({ tier: 'new' })
      expect(stored.policy.allowedTools).toEqual(['search'])
      const records = (await auditLog.listPlan('pro')).items
      expect(records).toHaveLength(4)
      expectUnbrokenChain(records)
      const update = records.find((r) => r.action === 'plan.update')!
      expect(update.before).toEqual(result.before)
      expect(records[0]!.after).toEqual(stored)
    })

    it('never gives a re-created tenant or plan a revision its previous life had', async () => {
      for (const [table, create, remove] of [
        ['tenants', () => configs.setTenantConfig({ id: 'x' }), () => configs.deleteTenantConfig('x')],
        ['plans', () => plans.setPlan({ id: 'x' }), () => plans.deletePlan('x')],
      ] as const) {
        const seen = new Set<number>()
        for (let life = 0; life < 3; life++) {
          await create()
          seen.add(await revisionOf(database.current, table, 'x'))
          await create() // an update
          seen.add(await revisionOf(database.current, table, 'x'))
          await remove()
        }
        expect(seen.size, table).toBe(6)
      }
      await admin.create({ id: 'y' }, bob)
      const first = await revisionOf(database.current, 'tenants', 'y')
      await admin.delete('y', bob)
      await admin.create({ id: 'y' }, bob)
      expect(await revisionOf(database.current, 'tenants', 'y')).not.toBe(first)
    })
  },
  { kinds: withD1 },
)

// The last ms every store can encode: 9999-12-31T23:59:59.999Z. From year 10000 on Drizzle sends
// a Postgres timestamptz in the extended ISO form (+010000-...), which Postgres does not parse.
const LAST_MS = 253_402_300_799_999

describeEachDatabase(
  'AdminService over the Drizzle stores: timestamps and re-created ids',
  (database) => {
    beforeEach(async () => {
      await database.current.reset()
    })

    it('writes changes and their records up to 9999-12-31T23:59:59.999Z on every dialect', async () => {
      const clock = new ManualClock(LAST_MS + 0.5)
      const configs = new DrizzleConfigManager(database.current.db, { clock, cache: false })
      const plans = new DrizzlePlanStore(database.current.db, { clock, cache: false })
      const auditLog = new DrizzleAuditLog(database.current.db)
      const admin = new AdminService({ store: configs, plans, auditLog, clock })
      await admin.createPlan({ id: 'pro' }, bob)
      const created = await admin.create({ id: 'acme', plan: 'pro' }, bob)
      expect(created.createdAt).toBe(LAST_MS)
      expect((await configs.getTenantConfig('acme')).createdAt).toBe(LAST_MS)
      expect((await admin.audit('acme')).items.map((r) => r.at)).toEqual([LAST_MS])
      expect((await admin.planAudit('pro')).items.map((r) => r.at)).toEqual([LAST_MS])
    })

    it('refuses a change or a reset a clock past the year 9999 cannot record, before writing or resetting', async () => {
      const clock = new ManualClock(T0)
      const configs = new DrizzleConfigManager(database.current.db, { clock, cache: false })
      const auditLog = new DrizzleAuditLog(database.current.db)
      const quotas = new InMemoryQuotaManager(configs, { clock })
      const admin = new AdminService({ store: configs, auditLog, quotas, clock })
      await admin.create({ id: 'acme', quota: { limits: [{ window: 'month', requests: 100 }] } }, bob)
      await quotas.consume('acme', { requests: 7 })
      for (const far of [LAST_MS + 1, 8.7e15]) {
        clock.set(far)
        const reset = await admin.resetUsage('acme', bob).catch((error: unknown) => error)
        expect(reset).toBeInstanceOf(InvalidTenantConfigError)
        expect((reset as InvalidTenantConfigError).issues[0]!.path).toEqual(['at'])
        const change = await admin.suspend('acme', bob).catch((error: unknown) => error)
        expect(change).toBeInstanceOf(InvalidTenantConfigError)
      }
      clock.set(T0)
      expect((await quotas.peek('acme')).windows[0]!.used.requests).toBe(7)
      expect((await configs.getTenantConfig('acme')).status).toBe('active')
      expect((await admin.audit('acme')).items.map((r) => r.action)).toEqual(['tenant.create'])
    })

    it('resets and records the live tenant when another process deleted or re-created it (its cache is stale)', async () => {
      // Two processes over one database, each with its own cached DrizzleConfigManager. B has
      // acme cached from serving its traffic; A deletes acme, then creates it for a new customer.
      const clock = new ManualClock(T0)
      const auditLog = new DrizzleAuditLog(database.current.db)
      const configsA = new DrizzleConfigManager(database.current.db, { clock })
      const configsB = new DrizzleConfigManager(database.current.db, { clock })
      const a = new AdminService({ store: configsA, auditLog, clock })
      const b = new AdminService({
        store: configsB,
        auditLog,
        clock,
        quotas: new InMemoryQuotaManager(configsB, { clock }),
        concurrency: new InMemoryConcurrencyLimiter(),
      })
      await a.create({ id: 'acme', metadata: { customer: 'old' } }, bob)
      await configsB.getTenantConfig('acme')
      clock.advance(1_000)
      await a.delete('acme', bob)
      // Deleted: B refuses, and records nothing after the delete.
      await expect(b.resetUsage('acme', bob)).rejects.toMatchObject({ code: 'tenant_not_found' })
      await expect(b.resetInFlight('acme', bob)).rejects.toMatchObject({ code: 'tenant_not_found' })
      expect((await auditLog.list('acme')).items.map((r) => r.action)).toEqual([
        'tenant.delete',
        'tenant.create',
      ])
      clock.advance(1_000)
      const created = await a.create({ id: 'acme', metadata: { customer: 'new' } }, bob)
      // Re-created: B's records describe the new customer's tenant, not its cached old one.
      clock.advance(1_000)
      await b.resetUsage('acme', bob)
      await b.resetInFlight('acme', bob)
      const [inFlight, usage] = (await auditLog.list('acme', { limit: 2 })).items
      for (const record of [usage!, inFlight!]) {
        expect(record.before, record.action).toEqual(created)
        expect(record.after, record.action).toEqual(created)
      }
      expect([usage!.action, inFlight!.action]).toEqual(['tenant.usage.reset', 'tenant.concurrency.reset'])
    })

    it('starts a tenant created under a deleted id with none of the old usage or slots', async () => {
      const clock = new ManualClock(T0)
      const configs = new DrizzleConfigManager(database.current.db, { clock })
      const quotas = new InMemoryQuotaManager(configs, { clock })
      const limiter = new InMemoryConcurrencyLimiter()
      const admin = new AdminService({
        store: configs,
        auditLog: new DrizzleAuditLog(database.current.db),
        quotas,
        concurrency: limiter,
        clock,
      })
      const limits = { quota: { limits: [{ window: 'month' as const, requests: 100 }] } }
      await admin.create({ id: 'acme', ...limits }, bob)
      await quotas.consume('acme', { requests: 100 })
      await limiter.acquire('acme', 5)
      await admin.delete('acme', bob)
      await admin.create({ id: 'acme', ...limits }, bob)
      expect((await admin.usage('acme')).windows[0]!.used.requests).toBe(0)
      expect((await admin.inFlight('acme')).inFlight).toBe(0)
      // A create of an id that is taken resets nothing.
      await quotas.consume('acme', { requests: 3 })
      await expect(admin.create({ id: 'acme' }, bob)).rejects.toMatchObject({ code: 'tenant_already_exists' })
      expect((await admin.usage('acme')).windows[0]!.used.requests).toBe(3)
    })
  },
  { kinds: withD1 },
)

// Counts a change per call: the metadata's n goes up by one each time it is applied.
const bump = (id: string) => (before: TenantConfig | null) =>
  before === null
    ? { id, metadata: { n: 1 } }
    : { ...toTenantConfigInput(before), metadata: { n: Number(before.metadata.n ?? 0) + 1 } }

describeEachDatabase(
  'a burst of audited changes to one tenant',
  (database) => {
    beforeEach(() => database.current.reset())

    // Racing each other inside one process, the Kth change needed K attempts, and the 33rd and
    // later of 48 failed with "changed concurrently 32 times" (libSQL, D1: the optimistic path).
    it('from one manager: all 48 apply, each with its record', async () => {
      const configs = new DrizzleConfigManager(database.current.db, { cache: false })
      const auditLog = new DrizzleAuditLog(database.current.db)
      const change = { tenantId: 'acme', action: 'tenant.update' as const, actor: 'bob', apply: bump('acme') }
      const results = await Promise.allSettled(Array.from({ length: 48 }, () => configs.applyChange(change)))
      expect(results.filter((r) => r.status === 'rejected')).toEqual([])
      expect((await configs.getTenantConfig('acme')).metadata).toEqual({ n: 48 })
      const records = (await auditLog.list('acme', { limit: 100 })).items
      expect(records).toHaveLength(48)
      expectUnbrokenChain(records)
    })
  },
  { kinds: withD1 },
)

// A database (or role) whose transactions run at REPEATABLE READ or SERIALIZABLE by default:
// PostgreSQL then answers an ordinary race with a serialization failure (40001), which the stores
// passed on as 503; running the transaction again is the answer.
describeEachDatabase(
  'PostgreSQL with default_transaction_isolation',
  (database) => {
    for (const level of ['repeatable read', 'serializable'] as const) {
      it(`${level}: concurrent changes from two managers, and concurrent upserts, all apply`, async () => {
        await database.current.reset()
        const { url, schema } = database.current.postgres!
        const client = postgres(url, {
          max: 8,
          onnotice: () => {},
          connection: { search_path: schema, default_transaction_isolation: level },
        })
        try {
          const db = drizzlePostgres({ client })
          // Two managers: two processes' worth of racing writers (one manager queues its own).
          const managers = [
            new DrizzleConfigManager(db, { cache: false }),
            new DrizzleConfigManager(db, { cache: false }),
          ]
          await managers[0]!.setTenantConfig({ id: 'acme', metadata: { n: 0 } })
          const change = {
            tenantId: 'acme',
            action: 'tenant.update' as const,
            actor: 'bob',
            apply: bump('acme'),
          }
          const changes = await Promise.allSettled(
            Array.from({ length: 16 }, (_, i) => managers[i % 2]!.applyChange(change)),
          )
          expect(changes.filter((r) => r.status === 'rejected')).toEqual([])
          expect((await managers[0]!.getTenantConfig('acme')).metadata).toEqual({ n: 16 })
          const upserts = await Promise.allSettled(
            Array.from({ length: 8 }, (_, i) =>
              managers[i % 2]!.setTenantConfig({ id: 'globex', metadata: { i } }),
            ),
          )
          expect(upserts.filter((r) => r.status === 'rejected')).toEqual([])
        } finally {
          await client.end({ timeout: 1 })
        }
      })
    }
  },
  { kinds: ['postgres'] },
)
