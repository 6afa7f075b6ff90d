import { type Clock, isTenantError, systemClock, TenantBackendError, TenantError } from '@tenant/core'
import { isResolved } from './context'
import { withMissingHeaders } from './headers'
import {
  type EventHookName,
  type EventOf,
  emit,
  type HookSet,
  overrideResponse,
  reportError,
  type TenancyHooks,
  type TenancyStage,
} from './hooks'
import { problemResponse } from './problem'
import type { MaybePromise } from './types'

/** Options every stage shares. */
export interface StageOptions {
  /**
   * When the stage's store fails (throws, rejects or times out), let the request through instead of
   * answering 503 `tenant_backend_unavailable`. The failure still reaches the hooks.
   * @default false
   */
  failOpen?: boolean
  /**
   * Treat a store call that has not answered after this many ms as failed. Stores with their own
   * timeout (Redis) fail sooner by themselves; this is the guard for those without one.
   * @default undefined (no timeout)
   */
  timeoutMs?: number
  /**
   * Event hooks for this stage: one set or several (all run, in order), after the chain-wide ones
   * given to `tenancy()`.
   */
  hooks?: TenancyHooks | readonly TenancyHooks[]
}

/** Codes the HTTP layer sends as they are when a store throws them. */
const clientCodes = new Set<string>([
  'tenant_required',
  'tenant_invalid_id',
  'tenant_unknown',
  'tenant_suspended',
  'tenant_mismatch',
  'tenant_policy_denied',
  'tenant_rate_limited',
  'tenant_quota_exceeded',
  'invalid_cost',
])

/** What a failed store call means for the request. */
export type StoreFailure =
  /** The store answered with a client error (an unknown tenant, a bad cost): refuse with it. */
  | { kind: 'refuse'; error: TenantError }
  /** The store itself failed: 503, or pass under `failOpen`. `cause` is what it threw. */
  | { kind: 'backend'; error: TenantBackendError; cause: unknown }

/**
 * Sorts what a store threw. `TenantNotFoundError` becomes `tenant_unknown`; client errors keep
 * their code; everything else (a backend error, an invalid stored config, an unknown error) is a
 * backend failure, never a denial in disguise.
 */
export function classifyStoreError(
  error: unknown,
  stage: TenancyStage,
  tenantId: string | undefined,
): StoreFailure {
  if (isTenantError(error)) {
    if (error.code === 'tenant_not_found') {
      const id = error.tenantId ?? tenantId
      return {
        kind: 'refuse',
        error: new TenantError(
          'tenant_unknown',
          id ? `tenant "${id}" is not known` : 'the tenant is not known',
          {
            tenantId: id,
            cause: error,
          },
        ),
      }
    }
    if (clientCodes.has(error.code)) return { kind: 'refuse', error }
  }
  // The detail stays generic: a driver's message can carry host names or credentials.
  return {
    kind: 'backend',
    error: new TenantBackendError(`the ${stageNames[stage]} backend is unavailable`, {
      tenantId,
      cause: error,
    }),
    cause: error,
  }
}

const stageNames: Record<TenancyStage, string> = {
  resolve: 'tenant configuration',
  policy: 'policy',
  rateLimit: 'rate limit',
  quota: 'quota',
}

/**
 * Runs a store call, failing it with a `TenantBackendError` if it outlives `timeoutMs`. Without a
 * timeout it is the store's own promise: no wrapper per call (each promise also runs
 * AsyncLocalStorage's hooks on Node). A store that throws synchronously throws here.
 */
export function callStore<T>(call: () => Promise<T>, timeoutMs: number | undefined): Promise<T> {
  return timeoutMs === undefined ? call() : raceTimeout(call, timeoutMs)
}

async function raceTimeout<T>(call: () => Promise<T>, timeoutMs: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TenantBackendError(`no answer within ${timeoutMs} ms`)), timeoutMs)
  })
  try {
    return await Promise.race([call(), timeout])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Runs a user callback (`principal`, `extract`, `tokenEstimator`, an extractor). A `TenantError`
 * it throws is the answer, sorted like a store's (so a principal lookup can throw
 * `TenantBackendError` for a 503, never passed by `failOpen`); any other error is a bug in the
 * callback and propagates to the framework's error handler.
 */
export async function callUser<T>(
  stage: TenancyStage,
  call: () => T | Promise<T>,
): Promise<{ value: T } | { error: TenantError; cause: unknown }> {
  try {
    return { value: await call() }
  } catch (error) {
    if (!isTenantError(error)) throw error
    return { error: classifyStoreError(error, stage, error.tenantId).error, cause: error }
  }
}

/** The tenant of a request for the stages after the resolver; throws if no resolver ran. */
export function requireResolution(request: Request, middleware: string): void {
  if (!isResolved(request)) {
    throw new Error(
      `${middleware}() found no tenant resolution on this request: put tenantResolver() before it ` +
        '(or use tenancy(), which wires the stages in order).',
    )
  }
}

