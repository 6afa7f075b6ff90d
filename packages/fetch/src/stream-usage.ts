import { costAmount, type QuotaUsage } from '@tenant/core'
import { pipedUnder } from './body-end'
import type { Admission } from './chain'
import type { SettleEvent } from './hooks'
import { invalidOption } from './options'
import { type SseEvent, type SseProgress, sseUsage } from './sse'

/** What `streamUsage.sent()` is given: how far the stream got, and the estimate charged. */
export interface StreamProgress extends SseProgress {
  /** Tokens charged up front (the estimate). */
  estimatedTokens: number
}

/** The object form of the quota stage's `streamUsage` option. */
export interface StreamUsageOptions {
  /**
   * Reads the request's total tokens from one event; the last event that answers a number wins.
   * @default reads OpenAI `usage` (`total_tokens`, else prompt + completion) and Anthropic
   * `message_start` input plus `message_delta` output tokens
   */
  usage?: (event: SseEvent) => number | undefined
  /**
   * The tokens of a stream that gave no usage: aborted by the client (or failed upstream), or
   * ended without a usage event. Must return a whole number >= 0.
   * @default the input tokens the stream reported (else the estimate) plus one token per data
   * event (or the output tokens reported, if more)
   */
  sent?: (progress: StreamProgress) => number
}

/** `streamUsage` resolved: the readers to use, or `undefined` when the option is off. */
export interface StreamUsage {
  usage: StreamUsageOptions['usage']
  sent: NonNullable<StreamUsageOptions['sent']>
}

/**
 * The default of `streamUsage.sent`: the prompt as reported (else as estimated) plus what was
 * streamed, counting a data event as one token, since a delta event carries about one.
 */
export function sentTokens(progress: StreamProgress): number {
  const { usage } = progress
  return (usage.inputTokens ?? progress.estimatedTokens) + Math.max(usage.outputTokens ?? 0, progress.events)
}

/** Validates the `streamUsage` option; `undefined` when it is off. Internal. */
export function streamUsageOption(where: string, value: unknown): StreamUsage | undefined {
  if (value === undefined || value === false) return undefined
  if (value === true) return { usage: undefined, sent: sentTokens }
  if (typeof value !== 'object' || value === null) {
    throw invalidOption(where, 'must be a boolean or { usage?, sent? }')
  }
  const { usage, sent } = value as StreamUsageOptions
  for (const [name, fn] of [
    ['usage', usage],
    ['sent', sent],
  ] as const) {
    if (fn !== undefined && typeof fn !== 'function')
      throw invalidOption(`${where}.${name}`, 'must be a function')
  }
  return { usage, sent: sent ?? sentTokens }
}

/** How the quota stage settles one streamed response. */
export interface StreamSettlement {
  admission: Admission
  tenantId: string
  estimated: number
  /** Charges or refunds the difference to `tokens` (the quota stage's `adjust`). */
  adjust(tokens: number): Promise<QuotaUsage | undefined>
  /** Fires `onSettle` and reports to `onError`. */
  onSettle(event: SettleEvent): void
  reportError(error: unknown): void
}

/**
 * Wraps an SSE response's body so its quota is settled when the body ends: at the usage the
 * stream reported, or at what was sent when the client went away or no usage came. The bytes go
 * through unchanged; the settlement is kept alive with the admission's `waitUntil`.
 */
export function settleStream(
  response: Response,
  stream: StreamUsage,
  settlement: StreamSettlement,
): Response {
  const { body, progress } = sseUsage(response.body!, { usage: stream.usage })
  settlement.admission.keepAlive(progress.then((ended) => settle(ended, stream, settlement)))
  // Under a runtime's waitUntil, so that a client that leaves ends the stream where its
  // settlement can reach the quota store (see pipedUnder).
  return new Response(pipedUnder(body, settlement.admission.executionContext), response)
}

async function settle(
  progress: SseProgress,
  stream: StreamUsage,
  settlement: StreamSettlement,
): Promise<void> {
  const { admission, tenantId, estimated } = settlement
  let reportedTokens: number | undefined
  let error: unknown
  try {
    reportedTokens =
      progress.tokens === undefined ? undefined : costAmount(progress.tokens, 'the stream usage', 0)
  } catch (invalid) {
    // Reported, and settled as if the stream had given no usage: what it sent still counts.
    settlement.reportError(invalid)
    error = invalid
  }
  const reported = reportedTokens !== undefined
  // A usage report is the answer only once the stream got to its end (or its `[DONE]`): one cut
  // short may have reported a running count, or a usage object sent early, and is settled at what
  // was sent, never below what it reported.
  const finished = progress.end === 'complete' || progress.done
  const how: SettleEvent['how'] =
    reported && finished ? 'usage' : progress.end === 'complete' ? 'estimated' : 'aborted'
  const base = {
    request: admission.request,
    tenantId,
    how,
    estimatedTokens: estimated,
    events: progress.events,
  }
  let tokens: number
  if (how === 'usage') tokens = reportedTokens!
  else {
    try {
      const sent = costAmount(
        stream.sent({ ...progress, estimatedTokens: estimated }),
        'streamUsage.sent()',
        0,
      )
      tokens = Math.max(reportedTokens ?? 0, sent)
    } catch (sentError) {
      settlement.reportError(sentError)
      // Without a usage the estimate stands; with one, the usage does: never below it.
      if (reportedTokens === undefined) {
        settlement.onSettle({ ...base, error: sentError })
        return
      }
      tokens = reportedTokens
      error = sentError
    }
  }
  const usage = tokens === estimated ? undefined : await settlement.adjust(tokens)
  settlement.onSettle({
    ...base,
    tokens,
    ...(usage === undefined ? {} : { usage }),
    ...(error === undefined ? {} : { error }),
  })
}
