import { describe, expect, it, vi } from 'vitest'
import { testAuditedTenantStore } from '../testing/audited-store'
import { rejectionOf as rejects } from '../testing/quota-manager'
import type { AuditListOptions, AuditLog, AuditRecordInput } from './audit'
import { auditedStore, MAX_QUEUED_CHANGES, MAX_QUEUED_CHANGES_TOTAL } from './audited-store'
import { ManualClock } from './clock'
import { type ConfigManager, getTenantConfigOrNull } from './config'
import { InvalidTenantConfigError, isTenantError, TenantBackendError } from './errors'
import { InMemoryAuditLog } from './in-memory-audit-log'
import { InMemoryConfigManager } from './in-memory-config-manager'
import type { TenantConfigInput } from './schemas'

const T0 = Date.UTC(2026, 0, 1)

testAuditedTenantStore('auditedStore(InMemoryConfigManager, InMemoryAuditLog)', () => {
  const clock = new ManualClock(T0)
  const auditLog = new InMemoryAuditLog()
  return { store: auditedStore(new InMemoryConfigManager({ clock }), auditLog, { clock }), auditLog, clock }
})

// An audit store that is down: the fault cannot be produced for real in memory.
class FailingAuditLog implements AuditLog {
  readonly inner = new InMemoryAuditLog()
  failure: unknown = null
  append(record: AuditRecordInput) {
    if (this.failure !== null) return Promise.reject(this.failure)
    return this.inner.append(record)
  }
  list(tenantId: string, options?: AuditListOptions) {
    return this.inner.list(tenantId, options)
  }
}

function setup() {
  const clock = new ManualClock(T0)
  const configs = new InMemoryConfigManager({ clock })
  const auditLog = new FailingAuditLog()
  const store = auditedStore(configs, auditLog, { clock })
  return { clock, configs, auditLog, store }
}

const create = (id: string, metadata: Record<string, unknown> = {}) => ({
  tenantId: id,
  action: 'tenant.create' as const,
  actor: 'alice',
  apply: (): TenantConfigInput => ({ id, metadata }),
})

