// How the in-memory managers read their part of a tenant's config from their provider. Internal to
// core: not re-exported from the index.
import type { ConcurrencyProvider, PolicyProvider, QuotaProvider, RateLimitProvider } from './config'
import { type FastConfigStore, tenantConfigNow } from './fast-path'
import type { TenantConfig } from './schemas'

type Part = 'quota' | 'policy' | 'rateLimit' | 'concurrency'
type PartOf<K extends Part> = TenantConfig[K]

const methods = {
  quota: 'quotaConfig',
  policy: 'policyConfig',
  rateLimit: 'rateLimitConfig',
  concurrency: 'concurrencyConfig',
} as const

/**
 * The `part` of `tenantId`'s config from `provider`: through its fast read (a value when it needs
 * no I/O) when it is a store that has one, else through its provider method. Anything asynchronous
 * comes back as a native Promise, so callers test `instanceof Promise` (a property lookup on every
 * config, as a duck-typed check does, was measured at about 100 ns per consume). May throw
 * synchronously what the read would reject with.
 */
export function providedConfig<K extends Part>(
  provider: QuotaProvider | PolicyProvider | RateLimitProvider | ConcurrencyProvider,
  tenantId: string,
  part: K,
): PartOf<K> | Promise<PartOf<K>> {
  const fast = (provider as Partial<FastConfigStore>)[tenantConfigNow]
  if (fast === undefined) {
    const method = (provider as unknown as Record<string, (id: string) => Promise<PartOf<K>>>)[methods[part]]!
    return Promise.resolve(method.call(provider, tenantId))
  }
  const config = fast.call(provider, tenantId)
  // A fast read answers a value or a native Promise (see `tenantConfigNow`).
  return config instanceof Promise ? config.then((c) => pick(c, part)) : pick(config, part)
}

// Named loads, one site per part: a keyed load with a variable name is slower.
function pick<K extends Part>(config: TenantConfig, part: K): PartOf<K> {
  return (
    part === 'quota'
      ? config.quota
      : part === 'policy'
        ? config.policy
        : part === 'rateLimit'
          ? config.rateLimit
          : config.concurrency
  ) as PartOf<K>
}
