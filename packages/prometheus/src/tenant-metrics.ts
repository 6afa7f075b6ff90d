import { invalidOption, isValidTenantId, type PolicyRule, validateTenantId } from '@tenant/core'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'

/** Options of {@link TenantMetrics}. */
export interface TenantMetricsOptions {
  /**
   * Where the metrics are registered. Pass your app's registry to expose them with your other
   * metrics. Never the global `register` implicitly: a library writing to a process-wide registry
   * collides with the app's own metrics and with a second instance (tests, hot reload).
   * @default a new `Registry`
   */
  registry?: Registry
  /** Prefix of every metric name. @default 'tenant_' */
  prefix?: string
  /**
   * Most distinct tenant label values. The first `maxTenants` tenants seen (after those listed in
   * `tenants`) get their own label; every other tenant is counted under `overflowLabel`, so a flood
   * of tenant ids cannot grow the number of series or the memory behind them.
   * @default 1000
   */
  maxTenants?: number
  /**
   * Tenants that always get their own label (your largest customers), reserved up front so that
   * they are never folded into the overflow. They count towards `maxTenants`. Any iterable of
   * tenant ids (an array, a `Set`, ...), but not a string.
   * @default []
   */
  tenants?: Iterable<string>
  /**
   * The label of tenants beyond `maxTenants` and of invalid tenant ids. Must not be a valid tenant
   * id, so that no tenant can be mistaken for it.
   * @default '(other)'
   */
  overflowLabel?: string
  /** The label of requests without a tenant. Must not be a valid tenant id. @default '(none)' */
  missingLabel?: string
  /**
   * Buckets of the request duration histogram, in seconds. The default reaches two minutes because
   * LLM calls routinely take tens of seconds.
   * @default [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]
   */
  buckets?: number[]
}

/** What {@link TenantMetrics.recordRequest} takes. */
export interface RequestRecord {
  /** The HTTP status sent. */
  status: number
  /** How long the request took, in milliseconds. */
  durationMs: number
  /**
   * How the response body ended: `'errored'` (it failed after the status went out) is counted as
   * `server_error` and `'cancelled'` (its reader gave up before the end: the client went away) as
   * `cancelled`, whatever the status; `code` stays the status sent.
   * @default 'complete'
   */
  end?: 'complete' | 'cancelled' | 'errored'
}

/**
 * The `outcome` label of `requests_total`: the class of the status sent, or `cancelled` for a body
 * the client gave up on (a body that failed is a `server_error`).
 */
export type RequestOutcome = 'success' | 'client_error' | 'server_error' | 'cancelled'

/** Default buckets of {@link TenantMetricsOptions.buckets}, in seconds. */
export const DEFAULT_DURATION_BUCKETS: readonly number[] = Object.freeze([
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
])

const METRIC_PREFIX = /^[a-zA-Z_:][a-zA-Z0-9_:]*$|^$/

// The `rule` label values of policy_denials_total (see recordPolicyDenial).
const POLICY_RULES: readonly (PolicyRule | 'unknown')[] = ['model', 'tool', 'method', 'path', 'unknown']

function outcomeOf(status: number): RequestOutcome {
  return status >= 500 ? 'server_error' : status >= 400 ? 'client_error' : 'success'
}

function checkLabel(value: unknown, name: string): string {
  if (typeof value !== 'string' || value.length === 0 || isValidTenantId(value)) {
    throw invalidOption(`TenantMetrics.${name}`, 'must be a non-empty string that is not a valid tenant id')
  }
  return value
}

/** How many forgotten tenant ids a {@link TenantMetrics} remembers (see {@link forgottenSince}). */
const MAX_REMEMBERED_FORGETS = 10_000

/** The `forget` calls of one {@link TenantMetrics}: how many so far, and when each id last was. */
class ForgetLog {
  count = 0
  // Id -> `count` at its last forget, oldest first; at most MAX_REMEMBERED_FORGETS.
  readonly last = new Map<string, number>()

  add(tenantId: string): void {
    this.count++
    this.last.delete(tenantId)
    this.last.set(tenantId, this.count)
    if (this.last.size > MAX_REMEMBERED_FORGETS) this.last.delete(this.last.keys().next().value!)
  }
}

// Internal to this package, apart from the public class: the middleware reads the count when the
// handler answers, and asks when the body ends whether the tenant was forgotten in between, so a
// request that outlived its (deleted) tenant is not counted under the tenant created next under
// its id.
const forgetLogs = new WeakMap<TenantMetrics, ForgetLog>()

/** How many times `metrics.forget` was called so far. */
export function forgetCount(metrics: TenantMetrics): number {
  return forgetLogs.get(metrics)?.count ?? 0
}

