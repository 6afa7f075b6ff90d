import { describe, expect, it } from 'vitest'
import { ManualClock } from './clock'
import { tenantConfigNow } from './fast-path'
import { InMemoryConfigManager } from './in-memory-config-manager'
import { InMemoryQuotaManager } from './in-memory-quota-manager'
import type { TenantConfig } from './schemas'
import { SlidingWindowQuotaManager } from './sliding-window-quota-manager'
import { TokenBucketRateLimiter } from './token-bucket-rate-limiter'

const START = Date.UTC(2026, 0, 15, 10, 20, 30)

/**
 * A config store with the fast read (`tenantConfigNow`) that runs `onRead` first: a user's store
 * whose read calls back into the manager (an admin reset, another tenant's consume that sweeps)
 * before the manager decides.
 */
function storeCalling(inner: InMemoryConfigManager, onRead: () => void) {
  return {
    [tenantConfigNow](id: string): TenantConfig {
      onRead()
      return inner[tenantConfigNow](id)
    },
    getTenantConfig: (id: string) => inner.getTenantConfig(id),
    quotaConfig: async (id: string) => (await inner.getTenantConfig(id)).quota,
    rateLimitConfig: async (id: string) => (await inner.getTenantConfig(id)).rateLimit,
  }
}

describe('a config read that calls back into the manager', () => {
  it.each([
    ['InMemoryQuotaManager', InMemoryQuotaManager],
    ['SlidingWindowQuotaManager', SlidingWindowQuotaManager],
  ] as const)('%s charges the request after a reset run during the read', async (_, Manager) => {
    const clock = new ManualClock(START)
    const configs = new InMemoryConfigManager({ clock })
    await configs.setTenantConfig({ id: 'acme', quota: { limits: [{ window: 'minute', requests: 10 }] } })
    let resetOnRead = false
    const store = storeCalling(configs, () => {
      if (!resetOnRead) return
      resetOnRead = false
      void manager.reset('acme')
    })
    const manager = new Manager(store as never, { clock })
    await manager.consume('acme')
    await manager.consume('acme')
    resetOnRead = true
    // The entry read before the reset is no longer the map's: charged in place, it counted nothing.
    expect((await manager.consume('acme')).remaining.requests).toBe(9)
    expect((await manager.peek('acme')).windows[0]!.used.requests).toBe(1)
    resetOnRead = false
    await manager.consume('acme')
    expect((await manager.peek('acme')).windows[0]!.used.requests).toBe(2)
  })

  it('TokenBucketRateLimiter takes from the bucket a reset during the read left', async () => {
    const clock = new ManualClock(START)
    const configs = new InMemoryConfigManager({ clock })
    await configs.setTenantConfig({ id: 'acme', rateLimit: { requestsPerSecond: 0.001, burst: 3 } })
    let resetOnRead = false
    const store = storeCalling(configs, () => {
      if (!resetOnRead) return
      resetOnRead = false
      void limiter.reset('acme')
    })
    const limiter = new TokenBucketRateLimiter(store as never, { clock })
    await limiter.consume('acme')
    await limiter.consume('acme')
    resetOnRead = true
    expect((await limiter.consume('acme')).remaining).toBe(2)
    expect((await limiter.consume('acme')).remaining).toBe(1)
  })
})
