import { calendarWindow, type QuotaWindow, type QuotaWindowUsage, type RateLimitDecision } from '@tenant/core'

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
  const policies = items.map((item) => {
    let value = `"${item.policy}";q=${item.quota}`
    if (item.windowSeconds !== undefined) value += `;w=${item.windowSeconds}`
    if (item.unit !== undefined) value += `;qu="${item.unit}"`
    return value
  })
  const states = items.map((item) => `"${item.policy}";r=${item.remaining};t=${item.resetSeconds}`)
  return [
    ['RateLimit-Policy', policies.join(', ')],
    ['RateLimit', states.join(', ')],
  ]
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
  const items: RateLimitItem[] = []
  let requests: number | undefined
  let tokens: number | undefined
  for (const usage of windows) {
    const common = {
      windowSeconds: windowSeconds(usage.window, usage.resetAt),
      resetSeconds: secondsUntil(usage.resetAt, now),
    }
    if (usage.limit.requests !== undefined) {
      const remaining = usage.remaining.requests ?? 0
      items.push({ policy: usage.window, quota: usage.limit.requests, remaining, ...common })
      requests = Math.min(requests ?? remaining, remaining)
    }
    if (usage.limit.tokens !== undefined) {
      const remaining = usage.remaining.tokens ?? 0
      items.push({
        policy: `${usage.window}-tokens`,
        quota: usage.limit.tokens,
        unit: 'tokens',
        remaining,
        ...common,
      })
      tokens = Math.min(tokens ?? remaining, remaining)
    }
  }
  const headers = rateLimitFields(items)
  if (requests !== undefined) headers.push(['X-Quota-Remaining-Requests', String(requests)])
  if (tokens !== undefined) headers.push(['X-Quota-Remaining-Tokens', String(tokens)])
  return headers
}

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
  if (decision.limit === undefined) return []
  return rateLimitFields([
    {
      policy: 'rate',
      quota: decision.limit,
      remaining: decision.remaining ?? 0,
      resetSeconds: secondsUntil(decision.resetAt, now),
    },
  ])
}

/**
 * Adds headers to a response. `RateLimit-Policy` and `RateLimit` are Structured Field lists, so
 * they are appended (two stages each add their items); others replace. A response with immutable
 * headers (one straight from `fetch()`) is copied first.
 *
 * @example
 * ```ts
 * const response = withHeaders(await fetch(upstream), [['X-Quota-Remaining-Requests', '41']])
 * ```
 */
export function withHeaders(response: Response, headers: readonly [string, string][]): Response {
  if (headers.length === 0) return response
  try {
    applyHeaders(response.headers, headers)
    return response
  } catch {
    const copy = new Response(response.body, response)
    applyHeaders(copy.headers, headers)
    return copy
  }
}

function applyHeaders(target: Headers, headers: readonly [string, string][]): void {
  for (const [name, value] of headers) {
    if (name === 'RateLimit-Policy' || name === 'RateLimit') target.append(name, value)
    else target.set(name, value)
  }
}

/** Adds the headers a response (a custom rejection) does not set itself. */
export function withMissingHeaders(response: Response, headers: readonly [string, string][]): Response {
  return withHeaders(
    response,
    headers.filter(([name]) => !response.headers.has(name)),
  )
}