describe('auditedStore: compensation when the audit append fails', () => {
  it('removes a created tenant and reports a backend error', async () => {
    const { configs, auditLog, store } = setup()
    auditLog.failure = new Error('audit db down')
    const error = await rejects(store.applyChange(create('acme')))
    expect(error).toBeInstanceOf(TenantBackendError)
    expect((error as Error).message).toMatch(/the change was undone/)
    expect((error as Error).cause).toBe(auditLog.failure)
    expect(await getTenantConfigOrNull(configs, 'acme')).toBeNull()
  })

  it('restores the previous config of an updated tenant', async () => {
    const { configs, auditLog, store } = setup()
    await store.applyChange(create('acme', { v: 1 }))
    auditLog.failure = new Error('audit db down')
    await rejects(
      store.applyChange({
        tenantId: 'acme',
        action: 'tenant.quota.update',
        actor: 'alice',
        apply: () => ({
          id: 'acme',
          metadata: { v: 2 },
          quota: { limits: [{ window: 'day', requests: 5 }] },
        }),
      }),
    )
    const restored = await configs.getTenantConfig('acme')
    expect(restored.metadata).toEqual({ v: 1 })
    expect(restored.quota).toEqual({ limits: [] })
    expect((await auditLog.list('acme')).items.map((r) => r.action)).toEqual(['tenant.create'])
  })

  it('re-creates a deleted tenant with its previous content', async () => {
    const { configs, auditLog, store } = setup()
    await store.applyChange(create('acme', { v: 1 }))
    auditLog.failure = new Error('audit db down')
    await rejects(
      store.applyChange({ tenantId: 'acme', action: 'tenant.delete', actor: 'a', apply: () => null }),
    )
    expect((await configs.getTenantConfig('acme')).metadata).toEqual({ v: 1 })
  })

  // A plain write through the store while a change waits for its append: before, it went through
  // at once, and the restore then overwrote it (or brought back the tenant it deleted).
  it('runs a plain write made meanwhile after the undo, so the undo never erases it', async () => {
    const clock = new ManualClock(T0)
    const configs = new InMemoryConfigManager({ clock })
    let failAppend!: (error: Error) => void
    const slowLog: AuditLog = {
      append: () =>
        new Promise<never>((_, reject) => {
          failAppend = reject
        }),
      list: (id, options) => new InMemoryAuditLog().list(id, options),
    }
    const store = auditedStore(configs, slowLog, { clock })
    for (const plain of ['set', 'delete'] as const) {
      await configs.setTenantConfig({ id: 'acme', metadata: { v: 'original' } })
      const change = store.applyChange({
        tenantId: 'acme',
        action: 'tenant.update',
        actor: 'alice',
        apply: () => ({ id: 'acme', metadata: { v: 'audited' } }),
      })
      await vi.waitFor(() => expect(failAppend).toBeDefined())
      const write =
        plain === 'set'
          ? store.setTenantConfig({ id: 'acme', metadata: { v: 'meanwhile' } })
          : store.deleteTenantConfig('acme')
      failAppend(new Error('audit db down'))
      expect(await rejects(change)).toBeInstanceOf(TenantBackendError)
      await write
      if (plain === 'set')
        expect((await configs.getTenantConfig('acme')).metadata).toEqual({ v: 'meanwhile' })
      else expect(await getTenantConfigOrNull(configs, 'acme')).toBeNull()
      failAppend = undefined as never
    }
  })

  it('passes a TenantError from the log through unchanged', async () => {
    const { configs, auditLog, store } = setup()
    auditLog.failure = new InvalidTenantConfigError([
      { path: ['actor'], message: 'too long', code: 'too_big' },
    ])
    expect(await rejects(store.applyChange(create('acme')))).toBe(auditLog.failure)
    expect(await getTenantConfigOrNull(configs, 'acme')).toBeNull()
  })

  it('says so when the restore fails too, keeping both causes', async () => {
    const { configs, auditLog } = setup()
    const restoreFailure = new Error('config db down')
    let writes = 0
    const flaky: ConfigManager = {
      getTenantConfig: (id) => configs.getTenantConfig(id),
      listTenants: (options) => configs.listTenants(options),
      quotaConfig: (id) => configs.quotaConfig(id),
      policyConfig: (id) => configs.policyConfig(id),
      rateLimitConfig: (id) => configs.rateLimitConfig(id),
      concurrencyConfig: (id) => configs.concurrencyConfig(id),
      setTenantConfig: (input) => {
        writes += 1
        return writes === 1 ? configs.setTenantConfig(input) : Promise.reject(restoreFailure)
      },
      deleteTenantConfig: () => Promise.reject(restoreFailure),
    }
    const store = auditedStore(flaky, auditLog)
    auditLog.failure = new Error('audit db down')
    const error = await rejects(store.applyChange(create('acme')))
    expect(error).toBeInstanceOf(TenantBackendError)
    expect((error as Error).message).toMatch(/may be stored without an audit record/)
    expect((error as Error).message).toMatch(/it created the tenant/)
    expect(((error as Error).cause as AggregateError).errors).toEqual([auditLog.failure, restoreFailure])
  })
})

describe('auditedStore', () => {
  it('delegates reads and provider methods to the config manager', async () => {
    const { configs, store } = setup()
    await configs.setTenantConfig({ id: 'acme', rateLimit: { requestsPerSecond: 5, burst: 10 } })
    expect(await store.getTenantConfig('acme')).toEqual(await configs.getTenantConfig('acme'))
    expect(await store.rateLimitConfig('acme')).toEqual({ requestsPerSecond: 5, burst: 10 })
    expect(await store.quotaConfig('acme')).toEqual({ limits: [] })
    expect((await store.policyConfig('acme')).allowedModels).toEqual([])
    expect((await store.listTenants()).items.map((t) => t.id)).toEqual(['acme'])
  })

  it('keeps serving other tenants while one change is in flight', async () => {
    const { store } = setup()
    await store.applyChange(create('a'))
    await store.applyChange(create('b'))
    // A change whose apply throws must release its tenant's lock for the next change.
    await rejects(
      store.applyChange({
        tenantId: 'a',
        action: 'tenant.update',
        actor: 'x',
        apply: () => {
          throw new Error('no')
        },
      }),
    )
    const result = await store.applyChange({
      tenantId: 'a',
      action: 'tenant.suspend',
      actor: 'x',
      apply: () => ({ id: 'a', status: 'suspended' }),
    })
    expect(result.after?.status).toBe('suspended')
  })
})

