import { InMemoryConfigManager, ManualClock } from '@tenant/core'
import { describe, expect, it } from 'vitest'
import { memoryLimits } from './limits'

describe('memoryLimits', () => {
  // The concurrency limiter was made without the clock the other limits get, so a lease nobody
  // released (a dropped body) expired on the system clock, not on the app's.
  it('gives every limiter the clock, the concurrency limiter included', async () => {
    const clock = new ManualClock(Date.UTC(2030, 0, 1))
    const configs = new InMemoryConfigManager({ clock })
    const { concurrency } = memoryLimits(configs, { algorithm: 'fixed', clock })
    await concurrency.acquire('acme', 1)
    expect(await concurrency.inFlight('acme')).toBe(1)
    // Its leases live 10 minutes by default.
    clock.advance(10 * 60_000 + 1)
    expect(await concurrency.inFlight('acme')).toBe(0)
  })
})
