import {
  type ConcurrencyDecision,
  isThenable,
  type PolicyDecision,
  type PolicyRequest,
  type QuotaCost,
  type QuotaDecision,
  type QuotaUsage,
  type RateLimitDecision,
  type TenantConfig,
  type TenantErrorCode,
} from '@tenant/core'
import { invalidOption } from './options'
import type { MaybePromise } from './types'

/** The stages of the tenancy chain, in the order they run. */
export type TenancyStage = 'resolve' | 'policy' | 'concurrency' | 'rateLimit' | 'quota'

/** What every event hook receives. */
export interface TenancyEventBase {
  request: Request
  /** The tenant the decision concerns; `undefined` when none was resolved. */
  tenantId: string | undefined
  /** Whether the request goes on down the chain. */
  allowed: boolean
  /** The status actually sent for a refusal (after any override hook); 200 when allowed. */
  status: number
  /** The stable error code of a refusal; absent when allowed. */
  code?: TenantErrorCode
  /** The error behind a refusal or a fail-open pass (a store failure, an unknown tenant). */
  error?: unknown
  /** True when the store failed and the stage let the request through because of `failOpen`. */
  failedOpen?: boolean
}

/** Event of the resolver stage. */
export interface ResolveEvent extends TenancyEventBase {
  /** Where the id came from: `'principal'`, an extractor's `source` such as `'header:X-Tenant-ID'`, or `'earlier-resolver'` when an earlier resolver found it (see the README). */
  source?: string
  /** The stored config, when the resolver checked the tenant against a config manager. */
  tenant?: TenantConfig
}

/** Event of the policy stage. */
export interface PolicyEvent extends TenancyEventBase {
  /** What the request asked for. */
  input: PolicyRequest
  /** The evaluator's answer; absent when the evaluator threw. */
  decision?: PolicyDecision
}

/** Event of the rate-limit stage. */
export interface RateLimitEvent extends TenancyEventBase {
  /** The limiter's answer; absent when the limiter threw. */
  decision?: RateLimitDecision
}

/** Event of the concurrency stage. */
export interface ConcurrencyEvent extends TenancyEventBase {
  /** The tenant's cap (`maxInFlight`); absent when its config could not be read. */
  limit?: number
  /** The limiter's answer (without the lease); absent when the tenant has no cap or the limiter threw. */
  decision?: Omit<ConcurrencyDecision, 'lease'>
}

/** Event of the quota stage. */
export interface QuotaEvent extends TenancyEventBase {
  /** The cost charged (and its subject, if any); absent when it could not be read (a 400 refusal). */
  cost?: Required<Pick<QuotaCost, 'requests' | 'tokens'>> & Pick<QuotaCost, 'subject'>
  /** The manager's answer; absent when the manager threw or the cost was invalid. */
  decision?: QuotaDecision
}

/** Event of the quota stage's `actualTokens` adjustment, after the upstream answered. */
export interface AdjustEvent {
  request: Request
  tenantId: string
  /** Tokens charged up front (the estimate). */
  estimatedTokens: number
  /** Tokens the upstream response reported; absent when `actualTokens()` failed or returned an invalid count. */
  actualTokens?: number
  /** Usage after the adjustment; absent when it failed. */
  usage?: QuotaUsage
  /** Why the adjustment failed; the response is sent unchanged. */
  error?: unknown
}

/** Event of a streamed (SSE) response's quota settlement, once its body ended (`streamUsage`). */
export interface SettleEvent {
  request: Request
  tenantId: string
  /**
   * `'usage'`: the stream got to its end (or its `[DONE]`) and its usage event gave the tokens;
   * `'aborted'`: the client went away (or the upstream failed) before the end, settled at what was
   * sent (never below a usage already reported); `'estimated'`: the stream ended without a usage
   * event, settled at what was sent.
   */
  how: 'usage' | 'aborted' | 'estimated'
  /** Tokens charged up front (the estimate). */
  estimatedTokens: number
  /** Tokens the request was settled at; absent when they could not be read (see `error`). */
  tokens?: number
  /** Data events the stream passed through (`data: [DONE]` not counted). */
  events: number
  /** Usage after the adjustment; absent when nothing changed or the adjustment failed. */
  usage?: QuotaUsage
  /**
   * Why the tokens could not be read (`streamUsage.sent()` threw or returned no whole number >= 0).
   * With `tokens`: a stream cut short after a usage report, settled at that usage instead.
   */
  error?: unknown
}

/** Where an error reported to `onError` came from. */
export interface ErrorInfo {
  stage: TenancyStage
  request: Request
  tenantId?: string
  /** Set when the error was thrown by a hook, e.g. `'onQuota'`; absent for a store failure. */
  hook?: string
}

/**
 * Event hooks, fired once per decision of each stage, allowed or not. Their return value is
 * ignored and a returned promise is not awaited; a hook that throws (or rejects) is reported to
 * `onError` and never changes the response.
 */
