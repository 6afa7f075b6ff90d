// Misconfiguration fails when a manager is built, and bad input fails before the namespace is
// touched. These run in Node: nothing here reaches a Durable Object.
import { ManualClock } from '@tenant/core'
import { expectInvalidOption, rejectionOf, TestConfigProvider } from '@tenant/core/testing'
import { describe, expect, it } from 'vitest'
import { DurableObjectQuotaManager } from './durable-object-quota-manager'
import { DurableObjectRateLimiter } from './durable-object-rate-limiter'
import type { TenantQuotaNamespace } from './object-client'

/** A namespace that fails the test if it is ever used. */
const untouchable = {
  idFromName: () => {
    throw new Error('the namespace must not be used')
  },
  get: () => {
    throw new Error('the namespace must not be used')
  },
} as unknown as TenantQuotaNamespace

const provider = new TestConfigProvider()
provider.setQuota('acme', { limits: [{ window: 'minute', requests: 5 }] })
provider.setRateLimit('acme', { requestsPerSecond: 1, burst: 1 })

const binding = { limit: async () => ({ success: true }) }

describe('construction', () => {
  it.each([
    ['no options', undefined, '', /^options with a namespace are required$/],
    ['no namespace', {}, '.namespace', /Durable Object namespace binding of TenantQuotaObject/],
    ['a namespace without get', { namespace: { idFromName: () => 'x' } }, '.namespace', /namespace binding/],
    ['a clock without now', { namespace: untouchable, clock: {} }, '.clock', /^must have a now\(\) method$/],
    ['a non-string prefix', { namespace: untouchable, prefix: 7 }, '.prefix', /^must be a string$/],
    // 'q' + 'a1' and 'qa' + '1' would name one object.
    ['a prefix not ending with ":"', { namespace: untouchable, prefix: 'q' }, '.prefix', /end with ":"/],
    [
      'a prefilter without a binding',
      { namespace: untouchable, prefilter: {} },
      '.prefilter.binding',
      /^must be a Workers Rate Limiting binding$/,
    ],
    [
      'a prefilter period the binding does not have',
      { namespace: untouchable, prefilter: { binding, period: 30 } },
      '.prefilter.period',
      /^must be 10 or 60 \(the binding's periods\)$/,
    ],
    [
      'a prefilter key that is not a function',
      { namespace: untouchable, prefilter: { binding, key: 'k' } },
      '.prefilter.key',
      /^must be a function$/,
    ],
    [
      'a prefilter onError that is not a function',
      { namespace: untouchable, prefilter: { binding, onError: 'log' } },
      '.prefilter.onError',
      /^must be a function$/,
    ],
  ])('both managers refuse %s with InvalidTenantConfigError', (_label, options, path, message) => {
    expectInvalidOption(
      () => new DurableObjectQuotaManager(provider, options as never),
      `DurableObjectQuotaManager${path}`,
      message,
    )
    expectInvalidOption(
      () => new DurableObjectRateLimiter(provider, options as never),
      `DurableObjectRateLimiter${path}`,
      message,
    )
  })

  it('DurableObjectQuotaManager refuses an unknown algorithm', () => {
    expectInvalidOption(
      () => new DurableObjectQuotaManager(provider, { namespace: untouchable, algorithm: 'leaky' as never }),
      'DurableObjectQuotaManager.algorithm',
      /^must be 'fixed' or 'sliding'$/,
    )
  })

  it('refuses a provider without quotaConfig / rateLimitConfig', () => {
    expectInvalidOption(
      () => new DurableObjectQuotaManager({} as never, { namespace: untouchable }),
      'DurableObjectQuotaManager.provider',
      /^must have a quotaConfig\(tenantId\) method \(a ConfigManager qualifies\)$/,
    )
    expectInvalidOption(
      () => new DurableObjectRateLimiter(null as never, { namespace: untouchable }),
      'DurableObjectRateLimiter.provider',
      /rateLimitConfig\(tenantId\)/,
    )
  })

  it("checks the sliding precision at construction (core's check), not on the first request", () => {
    expect(
      () =>
        new DurableObjectQuotaManager(provider, {
          namespace: untouchable,
          algorithm: 'sliding',
          precision: 7,
        }),
    ).toThrow(/precision/)
    // The fixed algorithm ignores precision.
    expect(new DurableObjectQuotaManager(provider, { namespace: untouchable, precision: 7 }).algorithm).toBe(
      'fixed',
    )
  })
})

describe('input checks before any request', () => {
  const clock = new ManualClock(0)
  const quotas = new DurableObjectQuotaManager(provider, { namespace: untouchable, clock })
  const limiter = new DurableObjectRateLimiter(provider, { namespace: untouchable, clock })

  it('bad tenant ids, costs and deltas', async () => {
    expect(await rejectionOf(quotas.consume('a b'))).toMatchObject({ code: 'tenant_invalid_id' })
    expect(await rejectionOf(quotas.peek(''))).toMatchObject({ code: 'tenant_invalid_id' })
    expect(await rejectionOf(quotas.consume('acme', { requests: 1.5 }))).toMatchObject({
      code: 'invalid_cost',
    })
    expect(await rejectionOf(quotas.adjust('acme', { tokens: Number.NaN }))).toMatchObject({
      code: 'invalid_cost',
    })
    expect(await rejectionOf(limiter.consume('acme', { cost: -1 }))).toMatchObject({ code: 'invalid_cost' })
    expect(await rejectionOf(limiter.consume('acme', 'one' as never))).toMatchObject({ code: 'invalid_cost' })
  })

  it('unknown tenants (the provider answers)', async () => {
    expect(await rejectionOf(quotas.consume('nobody'))).toMatchObject({
      code: 'tenant_not_found',
      status: 404,
    })
    expect(await rejectionOf(limiter.consume('nobody'))).toMatchObject({
      code: 'tenant_not_found',
      status: 404,
    })
  })

  it('a clock that returns no number is a programming error, not a decision', async () => {
    const broken = new DurableObjectQuotaManager(provider, {
      namespace: untouchable,
      clock: { now: () => Number.NaN },
    })
    expect(await rejectionOf(broken.consume('acme'))).toBeInstanceOf(TypeError)
  })
})
