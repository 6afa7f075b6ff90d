// The in-memory managers' subject state: per tenant, a bounded map of subject -> algorithm state.
// Internal to core.
import type { NormalizedCost } from '../cost'
import type { QuotaWindowUsage } from '../quota'
import type { QuotaConfig } from '../schemas'
import type { ExpiringEntry, SecondsSinceBase } from './expiring-map'
import { ExpiringMap } from './expiring-map'
import type { MemoryLayout } from './memory-quota-manager'
import type { SubjectStep } from './subjects'
import { consumeWithSubject, MAX_SUBJECTS_PER_TENANT } from './subjects'

/** A tenant's subjects, an entry of the outer map (keyed by tenant id). */
interface SubjectGroup extends ExpiringEntry {
  readonly subjects: ExpiringMap<ExpiringEntry>
}

/**
 * The subjects of every tenant. Each tenant's subjects live in their own {@link ExpiringMap}, so a
 * tenant over `MAX_SUBJECTS_PER_TENANT` evicts its own subject closest to expiry and never another
 * tenant's; the groups live in an outer map that forgets a group once none of its subjects counts
 * anything, so idle tenants cost nothing.
 */
/** The longest a tenant's subjects go unswept while it has any, in seconds (see the group map). */
const GROUP_LOOK_SECONDS = 60

export class MemorySubjects<S> {
  readonly #layout: MemoryLayout<S, ExpiringEntry>
  readonly #seconds: SecondsSinceBase
  readonly #max: number
  readonly #groups: ExpiringMap<SubjectGroup>

  constructor(
    layout: MemoryLayout<S, ExpiringEntry>,
    seconds: SecondsSinceBase,
    max = MAX_SUBJECTS_PER_TENANT,
  ) {
    this.#layout = layout
    this.#seconds = seconds
    this.#max = max
    // A group is looked at when its earliest subject may be due, and at least once a minute: its
    // expired subjects go then (a budget at a time), so a tenant's month-long subject does not keep
    // thousands of minute-long ones until the month ends; it goes once none is left.
    this.#groups = new ExpiringMap<SubjectGroup>((group, now) => {
      const { subjects } = group
      subjects.sweep(now)
      if (subjects.size === 0) return now
      if (subjects.nextAt > now) return Math.min(subjects.nextAt, now + GROUP_LOOK_SECONDS)
      // More were due than one sweep takes: when none counts any more, the whole group goes at
      // once (a scan, only at such a backlog); otherwise the rest go a second later.
      let latest = now
      for (const entry of subjects.values()) {
        latest = Math.max(latest, this.#seconds.expiry(this.#layout.expiresAt(entry)))
        if (latest > now) return now + 1
      }
      return now
    })
  }

  /** Subjects of `tenantId` with state. */
  count(tenantId: string): number {
    return this.#groups.get(tenantId)?.subjects.size ?? 0
  }

  /** Forgets expired groups, within the map's budget. */
  sweep(seconds: number): void {
    this.#groups.sweep(seconds)
  }

  /** `consumeWithSubject` over the stored subject state; stores the subject's side when admitted. */
  consume(
    tenantId: string,
    subject: string,
    tenantState: S | undefined,
    config: QuotaConfig,
    subjectConfig: QuotaConfig,
    cost: NormalizedCost,
    now: number,
  ): SubjectStep<S> {
    const group = this.#groups.get(tenantId)
    group?.subjects.sweep(this.#seconds.now(now))
    const entry = group?.subjects.get(subject)
    const step = consumeWithSubject(
      this.#layout.algorithm,
      tenantState,
      this.#layout.read(entry),
      config,
      subjectConfig,
      cost,
      subject,
      now,
    )
    if (step.allowed) this.#store(tenantId, group, subject, entry, step.subject, now)
    return step
  }

  /** Adds `tokens` (negative: refunds) to the subject's current windows (see the algorithm's `adjust`). */
  adjust(
    tenantId: string,
    subject: string,
    config: QuotaConfig,
    tokens: number,
    now: number,
    decidedAt: number | undefined,
  ): QuotaWindowUsage[] {
    const group = this.#groups.get(tenantId)
    const entry = group?.subjects.get(subject)
    const { usage, state } = this.#layout.algorithm.adjust(
      this.#layout.read(entry),
      config,
      tokens,
      now,
      decidedAt,
    )
    this.#store(tenantId, group, subject, entry, state, now)
    return usage
  }

  /** The subject's windows without a change. */
  peek(tenantId: string, subject: string, config: QuotaConfig, now: number): QuotaWindowUsage[] {
    const entry = this.#groups.get(tenantId)?.subjects.get(subject)
    return this.#layout.algorithm.peek(this.#layout.read(entry), config, now)
  }

  /** Forgets one subject of the tenant, or (no `subject`) all of them. */
  reset(tenantId: string, subject?: string): void {
    if (subject === undefined) this.#groups.delete(tenantId)
    else this.#groups.get(tenantId)?.subjects.delete(subject)
  }

  #store(
    tenantId: string,
    group: SubjectGroup | undefined,
    subject: string,
    entry: ExpiringEntry | undefined,
    state: S,
    now: number,
  ): void {
    const expiresAt = this.#layout.algorithm.expiresAt(state)
    if (entry !== undefined) {
      // A subject left with nothing counted (refunded to zero) holds no place: at the bound it
      // would push out one that counts. As in Redis, whose index drops emptied subjects.
      if (expiresAt <= now) {
        group!.subjects.delete(subject)
        return
      }
      const expiry = this.#seconds.expiry(expiresAt)
      if (expiry < entry.heapAt) {
        // A refund moved its end earlier than it is filed under: filed again (a new entry, so the
        // old heap slot is a dead one), or the bound would evict a subject that counts longer.
        group!.subjects.delete(subject)
        group!.subjects.add(this.#layout.create(subject, state), expiry)
        return
      }
      this.#layout.write(entry, state)
      // The group's filed expiry may now be too early; it is asked again when that time comes.
      return
    }
    if (expiresAt <= now) return
    const expiry = this.#seconds.expiry(expiresAt)
    let target = group
    if (target === undefined) {
      target = {
        key: tenantId,
        heapAt: 0,
        subjects: new ExpiringMap<ExpiringEntry>((e) => this.#seconds.expiry(this.#layout.expiresAt(e))),
      }
      this.#groups.add(target, Math.min(expiry, this.#seconds.now(now) + GROUP_LOOK_SECONDS))
    }
    if (target.subjects.size >= this.#max) {
      target.subjects.sweep(this.#seconds.now(now))
      if (target.subjects.size >= this.#max) target.subjects.evictEarliest(this.#seconds.now(now))
    }
    target.subjects.add(this.#layout.create(subject, state), expiry)
  }
}
