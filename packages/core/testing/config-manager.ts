import {
  type ConfigManager,
  compareTenantIds,
  copyJson,
  InvalidTenantConfigError,
  InvalidTenantIdError,
  isTenantError,
  type ListTenantsOptions,
  ManualClock,
  type TenantConfig,
  type TenantConfigInput,
  TenantNotFoundError,
  tenantConfigSchema,
} from '@tenant/core'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { uniquePrefix } from './unique-prefix'

/** What a {@link testConfigManager} factory receives. */
export interface ConfigManagerFactoryContext {
  /** The clock the store must stamp `createdAt` / `updatedAt` with. */
  clock: ManualClock
}

/** Builds the store under test; called once per test. */
export type ConfigManagerFactory = (
  context: ConfigManagerFactoryContext,
) => ConfigManager | Promise<ConfigManager>

/** A fixed start so that timestamps are realistic and never 0. */
const T0 = Date.UTC(2026, 0, 1)

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error('expected the promise to reject')
}

/** Every tenant with `prefix`, in list order, read with keyset pagination from the prefix. */
async function listPrefix(manager: ConfigManager, prefix: string, limit = 3): Promise<TenantConfig[]> {
  const out: TenantConfig[] = []
  let after = prefix
  for (;;) {
    const page = await manager.listTenants({ after, limit })
    for (const item of page.items) {
      if (!item.id.startsWith(prefix)) return out
      out.push(item)
    }
    if (page.next === undefined) return out
    expectAdvance(after, page.next)
    after = page.next
  }
}

// A cursor that does not move forward would make every pager loop forever.
function expectAdvance(previous: string, next: string): void {
  expect(
    compareTenantIds(next, previous),
    `next ${JSON.stringify(next)} after ${JSON.stringify(previous)}`,
  ).toBe(1)
}

/**
 * The conformance suite every `ConfigManager` passes: CRUD, clock-stamped timestamps, validation,
 * id checks, offset and keyset pagination in binary id order, copies, concurrent writers, and the
 * three provider methods.
 *
 * Safe on a shared database: each test writes ids under its own random prefix, looks only at
 * those, and deletes them afterwards. `factory` is called once per test.
 *
 * @example
 * ```ts
 * import { testConfigManager } from '@tenant/core/testing'
 * testConfigManager('DrizzleConfigManager (libsql)', ({ clock }) => new DrizzleConfigManager(db, { clock }))
 * ```
 */
