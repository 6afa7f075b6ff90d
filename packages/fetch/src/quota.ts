import {
  type Clock,
  type ConfigManager,
  consumeQuota,
  costAmount,
  InvalidCostError,
  isTenantError,
  isThenable,
  type QuotaAdjustment,
  type QuotaCost,
  type QuotaDecision,
  type QuotaManager,
  type QuotaUsage,
  readTenantConfig,
  TenantBackendError,
  TenantError,
  validateSubject,
} from '@tenant/core'
import { type Admission, type ChainStage, fetchChain, type StageStep } from './chain'
import { quotaHeaders, retryAfterHeader } from './headers'
import { emit, type HookSet, reportError } from './hooks'
import { assertMethods, checkFunction, checkStageOptions, checkToken } from './options'
import { isEventStream } from './sse'
import { callStore, callUser, clockOf, StageCore, type StageOptions, StoreFailed, UserRefusal } from './stage'
import { type StreamUsage, type StreamUsageOptions, settleStream, streamUsageOption } from './stream-usage'
import type { MaybePromise, Middleware } from './types'

/** Options of {@link tenantQuota}. */
export interface QuotaOptions extends StageOptions {
  /** The per-tenant quota accounting (core's `InMemoryQuotaManager`, Redis, Durable Object). Without one the stage is off. */
  manager?: QuotaManager
  /**
   * Request header with the request's token cost, a whole number >= 0 (absent: 0). Ignored when
   * `tokenEstimator` is set.
   * @default 'X-Token-Count'
   */
  tokenHeader?: string
  /**
   * Estimates the request's token cost (say, from the prompt length). Must return a whole number
   * >= 0; anything else is refused with 400 `invalid_cost`. Read the body from `request.clone()`.
   * @default undefined (the token header)
   */
  tokenEstimator?: (request: Request) => MaybePromise<number>
  /**
   * Once the upstream answered, the tokens it really used (from a usage header, say), or
   * `undefined` to keep the estimate. The difference is charged or refunded with
   * `manager.adjust()` before the response is returned, and the quota headers show the result.
   * @default undefined (the estimate stands)
   */
  actualTokens?: (response: Response, request: Request) => MaybePromise<number | undefined>
  /**
   * Settle streamed (`text/event-stream`) responses when their body ends: the body goes through
   * unchanged, the final usage event is read (OpenAI `usage`, Anthropic `message_start` /
   * `message_delta`), and the difference to the estimate is charged or refunded then (on Workers
   * under `ctx.waitUntil`). A client that aborts is charged for what was sent; a stream without a
   * usage event, the estimate plus one token per data event. `actualTokens` then applies to the
   * other responses only. The object form replaces the usage reader and the estimate of what was sent.
   * @default false
   */
  streamUsage?: boolean | StreamUsageOptions
  /**
   * The response for a request over quota, instead of the 429 problem. `Retry-After` and the
   * quota headers are added to it unless it sets them.
   * @default undefined (429 `tenant_quota_exceeded`)
   */
  onRejected?: (request: Request, decision: QuotaDecision & { tenantId: string }) => MaybePromise<Response>
  /**
   * The subject under the tenant the request is charged to as well (an API key, a user, a model:
   * `(request) => 'model:' + request.headers.get('X-Model')`), or `undefined` for none. When the
   * tenant's `quota.subjects` has a pattern for it, the subject's windows are checked with the
   * tenant's, all-or-nothing, and show in the quota headers as `"subject-<window>"` items. A value
   * that is not 1 to 255 characters of `[A-Za-z0-9._:/@+-]` is refused with 400 `invalid_subject`.
   * @default undefined (no subject: only the tenant's windows)
   */
  subject?: (request: Request) => MaybePromise<string | undefined>
  /**
   * The clock for the `t=` (seconds until reset) of the `RateLimit` field; use the manager's clock.
   * @default systemClock
   */
  clock?: Clock
}

/**
 * The quota stage as a chain stage: what {@link tenantQuota} and `tenancy()` run; `undefined`
 * without a manager (the stage is off).
 *
 * @example
 * ```ts
 * const stage = quotaStage({ manager: new InMemoryQuotaManager(configs) })
 * ```
 */