// A config store whose writes wait until the test lets them through: a slow database, held.
class HeldConfigManager extends InMemoryConfigManager {
  #release: (() => void) | undefined
  #held: Promise<void> | undefined
  hold(): void {
    this.#held = new Promise((resolve) => (this.#release = resolve))
  }
  release(): void {
    this.#release?.()
    this.#held = undefined
  }
  override async setTenantConfig(input: TenantConfigInput) {
    await this.#held
    return super.setTenantConfig(input)
  }
}

describe('auditedStore: bounded queues', () => {
  const update = (id: string, n: number) => ({
    tenantId: id,
    action: 'tenant.update' as const,
    actor: 'alice',
    apply: (): TenantConfigInput => ({ id, metadata: { n } }),
  })

  it(`lets ${MAX_QUEUED_CHANGES} changes wait behind one tenant's change in progress, and refuses more at once`, async () => {
    const configs = new HeldConfigManager()
    const store = auditedStore(configs, new InMemoryAuditLog())
    await store.applyChange(create('acme'))
    configs.hold()
    const accepted = Array.from({ length: MAX_QUEUED_CHANGES + 1 }, (_, n) =>
      store.applyChange(update('acme', n)),
    )
    const refused = await rejects(store.applyChange(update('acme', -1)))
    expect(refused).toBeInstanceOf(TenantBackendError)
    expect((refused as TenantBackendError).message).toMatch(`${MAX_QUEUED_CHANGES} changes already wait`)
    expect((refused as TenantBackendError).tenantId).toBe('acme')
    // Another tenant is not held up by the count.
    const other = store.applyChange(create('globex'))
    configs.release()
    const results = await Promise.all(accepted)
    await other
    // Every accepted change ran, in order; the refused one never did.
    expect(results.map((r) => r.after?.metadata.n)).toEqual(
      Array.from({ length: MAX_QUEUED_CHANGES + 1 }, (_, n) => n),
    )
    expect((await configs.getTenantConfig('acme')).metadata).toEqual({ n: MAX_QUEUED_CHANGES })
    // Once drained, the tenant takes changes again.
    await store.applyChange(update('acme', 7))
    expect((await configs.getTenantConfig('acme')).metadata).toEqual({ n: 7 })
  })

  it(`refuses a change once ${MAX_QUEUED_CHANGES_TOTAL} wait over all tenants`, async () => {
    const configs = new HeldConfigManager()
    const store = auditedStore(configs, new InMemoryAuditLog())
    configs.hold()
    const tenants = MAX_QUEUED_CHANGES_TOTAL / MAX_QUEUED_CHANGES
    const accepted: Promise<unknown>[] = []
    // One change in progress and MAX_QUEUED_CHANGES waiting, for each of `tenants` tenants.
    for (let t = 0; t < tenants; t++) {
      for (let n = 0; n <= MAX_QUEUED_CHANGES; n++) accepted.push(store.applyChange(create(`t${t}`, { n })))
    }
    // A new tenant's first change does not wait; its second would.
    const first = store.applyChange(create('late'))
    const refused = await rejects(store.applyChange(update('late', 1)))
    expect((refused as TenantBackendError).message).toMatch(
      `${MAX_QUEUED_CHANGES_TOTAL} changes already wait`,
    )
    configs.release()
    // The creates after the first of each tenant find it existing and replace it (apply ignores before).
    await Promise.all(accepted)
    await first
    expect((await configs.getTenantConfig('t0')).metadata).toEqual({ n: MAX_QUEUED_CHANGES })
  })
})

describe('getTenantConfigOrNull', () => {
  it('is null for an unknown tenant and rethrows other errors', async () => {
    const configs = new InMemoryConfigManager()
    expect(await getTenantConfigOrNull(configs, 'nobody')).toBeNull()
    const error = await rejects(getTenantConfigOrNull(configs, 'bad id'))
    expect(isTenantError(error) && error.code).toBe('tenant_invalid_id')
  })
})
