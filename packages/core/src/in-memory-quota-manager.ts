import type { FixedWindowState } from './algorithms/fixed-window'
import { fixedWindowLayout } from './algorithms/fixed-window-layout'
import { MemoryQuotaManager } from './algorithms/memory-quota-manager'
import type { Clock } from './clock'
import type { QuotaProvider } from './config'

/** Options of {@link InMemoryQuotaManager}. */
export interface InMemoryQuotaManagerOptions {
  /**
   * Where the time comes from; windows and `retryAfterMs` are computed from it alone.
   * @default systemClock
   */
  clock?: Clock
}

/**
 * Per-tenant quotas in this process over fixed windows aligned to the UTC calendar (minute, hour,
 * day, first of the month). Every limit of the tenant is checked and charged together; a denial
 * charges nothing. Concurrent calls never over-admit: the check and the charge run with no `await`
 * between them. Idle tenants are forgotten once their windows pass (no timers: each call sweeps a
 * bounded batch), so memory follows the tenants active in the current windows.
 *
 * For one process; several processes share a quota through `RedisQuotaManager` or
 * `DurableObjectQuotaManager`, which apply the same arithmetic (`fixedWindowConsume`).
 *
 * @example
 * ```ts
 * const configs = new InMemoryConfigManager()
 * await configs.setTenantConfig({ id: 'acme', quota: { limits: [{ window: 'minute', requests: 60, tokens: 100_000 }] } })
 * const quotas = new InMemoryQuotaManager(configs)
 * const decision = await quotas.consume('acme', { tokens: 1_200 })
 * if (!decision.allowed) console.log(decision.reason, decision.retryAfterMs)
 * // after the upstream answered with the real usage:
 * await quotas.adjust('acme', { tokens: actualTokens - 1_200 })
 * ```
 */
export class InMemoryQuotaManager extends MemoryQuotaManager<FixedWindowState> {
  constructor(provider: QuotaProvider, options: InMemoryQuotaManagerOptions = {}) {
    super(provider, options.clock, fixedWindowLayout)
  }
}