/** The result of a store call as the stage sees it. */
export type StoreOutcome<T> =
  | { status: 'ok'; value: T }
  /** The store failed and `failOpen` lets the request through; `cause` is what it threw. */
  | { status: 'failedOpen'; cause: unknown }
  /** Refuse with `error`; `cause` is what the store threw. */
  | { status: 'refused'; error: TenantError; cause: unknown }

/** How a stage refuses a request. */
export interface Refusal {
  error: TenantError
  /** What caused it, when not `error` itself (a store's exception). */
  cause?: unknown
  /** Extra headers on the default problem response (`Retry-After`, RateLimit fields). */
  headers?: [string, string][]
  /** Extra members of the default problem body. */
  extensions?: Record<string, unknown>
  /** The override hook that may replace the default problem response. */
  override?: { hook: string; call: () => MaybePromise<Response> }
}

type EventInput<K extends EventHookName> = Omit<
  EventOf<K>,
  'allowed' | 'status' | 'code' | 'request' | 'tenantId'
>

/**
 * One stage's plumbing, the same for every stage: store calls with timeout and failure
 * classification, refusals (override hook, problem response) and the event of each decision.
 */
export class StageRun<K extends EventHookName> {
  constructor(
    readonly hooks: HookSet,
    readonly hook: K,
    readonly stage: TenancyStage,
    readonly request: Request,
    /** Set by the resolver once it knows the tenant. */
    public tenantId: string | undefined,
    readonly options: { failOpen: boolean; timeoutMs: number | undefined },
  ) {}

  /** Calls the store; a failure is reported to `onError` when it is the backend's. */
  store<T>(call: () => Promise<T>): Promise<StoreOutcome<T>> {
    let pending: Promise<T>
    try {
      pending = callStore(call, this.options.timeoutMs)
    } catch (thrown) {
      return Promise.resolve(this.#failed(thrown))
    }
    return Promise.resolve(pending).then(
      (value): StoreOutcome<T> => ({ status: 'ok', value }),
      (thrown) => this.#failed<T>(thrown),
    )
  }

  /** Sorts a store failure: a refusal, a pass under `failOpen`, or a backend refusal. */
  #failed<T>(thrown: unknown): StoreOutcome<T> {
    const failure = classifyStoreError(thrown, this.stage, this.tenantId)
    if (failure.kind === 'refuse') return { status: 'refused', error: failure.error, cause: thrown }
    reportError(this.hooks, failure.cause, {
      stage: this.stage,
      request: this.request,
      tenantId: this.tenantId,
    })
    if (this.options.failOpen) return { status: 'failedOpen', cause: failure.cause }
    return { status: 'refused', error: failure.error, cause: failure.cause }
  }

  /**
   * Whether anything listens to this stage's event. Without a listener the full event (the
   * caller's fields plus `allowed`, `status`, ...) is not assembled: most chains run without event
   * hooks, and the chain runs on every request.
   */
  get observed(): boolean {
    return this.hooks[this.hook].length > 0
  }

  /** Fires the event of an admitted request (status 200). */
  allow(event: EventInput<K>): void {
    if (this.observed) this.fire({ ...event, allowed: true, status: 200 })
  }

  /** Fires the event of a request let through by `failOpen`. */
  failOpen(event: EventInput<K>, cause: unknown): void {
    if (this.observed) this.fire({ ...event, allowed: true, status: 200, error: cause, failedOpen: true })
  }

  /**
   * Builds the refusal response (override hook or problem) and fires the event with its status.
   * The refusal's headers are added to an override's response where it did not set them.
   */
  async refuse(event: EventInput<K>, refusal: Refusal): Promise<Response> {
    const made = await overrideResponse(
      this.hooks,
      {
        stage: this.stage,
        request: this.request,
        tenantId: this.tenantId,
        hook: refusal.override?.hook ?? '',
      },
      refusal.override?.call,
      () => problemResponse(refusal.error, { headers: refusal.headers, extensions: refusal.extensions }),
    )
    const response = refusal.headers ? withMissingHeaders(made, refusal.headers) : made
    this.fire({
      error: refusal.cause ?? refusal.error,
      ...event,
      allowed: false,
      status: response.status,
      code: refusal.error.code,
    })
    return response
  }

  private fire(event: Record<string, unknown>): void {
    emit(this.hooks, this.hook, this.stage, {
      request: this.request,
      tenantId: this.tenantId,
      ...event,
    } as EventOf<K>)
  }
}

/** The clock of a stage, for the `t=` of the RateLimit field. */
export function clockOf(options: { clock?: Clock }): Clock {
  return options.clock ?? systemClock
}
