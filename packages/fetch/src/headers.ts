import { calendarWindow, type QuotaWindow, type QuotaWindowUsage, type RateLimitDecision } from '@tenant/core'
import { ownerOf } from './context'

/** One entry of the IETF `RateLimit-Policy` / `RateLimit` fields. */
export interface RateLimitItem {
  /** The policy identifier, e.g. `minute` or `minute-tokens`. */
  policy: string
  /** `q`: the quota of the policy. */
  quota: number
  /** `w`: the window in seconds, when the policy has one. */
  windowSeconds?: number
  /** `qu`: the quota unit, when not requests. */
  unit?: string
  /** `r`: what is left. */
  remaining: number
  /** `t`: seconds until the quota resets. */
  resetSeconds: number
}

/**
 * `Retry-After` for a wait of `ms`: whole seconds, rounded up, at least 1.
 *
 * @example
 * ```ts
 * retryAfterSeconds(1_500) // 2
 * retryAfterSeconds(0) // 1: a refusal never says "retry now"
 * ```
 */
export function retryAfterSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000))
}

/** The `Retry-After` header of a refusal that may be retried after `ms`. */
export function retryAfterHeader(ms: number): [string, string] {
  return ['Retry-After', String(retryAfterSeconds(ms))]
}

/** Seconds from `now` until `at`, rounded up, never negative. */
function secondsUntil(at: number, now: number): number {
  return Math.max(0, Math.ceil((at - now) / 1000))
}

/**
 * The `RateLimit-Policy` and `RateLimit` header pairs for `items`, as in
 * draft-ietf-httpapi-ratelimit-headers: `"minute";q=100;w=60` and `"minute";r=42;t=17`.
 *
 * @example
 * ```ts
 * rateLimitFields([{ policy: 'minute', quota: 100, windowSeconds: 60, remaining: 42, resetSeconds: 17 }])
 * // [['RateLimit-Policy', '"minute";q=100;w=60'], ['RateLimit', '"minute";r=42;t=17']]
 * ```
 */
export function rateLimitFields(items: RateLimitItem[]): [string, string][] {
  if (items.length === 0) return []
  let policies = ''
  let states = ''
  for (const item of items) {
    policies = joinItem(policies, policyItem(item.policy, item.quota, item.windowSeconds, item.unit))
    states = joinItem(states, stateItem(item.policy, int(item.remaining), item.resetSeconds))
  }
  return [
    ['RateLimit-Policy', policies],
    ['RateLimit', states],
  ]
}

// The items of the two fields, written once for every caller: rateLimitFields and the stages'
// own builders below (which skip the item objects; they run on every admitted request).
function policyItem(policy: string, quota: number, windowSeconds?: number, unit?: string): string {
  let value = `"${policy}";q=${int(quota)}`
  if (windowSeconds !== undefined) value += `;w=${windowSeconds}`
  if (unit !== undefined) value += `;qu="${unit}"`
  return value
}

function stateItem(policy: string, remaining: string, resetSeconds: number): string {
  return `"${policy}";r=${remaining};t=${resetSeconds}`
}

/**
 * `String(n)`, faster for whole numbers of a billion and more (token quotas often are): V8 and
 * JavaScriptCore format a number above 2^30 through their general double-to-string path, several
 * times slower than formatting its two halves, which are small integers.
 */
function int(n: number): string {
  if (n < 1_000_000_000 || !Number.isSafeInteger(n)) return String(n)
  const high = Math.floor(n / 1_000_000_000)
  const low = String(n - high * 1_000_000_000)
  return `${high}${'000000000'.slice(low.length)}${low}`
}

function joinItem(list: string, item: string): string {
  return list === '' ? item : `${list}, ${item}`
}

/**
 * `w` of a quota window: the length of the calendar window that ends at `resetAt` (a month is the
 * 28 to 31 days of the month it closes), the same for fixed and sliding managers.
 */
