import type { QuotaWindow } from '@tenant/core'
import { type SQL, type SQLWrapper, sql } from 'drizzle-orm'

/**
 * The table columns that hold each quota window's limits, by their Drizzle property names. Both
 * dialects' `tenants` and `plans` tables use these names, so one codec serves all four.
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

/** The eight quota columns of a `tenants` or `plans` table, in window order (for CHECK constraints). */
export function quotaColumns<T extends Record<QuotaColumnKey, unknown>>(table: T): T[QuotaColumnKey][] {
  return Object.values(quotaColumnKeys).flatMap((keys) => [table[keys.requests], table[keys.tokens]])
}

interface LimitColumns extends Record<QuotaColumnKey, SQLWrapper> {
  rateLimitRequestsPerSecond: SQLWrapper
  rateLimitBurst: SQLWrapper
}

interface CheckedColumns extends LimitColumns {
  status: SQLWrapper
}

/**
 * The CHECK constraints both dialects put on `tenants` (the id check differs: SQLite has no
 * regular expressions), repeating core's validation in the database so that rows written by hand
 * are refused at write time. NULL passes a CHECK, so an absent limit needs no special case.
 */
export function tenantChecks(t: CheckedColumns): { name: string; condition: SQL }[] {
  return [
    { name: 'tenants_status_check', condition: sql`${t.status} in ('active', 'suspended')` },
    ...limitChecks('tenants', t),
  ]
}

/**
 * The CHECK constraints of the quota and rate-limit columns a table shares with `tenants`
 * (`plans`), named `<table>_quota_check` and `<table>_rate_limit_check`.
 */
export function limitChecks(table: string, t: LimitColumns): { name: string; condition: SQL }[] {
  const rps = t.rateLimitRequestsPerSecond
  const burst = t.rateLimitBurst
  return [
    {
      name: `${table}_quota_check`,
      condition: sql.join(
        quotaColumns(t).map((c) => sql`${c} >= 0`),
        sql` and `,
      ),
    },
    {
      name: `${table}_rate_limit_check`,
      condition: sql`(${rps} is null and ${burst} is null) or (${rps} is not null and ${burst} is not null and ${rps} > 0 and ${burst} >= 1)`,
    },
  ]
}