export interface TenancyHooks {
  /** After the resolver decided: the tenant found (or why none was), and the status sent. */
  onResolve?(event: ResolveEvent): unknown
  /** After the policy stage decided, with what the request asked for and the evaluator's answer. */
  onPolicy?(event: PolicyEvent): unknown
  /** After the concurrency stage decided, with the in-flight count and the cap. */
  onConcurrency?(event: ConcurrencyEvent): unknown
  /** After the rate-limit stage decided, with the limiter's answer. */
  onRateLimit?(event: RateLimitEvent): unknown
  /** After the quota stage decided, with the cost charged and the manager's answer. */
  onQuota?(event: QuotaEvent): unknown
  /** After `actualTokens` reported the real usage and the difference was charged or refunded. */
  onAdjust?(event: AdjustEvent): unknown
  /** After a streamed response's body ended and its quota was settled (`streamUsage`). */
  onSettle?(event: SettleEvent): unknown
  /**
   * Sees every error the chain did not answer with: store failures (including those passed by
   * `failOpen`), failed adjustments and hooks that threw.
   * @default reports to `console.error`
   */
  onError?(error: unknown, info: ErrorInfo): unknown
}

/** Names of the event hooks. */
export type EventHookName = Exclude<keyof TenancyHooks, 'onError'>
/** The event an event hook receives. */
export type EventOf<K extends EventHookName> = Parameters<NonNullable<TenancyHooks[K]>>[0]
type HookFn = (...args: any[]) => unknown

const hookNames = [
  'onResolve',
  'onPolicy',
  'onConcurrency',
  'onRateLimit',
  'onQuota',
  'onAdjust',
  'onSettle',
  'onError',
] as const

/** Hooks gathered from every level that defines them, each bound to its owner. Internal. */
export type HookSet = { readonly [K in keyof TenancyHooks]-?: readonly HookFn[] }

/**
 * Gathers one or several hook sets: where several define a hook, all run in order.
 * Methods are bound, so a class instance (a metrics recorder) works as a hook set.
 */
export function hookSet(hooks: TenancyHooks | readonly TenancyHooks[] | undefined): HookSet {
  const sets: readonly (TenancyHooks | undefined)[] = Array.isArray(hooks)
    ? hooks
    : [hooks as TenancyHooks | undefined]
  for (const set of sets) {
    if (set !== undefined && (typeof set !== 'object' || set === null)) {
      throw invalidOption(
        'hooks',
        `must be an object of hook functions (or a list of them), got ${set === null ? 'null' : typeof set}`,
      )
    }
  }
  const result = {} as Record<keyof TenancyHooks, HookFn[]>
  for (const name of hookNames) {
    result[name] = sets.flatMap((set) => {
      const fn = set?.[name] as HookFn | undefined
      if (fn === undefined) return []
      if (typeof fn !== 'function')
        throw invalidOption(`hooks.${name}`, `must be a function, got ${typeof fn}`)
      return [fn.bind(set)]
    })
  }
  return result
}

function logError(error: unknown, info: ErrorInfo, original?: unknown): void {
  const where = info.hook ? `the ${info.hook} hook` : `the ${info.stage} stage`
  if (original === undefined) console.error(`[@tenant/fetch] error in ${where}:`, error)
  else console.error(`[@tenant/fetch] onError threw while reporting an error in ${where}:`, error, original)
}

/** Reports an error to every `onError` hook, or to the console when there is none or one fails. */
export function reportError(hooks: HookSet, error: unknown, info: ErrorInfo): void {
  if (hooks.onError.length === 0) {
    logError(error, info)
    return
  }
  for (const onError of hooks.onError) {
    try {
      const result = onError(error, info)
      if (isThenable(result)) result.then(undefined, (hookError) => logError(hookError, info, error))
    } catch (hookError) {
      logError(hookError, info, error)
    }
  }
}

/** Fires an event hook; whatever the hook does, the request path goes on. */
export function emit<K extends EventHookName>(
  hooks: HookSet,
  name: K,
  stage: TenancyStage,
  event: EventOf<K>,
): void {
  for (const hook of hooks[name]) {
    const info: ErrorInfo = { stage, request: event.request, tenantId: event.tenantId, hook: name }
    try {
      const result = hook(event)
      if (isThenable(result)) result.then(undefined, (error) => reportError(hooks, error, info))
    } catch (error) {
      reportError(hooks, error, info)
    }
  }
}

// Duck-typed: a Response from another realm or another copy of undici fails `instanceof`. Its
// body methods are checked too, so a plain `{ status, headers }` is not taken for one.
function isResponse(value: unknown): value is Response {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Response).status === 'number' &&
    typeof (value as Response).headers?.get === 'function' &&
    typeof (value as Response).clone === 'function' &&
    typeof (value as Response).arrayBuffer === 'function' &&
    'body' in value
  )
}

/**
 * Asks an override hook (`onMissing`, `onDenied`, `onRejected`) for the response to send. If it
 * throws or returns something that is not a Response, that is reported and the default response
 * is sent: the request is refused as decided either way.
 */
export async function overrideResponse(
  hooks: HookSet,
  info: ErrorInfo & { hook: string },
  override: (() => MaybePromise<Response>) | undefined,
  fallback: () => Response,
): Promise<Response> {
  if (!override) return fallback()
  try {
    const response: unknown = await override()
    if (isResponse(response)) return response
    throw new TypeError(
      `${info.hook} must return a Response, got ${response === null ? 'null' : typeof response}`,
    )
  } catch (error) {
    reportError(hooks, error, info)
    return fallback()
  }
}