export function testConfigManager(name: string, factory: ConfigManagerFactory): void {
  describe(name, () => {
    let clock: ManualClock
    let manager: ConfigManager
    let p: string
    const created = new Set<string>()

    const set = async (input: TenantConfigInput): Promise<TenantConfig> => {
      created.add(String(input.id))
      return manager.setTenantConfig(input)
    }

    beforeEach(async () => {
      clock = new ManualClock(T0)
      manager = await factory({ clock })
      p = uniquePrefix('ct')
      created.clear()
    })

    afterEach(async () => {
      for (const id of created) {
        await manager.deleteTenantConfig(id).catch(() => undefined)
      }
    })

    it('stores a config with defaults and stamps both timestamps with the clock', async () => {
      const stored = await set({ id: `${p}a` })
      const expected: TenantConfig = {
        id: `${p}a`,
        status: 'active',
        plan: null,
        quota: { limits: [] },
        rateLimit: null,
        concurrency: null,
        policy: { allowedModels: [], allowedTools: [], allowedMethods: [], allowedPaths: [] },
        metadata: {},
        createdAt: T0,
        updatedAt: T0,
      }
      expect(stored).toEqual(expected)
      expect(await manager.getTenantConfig(`${p}a`)).toEqual(expected)
      expect(tenantConfigSchema.safeParse(stored).success).toBe(true)
    })

    it('round-trips every field, including nested JSON metadata', async () => {
      const input = {
        id: `${p}full`,
        status: 'suspended',
        quota: {
          limits: [
            { window: 'minute', requests: 60 },
            { window: 'day', requests: 10_000, tokens: 2_000_000 },
            { window: 'month', tokens: 0 },
          ],
        },
        rateLimit: { requestsPerSecond: 2.5, burst: 10 },
        concurrency: { maxInFlight: 12 },
        policy: {
          allowedModels: ['gpt-4o', 'claude-sonnet'],
          allowedTools: ['search'],
          allowedMethods: ['GET', 'post'],
          allowedPaths: ['/v1/chat', '/v1/files/*'],
        },
        metadata: {
          plan: 'enterprise',
          name: 'Ünïcødé 🚀 株式会社',
          seats: 42,
          ratio: 0.5,
          trial: false,
          owner: null,
          tags: ['a', 'b'],
          nested: { deep: { list: [1, { x: 'y' }] } },
        },
      } satisfies TenantConfigInput
      const stored = await set(input)
      // `plan` defaults to null; the plan store's suite covers tenants on a plan.
      expect(stored).toEqual({ ...input, plan: null, createdAt: T0, updatedAt: T0 })
      expect(await manager.getTenantConfig(input.id)).toEqual(stored)
    })

    it('round-trips per-subject quota limits (quota.subjects), and a replacement without them drops them', async () => {
      const quota = {
        limits: [{ window: 'minute' as const, requests: 60 }],
        subjects: [
          { match: 'model:*', limits: [{ window: 'minute' as const, tokens: 10_000 }] },
          { match: 'key:live_1', limits: [{ window: 'day' as const, requests: 500 }] },
        ],
      }
      const stored = await set({ id: `${p}subj`, quota })
      expect(stored.quota).toEqual(quota)
      expect((await manager.getTenantConfig(`${p}subj`)).quota).toEqual(quota)
      await set({ id: `${p}subj`, quota: { limits: quota.limits } })
      expect((await manager.getTenantConfig(`${p}subj`)).quota).toEqual({ limits: quota.limits })
    })

    it('throws TenantNotFoundError for an unknown tenant', async () => {
      const error = await rejection(manager.getTenantConfig(`${p}missing`))
      expect(error).toBeInstanceOf(TenantNotFoundError)
      expect(isTenantError(error) && error.code).toBe('tenant_not_found')
      expect(isTenantError(error) && error.status).toBe(404)
      expect(isTenantError(error) && error.tenantId).toBe(`${p}missing`)
    })

    it('deletes a tenant; deleting again or an unknown tenant is TenantNotFoundError', async () => {
      await set({ id: `${p}gone` })
      await set({ id: `${p}kept` })
      await manager.deleteTenantConfig(`${p}gone`)
      await expect(manager.getTenantConfig(`${p}gone`)).rejects.toBeInstanceOf(TenantNotFoundError)
      await expect(manager.deleteTenantConfig(`${p}gone`)).rejects.toBeInstanceOf(TenantNotFoundError)
      await expect(manager.deleteTenantConfig(`${p}never`)).rejects.toBeInstanceOf(TenantNotFoundError)
      expect((await manager.getTenantConfig(`${p}kept`)).id).toBe(`${p}kept`)
      expect((await listPrefix(manager, p)).map((t) => t.id)).toEqual([`${p}kept`])
    })

    it('replaces the whole config on update, keeps createdAt and moves updatedAt with the clock', async () => {
      await set({ id: `${p}u`, metadata: { v: 1 }, rateLimit: { requestsPerSecond: 1, burst: 1 } })
      clock.advance(5_000)
      const updated = await set({ id: `${p}u`, status: 'suspended' })
      expect(updated.createdAt).toBe(T0)
      expect(updated.updatedAt).toBe(T0 + 5_000)
      // A replace, not a merge: omitted fields fall back to their defaults.
      expect(updated.metadata).toEqual({})
      expect(updated.rateLimit).toBeNull()
      expect(updated.status).toBe('suspended')
      expect(await manager.getTenantConfig(`${p}u`)).toEqual(updated)
    })

    it('starts a new createdAt when a deleted id is created again', async () => {
      await set({ id: `${p}again` })
      await manager.deleteTenantConfig(`${p}again`)
      clock.advance(1_000)
      const again = await set({ id: `${p}again` })
      expect(again.createdAt).toBe(T0 + 1_000)
      expect(again.updatedAt).toBe(T0 + 1_000)
    })

    it('rejects invalid input listing every issue, and stores nothing', async () => {
      const bad = {
        id: `${p}bad`,
        quota: {
          limits: [
            { window: 'day', requests: -1 },
            { window: 'day', tokens: 1.5 },
          ],
        },
        rateLimit: { requestsPerSecond: 0, burst: 1 },
        extra: true,
      } as unknown as TenantConfigInput
      const error = await rejection(set(bad))
      expect(error).toBeInstanceOf(InvalidTenantConfigError)
      const { issues, code, status } = error as InvalidTenantConfigError
      expect(code).toBe('tenant_invalid_config')
      expect(status).toBe(400)
      const paths = issues.map((i) => i.path.join('.'))
      expect(paths).toEqual(
        expect.arrayContaining([
          'quota.limits.0.requests',
          'quota.limits.1.tokens',
          'rateLimit.requestsPerSecond',
        ]),
      )
      expect(issues.some((i) => i.code === 'unrecognized_keys')).toBe(true)
      await expect(manager.getTenantConfig(`${p}bad`)).rejects.toBeInstanceOf(TenantNotFoundError)
    })

    it('keeps the previous config when a replacement is invalid', async () => {
      const before = await set({ id: `${p}keep`, metadata: { v: 1 } })
      clock.advance(1_000)
      await expect(
        set({ id: `${p}keep`, quota: { limits: [{ window: 'week' }] } } as unknown as TenantConfigInput),
      ).rejects.toBeInstanceOf(InvalidTenantConfigError)
      expect(await manager.getTenantConfig(`${p}keep`)).toEqual(before)
    })

    it('rejects metadata that is not plain JSON', async () => {
      const cases: unknown[] = [new Date(0), undefined, () => 1, Number.NaN, Number.POSITIVE_INFINITY, 10n]
      for (const value of cases) {
        const error = await rejection(set({ id: `${p}meta`, metadata: { value } }))
        expect(error, String(value)).toBeInstanceOf(InvalidTenantConfigError)
        expect((error as InvalidTenantConfigError).issues[0]?.path).toEqual(['metadata', 'value'])
      }
      const cyclic: Record<string, unknown> = {}
      cyclic.self = cyclic
      await expect(set({ id: `${p}meta`, metadata: cyclic })).rejects.toBeInstanceOf(InvalidTenantConfigError)
      await expect(manager.getTenantConfig(`${p}meta`)).rejects.toBeInstanceOf(TenantNotFoundError)
    })

    it('rejects invalid tenant ids: InvalidTenantIdError on reads, an id issue on writes', async () => {
      const bad = ['', 'a/b', 'a b', 'a:b', 'é', 'x'.repeat(256), `${p}\n`]
      for (const id of bad) {
        for (const call of [
          () => manager.getTenantConfig(id),
          () => manager.deleteTenantConfig(id),
          () => manager.quotaConfig(id),
          () => manager.policyConfig(id),
          () => manager.rateLimitConfig(id),
        ]) {
          const error = await rejection(call())
          expect(error, JSON.stringify(id)).toBeInstanceOf(InvalidTenantIdError)
          expect((error as InvalidTenantIdError).status).toBe(400)
        }
        const error = await rejection(set({ id }))
        expect(error).toBeInstanceOf(InvalidTenantConfigError)
        expect((error as InvalidTenantConfigError).issues.map((i) => i.path.join('.'))).toContain('id')
      }
      // Non-strings from untyped callers are refused the same way.
      await expect(manager.getTenantConfig(42 as unknown as string)).rejects.toBeInstanceOf(
        InvalidTenantIdError,
      )
      // 255 characters is the longest valid id.
      const longest = `${p}${'x'.repeat(255 - p.length)}`
      await set({ id: longest })
      expect((await manager.getTenantConfig(longest)).id).toBe(longest)
    })

    it('returns deeply frozen configs: the store never changes behind a caller, nor a caller behind it', async () => {
      const input = {
        id: `${p}frozen`,
        quota: { limits: [{ window: 'day' as const, requests: 10 }] },
        policy: { allowedModels: ['m1'] },
        rateLimit: { requestsPerSecond: 5, burst: 10 },
        metadata: { nested: { list: [1, 2] } },
      }
      const stored = await set(input)
      // The input is copied on the way in and stays the caller's (and mutable).
      input.quota.limits[0]!.requests = 99
      input.policy.allowedModels.push('m2')
      input.metadata.nested.list.push(3)
      expect(Object.isFrozen(input)).toBe(false)

      const page = await manager.listTenants({ after: p, limit: 100 })
      const listed = page.items.find((item) => item.id === `${p}frozen`)!
      const reads = [
        stored,
        await manager.getTenantConfig(`${p}frozen`),
        listed,
        await manager.quotaConfig(`${p}frozen`),
        await manager.policyConfig(`${p}frozen`),
        await manager.rateLimitConfig(`${p}frozen`),
      ]
      const unfrozen: string[] = []
      const walk = (value: unknown, path: string): void => {
        if (typeof value !== 'object' || value === null) return
        if (!Object.isFrozen(value)) unfrozen.push(path)
        for (const [key, child] of Object.entries(value)) walk(child, `${path}.${key}`)
      }
      for (const [i, read] of reads.entries()) walk(read, `read${i}`)
      expect(unfrozen).toEqual([])

      // Changing what was read fails loudly (strict mode) instead of changing the store.
      const read = await manager.getTenantConfig(`${p}frozen`)
      expect(() => read.policy.allowedModels.push('m3')).toThrow(TypeError)
      expect(() => {
        ;(read.quota.limits[0] as { requests?: number }).requests = 1
      }).toThrow(TypeError)
      expect(() => {
        ;(read.metadata as Record<string, unknown>).nested = 'changed'
      }).toThrow(TypeError)

      const again = await manager.getTenantConfig(`${p}frozen`)
      expect(again.quota).toEqual({ limits: [{ window: 'day', requests: 10 }] })
      expect(again.policy.allowedModels).toEqual(['m1'])
      expect(again.metadata).toEqual({ nested: { list: [1, 2] } })
      expect(again.rateLimit).toEqual({ requestsPerSecond: 5, burst: 10 })
      // A copy is the way to a changed version, and storing it leaves earlier reads as they were.
      const { createdAt: _c, updatedAt: _u, ...changed } = copyJson(again)
      changed.policy.allowedModels.push('m4')
      await set(changed)
      expect((await manager.policyConfig(`${p}frozen`)).allowedModels).toEqual(['m1', 'm4'])
      expect(again.policy.allowedModels).toEqual(['m1'])
    })

    it('lists with keyset pagination in binary id order', async () => {
      // Code-unit order: '-' < '.' < '0' < '9' < 'A' < 'Z' < '_' < 'a' < 'z'. A locale-aware
      // collation (case-insensitive, punctuation-ignoring) orders these differently.
      const suffixes = ['b', 'A', '_x', 'a', '-x', '.x', '0', 'Z', 'aa', 'B', '9', 'z']
      for (const s of suffixes) await set({ id: p + s })
      const expected = suffixes.map((s) => p + s).sort(compareTenantIds)
      expect(expected.slice(0, 3)).toEqual([`${p}-x`, `${p}.x`, `${p}0`])

      for (const limit of [1, 2, 5, 50]) {
        expect((await listPrefix(manager, p, limit)).map((t) => t.id)).toEqual(expected)
      }

      const page = await manager.listTenants({ after: p, limit: 5 })
      expect(page.items.map((t) => t.id)).toEqual(expected.slice(0, 5))
      expect(page.next).toBe(expected[4])
      const second = await manager.listTenants({ after: page.next!, limit: 5 })
      expect(second.items.map((t) => t.id)).toEqual(expected.slice(5, 10))
      // A cursor that is not a stored id works: it is a position in the order.
      const fromGap = await manager.listTenants({ after: `${p}a0`, limit: 2 })
      expect(fromGap.items.map((t) => t.id)).toEqual([`${p}aa`, `${p}b`])
      // Items are whole configs.
      expect(page.items[0]).toEqual(await manager.getTenantConfig(expected[0]!))
    })

    it('uses a default page size of 50', async () => {
      for (let i = 0; i < 51; i++) await set({ id: `${p}${String(i).padStart(2, '0')}` })
      const page = await manager.listTenants({ after: p })
      expect(page.items).toHaveLength(50)
      expect(page.items.every((t) => t.id.startsWith(p))).toBe(true)
      expect(page.next).toBe(`${p}49`)
      const rest = await manager.listTenants({ after: page.next!, limit: 1000 })
      expect(rest.items[0]!.id).toBe(`${p}50`)
    })

    it('lists with offset pagination in the same order', async () => {
      const ids = ['e', 'a', 'c', 'b', 'd'].map((s) => p + s)
      for (const id of ids) await set({ id })
      const expected = [...ids].sort(compareTenantIds)

      // Offsets count from the start of the whole store, which on a shared database also holds
      // other tests' rows; find where this test's rows start, and retry if another writer moved
      // them between the calls.
      let lastError: unknown
      for (let attempt = 0; attempt < 5; attempt++) {
        try {
          const start = await offsetOf(manager, expected[0]!)
          const pages: string[][] = []
          for (let offset = start; offset < start + 5; offset += 2) {
            const page = await manager.listTenants({ offset, limit: 2 })
            pages.push(page.items.map((t) => t.id))
            // More rows follow the first two pages (this test's own), so they carry a cursor.
            if (offset < start + 4) expect(page.next).toBe(page.items[1]?.id)
          }
          expect(pages.flat().filter((id) => id.startsWith(p))).toEqual(expected)
          expect(pages[0]).toEqual(expected.slice(0, 2))
          expect(pages[1]).toEqual(expected.slice(2, 4))
          expect(pages[2]![0]).toBe(expected[4])
          return
        } catch (error) {
          lastError = error
        }
      }
      throw lastError
    })

    it('rejects invalid list options with a TenantError', async () => {
      const bad: unknown[] = [
        { limit: 0 },
        { limit: 1001 },
        { limit: -1 },
        { limit: 1.5 },
        { limit: Number.NaN },
        { limit: '10' },
        { offset: -1 },
        { offset: 0.5 },
        { offset: 1, after: p },
        { after: '' },
        { after: 42 },
      ]
      for (const options of bad) {
        const error = await rejection(manager.listTenants(options as ListTenantsOptions))
        expect(isTenantError(error), JSON.stringify(options)).toBe(true)
        expect((error as InvalidTenantConfigError).code).toBe('tenant_invalid_config')
        expect((error as InvalidTenantConfigError).status).toBe(400)
      }
      await expect(manager.listTenants({ limit: 1000 })).resolves.toBeDefined()
      await expect(manager.listTenants({ limit: 1, offset: 0 })).resolves.toBeDefined()
      await expect(manager.listTenants()).resolves.toBeDefined()
    })

    it('keeps keyset pages stable while rows are inserted and deleted', async () => {
      for (const s of ['b', 'd', 'f', 'h', 'j']) await set({ id: p + s })
      const seen: string[] = []
      let page = await manager.listTenants({ after: p, limit: 2 })
      seen.push(...page.items.map((t) => t.id))
      expect(seen).toEqual([`${p}b`, `${p}d`])

      // Behind the cursor (never seen), ahead of it (seen once), and a delete ahead of it.
      await set({ id: `${p}a` })
      await set({ id: `${p}c` })
      await set({ id: `${p}e` })
      await set({ id: `${p}i` })
      await manager.deleteTenantConfig(`${p}h`)
      while (page.next !== undefined) {
        const after = page.next
        page = await manager.listTenants({ after, limit: 2 })
        if (page.next !== undefined) expectAdvance(after, page.next)
        const mine = page.items.filter((t) => t.id.startsWith(p))
        seen.push(...mine.map((t) => t.id))
        if (mine.length < page.items.length) break
      }
      expect(seen).toEqual([`${p}b`, `${p}d`, `${p}e`, `${p}f`, `${p}i`, `${p}j`])
    })

    it('survives concurrent interleaved writers and readers', async () => {
      const shared = [`${p}s0`, `${p}s1`, `${p}s2`]
      const distinct = Array.from({ length: 12 }, (_, i) => `${p}d${i}`)
      for (const id of shared) await set({ id, metadata: { v: -1 } })
      const ops: Promise<unknown>[] = []
      for (let i = 0; i < 60; i++) {
        const id = shared[i % shared.length]!
        ops.push(set({ id, metadata: { v: i } }))
        ops.push(manager.getTenantConfig(id))
        ops.push(manager.quotaConfig(id))
      }
      for (const [i, id] of distinct.entries()) {
        ops.push(set({ id, metadata: { v: i }, quota: { limits: [{ window: 'hour', requests: i }] } }))
      }
      const results = await Promise.allSettled(ops)
      expect(results.filter((r) => r.status === 'rejected')).toEqual([])

      for (const [s, id] of shared.entries()) {
        const config = await manager.getTenantConfig(id)
        const written = [
          -1,
          ...Array.from({ length: 60 }, (_, i) => i).filter((i) => i % shared.length === s),
        ]
        expect(written).toContain(config.metadata.v)
        expect(config.createdAt).toBe(T0)
      }
      for (const [i, id] of distinct.entries()) {
        const config = await manager.getTenantConfig(id)
        expect(config.metadata).toEqual({ v: i })
        expect(config.quota.limits).toEqual([{ window: 'hour', requests: i }])
      }
      const listed = (await listPrefix(manager, p, 100)).map((t) => t.id)
      expect(listed).toEqual([...shared, ...distinct].sort(compareTenantIds))
    })

    it('provides quota, policy, rate-limit and concurrency configs', async () => {
      await set({
        id: `${p}prov`,
        quota: { limits: [{ window: 'minute', requests: 5, tokens: 100 }] },
        policy: { allowedModels: ['m'], allowedPaths: ['/v1/*'] },
        rateLimit: { requestsPerSecond: 10, burst: 20 },
        concurrency: { maxInFlight: 3 },
      })
      await set({ id: `${p}bare` })
      expect(await manager.quotaConfig(`${p}prov`)).toEqual({
        limits: [{ window: 'minute', requests: 5, tokens: 100 }],
      })
      expect(await manager.policyConfig(`${p}prov`)).toEqual({
        allowedModels: ['m'],
        allowedTools: [],
        allowedMethods: [],
        allowedPaths: ['/v1/*'],
      })
      expect(await manager.rateLimitConfig(`${p}prov`)).toEqual({ requestsPerSecond: 10, burst: 20 })
      expect(await manager.quotaConfig(`${p}bare`)).toEqual({ limits: [] })
      expect(await manager.rateLimitConfig(`${p}bare`)).toBeNull()
      expect(await manager.concurrencyConfig(`${p}prov`)).toEqual({ maxInFlight: 3 })
      expect(await manager.concurrencyConfig(`${p}bare`)).toBeNull()
    })

    it('providers throw TenantNotFoundError for an unknown tenant', async () => {
      for (const call of [
        () => manager.quotaConfig(`${p}none`),
        () => manager.policyConfig(`${p}none`),
        () => manager.rateLimitConfig(`${p}none`),
        () => manager.concurrencyConfig(`${p}none`),
      ]) {
        const error = await rejection(call())
        expect(error).toBeInstanceOf(TenantNotFoundError)
        expect((error as TenantNotFoundError).tenantId).toBe(`${p}none`)
      }
    })
  })
}

/** Where `id` sits in the whole store's order, found with offset pages. */
async function offsetOf(manager: ConfigManager, id: string): Promise<number> {
  for (let offset = 0; ; offset += 1000) {
    const page = await manager.listTenants({ offset, limit: 1000 })
    const index = page.items.findIndex((t) => t.id === id)
    if (index >= 0) return offset + index
    if (page.items.length < 1000 || offset > 10_000_000)
      throw new Error(`${id} not found by offset pagination`)
  }
}
