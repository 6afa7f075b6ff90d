import { describe, expect, it } from 'vitest'
import { ManualClock } from './clock'
import { InvalidTenantIdError, TenantNotFoundError } from './errors'
import {
  configSource,
  configSourceOf,
  consumeNow,
  consumeQuota,
  consumeRate,
  evaluateNow,
  evaluatePolicy,
  isThenable,
  promiseOf,
  readTenantConfig,
  tenantConfigNow,
} from './fast-path'
import { InMemoryConfigManager } from './in-memory-config-manager'
import { InMemoryQuotaManager } from './in-memory-quota-manager'
import { ConfigPolicyEvaluator } from './policy-evaluator'
import type { QuotaConfig } from './schemas'
import { SlidingWindowQuotaManager } from './sliding-window-quota-manager'
import { TokenBucketRateLimiter } from './token-bucket-rate-limiter'

const NOW = Date.UTC(2026, 0, 1, 12, 0, 30)

async function setup() {
  const clock = new ManualClock(NOW)
  const configs = new InMemoryConfigManager({ clock })
  await configs.setTenantConfig({
    id: 'acme',
    quota: { limits: [{ window: 'minute', requests: 2 }] },
    rateLimit: { requestsPerSecond: 1, burst: 2 },
    policy: { allowedModels: ['small'], allowedTools: [], allowedMethods: [], allowedPaths: [] },
  })
  return { clock, configs }
}

/** The same store behind an interface that has only the public, promise-returning methods. */
function withoutFastPath(configs: InMemoryConfigManager) {
  return {
    quotaConfig: (id: string) => configs.quotaConfig(id),
    policyConfig: (id: string) => configs.policyConfig(id),
    rateLimitConfig: (id: string) => configs.rateLimitConfig(id),
  }
}

describe('fast path', () => {
  it('reads an in-memory config as a value, and throws what getTenantConfig rejects with', async () => {
    const { configs } = await setup()
    const config = readTenantConfig(configs, 'acme')
    expect(isThenable(config)).toBe(false)
    expect(config).toBe(await configs.getTenantConfig('acme'))
    expect(() => configs[tenantConfigNow]('nobody')).toThrow(TenantNotFoundError)
    expect(() => configs[tenantConfigNow]('bad id')).toThrow(InvalidTenantIdError)
    // A store without the fast read answers through getTenantConfig.
    const plain = { getTenantConfig: (id: string) => configs.getTenantConfig(id) }
    expect(readTenantConfig(plain, 'acme')).toBeInstanceOf(Promise)
  })

  it('decides as a value with a store that reads without I/O, and as a promise otherwise', async () => {
    const fast = await setup()
    const slow = await setup()
    const managers = {
      fast: {
        quota: new InMemoryQuotaManager(fast.configs, { clock: fast.clock }),
        rate: new TokenBucketRateLimiter(fast.configs, { clock: fast.clock }),
        policy: new ConfigPolicyEvaluator(fast.configs),
      },
      slow: {
        quota: new InMemoryQuotaManager(withoutFastPath(slow.configs), { clock: slow.clock }),
        rate: new TokenBucketRateLimiter(withoutFastPath(slow.configs), { clock: slow.clock }),
        policy: new ConfigPolicyEvaluator(withoutFastPath(slow.configs)),
      },
    }
    for (let i = 0; i < 3; i++) {
      const quota = consumeQuota(managers.fast.quota, 'acme', { tokens: 0 })
      const rate = consumeRate(managers.fast.rate, 'acme')
      const policy = evaluatePolicy(managers.fast.policy, 'acme', { model: i === 2 ? 'big' : 'small' })
      expect([quota, rate, policy].some(isThenable)).toBe(false)
      const slowQuota = consumeQuota(managers.slow.quota, 'acme', { tokens: 0 })
      const slowRate = consumeRate(managers.slow.rate, 'acme')
      const slowPolicy = evaluatePolicy(managers.slow.policy, 'acme', { model: i === 2 ? 'big' : 'small' })
      expect([slowQuota, slowRate, slowPolicy].every(isThenable)).toBe(true)
      expect([quota, rate, policy]).toEqual(await Promise.all([slowQuota, slowRate, slowPolicy]))
    }
  })

  it('uses a config handed over, and says which store it reads (configSource)', async () => {
    const { clock, configs } = await setup()
    const quotas = new InMemoryQuotaManager(configs, { clock })
    const limiter = new TokenBucketRateLimiter(configs, { clock })
    const policy = new ConfigPolicyEvaluator(configs)
    for (const consumer of [quotas, limiter, policy]) expect(configSourceOf(consumer)).toBe(configs)
    expect(quotas[configSource]).toBe(configs)
    expect(configSourceOf({})).toBeUndefined()

    const roomy: QuotaConfig = { limits: [{ window: 'minute', requests: 100 }] }
    for (let i = 0; i < 5; i++) {
      expect((quotas[consumeNow]('acme', undefined, roomy) as { allowed: boolean }).allowed).toBe(true)
    }
    // All five were charged: the store's own limit (2 a minute) would have refused the third.
    expect((await quotas.peek('acme')).windows[0]!.used.requests).toBe(5)
    expect((await quotas.consume('acme')).allowed).toBe(false)
    // A tenant without a rate limit (config null) is always allowed and reports no limit.
    const unlimited = limiter[consumeNow]('acme', 1, null) as { allowed: boolean; limit?: number }
    expect([unlimited.allowed, unlimited.limit]).toEqual([true, undefined])
    expect(
      policy[evaluateNow](
        'acme',
        { model: 'big' },
        { ...(await configs.policyConfig('acme')), allowedModels: [] },
      ),
    ).toEqual({
      allowed: true,
    })
  })

  it('keeps the public methods asynchronous: a bad call rejects, never throws', async () => {
    const { clock, configs } = await setup()
    const quotas = new SlidingWindowQuotaManager(configs, { clock })
    const limiter = new TokenBucketRateLimiter(configs, { clock })
    const pending = [
      quotas.consume('bad id'),
      quotas.consume('acme', { tokens: -1 }),
      limiter.consume('acme', { cost: 1.5 }),
      limiter.consume('nobody'),
      new ConfigPolicyEvaluator(configs).evaluate('nobody', {}),
    ]
    for (const promise of pending) expect(promise).toBeInstanceOf(Promise)
    const settled = await Promise.allSettled(pending)
    expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected', 'rejected', 'rejected', 'rejected'])
    await expect(
      promiseOf(() => {
        throw new Error('sync')
      }),
    ).rejects.toThrow('sync')
  })
})
