import { describe, expect, it } from 'vitest'
import { ManualClock, systemClock } from './clock'

describe('clocks', () => {
  it('systemClock reads the wall clock in ms since the epoch', () => {
    const before = Date.now()
    const now = systemClock.now()
    expect(now).toBeGreaterThanOrEqual(before)
    expect(now).toBeLessThanOrEqual(Date.now())
  })

  it('ManualClock starts at 0 or the given time and moves only when told', () => {
    expect(new ManualClock().now()).toBe(0)
    const clock = new ManualClock(Date.UTC(2026, 0, 1))
    expect(clock.now()).toBe(Date.UTC(2026, 0, 1))
    expect(clock.now()).toBe(Date.UTC(2026, 0, 1))
    clock.advance(1_500)
    expect(clock.now()).toBe(Date.UTC(2026, 0, 1) + 1_500)
    clock.advance(-500)
    expect(clock.now()).toBe(Date.UTC(2026, 0, 1) + 1_000)
    clock.set(42)
    expect(clock.now()).toBe(42)
  })
})
