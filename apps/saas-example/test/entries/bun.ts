// The Bun e2e entry: src/bun.ts's startBun with a ManualClock and the clock route.
import { ManualClock } from '@tenant/core'
import { startBun } from '../../src/bun'
import { mountClock } from './clock-route'

const clock = new ManualClock(Date.now())
await startBun({ clock, extend: (app) => mountClock(app, clock) })