function windowSeconds(window: QuotaWindow, resetAt: number): number {
  // Only a month's length depends on the date; the others are constants, and this runs for every
  // window of every admitted request.
  if (window === 'minute') return 60
  if (window === 'hour') return 3_600
  if (window === 'day') return 86_400
  const { start, end } = calendarWindow(window, resetAt - 1)
  return (end - start) / 1000
}

/**
 * The headers of a quota state: for every limited dimension of every window, a `RateLimit-Policy`
 * and `RateLimit` item (`"minute"` for requests, `"minute-tokens";qu="tokens"` for tokens), and
 * `X-Quota-Remaining-Requests` / `-Tokens` with the smallest remaining of each limited dimension.
 * A subject's window (`usage.subject` set) is named `"subject-minute"` / `"subject-minute-tokens"`,
 * and counts towards the `X-Quota-Remaining-*` minimum like the tenant's.
 *
 * @example
 * ```ts
 * const decision = await quotas.consume('acme', { tokens: 500 })
 * const headers = new Headers(quotaHeaders(decision.windows, clock.now()))
 * // RateLimit-Policy: "minute";q=100;w=60, "minute-tokens";q=10000;w=60;qu="tokens"
 * // RateLimit: "minute";r=99;t=30, "minute-tokens";r=9500;t=30
 * // X-Quota-Remaining-Requests: 99, X-Quota-Remaining-Tokens: 9500
 * ```
 */
export function quotaHeaders(windows: readonly QuotaWindowUsage[], now: number): [string, string][] {
  const policies = quotaPolicy(windows)
  if (policies === '') return []
  let states = ''
  let requests: number | undefined
  let requestsText = ''
  let tokens: number | undefined
  let tokensText = ''
  for (const usage of windows) {
    const { limit } = usage
    if (limit.requests === undefined && limit.tokens === undefined) continue
    const window = windowLabel(usage)
    const t = secondsUntil(usage.resetAt, now)
    // X-Quota-Remaining-* reuses the text of the item it comes from.
    if (limit.requests !== undefined) {
      const remaining = usage.remaining.requests ?? 0
      const text = int(remaining)
      states = joinItem(states, stateItem(window, text, t))
      if (requests === undefined || remaining < requests) {
        requests = remaining
        requestsText = text
      }
    }
    if (limit.tokens !== undefined) {
      const remaining = usage.remaining.tokens ?? 0
      const text = int(remaining)
      states = joinItem(states, stateItem(`${window}-tokens`, text, t))
      if (tokens === undefined || remaining < tokens) {
        tokens = remaining
        tokensText = text
      }
    }
  }
  const headers: [string, string][] = [
    ['RateLimit-Policy', policies],
    ['RateLimit', states],
  ]
  if (requests !== undefined) headers.push(['X-Quota-Remaining-Requests', requestsText])
  if (tokens !== undefined) headers.push(['X-Quota-Remaining-Tokens', tokensText])
  return headers
}

// A subject's windows are their own items; X-Quota-Remaining-* is the least over all.
function windowLabel(usage: QuotaWindowUsage): string {
  return usage.subject === undefined ? usage.window : `subject-${usage.window}`
}

/**
 * A `RateLimit-Policy` value and what it was made from: per limited window, its label's parts
 * (window, subject or not), both limits and `w`.
 */
class KnownPolicy {
  constructor(
    readonly made: readonly (string | number | boolean | undefined)[],
    readonly value: string,
  ) {}
}

// The RateLimit-Policy value follows from the tenant's limits alone, so request after request
// repeats it, and writing it (three numbers, often large token quotas, and their concatenation,
// which Node flattens again to check the header) was the largest part of the headers' cost; reusing
// it took about 0.25 µs off the chain's 6.3 µs over bare Hono in process on Node. The last few are
// kept, each with what it was made from, and one is reused only when a decision matches it field
// for field: a stale or foreign value cannot come out.
const KNOWN_POLICIES = 32
const knownPolicies: KnownPolicy[] = []
let nextKnown = 0
let lastKnown = 0

