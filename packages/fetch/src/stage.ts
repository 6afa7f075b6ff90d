import {
  type Clock,
  configSourceOf,
  isTenantError,
  isThenable,
  systemClock,
  TenantBackendError,
  type TenantConfig,
  TenantError,
} from '@tenant/core'
import type { Admission, StageStep } from './chain'
import { retryAfterHeader, withMissingHeaders } from './headers'
import {
  type EventHookName,
  type EventOf,
  emit,
  type HookSet,
  hookSet,
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
  'tenant_concurrency_limited',
  'tenant_quota_exceeded',
  'invalid_cost',
  'invalid_subject',
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
  concurrency: 'concurrency',
  rateLimit: 'rate limit',
  quota: 'quota',
}

/**
 * Runs a store call, failing it with a `TenantBackendError` (carrying `tenantId`) if it outlives
 * `timeoutMs`. An answer that is already there (a fast-path value) is returned as it is; a promise
 * is the store's own when there is no timeout (no wrapper per call: each promise also runs
 * AsyncLocalStorage's hooks on Node). A store that throws synchronously throws here.
 *
 * The timeout only stops the waiting: the store's call still runs and may change state when it
 * lands. `onLate` gets that late answer (not a late failure), so a stage can compensate what the
 * refused request was charged; what it returns is awaited. `keep` gets the wait for the late
 * answer and its compensation as the timeout fires, while the request is still being answered,
 * so that a runtime that ends work with the response (Workers) lets it finish (`waitUntil`).
 */
export function callStore<T>(
  call: () => T | Promise<T>,
  timeoutMs: number | undefined,
  tenantId?: string,
  onLate?: (late: T) => unknown,
  keep?: (work: Promise<unknown>) => void,
): T | Promise<T> {
  const answer = call()
  return timeoutMs === undefined || !isThenable(answer)
    ? answer
    : raceTimeout(answer, timeoutMs, tenantId, onLate, keep)
}