/**
 * Whether `tenantId` was forgotten by `metrics` after `count` (a {@link forgetCount} reading). An
 * id forgotten more than MAX_REMEMBERED_FORGETS forgets ago is no longer known, and answers false.
 */
export function forgottenSince(metrics: TenantMetrics, tenantId: string, count: number): boolean {
  const log = forgetLogs.get(metrics)
  if (log === undefined || count === log.count) return false
  const at = log.last.get(tenantId)
  return at !== undefined && at > count
}

/**
 * Per-tenant Prometheus metrics on prom-client, with bounded label cardinality.
 *
 * | Metric | Type | Labels |
 * | --- | --- | --- |
 * | `tenant_requests_total` | counter | `tenant`, `outcome` (status class or `cancelled`), `code` (HTTP status) |
 * | `tenant_request_duration_seconds` | histogram | `tenant` |
 * | `tenant_quota_rejections_total` | counter | `tenant` |
 * | `tenant_rate_limited_total` | counter | `tenant` |
 * | `tenant_concurrency_rejections_total` | counter | `tenant` |
 * | `tenant_policy_denials_total` | counter | `tenant`, `rule` |
 * | `tenant_tokens_consumed_total` | counter | `tenant` |
 * | `tenant_tokens_refunded_total` | counter | `tenant` |
 * | `tenant_metrics_tracked_tenants` | gauge | (none) |
 *
 * The recording methods never throw: a metric must not fail a request. Wire them by hand, or with
 * {@link tenantMetricsHooks} and {@link tenantMetricsMiddleware} for the `@tenant/fetch` chain.
 *
 * @example
 * ```ts
 * const metrics = new TenantMetrics({ maxTenants: 500 })
 * metrics.recordRequest('acme', { status: 200, durationMs: 42 })
 * metrics.recordQuotaRejection('acme')
 * const text = await metrics.registry.metrics()
 * ```
 */
export class TenantMetrics {
  /** The registry holding these metrics (the one passed in, or a new one). */
  readonly registry: Registry
  /** The label value of tenants beyond `maxTenants`. */
  readonly overflowLabel: string
  /** The label value of requests without a tenant. */
  readonly missingLabel: string
  /** Most distinct tenant label values. */
  readonly maxTenants: number

