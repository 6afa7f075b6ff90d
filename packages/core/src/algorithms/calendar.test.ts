import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { calendarWindow, DAY_MS, HOUR_MS, MINUTE_MS, slidingWindowMs } from './calendar'

// The reference: the host's Date in UTC, which the integer-only implementation must match.
function referenceMonth(now: number) {
  const d = new Date(now)
  return {
    start: Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1),
    end: Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1),
  }
}

describe('calendarWindow', () => {
  it('aligns minutes, hours and days to UTC', () => {
    const now = Date.UTC(2030, 5, 15, 13, 47, 21, 512)
    expect(calendarWindow('minute', now)).toEqual({
      start: Date.UTC(2030, 5, 15, 13, 47),
      end: Date.UTC(2030, 5, 15, 13, 48),
    })
    expect(calendarWindow('hour', now)).toEqual({
      start: Date.UTC(2030, 5, 15, 13),
      end: Date.UTC(2030, 5, 15, 14),
    })
    expect(calendarWindow('day', now)).toEqual({ start: Date.UTC(2030, 5, 15), end: Date.UTC(2030, 5, 16) })
    expect(calendarWindow('month', now)).toEqual({ start: Date.UTC(2030, 5, 1), end: Date.UTC(2030, 6, 1) })
  })

  it.each([
    [
      'February of a leap year (2024)',
      Date.UTC(2024, 1, 29, 23, 59, 59, 999),
      Date.UTC(2024, 1, 1),
      Date.UTC(2024, 2, 1),
      29,
    ],
    [
      'February of a common year (2023)',
      Date.UTC(2023, 1, 28, 12),
      Date.UTC(2023, 1, 1),
      Date.UTC(2023, 2, 1),
      28,
    ],
    [
      'February 2000 (divisible by 400: leap)',
      Date.UTC(2000, 1, 29),
      Date.UTC(2000, 1, 1),
      Date.UTC(2000, 2, 1),
      29,
    ],
    [
      'February 2100 (divisible by 100: not leap)',
      Date.UTC(2100, 1, 28),
      Date.UTC(2100, 1, 1),
      Date.UTC(2100, 2, 1),
      28,
    ],
    [
      'February 1900 (before the epoch, not leap)',
      Date.UTC(1900, 1, 10),
      Date.UTC(1900, 1, 1),
      Date.UTC(1900, 2, 1),
      28,
    ],
    [
      'a 30-day month (April)',
      Date.UTC(2030, 3, 30, 23, 59, 59, 999),
      Date.UTC(2030, 3, 1),
      Date.UTC(2030, 4, 1),
      30,
    ],
    ['a 31-day month (January)', Date.UTC(2030, 0, 31, 12), Date.UTC(2030, 0, 1), Date.UTC(2030, 1, 1), 31],
    [
      'the year end (December)',
      Date.UTC(2030, 11, 31, 23, 59, 59, 999),
      Date.UTC(2030, 11, 1),
      Date.UTC(2031, 0, 1),
      31,
    ],
    ['the first ms of a year', Date.UTC(2031, 0, 1), Date.UTC(2031, 0, 1), Date.UTC(2031, 1, 1), 31],
    ['the epoch', 0, 0, Date.UTC(1970, 1, 1), 31],
    ['the last ms before the epoch', -1, Date.UTC(1969, 11, 1), 0, 31],
  ])('month: %s', (_label, now, start, end, days) => {
    expect(calendarWindow('month', now)).toEqual({ start, end })
    expect((end - start) / DAY_MS).toBe(days)
  })

  it('day, hour and minute windows at the year end and across the epoch', () => {
    const last = Date.UTC(2030, 11, 31, 23, 59, 59, 999)
    expect(calendarWindow('day', last).end).toBe(Date.UTC(2031, 0, 1))
    expect(calendarWindow('hour', last).end).toBe(Date.UTC(2031, 0, 1))
    expect(calendarWindow('minute', last).end).toBe(Date.UTC(2031, 0, 1))
    expect(calendarWindow('day', -1)).toEqual({ start: -DAY_MS, end: 0 })
    expect(calendarWindow('minute', -1)).toEqual({ start: -MINUTE_MS, end: 0 })
  })

  it('a window contains its start and not its end', () => {
    const start = Date.UTC(2030, 2, 1)
    expect(calendarWindow('month', start).start).toBe(start)
    expect(calendarWindow('month', start - 1).end).toBe(start)
    expect(calendarWindow('hour', start).start).toBe(start)
  })

  it('matches the host Date for every instant from year 1600 to 2400 (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: Date.UTC(1600, 0, 1), max: Date.UTC(2400, 0, 1) }), (now) => {
        const month = calendarWindow('month', now)
        expect(month).toEqual(referenceMonth(now))
        expect(month.start).toBeLessThanOrEqual(now)
        expect(now).toBeLessThan(month.end)
        for (const [window, length] of [
          ['minute', MINUTE_MS],
          ['hour', HOUR_MS],
          ['day', DAY_MS],
        ] as const) {
          const bounds = calendarWindow(window, now)
          expect(bounds.end - bounds.start).toBe(length)
          expect(bounds.start % length === 0).toBe(true)
          expect(bounds.start <= now && now < bounds.end).toBe(true)
        }
      }),
      { numRuns: 1000 },
    )
  }, 30_000)

  it('every month of four centuries starts where the previous one ends', () => {
    let now = Date.UTC(1800, 0, 1)
    for (let i = 0; i < 12 * 400; i++) {
      const { start, end } = calendarWindow('month', now)
      expect(start).toBe(now)
      expect(referenceMonth(now).end).toBe(end)
      now = end
    }
  }, 30_000)
})

describe('slidingWindowMs', () => {
  it('is the window length, and a rolling 30 days for a month', () => {
    expect(slidingWindowMs('minute')).toBe(MINUTE_MS)
    expect(slidingWindowMs('hour')).toBe(HOUR_MS)
    expect(slidingWindowMs('day')).toBe(DAY_MS)
    expect(slidingWindowMs('month')).toBe(30 * DAY_MS)
  })
})