function quotaPolicy(windows: readonly QuotaWindowUsage[]): string {
  const known = knownPolicies[lastKnown]
  if (known !== undefined && madeFrom(known, windows)) return known.value
  for (let i = 0; i < knownPolicies.length; i++) {
    if (i !== lastKnown && madeFrom(knownPolicies[i]!, windows)) {
      lastKnown = i
      return knownPolicies[i]!.value
    }
  }
  const made: (string | number | boolean | undefined)[] = []
  let policies = ''
  for (const usage of windows) {
    const { limit } = usage
    if (limit.requests === undefined && limit.tokens === undefined) continue
    const window = windowLabel(usage)
    const w = windowSeconds(usage.window, usage.resetAt)
    made.push(usage.window, usage.subject === undefined, limit.requests, limit.tokens, w)
    if (limit.requests !== undefined) policies = joinItem(policies, policyItem(window, limit.requests, w))
    if (limit.tokens !== undefined) {
      policies = joinItem(policies, policyItem(`${window}-tokens`, limit.tokens, w, 'tokens'))
    }
  }
  lastKnown = nextKnown
  knownPolicies[nextKnown] = new KnownPolicy(made, policies)
  nextKnown = (nextKnown + 1) % KNOWN_POLICIES
  return policies
}

function madeFrom(known: KnownPolicy, windows: readonly QuotaWindowUsage[]): boolean {
  const { made } = known
  let at = 0
  for (const usage of windows) {
    const { limit } = usage
    if (limit.requests === undefined && limit.tokens === undefined) continue
    if (
      made[at] !== usage.window ||
      made[at + 1] !== (usage.subject === undefined) ||
      made[at + 2] !== limit.requests ||
      made[at + 3] !== limit.tokens ||
      // Only a month's length depends on the date.
      (usage.window === 'month' && made[at + 4] !== windowSeconds('month', usage.resetAt))
    ) {
      return false
    }
    at += 5
  }
  return at === made.length
}

// The rate policy follows from the burst alone (see quotaPolicy): the last one is kept.
let lastBurst = Number.NaN
let lastRatePolicy = ''

/**
 * The headers of a token-bucket decision: `"rate";q=<burst>` and `"rate";r=<tokens left>;t=<seconds
 * until the bucket is full>`. None when the tenant has no rate limit.
 *
 * @example
 * ```ts
 * const decision = await limiter.consume('acme')
 * const headers = new Headers(rateLimitHeaders(decision, clock.now()))
 * // RateLimit-Policy: "rate";q=20 and RateLimit: "rate";r=19;t=1
 * ```
 */
export function rateLimitHeaders(decision: RateLimitDecision, now: number): [string, string][] {
  const { limit } = decision
  if (limit === undefined) return []
  if (limit !== lastBurst) {
    lastBurst = limit
    lastRatePolicy = policyItem('rate', limit)
  }
  return [
    ['RateLimit-Policy', lastRatePolicy],
    ['RateLimit', stateItem('rate', int(decision.remaining ?? 0), secondsUntil(decision.resetAt, now))],
  ]
}

/**
 * `response` with `headers` added, as a copy made for the request it answers (`owner`; see
 * {@link responseForHeaders}), or the copy itself when a stage of that request made it already: the
 * caller's object is never written into, so its headers may be immutable (a `fetch()` reply) and
 * it may be handed to other requests. `RateLimit-Policy` and `RateLimit` are Structured Field
 * lists, so they are appended (two stages each add their items); others replace. With no headers
 * to add, `response` itself, unless another request's stages wrote into it.
 *
 * @example
 * ```ts
 * const response = withHeaders(await fetch(upstream), [['X-Quota-Remaining-Requests', '41']])
 * ```
 */
