import {
  calendarWindow,
  type EffectiveLimit,
  type FixedWindowState,
  type QuotaWindow,
  quotaWindows,
  type SlidingBucket,
  type SlidingWindowState,
  TenantBackendError,
} from '@tenant/core'

/** A quota script's reply as core's algorithm takes it: decision time, whether it wrote, prior state. */
export interface DecodedReply<S> {
  now: number
  applied: boolean
  state: S
}

/** The error of a script reply that is not what the script sends: a backend fault. */
export function unexpectedReply(): TenantBackendError {
  return new TenantBackendError('redis: unexpected script reply')
}

/**
 * Decodes the fixed-window script's `{now, applied, requests1, tokens1, ...}` (one pair per limit,
 * in `limits` order: the counts of each current calendar window) into core's state. Each counter
 * gets the start of the window containing `now`, which is what the script compared against, so
 * core reads exactly the counts the script decided with. Anything else is a backend fault.
 */
export function decodeFixedReply(
  reply: unknown,
  limits: readonly EffectiveLimit[],
): DecodedReply<FixedWindowState> {
  if (!Array.isArray(reply) || reply.length !== 2 + 2 * limits.length) throw unexpectedReply()
  const now = Number(reply[0])
  if (!Number.isSafeInteger(now)) throw unexpectedReply()
  const state: FixedWindowState = {}
  for (let i = 0; i < limits.length; i++) {
    const requests = Number(reply[2 + 2 * i])
    const tokens = Number(reply[3 + 2 * i])
    if (!Number.isSafeInteger(requests) || !Number.isSafeInteger(tokens)) throw unexpectedReply()
    // A zero counter reads the same to core as none; leaving it out saves the calendar arithmetic.
    if (requests === 0 && tokens === 0) continue
    const { window } = limits[i]!
    state[window] = { start: calendarWindow(window, now).start, requests, tokens }
  }
  return { now, applied: Number(reply[1]) === 1, state }
}

/** What the sliding and token-bucket scripts reply, decoded: decision time, whether it wrote, the prior state. */
export interface ScriptReply {
  now: number
  applied: boolean
  /** Field -> value of the tenant's hash before the script changed it. */
  fields: [string, string][]
}

/** Decodes `{now, applied, field1, value1, ...}`; anything else is a backend fault. */
export function decodeReply(reply: unknown): ScriptReply {
  if (!Array.isArray(reply) || reply.length < 2 || reply.length % 2 !== 0) throw unexpectedReply()
  const now = Number(reply[0])
  if (!Number.isSafeInteger(now)) throw unexpectedReply()
  const fields: [string, string][] = []
  for (let i = 2; i < reply.length; i += 2) fields.push([String(reply[i]), String(reply[i + 1])])
  return { now, applied: Number(reply[1]) === 1, fields }
}

function isWindow(name: string): name is QuotaWindow {
  return (quotaWindows as readonly string[]).includes(name)
}

const BUCKET = /(-?\d+),(\d+),(\d+)/g

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
