import {
  ConfigPolicyEvaluator,
  InMemoryConfigManager,
  InMemoryQuotaManager,
  isThenable,
  ManualClock,
  TokenBucketRateLimiter,
} from '@tenant/core'
import { beforeEach, describe, expect, it } from 'vitest'
import { req } from '../test/helpers'
import { Admission, type ChainStage, decide, fetchChain, tenancyStages } from './index'

describe('decide', () => {
  let configs: InMemoryConfigManager
  let clock: ManualClock
  beforeEach(async () => {
    clock = new ManualClock(Date.UTC(2026, 0, 1, 12))
    configs = new InMemoryConfigManager({ clock })
    await configs.setTenantConfig({
      id: 'acme',
      quota: { limits: [{ window: 'minute', requests: 5 }] },
      rateLimit: { requestsPerSecond: 1, burst: 5 },
    })
  })

  it('decides synchronously when every store answers without I/O, and reads the config once', async () => {
    // The same store behind another object, counting the reads made through it.
    let reads = 0
    const counted = new Proxy(configs, {
      get(target, key) {
        const value = Reflect.get(target, key, target)
        if (typeof value !== 'function') return value
        return (...args: unknown[]) => {
          reads++
          return value.apply(target, args)
        }
      },
    })
    const stages = tenancyStages({
      configManager: counted,
      policy: new ConfigPolicyEvaluator(counted),
      rateLimit: new TokenBucketRateLimiter(counted, { clock }),
      quota: new InMemoryQuotaManager(counted, { clock }),
      clock,
    })
    reads = 0
    const outcome = decide(stages, req('/', { tenant: 'acme' }))
    expect(isThenable(outcome)).toBe(false)
    expect(outcome).toBeInstanceOf(Admission)
    const admission = outcome as Admission
    expect([admission.tenantId, admission.tenant?.id, admission.scoped]).toEqual(['acme', 'acme', true])
    expect(new Map(admission.headers()).get('RateLimit-Policy')).toBe('"minute";q=5;w=60, "rate";q=5')
    // One read, by the resolver; the policy, rate-limit and quota stages were handed its config.
    expect(reads).toBe(1)

    // Managers on another store object are not handed the resolver's config: each reads its own.
    const other = tenancyStages({
      configManager: configs,
      policy: new ConfigPolicyEvaluator(counted),
      quota: new InMemoryQuotaManager(counted, { clock }),
    })
    reads = 0
    const awaited = await decide(other, req('/', { tenant: 'acme' }))
    expect(awaited).toBeInstanceOf(Admission)
    expect(reads).toBe(2)
  })

  it('sends the response a finisher replaces, with the stages headers', async () => {
    const wrap: ChainStage = {
      stage: 'quota',
      middleware: 'wrap',
      run(admission) {
        admission.addHeaders([['X-Stage', 'on']])
        admission.onResponse(async (response) => new Response(`${await response.text()}!`, response))
        return undefined
      },
    }
    const middleware = fetchChain('wrapped', [...tenancyStages({ configManager: configs }), wrap])
    const response = await middleware(req('/', { tenant: 'acme' }), async () => new Response('ok'))
    expect(await response.text()).toBe('ok!')
    expect(response.headers.get('X-Stage')).toBe('on')
    expect(middleware.name).toBe('wrapped')
  })
  it("joins each request's own stage policies, with tenants and a third stage taking turns", async () => {
    await configs.setTenantConfig({
      id: 'beta',
      quota: { limits: [{ window: 'hour', requests: 7, tokens: 2_000_000_000 }] },
      rateLimit: { requestsPerSecond: 1, burst: 9 },
    })
    // The quota of acme, another burst.
    await configs.setTenantConfig({
      id: 'gamma',
      quota: { limits: [{ window: 'minute', requests: 5 }] },
      rateLimit: { requestsPerSecond: 1, burst: 6 },
    })
    // A third stage outside the others, its item changing from request to request.
    let n = 0
    const extra: ChainStage = {
      stage: 'resolve',
      middleware: 'extra',
      run(admission) {
        admission.addHeaders([['RateLimit-Policy', `"extra";q=${n % 3}`]])
        return undefined
      },
    }
    const stages = tenancyStages({
      configManager: configs,
      rateLimit: new TokenBucketRateLimiter(configs, { clock }),
      quota: new InMemoryQuotaManager(configs, { clock }),
      clock,
    })
    const expected: Record<string, string> = {
      acme: '"minute";q=5;w=60, "rate";q=5',
      beta: '"hour";q=7;w=3600, "hour-tokens";q=2000000000;w=3600;qu="tokens", "rate";q=9',
      gamma: '"minute";q=5;w=60, "rate";q=6',
    }
    const turns = ['acme', 'gamma', 'acme', 'beta', 'beta', 'gamma', 'acme']
    // A minute between requests, so no tenant runs out.
    for (const tenant of turns) {
      clock.advance(60_000)
      const two = (await decide(stages, req('/', { tenant }))) as Admission
      expect(new Map(two.headers()).get('RateLimit-Policy')).toBe(expected[tenant])
    }
    for (const tenant of turns) {
      clock.advance(60_000)
      n++
      const three = (await decide([extra, ...stages], req('/', { tenant }))) as Admission
      expect(new Map(three.headers()).get('RateLimit-Policy')).toBe(`${expected[tenant]}, "extra";q=${n % 3}`)
    }
  })
})