export function withHeaders(
  response: Response,
  headers: readonly [string, string][],
  owner?: object,
): Response {
  const mark = (response as Marked)[written]
  const request = identity(owner)
  if (headers.length === 0 && (mark === undefined || mark.owner === request)) return response
  // A network error (`Response.error()`, status 0) or an upgrade (101, a WebSocket on Workers)
  // cannot be copied (the Response constructor takes 200 to 599 only), nor carry headers for
  // the client: it passes as it is.
  if (response.status < 200) return response
  const target = marked(response, headers, request)
  applyHeaders(target.headers, headers)
  return target
}

/**
 * What a chain knows of a response object: the request whose stage headers it carries, those
 * headers, and whether the object is a copy the chain made for that request (the only kind it
 * writes into).
 */
class WrittenHeaders {
  constructor(
    readonly owner: object | undefined,
    public headers: readonly [string, string][],
    readonly copy: boolean,
  ) {}
}

const written = Symbol('tenant.writtenHeaders')
type Marked = Response & { [written]?: WrittenHeaders }

/**
 * The response the stages of the request `owner` may write their `headers` into, marked with what
 * they write: a copy of `response` made for this request, or `response` itself when it is such a
 * copy already. A handler can hand one Response object to many requests and routes (a module-level
 * constant, a cached reply), so the chain never writes into an object it did not make: written in
 * place, the object would carry one tenant's quota numbers to the next request that is sent it,
 * one outside any chain included. A copy of a response another request's stages wrote into leaves
 * out what they wrote (a header of that name the handler set itself goes with it). A copy shares
 * the body, so one with a body can be handed out as often as the runtime can read it. Without
 * `owner`, every call is taken for the same request. A Request made from the one a resolver decided
 * on (handed on by `compose()`, replaced by a Hono middleware, or given to a sub-application inside
 * the resolver's tenant context) counts as that request.
 *
 * @example
 * ```ts
 * const target = responseForHeaders(response, outcome.headers(), outcome.request)
 * for (const [name, value] of outcome.headers()) target.headers.set(name, value)
 * ```
 */
export function responseForHeaders(
  response: Response,
  headers: readonly [string, string][],
  owner?: object,
): Response {
  return marked(response, headers, identity(owner))
}

/**
 * Records that `response`, sent as it is by the request `owner`, carries that request's stage
 * `headers`, put there by something else (Hono's `c.header()` before the handler built it), so
 * that another request handed the same object gets a copy without them. False when another
 * request's stages wrote into it: then it cannot go out as it is (see {@link responseForHeaders}).
 *
 * @example
 * ```ts
 * // The handler's response carries every stage header already (set through c.header()):
 * if (!claimResponse(response, outcome.headers(), outcome.owner)) {
 *   response = responseForHeaders(response, outcome.headers(), outcome.owner)
 * }
 * ```
 */
export function claimResponse(
  response: Response,
  headers: readonly [string, string][],
  owner?: object,
): boolean {
  const request = identity(owner)
  const mark = (response as Marked)[written]
  if (mark === undefined) (response as Marked)[written] = new WrittenHeaders(request, headers, false)
  return mark === undefined || mark.owner === request
}

/**
 * The request `owner` is part of (see `ownerOf`): a Request object a middleware made from another
 * (`compose()`, Hono's `bodyLimit`), or a sub-application's, is the same request as the one it was
 * made from, and what the stages of either wrote is that request's.
 */
function identity(owner: object | undefined): object | undefined {
  return owner === undefined ? undefined : ownerOf(owner)
}

function marked(
  response: Response,
  headers: readonly [string, string][],
  owner: object | undefined,
): Response {
  const mark = (response as Marked)[written]
  const own = mark !== undefined && mark.owner === owner
  if (own && mark.copy) {
    mark.headers = mark.headers.length === 0 ? headers : [...mark.headers, ...headers]
    return response
  }
  const target = new Response(response.body, response)
  if (mark !== undefined && !own) removeHeaders(target.headers, mark.headers)
  const carried = own && mark.headers.length > 0 ? [...mark.headers, ...headers] : headers
  ;(target as Marked)[written] = new WrittenHeaders(owner, carried, true)
  return target
}

