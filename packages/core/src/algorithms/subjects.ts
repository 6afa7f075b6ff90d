// Subjects under a tenant (API keys, users, models with their own limits that also draw on the
// tenant's pool): the id rules, the pattern match and the combined tenant + subject decision. Every
// store (the in-memory managers, the Durable Object, the Redis scripts' TypeScript side) uses these,
// so a subject is matched and reported the same way everywhere.
import { InvalidSubjectError, InvalidTenantConfigError } from '../errors'
import { isDeeplyFrozen } from '../json'
import type { QuotaCost, QuotaDecision, QuotaWindowUsage } from '../quota'
import type { QuotaConfig } from '../schemas'
import type { QuotaAlgorithm } from './quota-algorithm'
import { quotaDecision } from './quota-decision'
import type { QuotaCharge } from './types'

/**
 * Most subjects one tenant keeps state for in a store. A new subject beyond it evicts the one
 * whose counts expire first (it loses the least), so memory does not grow with the subjects a
 * tenant invents.
 */
export const MAX_SUBJECTS_PER_TENANT = 10_000

/** Longest subject id accepted. */
export const MAX_SUBJECT_LENGTH = 255

const SUBJECT = /^[A-Za-z0-9._:/@+-]{1,255}$/

/**
 * True when `id` is 1 to 255 characters of `[A-Za-z0-9._:/@+-]` (room for `key:abc`,
 * `user@example.com`, `model:gpt-4o`, `openai/gpt-4o`).
 *
 * @example
 * ```ts
 * isValidSubject('model:gpt-4o') // true
 * isValidSubject('two words') // false
 * ```
 */
export function isValidSubject(id: unknown): id is string {
  return typeof id === 'string' && SUBJECT.test(id)
}

/**
 * Returns `id` unchanged when it is a valid subject id, otherwise throws {@link InvalidSubjectError}
 * saying why.
 *
 * @example
 * ```ts
 * validateSubject('key:live_123') // 'key:live_123'
 * validateSubject('') // throws InvalidSubjectError
 * ```
 */
export function validateSubject(id: unknown): string {
  if (typeof id !== 'string') throw new InvalidSubjectError(`expected a string, got ${typeof id}`)
  if (id.length === 0) throw new InvalidSubjectError('empty')
  if (id.length > MAX_SUBJECT_LENGTH) {
    throw new InvalidSubjectError(`${id.length} characters, at most ${MAX_SUBJECT_LENGTH} allowed`)
  }
  if (!SUBJECT.test(id)) {
    throw new InvalidSubjectError('only letters, digits and . _ : / @ + - are allowed')
  }
  return id
}

/** A quota's subject patterns, compiled for matching. */
interface CompiledSubjects {
  exact: Map<string, QuotaConfig>
  /** Prefix patterns, longest prefix first. */
  prefixes: { prefix: string; quota: QuotaConfig }[]
}

// Keyed by the frozen subjects array (as the config managers hand out), like `limitsOf`.
const compiled = new WeakMap<object, CompiledSubjects>()

function compile(subjects: NonNullable<QuotaConfig['subjects']>): CompiledSubjects {
  const cached = compiled.get(subjects)
  if (cached !== undefined) return cached
  const exact = new Map<string, QuotaConfig>()
  const prefixes: CompiledSubjects['prefixes'] = []
  for (let i = 0; i < subjects.length; i++) {
    const entry = subjects[i]!
    // The config stores validate this; a hand-written provider's pattern without a `match` must be
    // the 400 of a bad config, not a TypeError taken for a store failure.
    if (typeof entry?.match !== 'string') {
      throw new InvalidTenantConfigError([
        {
          path: ['quota', 'subjects', i, 'match'],
          message: 'must be a subject pattern (a string)',
          code: 'custom',
        },
      ])
    }
    const quota: QuotaConfig = { limits: entry.limits ?? [] }
    if (entry.match.endsWith('*')) prefixes.push({ prefix: entry.match.slice(0, -1), quota })
    else if (!exact.has(entry.match)) exact.set(entry.match, quota)
  }
  prefixes.sort((a, b) => b.prefix.length - a.prefix.length)
  const result = { exact, prefixes }
  if (isDeeplyFrozen(subjects)) {
    Object.freeze(result)
    for (const { quota } of prefixes) Object.freeze(quota)
    for (const quota of exact.values()) Object.freeze(quota)
    compiled.set(subjects, result)
  }
  return result
}

/**
 * The limits that apply to `subject` under `config`: the pattern whose `match` equals it, else the
 * one with the longest matching `prefix*`. `undefined` when none matches or the match has no
 * limits: the subject then has no windows of its own and only the tenant's are checked.
 *
 * @example
 * ```ts
 * const quota = { limits: [], subjects: [
 *   { match: 'model:*', limits: [{ window: 'minute', tokens: 10_000 }] },
 *   { match: 'model:gpt-4o', limits: [{ window: 'minute', tokens: 2_000 }] },
 * ] }
 * subjectQuota(quota, 'model:gpt-4o') // { limits: [{ window: 'minute', tokens: 2_000 }] }
 * subjectQuota(quota, 'model:mini') // { limits: [{ window: 'minute', tokens: 10_000 }] }
 * subjectQuota(quota, 'key:1') // undefined
 * ```
 */