export function quotaStage(options: QuotaOptions = {}): ChainStage | undefined {
  const name = 'tenantQuota'
  checkStageOptions(name, options)
  checkFunction(`${name}.tokenEstimator`, options.tokenEstimator)
  checkFunction(`${name}.actualTokens`, options.actualTokens)
  checkFunction(`${name}.onRejected`, options.onRejected)
  checkFunction(`${name}.subject`, options.subject)
  const tokenHeader = checkToken(`${name}.tokenHeader`, options.tokenHeader ?? 'X-Token-Count')
  const stream = streamUsageOption(`${name}.streamUsage`, options.streamUsage)
  const { manager } = options
  if (manager === undefined) return undefined
  const adjusts = options.actualTokens !== undefined || stream !== undefined
  assertMethods(manager, `${name}.manager`, adjusts ? ['consume', 'adjust'] : ['consume'])
  return new QuotaStage(options, manager, tokenHeader, stream)
}

const DIGITS = /^\d+$/

/**
 * The cost check of a quota stage, to run before the stages that consume (concurrency, rate limit):
 * what `tenancy()` puts right after the policy stage, so that a request refused for its cost (400
 * `invalid_cost`, `invalid_subject`, or a refusal from `tokenEstimator` / `subject`) has taken no
 * rate-limit token. `stage` is what {@link quotaStage} returned; the quota stage then charges the
 * cost checked here, reading the estimator and subject once per request. Internal.
 */
export function quotaPrecheck(stage: ChainStage): ChainStage {
  if (!(stage instanceof QuotaStage)) throw new TypeError('quotaPrecheck() takes the stage quotaStage() made')
  return stage.precheck()
}

class QuotaStage implements ChainStage {
  readonly stage = 'quota' as const
  readonly middleware = 'tenantQuota'
  readonly #core: StageCore<'onQuota'>
  readonly #clock: Clock

  constructor(
    readonly options: QuotaOptions,
    readonly manager: QuotaManager,
    readonly tokenHeader: string,
    readonly stream: StreamUsage | undefined,
  ) {
    this.#core = new StageCore(options, 'onQuota', 'quota', manager)
    this.#clock = clockOf(options)
  }

  /** See {@link quotaPrecheck}. */
  precheck(): ChainStage {
    return { stage: 'quota', middleware: this.middleware, run: (admission) => this.#cost(admission, true) }
  }

  run(admission: Admission): StageStep {
    if (admission.tenantId === undefined) return undefined
    // What the pre-check read and checked, callbacks called once: charged as it was checked.
    const prepared = admission.quotaCost
    if (prepared !== undefined) return this.#consume(admission, prepared)
    return this.#cost(admission, false)
  }

  // Reads and checks the request's cost; `check` (the pre-check) stops there, else it is charged.
  #cost(admission: Admission, check: boolean): StageStep {
    if (admission.tenantId === undefined) return undefined
    const estimate = this.options.tokenEstimator
    // Without an estimator the cost is read from the header, with no await.
    if (estimate === undefined) return this.#charge(admission, this.#headerTokens(admission.request), check)
    const estimated = callUser('quota', () => estimate(admission.request))
    if (isThenable(estimated)) return estimated.then((value) => this.#estimated(admission, value, check))
    return this.#estimated(admission, estimated, check)
  }

  #headerTokens(request: Request): number | TenantError {
    return headerTokens(request, this.tokenHeader)
  }