/**
 * `response` as the request `owner`, whose stages add no headers, sends it: a copy without the
 * headers another request's stages wrote into it (one response object handed to many requests, see
 * {@link responseForHeaders}), else `response` itself.
 *
 * @example
 * ```ts
 * const sent = outcome.pending ? withHeaders(response, outcome.headers(), request) : withoutEarlierHeaders(response, request)
 * ```
 */
export function withoutEarlierHeaders(response: Response, owner: object): Response {
  return withHeaders(response, NONE, owner)
}

const NONE: readonly [string, string][] = []

/** Takes out what {@link applyHeaders} put in: a list field's items, any other header whole. */
function removeHeaders(target: Headers, headers: readonly [string, string][]): void {
  for (const [name, value] of headers) {
    const now = isListField(name) ? target.get(name) : null
    if (now === null || now === value) target.delete(name)
    else target.set(name, withoutListItems(now, value))
  }
}

/**
 * Where `items` (one list item or several, as a stage writes them) stand in the list field `field`
 * as whole items, or -1. A match starts and ends at item boundaries: `"rate";q=10` is not in
 * `"rate";q=100`, nor `t=45` in `t=450`. Fields are compared as the stages write them (items
 * joined by `, `), so a quoted string holding a comma is not split.
 *
 * @example
 * ```ts
 * listItemsAt('"rate";q=100, "rate";q=10', '"rate";q=10') // 14
 * listItemsAt('"rate";q=100', '"rate";q=10') // -1
 * ```
 */
export function listItemsAt(field: string, items: string): number {
  if (items === '') return -1
  for (let at = field.indexOf(items); at !== -1; at = field.indexOf(items, at + 1)) {
    if (itemEdge(field, at - 1, -1) && itemEdge(field, at + items.length, 1)) return at
  }
  return -1
}

// Whether, from `i` going in `step`, only spaces or tabs stand before the field's edge or a comma.
function itemEdge(field: string, i: number, step: 1 | -1): boolean {
  while (i >= 0 && i < field.length && (field[i] === ' ' || field[i] === '\t')) i += step
  return i < 0 || i >= field.length || field[i] === ','
}

/** `field` without the whole items `items` (once) and the separator next to them. */
function withoutListItems(field: string, items: string): string {
  const at = listItemsAt(field, items)
  if (at === -1) return field
  const before = field.slice(0, at).replace(/[ \t]*,[ \t]*$/, '')
  const after = field.slice(at + items.length).replace(/^[ \t]*,[ \t]*/, '')
  return before !== '' && after !== '' ? `${before}, ${after}` : before + after
}

/**
 * True for the stage headers that are Structured Field lists, to which each stage appends its items.
 *
 * @example
 * ```ts
 * isListField('RateLimit') // true: the rate limit's item goes after the quota's
 * isListField('X-Quota-Remaining-Requests') // false: a stage's value replaces the handler's
 * ```
 */
export function isListField(name: string): boolean {
  return name === 'RateLimit-Policy' || name === 'RateLimit'
}

function applyHeaders(target: Headers, headers: readonly [string, string][]): void {
  for (const [name, value] of headers) {
    if (isListField(name)) target.append(name, value)
    else target.set(name, value)
  }
}

/** Adds the headers a response (a custom rejection) does not set itself. */
export function withMissingHeaders(
  response: Response,
  headers: readonly [string, string][],
  owner?: object,
): Response {
  // Judged on the response as this request will send it (without another request's headers).
  const target = responseForHeaders(response, NONE, owner)
  return withHeaders(
    target,
    headers.filter(([name]) => !target.headers.has(name)),
    owner,
  )
}
