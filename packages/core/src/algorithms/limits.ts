import type { ConfigIssue } from '../errors'
import { InvalidTenantConfigError } from '../errors'
import type { QuotaConfig, QuotaWindow } from '../schemas'
import { quotaWindows } from '../schemas'

/** The two things a quota counts. */
export type QuotaDimension = 'requests' | 'tokens'

/** Both quota dimensions, in the order decisions and reasons list them. */
export const quotaDimensions: readonly QuotaDimension[] = ['requests', 'tokens']

/**
 * The largest count a quota window keeps, in every dimension, limited or not: `Number.MAX_SAFE_INTEGER`.
 * Past it doubles (and the integer replies of Redis clients) are no longer exact. A limit is at
 * most this, so a limited count never passes it; an unlimited dimension, which never denies,
 * saturates at it (a cost that would push it beyond is admitted and counted up to the bound), and
 * so does `adjust`. Real traffic never comes close: only absurd costs (a client-chosen token count)
 * reach it, and they must not lock a tenant out of a dimension it has no limit on.
 */
export const MAX_QUOTA_COUNT = Number.MAX_SAFE_INTEGER

/**
 * One limit as the algorithms use it: a missing or 0 allowance is normalised to absent
 * (unlimited), so `limit.requests !== undefined` means "requests are limited".
 */
export interface EffectiveLimit {
  window: QuotaWindow
  requests?: number
  tokens?: number
}

function windowRank(window: QuotaWindow): number {
  return quotaWindows.indexOf(window)
}

/**
 * Normalises a tenant's quota into the limits the algorithms check, shortest window first.
 *
 * A missing allowance or 0 means unlimited and is dropped. The config is checked again here (it is
 * cheap: at most four limits) because a hand-written `QuotaProvider` does not go through the zod
 * schema, and a negative or fractional limit must not silently turn into odd arithmetic.
 * Throws `InvalidTenantConfigError` listing every problem.
 *
 * @example
 * ```ts
 * effectiveLimits({ limits: [{ window: 'day', tokens: 0, requests: 500 }] })
 * // [{ window: 'day', requests: 500 }]
 * ```
 */
export function effectiveLimits(config: QuotaConfig): EffectiveLimit[] {
  const raw: unknown = config?.limits ?? []
  if (!Array.isArray(raw)) {
    throw new InvalidTenantConfigError([{ path: ['limits'], message: 'must be an array', code: 'custom' }])
  }
  const issues: ConfigIssue[] = []
  const seen = new Set<string>()
  const out: EffectiveLimit[] = []
  raw.forEach((entry: unknown, index) => {
    const limit = (typeof entry === 'object' && entry !== null ? entry : {}) as Record<string, unknown>
    const window = limit.window as QuotaWindow
    if (!quotaWindows.includes(window)) {
      issues.push({
        path: ['limits', index, 'window'],
        message: `must be one of ${quotaWindows.join(', ')}`,
        code: 'custom',
      })
      return
    }
    if (seen.has(window)) {
      issues.push({
        path: ['limits', index, 'window'],
        message: `duplicate "${window}" limit`,
        code: 'custom',
      })
      return
    }
    seen.add(window)
    const effective: EffectiveLimit = { window }
    for (const dimension of quotaDimensions) {
      const value = limit[dimension]
      if (value === undefined || value === 0) continue
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
        issues.push({
          path: ['limits', index, dimension],
          message: 'must be a whole number >= 0',
          code: 'custom',
        })
        continue
      }
      effective[dimension] = value
    }
    out.push(effective)
  })
  if (issues.length > 0) throw new InvalidTenantConfigError(issues)
  return out.sort((a, b) => windowRank(a.window) - windowRank(b.window))
}