export function subjectQuota(config: QuotaConfig, subject: string): QuotaConfig | undefined {
  const subjects = config?.subjects
  if (subjects === undefined || subjects.length === 0) return undefined
  const { exact, prefixes } = compile(subjects)
  let quota = exact.get(subject)
  if (quota === undefined) quota = prefixes.find((p) => subject.startsWith(p.prefix))?.quota
  return quota === undefined || quota.limits.length === 0 ? undefined : quota
}

/**
 * The subject a cost names, validated: `undefined` when it names none. Throws
 * {@link InvalidSubjectError} for a bad id.
 *
 * @example
 * ```ts
 * subjectOf({ tokens: 10, subject: 'key:1' }) // 'key:1'
 * ```
 */
export function subjectOf(cost: QuotaCost | { subject?: string } | undefined): string | undefined {
  const subject = (cost as { subject?: unknown } | undefined)?.subject
  return subject === undefined ? undefined : validateSubject(subject)
}

/**
 * `windows` marked as `subject`'s (see `QuotaWindowUsage.subject`).
 *
 * @example
 * ```ts
 * tagSubject(usage, 'key:1') // every window with subject: 'key:1'
 * ```
 */
export function tagSubject(windows: readonly QuotaWindowUsage[], subject: string): QuotaWindowUsage[] {
  return windows.map((w) => ({ ...w, subject }))
}

/**
 * One decision from the tenant's and the subject's: allowed only when both are, `remaining` and
 * `limit` the most constraining over all windows, and on a denial the longer wait and every
 * refusing side's reason (the subject's prefixed with `subject "<id>"`). The caller passes each
 * side's windows as they are after the decision: on a combined denial, both sides unchanged.
 *
 * @example
 * ```ts
 * const decision = combineSubjectDecision(now, tenantDecision, subjectDecision, 'key:1')
 * ```
 */
export function combineSubjectDecision(
  now: number,
  tenant: QuotaDecision,
  subject: QuotaDecision,
  subjectId: string,
): QuotaDecision {
  const windows = [...tenant.windows, ...tagSubject(subject.windows, subjectId)]
  const combined = quotaDecision(now, windows, [])
  if (tenant.allowed && subject.allowed) return combined
  const reasons: string[] = []
  let binding: QuotaDecision | undefined
  if (!tenant.allowed) {
    binding = tenant
    if (tenant.reason !== undefined) reasons.push(tenant.reason)
  }
  if (!subject.allowed) {
    if (binding === undefined || subject.retryAfterMs > binding.retryAfterMs) binding = subject
    if (subject.reason !== undefined) reasons.push(`subject "${subjectId}" ${subject.reason}`)
  }
  return {
    ...combined,
    allowed: false,
    resetAt: binding!.resetAt,
    retryAfterMs: binding!.retryAfterMs,
    reason: reasons.join('; '),
  }
}

/** What {@link consumeWithSubject} returns: the decision and both states to store. */
export interface SubjectStep<S> {
  decision: QuotaDecision
  /** Both sides admitted: store `tenant` and `subject`; otherwise store nothing. */
  allowed: boolean
  tenant: S
  subject: S
  /** On an admission: what it added to each window of the tenant and of the subject (see `QuotaCharge`). */
  charged?: { tenant?: QuotaCharge; subject?: QuotaCharge }
}

/**
 * Checks `cost` against the tenant's windows (`config`) and the subject's (`subjectConfig`, from
 * {@link subjectQuota}) together: admitted only when both have room, and then both are charged;
 * on a denial neither state changes (all-or-nothing) and the decision's windows show both
 * unchanged. Pure: a store keeps the two states and writes both, or neither, in one atomic step.
 *
 * @example
 * ```ts
 * const step = consumeWithSubject(fixedWindowAlgorithm, tenantState, subjectState, config, subjectQuota(config, 'key:1')!, { tokens: 10 }, 'key:1', now)
 * if (step.allowed) save(step.tenant, step.subject)
 * ```
 */
export function consumeWithSubject<S>(
  algorithm: QuotaAlgorithm<S>,
  tenantState: S | undefined,
  subjectState: S | undefined,
  config: QuotaConfig,
  subjectConfig: QuotaConfig,
  cost: QuotaCost | undefined,
  subject: string,
  now: number,
): SubjectStep<S> {
  const ownCost = cost === undefined ? undefined : { requests: cost.requests, tokens: cost.tokens }
  const t = algorithm.consume(tenantState, config, ownCost, now)
  const s = algorithm.consume(subjectState, subjectConfig, ownCost, now)
  const allowed = t.decision.allowed && s.decision.allowed
  if (allowed) {
    return {
      decision: combineSubjectDecision(now, t.decision, s.decision, subject),
      allowed,
      tenant: t.state,
      subject: s.state,
      charged: { tenant: t.charged, subject: s.charged },
    }
  }
  // A side that would have admitted reports its windows as they stay: uncharged.
  const tenantSide = t.decision.allowed
    ? { ...t.decision, windows: algorithm.peek(tenantState, config, now) }
    : t.decision
  const subjectSide = s.decision.allowed
    ? { ...s.decision, windows: algorithm.peek(subjectState, subjectConfig, now) }
    : s.decision
  return {
    decision: combineSubjectDecision(now, tenantSide, subjectSide, subject),
    allowed,
    tenant: tenantState as S,
    subject: subjectState as S,
  }
}
