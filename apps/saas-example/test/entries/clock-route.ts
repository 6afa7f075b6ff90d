// Test-only: lets the e2e suite move the app's ManualClock over HTTP, so quota windows and token
// buckets are crossed without sleeping. Mounted by the test entries only, never by src/.
import type { ManualClock } from '@tenant/core'
import type { App } from '../../src/app'

/** The route the scenario calls: `POST /__test/clock` with `{ "set": ms }` or `{ "advance": ms }`. */
export const CLOCK_ROUTE = '/__test/clock'

/** Adds the clock route to `app`. */
export function mountClock(app: App, clock: ManualClock): void {
  app.post(CLOCK_ROUTE, async (c) => {
    const body = (await c.req.json()) as { set?: number; advance?: number }
    if (typeof body.set === 'number') clock.set(body.set)
    if (typeof body.advance === 'number') clock.advance(body.advance)
    return c.json({ now: clock.now() })
  })
}
