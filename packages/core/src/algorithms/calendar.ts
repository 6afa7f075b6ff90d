import type { QuotaWindow } from '../schemas'

/** Milliseconds in a minute. */
export const MINUTE_MS = 60_000
/** Milliseconds in an hour. */
export const HOUR_MS = 3_600_000
/** Milliseconds in a UTC day (UTC has no leap seconds in ms-since-epoch arithmetic). */
export const DAY_MS = 86_400_000

/** The half-open interval `[start, end)` of one calendar window, in ms since the epoch. */
export interface WindowBounds {
  start: number
  end: number
}

// Howard Hinnant's days_from_civil / civil_from_days: integer-only proleptic Gregorian arithmetic.
// It is written with floor divisions and no Date so that the Redis Lua scripts (which have no UTC
// date functions) can mirror it line by line and agree with this code to the millisecond.

/** Days since 1970-01-01 of the UTC date `year`-`month`-`day` (`month` 1..12). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year
  const era = Math.floor(y / 400)
  const yoe = y - era * 400
  const doy = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy
  return era * 146_097 + doe - 719_468
}

/** The UTC `[year, month 1..12, day 1..31]` of a day number since 1970-01-01. */
function civilFromDays(days: number): [number, number, number] {
  const z = days + 719_468
  const era = Math.floor(z / 146_097)
  const doe = z - era * 146_097
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365,
  )
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100))
  const mp = Math.floor((5 * doy + 2) / 153)
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1
  const month = mp < 10 ? mp + 3 : mp - 9
  return [yoe + era * 400 + (month <= 2 ? 1 : 0), month, day]
}

function fixedLength(start: number, length: number): WindowBounds {
  return { start, end: start + length }
}

/**
 * The UTC calendar window of kind `window` that contains the instant `now` (ms since the epoch):
 * minutes and hours start on the :00, days at 00:00 UTC, months on the 1st at 00:00 UTC (so a
 * month window is 28, 29, 30 or 31 days long). `now` belongs to `[start, end)`.
 *
 * @example
 * ```ts
 * calendarWindow('month', Date.UTC(2024, 1, 10)) // { start: Date.UTC(2024, 1, 1), end: Date.UTC(2024, 2, 1) }
 * ```
 */
export function calendarWindow(window: QuotaWindow, now: number): WindowBounds {
  switch (window) {
    case 'minute':
      return fixedLength(Math.floor(now / MINUTE_MS) * MINUTE_MS, MINUTE_MS)
    case 'hour':
      return fixedLength(Math.floor(now / HOUR_MS) * HOUR_MS, HOUR_MS)
    case 'day':
      return fixedLength(Math.floor(now / DAY_MS) * DAY_MS, DAY_MS)
    case 'month': {
      const days = Math.floor(now / DAY_MS)
      const [year, month, day] = civilFromDays(days)
      const next = month === 12 ? daysFromCivil(year + 1, 1, 1) : daysFromCivil(year, month + 1, 1)
      return { start: (days - day + 1) * DAY_MS, end: next * DAY_MS }
    }
  }
}

/**
 * The length of a sliding window of kind `window`, in ms. A sliding window has no calendar to align
 * to, so `'month'` is a rolling 30 days (the usual meaning of "a rolling month"; one fixed length
 * keeps the sub-window buckets equal and the arithmetic the same on every store).
 *
 * @example
 * ```ts
 * slidingWindowMs('minute') // 60000
 * slidingWindowMs('month') // 2592000000: a rolling 30 days
 * ```
 */
export function slidingWindowMs(window: QuotaWindow): number {
  switch (window) {
    case 'minute':
      return MINUTE_MS
    case 'hour':
      return HOUR_MS
    case 'day':
      return DAY_MS
    case 'month':
      return 30 * DAY_MS
  }
}
