// The Node e2e entry: src/node.ts's startNode with a ManualClock and the clock route.
import { ManualClock } from '@tenant/core'
import { startNode } from '../../src/node'
import { mountClock } from './clock-route'

const clock = new ManualClock(Date.now())
await startNode({ clock, extend: (app) => mountClock(app, clock) })
