import type { QuotaWindow } from '@tenant/core'

/**
 * The table columns that hold each quota window's limits, by their Drizzle property names. Both
 * dialects' `tenants` tables use these names, so one codec serves both.
 */
export const quotaColumnKeys = {
  minute: { requests: 'quotaRequestsPerMinute', tokens: 'quotaTokensPerMinute' },
  hour: { requests: 'quotaRequestsPerHour', tokens: 'quotaTokensPerHour' },
  day: { requests: 'quotaRequestsPerDay', tokens: 'quotaTokensPerDay' },
  month: { requests: 'quotaRequestsPerMonth', tokens: 'quotaTokensPerMonth' },
} as const satisfies Record<QuotaWindow, { requests: string; tokens: string }>

/** Property name of one quota column. */
export type QuotaColumnKey =
  (typeof quotaColumnKeys)[QuotaWindow][keyof (typeof quotaColumnKeys)[QuotaWindow]]

/** The eight quota columns of a `tenants` table, in window order (for CHECK constraints). */
export function quotaColumns<T extends Record<QuotaColumnKey, unknown>>(table: T): T[QuotaColumnKey][] {
  return Object.values(quotaColumnKeys).flatMap((keys) => [table[keys.requests], table[keys.tokens]])
}
