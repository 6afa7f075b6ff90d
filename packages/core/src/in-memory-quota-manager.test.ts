import { describe, expect, it } from 'vitest'
import { rejectionOf } from '../testing/quota-manager'
import { ManualClock } from './clock'
import type { QuotaProvider } from './config'
import { InvalidTenantConfigError } from './errors'
import { InMemoryQuotaManager } from './in-memory-quota-manager'
import type { QuotaConfig } from './schemas'
import { SlidingWindowQuotaManager } from './sliding-window-quota-manager'

const T0 = Date.UTC(2030, 2, 14, 9, 26, 30)
const MINUTE = 60_000

/** The same quota for every tenant id: stands in for a config store with many tenants. */
function everyone(quota: QuotaConfig): QuotaProvider & { calls: number } {
  return {
    calls: 0,
    async quotaConfig() {
      this.calls += 1
      return quota
    },
  }
}

const managers = [
  ['InMemoryQuotaManager', (p: QuotaProvider, clock: ManualClock) => new InMemoryQuotaManager(p, { clock })],
  [
    'SlidingWindowQuotaManager',
    (p: QuotaProvider, clock: ManualClock) => new SlidingWindowQuotaManager(p, { clock }),
  ],
] as const

describe.each(managers)('%s', (_name, create) => {
  it('holds ~0 of 100,000 idle tenants two windows later, after a bounded number of calls', async () => {
    const clock = new ManualClock(T0)
    const manager = create(everyone({ limits: [{ window: 'minute', requests: 500, tokens: 1000 }] }), clock)
    for (let i = 0; i < 100_000; i++) await manager.consume(`tenant-${i}`, { tokens: 3 })
    expect(manager.size).toBe(100_000)
    clock.advance(2 * MINUTE)
    // Each call forgets up to 1,024 expired tenants: 100 calls cover all of them.
    for (let i = 0; i < 100; i++) await manager.consume('active')
    expect(manager.size).toBe(1)
    // A tenant with traffic keeps its state.
    expect((await manager.peek('active')).windows[0]!.used.requests).toBe(100)
  }, 60_000)

  it('does not create state for a denial, a zero cost, a peek or a refund of nothing', async () => {
    const clock = new ManualClock(T0)
    const manager = create(everyone({ limits: [{ window: 'minute', requests: 1, tokens: 10 }] }), clock)
    await manager.consume('a', { tokens: 11 })
    await manager.consume('b', { requests: 0, tokens: 0 })
    await manager.peek('c')
    await manager.adjust('d', { tokens: -5 })
    expect(manager.size).toBe(0)
    await manager.adjust('e', { tokens: 5 })
    expect(manager.size).toBe(1)
  })

  it('an entry emptied by a refund stays until the sweep, and still reads as zero', async () => {
    const clock = new ManualClock(T0)
    const manager = create(everyone({ limits: [{ window: 'minute', tokens: 10 }] }), clock)
    await manager.consume('a', { requests: 0, tokens: 5 })
    await manager.adjust('a', { tokens: -5 })
    expect((await manager.peek('a')).windows[0]!.used).toEqual({ requests: 0, tokens: 0 })
    clock.advance(3 * MINUTE)
    await manager.peek('a')
    expect(manager.size).toBe(0)
  })

  it('reads the clock after the provider answered, so a slow provider cannot stretch a window', async () => {
    const clock = new ManualClock(Date.UTC(2030, 2, 14, 9, 26, 59, 999))
    const quota: QuotaConfig = { limits: [{ window: 'minute', requests: 1 }] }
    const slow: QuotaProvider = {
      async quotaConfig() {
        clock.advance(1)
        return quota
      },
    }
    const manager = create(slow, clock)
    const first = await manager.consume('a')
    expect(first.windows[0]!.used.requests).toBe(1)
    expect(first.allowed).toBe(true)
    expect((await manager.peek('a')).windows[0]!.used.requests).toBe(1)
  })

  it('validates the tenant id and the cost before asking the provider', async () => {
    const provider = everyone({ limits: [] })
    const manager = create(provider, new ManualClock(T0))
    expect(await rejectionOf(manager.consume('no spaces'))).toMatchObject({ code: 'tenant_invalid_id' })
    expect(await rejectionOf(manager.adjust('', { tokens: 1 }))).toMatchObject({ code: 'tenant_invalid_id' })
    expect(await rejectionOf(manager.peek('a/b'))).toMatchObject({ code: 'tenant_invalid_id' })
    expect(await rejectionOf(manager.consume('ok', { tokens: -1 }))).toMatchObject({ code: 'invalid_cost' })
    expect(provider.calls).toBe(0)
  })

  it('passes provider failures through unchanged and rejects an invalid config', async () => {
    const failure = new Error('db down')
    const failing = create({ quotaConfig: () => Promise.reject(failure) }, new ManualClock(T0))
    expect(await rejectionOf(failing.consume('a'))).toBe(failure)
    const bad = create(everyone({ limits: [{ window: 'minute', requests: -5 }] }), new ManualClock(T0))
    expect(await rejectionOf(bad.consume('a'))).toMatchObject({ code: 'tenant_invalid_config' })
  })

  it('rejects a provider without quotaConfig and a clock without now()', () => {
    expect(() => create({} as QuotaProvider, new ManualClock(T0))).toThrow(/quotaConfig/)
    expect(() => create(null as unknown as QuotaProvider, new ManualClock(T0))).toThrow(
      InvalidTenantConfigError,
    )
    expect(() => create(everyone({ limits: [] }), {} as ManualClock)).toThrow(/clock/)
  })
})

describe('InMemoryQuotaManager', () => {
  it('uses the system clock by default', async () => {
    const manager = new InMemoryQuotaManager(everyone({ limits: [{ window: 'minute', requests: 1 }] }))
    const before = Date.now()
    const decision = await manager.consume('a')
    expect(decision.resetAt).toBeGreaterThan(before)
    expect(decision.resetAt).toBeLessThanOrEqual(Math.floor(Date.now() / MINUTE) * MINUTE + MINUTE)
  })
})