async function raceTimeout<T>(
  answer: PromiseLike<T>,
  timeoutMs: number,
  tenantId: string | undefined,
  onLate: ((late: T) => unknown) | undefined,
  keep: ((work: Promise<unknown>) => void) | undefined,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new TenantBackendError(`no answer within ${timeoutMs} ms`, { tenantId }))
      // A late failure changed nothing to compensate; a late handler's own failure is its to report.
      if (onLate) {
        const late = Promise.resolve(answer)
          .then(onLate)
          .catch(() => {})
        keep?.(late)
      }
    }, timeoutMs)
  })
  try {
    return await Promise.race([answer, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** A user callback's `TenantError`, sorted like a store's: the answer to send. */
export class UserRefusal {
  constructor(
    readonly error: TenantError,
    readonly cause: unknown,
  ) {}
}

/**
 * Runs a user callback (`principal`, `extract`, `tokenEstimator`, an extractor). A `TenantError`
 * it throws (or rejects with) is the answer, sorted like a store's (so a principal lookup can throw
 * `TenantBackendError` for a 503, never passed by `failOpen`), returned as a {@link UserRefusal};
 * any other error is a bug in the callback and propagates to the framework's error handler. A
 * synchronous answer stays synchronous.
 */
export function callUser<T>(
  stage: TenancyStage,
  call: () => T | Promise<T>,
): T | UserRefusal | Promise<T | UserRefusal> {
  let answer: T | Promise<T>
  try {
    answer = call()
  } catch (error) {
    return userRefusal(stage, error)
  }
  if (!isThenable(answer)) return answer
  return Promise.resolve(answer).then(undefined, (error: unknown) => userRefusal(stage, error))
}

function userRefusal(stage: TenancyStage, error: unknown): UserRefusal {
  if (!isTenantError(error)) throw error
  return new UserRefusal(classifyStoreError(error, stage, error.tenantId).error, error)
}

/** The wiring error of a stage after which no resolver ran: what `decide()` throws. */
export function unresolved(middleware: string): Error {
  return new Error(
    `${middleware}() found no tenant resolution on this request: put tenantResolver() before it ` +
      '(or use tenancy(), which wires the stages in order).',
  )
}

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

/** A store call that threw or rejected: what {@link StageCore.attempt} answers instead of a value. */
export class StoreFailed {
  constructor(readonly thrown: unknown) {}
}

/**
 * One stage's plumbing, built once with the stage and the same for every stage: store calls with
 * timeout and failure classification, refusals (override hook, problem response) and the event of
 * each decision. Per-request data lives on the {@link Admission}.
 */
export class StageCore<K extends EventHookName> {
  readonly hooks: HookSet
  readonly failOpen: boolean
  readonly timeoutMs: number | undefined
  readonly #observed: boolean
  readonly #reads: object | undefined

  /**
   * `options` already checked by `checkStageOptions`; `store` is the stage's manager, limiter or
   * evaluator, whose config source decides whether the resolver's config is handed to it.
   */
  constructor(
    options: StageOptions,
    readonly hook: K,
    readonly stage: TenancyStage,
    store?: object,
  ) {
    this.hooks = hookSet(options.hooks)
    this.failOpen = options.failOpen ?? false
    this.timeoutMs = options.timeoutMs
    this.#observed = this.hooks[hook].length > 0
    this.#reads = store === undefined ? undefined : configSourceOf(store)
  }

  /**
   * The tenant's config as the resolver read it, when it read it from the store this stage's
   * store reads (so the config is read once per request); `undefined` makes the store read it.
   */
  known(admission: Admission): TenantConfig | undefined {
    return admission.source !== undefined && admission.source === this.#reads ? admission.tenant : undefined
  }

  /**
   * Calls a store: its answer (a value, or a promise of one), or a {@link StoreFailed} when it
   * threw, rejected or timed out. Never throws. With `timeoutMs`, the timeout error names the
   * admission's tenant, and `onLate` gets an answer that lands after the timeout (see
   * {@link callStore}).
   */
  attempt<T>(
    call: () => T | Promise<T>,
    admission?: Admission,
    onLate?: (late: T) => unknown,
  ): T | StoreFailed | Promise<T | StoreFailed> {
    let answer: T | Promise<T>
    try {
      const keep = onLate && admission && ((work: Promise<unknown>) => admission.keepAlive(work))
      answer = callStore(call, this.timeoutMs, admission?.tenantId, onLate, keep)
    } catch (thrown) {
      return new StoreFailed(thrown)
    }
    if (!isThenable(answer)) return answer
    return Promise.resolve(answer).then(undefined, (thrown: unknown) => new StoreFailed(thrown))
  }

  /**
   * What a failed store call means: a refusal (an unknown tenant, a bad cost), a pass under
   * `failOpen` (`undefined`: go on, the event fired), or a 503. Backend failures reach `onError`.
   */
  failed(admission: Admission, event: EventInput<K>, failure: StoreFailed): StageStep {
    const { thrown } = failure
    const sorted = classifyStoreError(thrown, this.stage, admission.tenantId)
    if (sorted.kind === 'refuse') return this.refuse(admission, event, { error: sorted.error, cause: thrown })
    reportError(this.hooks, sorted.cause, {
      stage: this.stage,
      request: admission.request,
      tenantId: admission.tenantId,
    })
    if (this.failOpen) {
      if (this.#observed)
        this.#fire(admission, { ...event, allowed: true, status: 200, error: thrown, failedOpen: true })
      return undefined
    }
    return this.refuse(admission, event, { error: sorted.error, cause: sorted.cause })
  }

  /**
   * Whether anything listens to this stage's event. Without a listener the event is not
   * assembled: most chains run without event hooks, and the chain runs on every request.
   */
  get observed(): boolean {
    return this.#observed
  }

  /** Fires the event of an admitted request (status 200). */
  allow(admission: Admission, event: EventInput<K>): void {
    if (this.#observed) this.#fire(admission, { ...event, allowed: true, status: 200 })
  }

  /**
   * Builds the refusal response (override hook or problem) and fires the event with its status.
   * The refusal's headers are added to an override's response where it did not set them.
   */
  async refuse(admission: Admission, event: EventInput<K>, refusal: Refusal): Promise<Response> {
    refusal = withRetryAfter(refusal)
    const made = await overrideResponse(
      this.hooks,
      {
        stage: this.stage,
        request: admission.request,
        tenantId: admission.tenantId,
        hook: refusal.override?.hook ?? '',
      },
      refusal.override?.call,
      () => problemResponse(refusal.error, { headers: refusal.headers, extensions: refusal.extensions }),
    )
    const response = refusal.headers ? withMissingHeaders(made, refusal.headers, admission.owner) : made
    this.#fire(admission, {
      error: refusal.cause ?? refusal.error,
      ...event,
      allowed: false,
      status: response.status,
      code: refusal.error.code,
    })
    return response
  }

  #fire(admission: Admission, event: Record<string, unknown>): void {
    emit(this.hooks, this.hook, this.stage, {
      request: admission.request,
      tenantId: admission.tenantId,
      ...event,
    } as EventOf<K>)
  }
}

/**
 * A 429 always says when to retry. The stages' own refusals carry their `Retry-After`; a limit
 * error thrown by a store or a user callback (`QuotaExceededError`, `RateLimitExceededError`) gets
 * one from its `retryAfterMs`, and any other 429 the shortest wait, 1 second.
 */
function withRetryAfter(refusal: Refusal): Refusal {
  const { error, headers } = refusal
  if (error.status !== 429 || headers?.some(([name]) => name.toLowerCase() === 'retry-after')) return refusal
  const wait = (error as { retryAfterMs?: unknown }).retryAfterMs
  const ms = typeof wait === 'number' && Number.isFinite(wait) && wait >= 0 ? wait : 1000
  return { ...refusal, headers: [...(headers ?? []), retryAfterHeader(ms)] }
}

/** The clock of a stage, for the `t=` of the RateLimit field. */
export function clockOf(options: { clock?: Clock }): Clock {
  return options.clock ?? systemClock
}
