import {
  type FixedWindowState,
  type QuotaWindow,
  quotaWindows,
  type SlidingBucket,
  type SlidingWindowState,
  TenantBackendError,
} from '@tenant/core'

/** What every quota script replies, decoded: decision time, whether it wrote, the prior state. */
export interface ScriptReply {
  now: number
  applied: boolean
  /** Field -> value of the tenant's hash before the script changed it. */
  fields: [string, string][]
}

/** Decodes `{now, applied, field1, value1, ...}`; anything else is a backend fault. */
export function decodeReply(reply: unknown): ScriptReply {
  if (!Array.isArray(reply) || reply.length < 2 || reply.length % 2 !== 0) {
    throw new TenantBackendError('redis: unexpected script reply')
  }
  const now = Number(reply[0])
  if (!Number.isSafeInteger(now)) throw new TenantBackendError('redis: unexpected script reply')
  const fields: [string, string][] = []
  for (let i = 2; i < reply.length; i += 2) fields.push([String(reply[i]), String(reply[i + 1])])
  return { now, applied: Number(reply[1]) === 1, fields }
}

function isWindow(name: string): name is QuotaWindow {
  return (quotaWindows as readonly string[]).includes(name)
}

const COUNTER = /^(-?\d+),(\d+),(\d+)$/
const BUCKET = /(-?\d+),(\d+),(\d+)/g

/** The fixed-window hash (`window -> start,requests,tokens`) as core's state. */
export function decodeFixedState(fields: [string, string][]): FixedWindowState {
  const state: FixedWindowState = {}
  for (const [window, value] of fields) {
    const match = COUNTER.exec(value)
    if (!isWindow(window) || !match) continue
    state[window] = { start: Number(match[1]), requests: Number(match[2]), tokens: Number(match[3]) }
  }
  return state
}

/** The sliding-window hash (`window -> start,requests,tokens;...`) as core's state. */
export function decodeSlidingState(fields: [string, string][]): SlidingWindowState {
  const state: SlidingWindowState = {}
  for (const [window, value] of fields) {
    if (!isWindow(window)) continue
    const buckets: SlidingBucket[] = []
    for (const m of value.matchAll(BUCKET)) buckets.push([Number(m[1]), Number(m[2]), Number(m[3])])
    if (buckets.length > 0) state[window] = buckets
  }
  return state
}