  #estimated(admission: Admission, estimated: number | UserRefusal, check: boolean): StageStep {
    if (estimated instanceof UserRefusal) return this.#core.refuse(admission, {}, { error: estimated.error })
    return this.#charge(admission, validAmount(estimated, 'the token estimate'), check)
  }

  #charge(admission: Admission, tokens: number | TenantError, check: boolean): StageStep {
    if (typeof tokens !== 'number') return this.#core.refuse(admission, {}, { error: tokens })
    const pick = this.options.subject
    if (pick === undefined) return this.#chargeSubject(admission, tokens, undefined, check)
    const named = callUser('quota', () => pick(admission.request))
    if (isThenable(named)) return named.then((value) => this.#chargeSubject(admission, tokens, value, check))
    return this.#chargeSubject(admission, tokens, named, check)
  }

  #chargeSubject(
    admission: Admission,
    tokens: number,
    named: string | undefined | UserRefusal,
    check: boolean,
  ): StageStep {
    const subject = named instanceof UserRefusal ? named.error : validSubject(named)
    if (subject instanceof TenantError) return this.#core.refuse(admission, {}, { error: subject })
    // Frozen: the event hooks get this object, and what they do to it must not change what is
    // consumed, settled (actualTokens, streamUsage) or refunded after a late answer.
    const cost: ChargedCost = Object.freeze(
      subject === undefined ? { requests: 1, tokens } : { requests: 1, tokens, subject },
    )
    if (!check) return this.#consume(admission, cost)
    admission.quotaCost = cost
    return undefined
  }

  #consume(admission: Admission, cost: ChargedCost): StageStep {
    const tenantId = admission.tenantId!
    const { manager } = this
    const core = this.#core
    // The resolver's config, when it read it from the store this manager reads.
    const config = core.known(admission)?.quota
    const consume = () => consumeQuota(manager, tenantId, cost, config)
    // With a timeout, a decision that lands after it is compensated (see #late); without one no
    // closure is made for it.
    const answer =
      core.timeoutMs === undefined
        ? core.attempt(consume)
        : core.attempt(consume, admission, (late: QuotaDecision) => this.#late(admission, cost, late))
    if (isThenable(answer)) return answer.then((decision) => this.#decided(admission, cost, decision))
    return this.#decided(admission, cost, answer)
  }

  /**
   * A consume that outlived `timeoutMs` and then admitted the request: the store charged a request
   * that was answered 503 (under failOpen it was served, and the charge stands). The tokens are
   * refunded with `adjust()`; the request count cannot be (the QuotaManager interface has no way
   * to), so the late charge is reported to `onError` with the tenant.
   */
  #late(admission: Admission, cost: ChargedCost, decision: QuotaDecision): Promise<unknown> | undefined {
    const core = this.#core
    if (!decision.allowed || core.failOpen) return undefined
    const tenantId = admission.tenantId!
    const info = { stage: 'quota' as const, request: admission.request, tenantId }
    const refund = cost.tokens > 0 && typeof this.manager.adjust === 'function'
    const charged = `${cost.requests} request${cost.tokens > 0 ? ` and ${cost.tokens} tokens` : ''}`
    reportError(
      core.hooks,
      new TenantBackendError(
        `the quota store answered after the ${core.timeoutMs} ms timeout and charged the refused request ` +
          `${charged}; ${refund ? `the tokens are refunded, the request stays counted` : 'it stays counted'}`,
        { tenantId },
      ),
      info,
    )
    if (!refund) return undefined
    const delta = adjustment(-cost.tokens, cost.subject, decision.decidedAt)
    // Not into a tenant created under this id since: the refund would lower a new customer's usage.
    // Kept alive with the request's work (see callStore).
    return Promise.resolve()
      .then(() => stillAdmitted(admission))
      .then((same) => (same ? this.manager.adjust(tenantId, delta) : undefined))
      .catch((error: unknown) => reportError(core.hooks, error, info))
  }

  #decided(admission: Admission, cost: ChargedCost, answer: QuotaDecision | StoreFailed): StageStep {
    const core = this.#core
    if (answer instanceof StoreFailed) return core.failed(admission, { cost }, answer)
    const headers = quotaHeaders(answer.windows, admission.now(this.#clock))
    const tenantId = admission.tenantId!
    if (!answer.allowed) {
      const { onRejected } = this.options
      return core.refuse(
        admission,
        { cost, decision: answer },
        {
          error: new TenantError('tenant_quota_exceeded', answer.reason ?? 'the tenant quota is exhausted', {
            tenantId,
          }),
          headers: [...headers, retryAfterHeader(answer.retryAfterMs)],
          override: onRejected && {
            hook: 'onRejected',
            call: () => onRejected(admission.request, { ...answer, tenantId }),
          },
        },
      )
    }
    // Read before the hooks get the decision: one that rewrote it (a log line's date) must not
    // move the refund to other windows.
    const { decidedAt } = answer
    if (core.observed) core.allow(admission, { cost, decision: answer })
    const handle = admission.addHeaders(headers)
    const { actualTokens } = this.options
    const { stream } = this
    if (actualTokens !== undefined || stream !== undefined) {
      admission.onResponse(async (response) => {
        if (stream !== undefined && isEventStream(response)) {
          return this.#stream(admission, response, stream, cost, decidedAt)
        }
        if (actualTokens === undefined) return undefined
        await adjust(core.hooks, this.manager, actualTokens, {
          admission,
          request: admission.request,
          response,
          tenantId,
          subject: cost.subject,
          estimated: cost.tokens,
          decidedAt,
          timeoutMs: core.timeoutMs,
          // Made before onAdjust fires, from the frozen copy the hooks get.
          adjusted: (usage) =>
            admission.replaceHeaders(handle, quotaHeaders(usage.windows, this.#clock.now())),
        })
        return undefined
      })
    }
    return undefined
  }

  #stream(
    admission: Admission,
    response: Response,
    stream: StreamUsage,
    cost: ChargedCost,
    decidedAt: number | undefined,
  ): Response {
    const { hooks, timeoutMs } = this.#core
    const { tokens: estimated, subject } = cost
    const tenantId = admission.tenantId!
    const { request } = admission
    return settleStream(response, stream, {
      admission,
      tenantId,
      estimated,
      adjust: (tokens) =>
        adjust(hooks, this.manager, () => tokens, {
          admission,
          request,
          response,
          tenantId,
          subject,
          estimated,
          decidedAt,
          timeoutMs,
        }),
      onSettle: (event) => emit(hooks, 'onSettle', 'quota', event),
      reportError: (error) => reportError(hooks, error, { stage: 'quota', request, tenantId }),
    })
  }
}

/**
 * Charges each request to the tenant's quota (1 request plus its tokens) and refuses it with 429
 * `tenant_quota_exceeded` and `Retry-After` when any limit has no room; a refused request charges
 * nothing. Every response of a tenant with limits carries the IETF `RateLimit-Policy` /
 * `RateLimit` fields and `X-Quota-Remaining-Requests` / `-Tokens` for its limited dimensions.
 *
 * @example
 * ```ts
 * const quota = tenantQuota({
 *   manager: new InMemoryQuotaManager(configManager),
 *   actualTokens: (response) => {
 *     const used = response.headers.get('X-Usage-Tokens')
 *     return used === null ? undefined : Number(used)
 *   },
 * })
 * ```
 */
export function tenantQuota(options: QuotaOptions = {}): Middleware {
  const stage = quotaStage(options)
  if (stage === undefined) return (request, next) => next(request)
  return fetchChain('tenantQuota', [stage])
}

/** The cost the stage charges: both amounts, and the subject when the request names one. */
type ChargedCost = Required<Pick<QuotaCost, 'requests' | 'tokens'>> & Pick<QuotaCost, 'subject'>

function validSubject(value: unknown): string | undefined | TenantError {
  if (value === undefined) return undefined
  try {
    return validateSubject(value)
  } catch (error) {
    if (isTenantError(error)) return error
    throw error
  }
}

/** The token count in `request`'s `header`: 0 without one, the error for one that is not digits. */
function headerTokens(request: Request, header: string): number | TenantError {
  const value = request.headers.get(header)
  if (value === null) return 0
  // Digits only: Number() would take "1e3", "0x10", " 12 " and "" as numbers.
  if (!DIGITS.test(value)) {
    return new InvalidCostError(
      `${header} must be a whole number >= 0, got ${JSON.stringify(value.slice(0, 40))}`,
    )
  }
  return validAmount(Number(value), header)
}

/**
 * The token count a client declared in `header` (default `X-Token-Count`), read as the quota stage
 * reads it without a `tokenEstimator`: 0 when absent; digits only, a whole number up to 2^53 - 1.
 * Anything else throws `InvalidCostError`, which the chain answers 400 `invalid_cost` when thrown
 * by a `tokenEstimator`. For estimators that combine the header with an estimate of their own.
 *
 * @example
 * ```ts
 * tenancy({
 *   quota: {
 *     manager,
 *     tokenEstimator: async (request) => Math.max(requestTokenCount(request), await promptTokens(request)),
 *   },
 * })
 * ```
 */
export function requestTokenCount(request: Request, header = 'X-Token-Count'): number {
  const tokens = headerTokens(request, checkToken('requestTokenCount.header', header))
  if (typeof tokens !== 'number') throw tokens
  return tokens
}

function validAmount(value: unknown, what: string): number | TenantError {
  try {
    return costAmount(value, what, 0)
  } catch (error) {
    if (isTenantError(error)) return error
    throw error
  }
}

interface AdjustContext {
  admission: Admission
  request: Request
  response: Response
  tenantId: string
  subject: string | undefined
  estimated: number
  /** The admission's `decidedAt`: a refund comes out of the windows it charged. */
  decidedAt: number | undefined
  timeoutMs: number | undefined
  /** What the adjusted usage changes on the response (the quota headers), done before any hook runs. */
  adjusted?: (usage: QuotaUsage) => void
}

/**
 * What `adjust()` is sent: the token difference, the subject, and the admission's decision time
 * (absent from a store that does not tell it), so that a refund comes out of the windows the
 * admission charged.
 */
function adjustment(
  tokens: number,
  subject: string | undefined,
  decidedAt: number | undefined,
): QuotaAdjustment {
  const delta: QuotaAdjustment = { tokens }
  if (subject !== undefined) delta.subject = subject
  if (decidedAt !== undefined) delta.decidedAt = decidedAt
  return delta
}

/**
 * Whether the tenant `admission` admitted still holds its id. A tenant deleted and created again
 * under the same id is another customer (`AdminService` resets its usage when it is created), and
 * what a request of the earlier one settles afterwards (a stream that ends late, the refund of a
 * late answer) must be neither charged nor refunded to it. Told by the config's `createdAt`, read
 * from the resolver's store (its fast read when it has one); without a resolver that read a
 * config, the tenant is taken as unchanged. What this cannot see: a store whose cache still holds
 * the old tenant (another instance's, up to its `ttl`), a predecessor created in the same
 * millisecond, and a delete and re-create between this read and the store's write.
 */
async function stillAdmitted(admission: Admission): Promise<boolean> {
  const admitted = admission.tenant
  const store = admission.source as Pick<ConfigManager, 'getTenantConfig'> | undefined
  if (admitted === undefined || store === undefined) return true
  try {
    return (await readTenantConfig(store, admission.tenantId!)).createdAt === admitted.createdAt
  } catch (error) {
    if (isTenantError(error) && error.code === 'tenant_not_found') return false
    throw error
  }
}

/**
 * A deeply frozen copy of what `adjust()` answered: what the response's headers are made from and
 * what `onAdjust` and `onSettle` get. A hook can then change neither the headers sent nor what
 * another hook sees (a strict-mode hook that tries gets a `TypeError`, reported to `onError`). A
 * copy, not the store's object frozen in place: a store may keep what it answers.
 */
function frozenUsage(usage: QuotaUsage): QuotaUsage {
  const windows = usage.windows.map((window) =>
    Object.freeze({
      ...window,
      limit: Object.freeze({ ...window.limit }),
      used: Object.freeze({ ...window.used }),
      remaining: Object.freeze({ ...window.remaining }),
    }),
  )
  return Object.freeze({ ...usage, windows: Object.freeze(windows) as QuotaUsage['windows'] })
}

/**
 * Charges or refunds the difference between the estimate and what the upstream reported. The
 * response is already made, so a failure here is reported (onAdjust, onError), never sent. The
 * usage answered (and handed to `adjusted`, then to `onAdjust`) is a frozen copy of the store's.
 */
async function adjust(
  hooks: HookSet,
  manager: QuotaManager,
  actualTokens: NonNullable<QuotaOptions['actualTokens']>,
  context: AdjustContext,
): Promise<QuotaUsage | undefined> {
  const { request, response, tenantId, subject, estimated, timeoutMs } = context
  const info = { stage: 'quota' as const, request, tenantId }
  let actual: number | undefined
  try {
    const reported = await actualTokens(response, request)
    if (reported === undefined) return undefined
    actual = costAmount(reported, 'actualTokens()', 0)
    if (actual === estimated) return undefined
    const delta = adjustment(actual - estimated, subject, context.decidedAt)
    if (!(await stillAdmitted(context.admission))) {
      throw new TenantError(
        'tenant_not_found',
        `tenant "${tenantId}" was deleted, or deleted and created again, after this request was admitted: ` +
          `its ${delta.tokens > 0 ? 'charge' : 'refund'} of ${Math.abs(delta.tokens)} tokens is dropped`,
        { tenantId },
      )
    }
    const usage = frozenUsage(await callStore(() => manager.adjust(tenantId, delta), timeoutMs))
    context.adjusted?.(usage)
    emit(hooks, 'onAdjust', 'quota', {
      request,
      tenantId,
      estimatedTokens: estimated,
      actualTokens: actual,
      usage,
    })
    return usage
  } catch (error) {
    reportError(hooks, error, info)
    emit(hooks, 'onAdjust', 'quota', {
      request,
      tenantId,
      estimatedTokens: estimated,
      actualTokens: actual,
      error,
    })
    return undefined
  }
}
