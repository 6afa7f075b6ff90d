import { describe, expect, it } from 'vitest'
import { testConfigManager } from '../testing/index'
import { ManualClock } from './clock'
import { InvalidTenantConfigError } from './errors'
import { InMemoryConfigManager } from './in-memory-config-manager'
import { InMemoryPlanStore } from './in-memory-plan-store'

testConfigManager('InMemoryConfigManager', ({ clock }) => new InMemoryConfigManager({ clock }))

describe('InMemoryConfigManager', () => {
  it('pages exactly over the whole store with offset and keyset', async () => {
    const configs = new InMemoryConfigManager({ clock: new ManualClock(1) })
    expect(await configs.listTenants()).toEqual({ items: [] })
    for (const id of ['c', 'a', 'e', 'b', 'd']) await configs.setTenantConfig({ id })
    const ids = async (options: Parameters<typeof configs.listTenants>[0]) => {
      const page = await configs.listTenants(options)
      return { ids: page.items.map((t) => t.id), next: page.next }
    }
    expect(await ids({})).toEqual({ ids: ['a', 'b', 'c', 'd', 'e'], next: undefined })
    expect(await ids({ limit: 2 })).toEqual({ ids: ['a', 'b'], next: 'b' })
    expect(await ids({ offset: 2, limit: 2 })).toEqual({ ids: ['c', 'd'], next: 'd' })
    expect(await ids({ offset: 3, limit: 2 })).toEqual({ ids: ['d', 'e'], next: undefined })
    expect(await ids({ offset: 5 })).toEqual({ ids: [], next: undefined })
    expect(await ids({ offset: 99 })).toEqual({ ids: [], next: undefined })
    expect(await ids({ after: 'b', limit: 2 })).toEqual({ ids: ['c', 'd'], next: 'd' })
    expect(await ids({ after: 'd', limit: 2 })).toEqual({ ids: ['e'], next: undefined })
    expect(await ids({ after: 'e' })).toEqual({ ids: [], next: undefined })
    expect(await ids({ after: 'bb' })).toEqual({ ids: ['c', 'd', 'e'], next: undefined })
    expect(await ids({ after: 'A' })).toEqual({ ids: ['a', 'b', 'c', 'd', 'e'], next: undefined })
    // `next` is absent when the page ends exactly at the last row.
    expect(await ids({ limit: 5 })).toEqual({ ids: ['a', 'b', 'c', 'd', 'e'], next: undefined })
    await configs.deleteTenantConfig('c')
    expect(await ids({ after: 'b' })).toEqual({ ids: ['d', 'e'], next: undefined })
  })

  it('validates its clock when created', () => {
    expect(() => new InMemoryConfigManager({ clock: {} as never })).toThrow(InvalidTenantConfigError)
  })

  it('rejects null and unknown list options', async () => {
    const configs = new InMemoryConfigManager()
    await expect(configs.listTenants(null as never)).rejects.toBeInstanceOf(InvalidTenantConfigError)
    await expect(configs.listTenants({ cursor: 'a' } as never)).rejects.toBeInstanceOf(
      InvalidTenantConfigError,
    )
  })

  it('uses the system clock by default and stamps whole milliseconds', async () => {
    const before = Date.now()
    const config = await new InMemoryConfigManager().setTenantConfig({ id: 'a' })
    expect(config.createdAt).toBeGreaterThanOrEqual(before)
    expect(config.createdAt).toBeLessThanOrEqual(Date.now())
    const manual = new InMemoryConfigManager({ clock: new ManualClock(1_000.7) })
    expect((await manual.setTenantConfig({ id: 'a' })).updatedAt).toBe(1_000)
  })

  it('refuses a write its clock gives no valid time for, as the database stores do, storing nothing', async () => {
    for (const now of [Number.NaN, -5_000, 8.7e15]) {
      const configs = new InMemoryConfigManager({ clock: { now: () => now } })
      await expect(configs.setTenantConfig({ id: 'a' }), String(now)).rejects.toBeInstanceOf(
        InvalidTenantConfigError,
      )
      await expect(configs.getTenantConfig('a')).rejects.toMatchObject({ code: 'tenant_not_found' })
      const plans = new InMemoryPlanStore({ tenants: configs, clock: { now: () => now } })
      await expect(plans.setPlan({ id: 'pro' }), String(now)).rejects.toBeInstanceOf(InvalidTenantConfigError)
    }
  })
})