  readonly #tenants = new Set<string>()
  readonly #reserved: ReadonlySet<string>
  // The codes requests_total has counted, by outcome: the series forget() removes for a tenant,
  // since prom-client removes one series (all its labels given) at a time. At most 4 outcomes x 501
  // codes, whatever the number of tenants.
  readonly #requestCodes: Record<RequestOutcome, Set<string>> = {
    success: new Set(),
    client_error: new Set(),
    server_error: new Set(),
    cancelled: new Set(),
  }
  readonly #requests: Counter<'tenant' | 'outcome' | 'code'>
  readonly #duration: Histogram<'tenant'>
  readonly #quotaRejections: Counter<'tenant'>
  readonly #rateLimited: Counter<'tenant'>
  readonly #concurrencyRejections: Counter<'tenant'>
  readonly #policyDenials: Counter<'tenant' | 'rule'>
  readonly #tokens: Counter<'tenant'>
  readonly #refunds: Counter<'tenant'>
  readonly #tracked: Gauge

  constructor(options: TenantMetricsOptions = {}) {
    const prefix = options.prefix ?? 'tenant_'
    if (typeof prefix !== 'string' || !METRIC_PREFIX.test(prefix)) {
      throw invalidOption('TenantMetrics.prefix', `"${String(prefix)}" is not a metric name`)
    }
    const maxTenants = options.maxTenants ?? 1000
    if (!Number.isInteger(maxTenants) || maxTenants < 0) {
      throw invalidOption(
        'TenantMetrics.maxTenants',
        `must be a whole number >= 0, got ${String(maxTenants)}`,
      )
    }
    this.maxTenants = maxTenants
    this.overflowLabel = checkLabel(options.overflowLabel ?? '(other)', 'overflowLabel')
    this.missingLabel = checkLabel(options.missingLabel ?? '(none)', 'missingLabel')
    if (this.overflowLabel === this.missingLabel) {
      throw invalidOption('TenantMetrics.missingLabel', 'overflowLabel and missingLabel must differ')
    }
    const buckets = options.buckets ?? [...DEFAULT_DURATION_BUCKETS]
    if (
      !Array.isArray(buckets) ||
      buckets.length === 0 ||
      buckets.some((b, i) => !(b > 0) || (i > 0 && b <= buckets[i - 1]!))
    ) {
      throw invalidOption('TenantMetrics.buckets', 'must be positive and strictly increasing')
    }
    const tenants: unknown = options.tenants === undefined ? [] : options.tenants
    // A string is iterable too, but would reserve one-letter tenants ('acme' is a, c, m, e).
    if (
      typeof tenants !== 'object' ||
      tenants === null ||
      tenants instanceof String ||
      typeof (tenants as Partial<Iterable<unknown>>)[Symbol.iterator] !== 'function'
    ) {
      throw invalidOption(
        'TenantMetrics.tenants',
        'must be an iterable (array, Set) of tenant ids, not a string',
      )
    }
    const reserved = [...new Set(tenants as Iterable<unknown>)] as string[]
    for (const id of reserved) {
      if (!isValidTenantId(id))
        throw invalidOption('TenantMetrics.tenants', `contains an invalid id "${String(id)}"`)
    }
    if (reserved.length > maxTenants) {
      throw invalidOption(
        'TenantMetrics.tenants',
        `${reserved.length} tenants listed, more than maxTenants (${maxTenants})`,
      )
    }
    // Every check is above this line: a refused construction must not leave metrics registered in
    // the caller's registry, or the corrected retry would collide with them.
    this.registry = options.registry ?? new Registry()
    const registers = [this.registry]

    this.#requests = new Counter({
      name: `${prefix}requests_total`,
      help: 'Requests by tenant, outcome (status class, or cancelled) and HTTP status code.',
      labelNames: ['tenant', 'outcome', 'code'],
      registers,
    })
    this.#duration = new Histogram({
      name: `${prefix}request_duration_seconds`,
      help: 'Request duration by tenant, in seconds.',
      labelNames: ['tenant'],
      buckets,
      registers,
    })
    this.#quotaRejections = new Counter({
      name: `${prefix}quota_rejections_total`,
      help: 'Requests refused because a quota limit was exhausted.',
      labelNames: ['tenant'],
      registers,
    })
    this.#rateLimited = new Counter({
      name: `${prefix}rate_limited_total`,
      help: 'Requests refused by the rate limiter.',
      labelNames: ['tenant'],
      registers,
    })
    this.#concurrencyRejections = new Counter({
      name: `${prefix}concurrency_rejections_total`,
      help: 'Requests refused because the tenant had maxInFlight requests in flight.',
      labelNames: ['tenant'],
      registers,
    })
    this.#policyDenials = new Counter({
      name: `${prefix}policy_denials_total`,
      help: 'Requests refused by policy, by the rule (model, tool, method, path) that refused them.',
      labelNames: ['tenant', 'rule'],
      registers,
    })
    this.#tokens = new Counter({
      name: `${prefix}tokens_consumed_total`,
      help: 'Tokens charged against quotas (estimates at admission plus upward adjustments).',
      labelNames: ['tenant'],
      registers,
    })
    this.#refunds = new Counter({
      name: `${prefix}tokens_refunded_total`,
      help: 'Tokens given back when a response used fewer than estimated.',
      labelNames: ['tenant'],
      registers,
    })
    this.#tracked = new Gauge({
      name: `${prefix}metrics_tracked_tenants`,
      help: 'Distinct tenant label values in use; at maxTenants, new tenants are counted as overflow.',
      registers,
    })

    this.#reserved = new Set(reserved)
    this.#reserve()
    forgetLogs.set(this, new ForgetLog())
  }

  /**
   * The label value used for `tenantId`: the id itself while fewer than `maxTenants` tenants have
   * labels (or it already has one), `overflowLabel` beyond that or for an invalid id, and
   * `missingLabel` for `undefined`.
   */
  tenantLabel(tenantId: string | undefined): string {
    if (tenantId === undefined) return this.missingLabel
    if (this.#tenants.has(tenantId)) return tenantId
    if (this.#tenants.size >= this.maxTenants || !isValidTenantId(tenantId)) return this.overflowLabel
    this.#tenants.add(tenantId)
    this.#tracked.set(this.#tenants.size)
    return tenantId
  }

  /**
   * True when `tenantId` has a label of its own already (reserved, or taken by an earlier record),
   * so counting it takes no new one.
   */
  hasLabel(tenantId: string): boolean {
    return this.#tenants.has(tenantId)
  }

  /** Counts a finished request and observes its duration. */
  recordRequest(tenantId: string | undefined, record: RequestRecord): void {
    // Metrics are never the reason a request fails: no record counts as a bad status.
    const { status, durationMs, end } = (typeof record === 'object' && record !== null ? record : {}) as {
      [K in keyof RequestRecord]?: unknown
    }
    const tenant = this.tenantLabel(tenantId)
    const valid = typeof status === 'number' && Number.isInteger(status) && status >= 100 && status <= 599
    const outcome: RequestOutcome =
      end === 'cancelled' ? 'cancelled' : end === 'errored' || !valid ? 'server_error' : outcomeOf(status)
    const code = valid ? String(status) : '0'
    this.#requestCodes[outcome].add(code)
    this.#requests.inc({ tenant, outcome, code })
    // A bad duration is dropped, not thrown.
    if (typeof durationMs === 'number' && Number.isFinite(durationMs) && durationMs >= 0) {
      this.#duration.observe({ tenant }, durationMs / 1000)
    }
  }

  /** Counts a request refused for an exhausted quota. */
  recordQuotaRejection(tenantId: string | undefined): void {
    this.#quotaRejections.inc({ tenant: this.tenantLabel(tenantId) })
  }

  /** Counts a request refused by the rate limiter. */
  recordRateLimited(tenantId: string | undefined): void {
    this.#rateLimited.inc({ tenant: this.tenantLabel(tenantId) })
  }

  /** Counts a request refused by the concurrency cap (too many in flight). */
  recordConcurrencyRejection(tenantId: string | undefined): void {
    this.#concurrencyRejections.inc({ tenant: this.tenantLabel(tenantId) })
  }

  /** Counts a policy denial; `rule` is the allow-list that refused (`'unknown'` when not given). */
  recordPolicyDenial(tenantId: string | undefined, rule?: PolicyRule): void {
    const known = rule === 'model' || rule === 'tool' || rule === 'method' || rule === 'path'
    this.#policyDenials.inc({ tenant: this.tenantLabel(tenantId), rule: known ? rule : 'unknown' })
  }

  /**
   * Counts tokens charged to a tenant. A negative amount (a refund after the response used fewer
   * tokens than estimated) goes to `tokens_refunded_total`, since counters only go up.
   */
  recordTokens(tenantId: string | undefined, tokens: number): void {
    if (!Number.isFinite(tokens) || tokens === 0) return
    const tenant = this.tenantLabel(tenantId)
    if (tokens > 0) this.#tokens.inc({ tenant }, tokens)
    else this.#refunds.inc({ tenant }, -tokens)
  }

  /**
   * Removes every series of `tenantId` from these metrics and frees its label, so that another
   * tenant can take it (a deleted tenant no longer holds one of the `maxTenants` labels) and a
   * tenant created later under the same id starts from zero, not from the deleted customer's
   * counts. A reserved tenant (`tenants`) loses its series but keeps its label. Call it where a
   * tenant id is freed or reused: AdminService's `freshStart`, or after deleting a tenant.
   *
   * Returns `true` when the tenant had a label, `false` (and does nothing) otherwise. Throws
   * `InvalidTenantIdError` for an invalid id; `overflowLabel` and `missingLabel` are not tenants
   * and cannot be forgotten. Scrapers see the tenant's series end; if it records again, they start
   * again from zero.
   *
   * @example
   * ```ts
   * new AdminService({ store, quotas, freshStart: async (tenantId) => { metrics.forget(tenantId) } })
   * ```
   */
  forget(tenantId: string): boolean {
    validateTenantId(tenantId)
    // Remembered with or without a label: a request in flight may take one when it ends.
    forgetLogs.get(this)!.add(tenantId)
    if (!this.#tenants.has(tenantId)) return false
    const tenant = tenantId
    for (const [outcome, codes] of Object.entries(this.#requestCodes)) {
      for (const code of codes) this.#requests.remove({ tenant, outcome, code })
    }
    for (const rule of POLICY_RULES) this.#policyDenials.remove({ tenant, rule })
    for (const metric of [
      this.#duration,
      this.#quotaRejections,
      this.#rateLimited,
      this.#concurrencyRejections,
      this.#tokens,
      this.#refunds,
    ]) {
      metric.remove({ tenant })
    }
    if (!this.#reserved.has(tenantId)) {
      this.#tenants.delete(tenantId)
      this.#tracked.set(this.#tenants.size)
    }
    return true
  }

  /**
   * Zeroes these metrics and forgets which tenants have labels (except the reserved `tenants`), so
   * the next tenants seen get them. Scrapers see a counter reset, which `rate()` handles.
   */
  reset(): void {
    for (const metric of [
      this.#requests,
      this.#duration,
      this.#quotaRejections,
      this.#rateLimited,
      this.#concurrencyRejections,
      this.#policyDenials,
      this.#tokens,
      this.#refunds,
    ]) {
      metric.reset()
    }
    for (const codes of Object.values(this.#requestCodes)) codes.clear()
    this.#reserve()
  }

  #reserve(): void {
    this.#tenants.clear()
    for (const id of this.#reserved) this.#tenants.add(id)
    this.#tracked.set(this.#tenants.size)
  }
}
