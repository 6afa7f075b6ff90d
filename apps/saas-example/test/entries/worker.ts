// The workerd e2e entry: src/worker.ts's createWorker with a ManualClock (sent to the Durable
// Objects with every call) and the clock route. One isolate serves `wrangler dev`, so the clock
// lives as long as the test's server.
import { ManualClock } from '@tenant/core'
import { createWorker } from '../../src/worker'
import { mountClock } from './clock-route'

export { TenantQuotaObject } from '../../src/worker'

const clock = new ManualClock(0)
export default createWorker({ clock, extend: (app) => mountClock(app, clock) })
