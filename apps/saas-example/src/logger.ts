import type { Clock } from '@tenant/core'
import { pathOf, type TenancyEventBase, type TenancyHooks, type TenancyStage } from '@tenant/fetch'

/** Log levels, most verbose first. `silent` writes nothing. */
export const logLevels = ['info', 'warn', 'error', 'silent'] as const

/** One of {@link logLevels}. */
export type LogLevel = (typeof logLevels)[number]

/** Fields of one log line. `msg` says what happened; the rest are flat, JSON-serialisable values. */
export type LogFields = { msg: string } & Record<string, unknown>

/** Writes structured log lines. */
export interface Logger {
  info(fields: LogFields): void
  warn(fields: LogFields): void
  error(fields: LogFields): void
}

/** Options of {@link jsonLogger}. */
export interface JsonLoggerOptions {
  /**
   * Lines below this level are dropped.
   * @default 'info'
   */
  level?: LogLevel
  /**
   * Timestamps each line (`time`, ISO 8601), so lines agree with the app's clock in tests.
   * @default Date.now
   */
  clock?: Clock
  /**
   * Where each line goes.
   * @default console.log (stdout on Node and Bun, the Workers log stream)
   */
  write?: (line: string) => void
}

const rank: Record<LogLevel, number> = { info: 0, warn: 1, error: 2, silent: 3 }

/**
 * A logger that writes one JSON object per line: `{"time","level","msg",...fields}`. Values that
 * JSON cannot hold (an Error, a BigInt) are written as strings, so a log call never throws.
 *
 * @example
 * ```ts
 * const logger = jsonLogger({ level: 'warn' })
 * logger.warn({ msg: 'tenant refused', tenant: 'acme', status: 429 })
 * ```
 */
export function jsonLogger(options: JsonLoggerOptions = {}): Logger {
  const threshold = rank[options.level ?? 'info']
  const now = () => options.clock?.now() ?? Date.now()
  const write = options.write ?? ((line: string) => console.log(line))
  const log = (level: Exclude<LogLevel, 'silent'>) => (fields: LogFields) => {
    if (rank[level] < threshold) return
    write(
      JSON.stringify({ time: new Date(now()).toISOString(), level, ...fields }, (_key, value) =>
        value instanceof Error
          ? `${value.name}: ${value.message}`
          : typeof value === 'bigint'
            ? value.toString()
            : value,
      ),
    )
  }
  return { info: log('info'), warn: log('warn'), error: log('error') }
}

/** A logger that drops everything (tests that do not look at logs). */
export const silentLogger: Logger = { info() {}, warn() {}, error() {} }

/**
 * Request ids by request, filled by the app's request-id middleware, so that the tenancy hooks
 * (which receive only the Request) can put the id on their lines.
 */
export const requestIds = new WeakMap<Request, string>()

function decisionLine(
  stage: TenancyStage,
  event: TenancyEventBase,
  extra: Record<string, unknown>,
): LogFields {
  // Read as text, as the router reads it: a URL parser refuses some Host headers
  // @hono/node-server passes on (`1.2.3.4.5`), and the line must be written all the same.
  const path = pathOf(event.request.url) ?? null
  return {
    msg: 'tenancy decision',
    stage,
    tenant: event.tenantId ?? null,
    allowed: event.allowed,
    status: event.status,
    ...(event.code === undefined ? {} : { code: event.code }),
    ...(event.failedOpen ? { failedOpen: true } : {}),
    method: event.request.method,
    path,
    requestId: requestIds.get(event.request) ?? null,
    ...extra,
  }
}

function emit(logger: Logger, fields: LogFields, status: number): void {
  if (status >= 500) logger.error(fields)
  else if (status >= 400) logger.warn(fields)
  else logger.info(fields)
}

/**
 * Tenancy event hooks that write one line per decision of each stage (resolve, policy, rate
 * limit, quota): tenant, stage, allowed, status and code, plus what explains a refusal (the policy
 * rule, the quota reason and retry time). Store failures reported to `onError` are written as
 * errors with the name and message of the error and of its causes (the client's 503 carries none of
 * them); stacks are left out to keep one event on one line.
 *
 * @example
 * ```ts
 * app.use(tenancy({ configManager, quota, hooks: [tenancyLogHooks(logger), tenantMetricsHooks(metrics)] }))
 * ```
 */
export function tenancyLogHooks(logger: Logger): TenancyHooks {
  return {
    onResolve: (e) =>
      emit(logger, decisionLine('resolve', e, e.source ? { source: e.source } : {}), e.status),
    onPolicy: (e) =>
      emit(
        logger,
        decisionLine('policy', e, {
          ...(e.input.model === undefined ? {} : { model: e.input.model }),
          ...(e.decision?.allowed === false
            ? { rule: e.decision.rule ?? null, reason: e.decision.reason }
            : {}),
        }),
        e.status,
      ),
    onRateLimit: (e) =>
      emit(
        logger,
        decisionLine(
          'rateLimit',
          e,
          e.decision?.allowed === false ? { retryAfterMs: e.decision.retryAfterMs } : {},
        ),
        e.status,
      ),
    onQuota: (e) =>
      emit(
        logger,
        decisionLine('quota', e, {
          ...(e.cost === undefined ? {} : { cost: e.cost }),
          ...(e.decision?.allowed === false
            ? { reason: e.decision.reason, retryAfterMs: e.decision.retryAfterMs }
            : {}),
        }),
        e.status,
      ),
    onError: (error, info) =>
      logger.error({
        msg: 'tenancy store error',
        stage: info.stage,
        tenant: info.tenantId ?? null,
        ...(info.hook === undefined ? {} : { hook: info.hook }),
        error: describeError(error),
        requestId: requestIds.get(info.request) ?? null,
      }),
  }
}

/** `Name: message`, followed by the causes' (a TenantBackendError wraps the driver's error). */
export function describeError(error: unknown): string {
  const parts: string[] = []
  let current: unknown = error
  for (let depth = 0; current !== undefined && depth < 4; depth++) {
    parts.push(current instanceof Error ? `${current.name}: ${current.message}` : String(current))
    current = current instanceof Error ? current.cause : undefined
  }
  return parts.join(' <- ')
}
