import { DurableObject } from 'cloudflare:workers'
import type {
  NormalizedCost,
  QuotaAlgorithm,
  QuotaCharge,
  QuotaConfig,
  QuotaDecision,
  QuotaWindowUsage,
  RateLimitDecision,
  TokenBucketState,
} from '@tenant/core'
import {
  consumeWithSubject,
  costAmount,
  fixedWindowAlgorithm,
  InvalidTenantConfigError,
  MAX_SUBJECTS_PER_TENANT,
  normalizeDecidedAt,
  slidingWindowAlgorithm,
  TenantBackendError,
  tagSubject,
  tokenBucketConsume,
  tokenBucketFullAt,
  tokenBucketLevel,
  tokenBucketRefund,
  validateMaxInFlight,
  validateSubject,
} from '@tenant/core'
import type {
  ConcurrencyAnswer,
  ConcurrencyCall,
  ConcurrencyReply,
  OpKind,
  QuotaCall,
  QuotaReply,
  RateLimitCall,
  RateLimitReply,
  Reply,
  VoidCall,
  VoidReply,
} from './protocol'
import { BASE_PROTOCOL_VERSION, errorReply, PROTOCOL_VERSION } from './protocol'
import { RecentOps } from './recent-ops'

/** What the object keeps per algorithm: core's plain state and when it stops counting anything. */
interface StoredRecord {
  state: unknown
  /** From this instant (ms since the epoch) the state counts nothing and may be deleted. */
  expiresAt: number
}

// Storage keys carry a format version, so a future release can change a state's shape without
// misreading what an older one wrote.
const KEY_PREFIX = 'v1:'
const RATE_KEY = `${KEY_PREFIX}rate`
// The tenant's leases: lease id -> expiry (ms since the epoch).
const CONCURRENCY_KEY = `${KEY_PREFIX}concurrency`

function quotaKey(call: Pick<QuotaCall, 'algorithm' | 'precision'>): string {
  return call.algorithm === 'fixed'
    ? `${KEY_PREFIX}quota:fixed`
    : `${KEY_PREFIX}quota:sliding:${call.precision}`
}

// A subject's state lives next to the tenant's, under the tenant's key and the subject id.
function subjectKey(call: Pick<QuotaCall, 'algorithm' | 'precision'>, subject: string): string {
  return `${quotaKey(call)}:subject:${subject}`
}

/** One state an admission charged, and how to take that charge back out of it. */
interface Charge {
  key: string
  /** The state without the charge, and when it stops counting. */
  undo(state: unknown, now: number): { state: unknown; expiresAt: number }
}

/** An admission the object remembers by its op id (see {@link RecentOps}). */
interface Admission {
  /** The answer, given again to a call run a second time with the same id. */
  value: QuotaDecision | RateLimitDecision
  /** The object's call number when it was decided: a state stored anew after it is not its. */
  seq: number
  charges: Charge[]
}

/** What a synchronous step answers, the write it started, and what an admission charged. */
interface Step<T> {
  value: T
  write: Promise<unknown> | undefined
  charges?: Charge[]
}

/**
 * The key an op id is remembered under: its kind, then the id, so that a quota consume's id can
 * never answer, or be voided as, a rate-limit take (nor the other way round).
 */
function opKeyOf(kind: unknown, id: unknown): string {
  if (kind !== 'quota' && kind !== 'rateLimit') throw new TenantBackendError('invalid op kind')
  if (typeof id !== 'string' || id.length === 0 || id.length > 128) {
    throw new TenantBackendError('invalid op id')
  }
  return `${kind}:${id}`
}

function timeOf(call: { now?: number }): number {
  if (call.now === undefined) return Date.now()
  if (typeof call.now !== 'number' || !Number.isFinite(call.now)) {
    throw new TenantBackendError(`the caller sent an invalid time: ${String(call.now)}`)
  }
  return call.now
}

/**
 * The latest alarm the object schedules: ten years ahead. `setAlarm` refuses dates after 2189,
 * and a token bucket of a very slow rate and a large burst (or a lease with a huge TTL) can claim
 * to need one later than that. Such state is simply looked at again when the alarm fires, which
 * then schedules the next one (again at most ten years ahead).
 */
const MAX_ALARM_AHEAD_MS = 10 * 365 * 86_400_000

// On the object's own clock, which is what setAlarm's bound is about.
function alarmTime(at: number): number {
  return Math.min(at, Date.now() + MAX_ALARM_AHEAD_MS)
}

/**
 * The Durable Object that holds one tenant's quota windows and token bucket, so every Worker in
 * every location asks the same exact, strongly consistent counter. Export it from your Worker's
 * main module and bind it (see the README); `DurableObjectQuotaManager` and
 * `DurableObjectRateLimiter` call it with one RPC per decision.
 *
 * The arithmetic is core's (`fixedWindowAlgorithm`, `slidingWindowAlgorithm`,
 * `tokenBucketConsume`): the object only keeps their plain state. That state is loaded once when
 * the object starts and mirrored in memory; each decision is computed and written with no `await`
 * in between, so concurrent calls are serialised and never over-admit, and the output gate holds
 * every answer until its write is durable, so a restart or eviction loses no admitted request.
 *
 * Storage stays bounded: a state that counts nothing is deleted rather than written, and an alarm
 * at the latest expiry deletes what went idle (the whole storage once nothing is left).
 *
 * A consume or take sent with an op id is remembered, in memory only (the last `MAX_RECENT_OPS`
 * ids for `RECENT_OP_TTL_MS`), so that the managers can void one whose answer was lost: see
 * {@link voidOp}. A restart forgets them (see the README, "When an answer is lost").
 *
 * @example
 * ```ts
 * // worker.ts
 * import { TenantQuotaObject } from '@tenant/cloudflare'
 * export { TenantQuotaObject }
 * ```
 */
export class TenantQuotaObject<Env = unknown> extends DurableObject<Env> {
  readonly #records = new Map<string, StoredRecord>()
  /** The alarm the object has scheduled (mirrors storage), `null` for none. */
  #alarmAt: number | null = null
  /** Recent admissions and voids by op id: in memory only, bounded (see {@link RecentOps}). */
  readonly #ops = new RecentOps<Admission>()
  /**
   * Lease ids released lately, held or not: an acquire that arrives after its own release (the
   * limiter releases an acquire whose call failed, and the call may still run) takes no slot.
   * In memory only, bounded like {@link RecentOps}.
   */
  readonly #released = new RecentOps<never>()
  /** Counts the calls; an admission and a state's birth are numbered with it. */
  #seq = 0
  /**
   * The call number at which each state was stored anew (after none, a reset, an expiry, or a
   * token bucket found full again); absent for states loaded at start, which are older than any
   * admission remembered. A void takes a charge back only from the state the admission charged.
   */
  readonly #born = new Map<string, number>()
  /** The call number of the last void that gave tokens back to the bucket (-1: none). */
  #rateRefunded = -1
  /** The last such void that a take (of at least 1 token) followed (-1: none). */
  #rateRefundTaken = -1

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env)
    void ctx.blockConcurrencyWhile(async () => {
      const [records, alarmAt] = await Promise.all([
        ctx.storage.list<StoredRecord>({ prefix: KEY_PREFIX }),
        ctx.storage.getAlarm(),
      ])
      for (const [key, record] of records) this.#records.set(key, record)
      this.#alarmAt = alarmAt
    })
  }

  /**
   * Runs one quota operation (called by `DurableObjectQuotaManager`; not a public API). A
   * consume with an op id is remembered when admitted (see {@link voidOp}).
   */
  async quota(call: QuotaCall): Promise<QuotaReply> {
    return this.#answer(call, () =>
      call?.op === 'consume' && call.opId !== undefined
        ? this.#once('quota', call.opId, () => this.#quota(call) as Step<QuotaDecision>)
        : this.#quota(call),
    )
  }

  /** Runs one token-bucket decision (called by `DurableObjectRateLimiter`; not a public API). */
  async rateLimit(call: RateLimitCall): Promise<RateLimitReply> {
    return this.#answer(call, () =>
      call.opId === undefined
        ? this.#rateLimit(call)
        : this.#once('rateLimit', call.opId, () => this.#rateLimit(call)),
    )
  }

  /**
   * Forgets the tenant's token bucket, a full one (called by `DurableObjectRateLimiter.reset`;
   * not a public API). A void of an earlier take finds the bucket stored anew and gives nothing
   * back.
   */
  async resetRateLimit(call: { v: number }): Promise<Reply<undefined>> {
    return this.#answer(call, () => ({
      value: undefined,
      write: this.#drop(RATE_KEY) ? this.ctx.storage.delete(RATE_KEY) : undefined,
    }))
  }

  /**
   * Voids a quota consume or rate-limit take by its op id and kind (called by the managers when
   * the call failed on its way back; not a public API). A remembered admission is taken back
   * once: what a quota consume added, from the windows or buckets of its decision time that its
   * state still has; what a take cost the bucket, as far as it can be proven (core's
   * `tokenBucketRefund`: its tokens, less what the cap at the burst would have wasted since, and
   * nothing once a take has followed a refund made since it); never from a state stored anew
   * since (a reset, an expiry, a bucket that was full again). An id the object does not know is
   * remembered as void, so a call with it that arrives later charges nothing.
   */
  async voidOp(call: VoidCall): Promise<VoidReply> {
    return this.#answer(call, () => this.#void(call))
  }

  /**
   * Runs one concurrency operation (called by `DurableObjectConcurrencyLimiter`; not a public
   * API). Leases whose expiry passed are dropped first: their Worker never released them.
   */
  async concurrency(call: ConcurrencyCall): Promise<ConcurrencyReply> {
    return this.#answer(call, () => this.#concurrency(call))
  }

  /** Deletes the states whose windows are over, and everything once nothing is left. */
  override async alarm(): Promise<void> {
    const now = Date.now()
    this.#alarmAt = null
    const expired: string[] = []
    let latest = 0
    for (const [key, record] of this.#records) {
      if (record.expiresAt <= now) expired.push(key)
      else latest = Math.max(latest, record.expiresAt)
    }
    for (const key of expired) this.#drop(key)
    if (this.#records.size === 0) {
      await this.ctx.storage.deleteAll()
      return
    }
    if (expired.length > 0) await this.ctx.storage.delete(expired)
    this.#alarmAt = alarmTime(latest)
    await this.ctx.storage.setAlarm(this.#alarmAt)
  }

  /**
   * Computes the answer synchronously (state read, decision, mirror update: one atomic step),
   * then awaits the write it started. A `TenantError` becomes an error reply, because RPC keeps an
   * error's message but not its class or fields; anything else rejects the call (a backend failure).
   */
  async #answer<T>(call: { v: number }, run: () => Step<T>): Promise<Reply<T>> {
    let result: Step<T>
    this.#seq++
    try {
      if (call?.v !== PROTOCOL_VERSION && call?.v !== BASE_PROTOCOL_VERSION) {
        throw new TenantBackendError(
          `@tenant/cloudflare protocol mismatch: the Worker sent version ${String(call?.v)}, this ` +
            `TenantQuotaObject speaks ${BASE_PROTOCOL_VERSION} to ${PROTOCOL_VERSION}; deploy both from the same release`,
        )
      }
      result = run()
    } catch (error) {
      return errorReply(error)
    }
    await result.write
    return { ok: true, value: result.value }
  }

  #quota(call: QuotaCall): Step<QuotaDecision | QuotaWindowUsage[]> {
    checkSubject(call)
    if (call.op === 'reset') {
      const key = call.subject === undefined ? quotaKey(call) : subjectKey(call, call.subject)
      // A tenant reset takes its subjects with it.
      const keys = [key]
      if (call.subject === undefined) {
        const prefix = subjectKey(call, '')
        for (const k of this.#records.keys()) if (k.startsWith(prefix)) keys.push(k)
      }
      const gone = keys.filter((k) => this.#drop(k))
      return { value: [], write: gone.length > 0 ? this.ctx.storage.delete(gone) : undefined }
    }
    // The key names the algorithm and precision: one no manager sends would be state no manager
    // can read or reset.
    if (call.algorithm !== 'fixed' && (call.algorithm !== 'sliding' || call.precision === undefined)) {
      throw new TenantBackendError(
        `unknown quota algorithm ${JSON.stringify(String(call.algorithm)).slice(0, 40)} (precision ${String(call.precision).slice(0, 20)})`,
      )
    }
    const algorithm: QuotaAlgorithm<unknown> =
      call.algorithm === 'fixed' ? fixedWindowAlgorithm : slidingWindowAlgorithm(call.precision)
    configObject(call.config, 'config')
    const key = quotaKey(call)
    const now = timeOf(call)
    const previous = this.#records.get(key)?.state
    if (call.v === PROTOCOL_VERSION && call.subject !== undefined && call.subjectConfig !== undefined) {
      return this.#subjectQuota(call, algorithm, key, previous, now)
    }
    switch (call.op) {
      case 'consume': {
        const { decision, state, charged } = algorithm.consume(previous, call.config, call.cost, now)
        // A denial changes nothing (core returns the state unchanged, at most pruned): no write.
        if (!decision.allowed) return { value: decision, write: undefined }
        return {
          value: decision,
          write: this.#saveQuota(key, algorithm, state, now),
          charges: [quotaCharge(key, algorithm, call.config, call.cost, now, charged)],
        }
      }
      case 'adjust': {
        const { usage, state } = algorithm.adjust(
          previous,
          call.config,
          call.tokens,
          now,
          normalizeDecidedAt(call),
        )
        const write = call.tokens === 0 ? undefined : this.#saveQuota(key, algorithm, state, now)
        return { value: usage, write }
      }
      case 'peek':
        return { value: algorithm.peek(previous, call.config, now), write: undefined }
      default:
        throw new TenantBackendError(
          `unknown quota operation ${JSON.stringify((call as { op: unknown }).op)}`,
        )
    }
  }

  #rateLimit(call: RateLimitCall): Step<RateLimitDecision> {
    const now = timeOf(call)
    const previous = this.#records.get(RATE_KEY)?.state as TokenBucketState | undefined
    // Checked again here, as the quota path checks its cost through core: a negative cost would
    // refill the bucket, a fractional or non-number one corrupt it. A config that is not an
    // object reads as no rate limit to core, which would drop the spent bucket.
    costAmount(call.cost, 'cost', 1)
    configObject(call.config, 'config')
    const { decision, state } = tokenBucketConsume(previous, call.config, call.cost, now)
    if (!decision.allowed) return { value: decision, write: undefined }
    const write = this.#save(
      RATE_KEY,
      state,
      state === undefined ? 0 : tokenBucketFullAt(state, call.config),
      now,
    )
    // A bucket full before this take holds nothing of earlier takes: voiding one gives nothing back.
    if (previous !== undefined && tokenBucketLevel(previous, call.config, now) >= call.config.burst) {
      if (this.#records.has(RATE_KEY)) this.#born.set(RATE_KEY, this.#seq)
    }
    // A take after a refund: the refund's tokens may be in what it took (see below).
    if (call.cost > 0) this.#rateRefundTaken = this.#rateRefunded
    const { config, cost } = call
    const takenAt = this.#seq
    const charge: Charge = {
      key: RATE_KEY,
      // Core's tokenBucketRefund: what this take cost the bucket, bounded by the line it left the
      // bucket on. That bound misses a level a refund raised and a take then lowered again, so
      // once a take has followed a refund made since this take, nothing is given back.
      undo: (saved, at) => {
        const bucket = saved as TokenBucketState | undefined
        const refunded =
          this.#rateRefundTaken > takenAt ? bucket : tokenBucketRefund(bucket, config, cost, at, state)
        if (refunded !== bucket) this.#rateRefunded = this.#seq
        return {
          state: refunded,
          expiresAt: refunded === undefined ? 0 : tokenBucketFullAt(refunded, config),
        }
      },
    }
    return { value: decision, write, charges: [charge] }
  }

  /**
   * A consume or take with an op id: answered again as it was the first time, with no charge, if
   * the id is remembered as admitted; refused (a backend error, charging nothing) if it is
   * remembered as void; otherwise run, and remembered when admitted.
   */
  #once<T extends QuotaDecision | RateLimitDecision>(kind: OpKind, id: unknown, run: () => Step<T>): Step<T> {
    const opId = opKeyOf(kind, id)
    const at = Date.now()
    const known = this.#ops.get(opId, at)
    if (known !== undefined) {
      if (known.admission === undefined) {
        throw new TenantBackendError(
          'the call was voided (its caller was told it failed): it charges nothing',
        )
      }
      return { value: known.admission.value as T, write: undefined }
    }
    const result = run()
    if (result.value.allowed && result.charges !== undefined) {
      this.#ops.remember(opId, { value: result.value, seq: this.#seq, charges: result.charges }, at)
    }
    return result
  }

  #void(call: VoidCall): Step<{ refunded: boolean }> {
    const now = timeOf(call)
    const opId = opKeyOf(call?.kind, call?.opId)
    const at = Date.now()
    const known = this.#ops.get(opId, at)
    if (known === undefined) {
      // Not run yet (or not remembered): when it comes, it charges nothing.
      this.#ops.remember(opId, undefined, at)
      return { value: { refunded: false }, write: undefined }
    }
    const admission = known.admission
    // Voided before: a void twice takes back once.
    if (admission === undefined) return { value: { refunded: false }, write: undefined }
    known.admission = undefined
    const writes: Promise<unknown>[] = []
    let refunded = false
    for (const charge of admission.charges) {
      const record = this.#records.get(charge.key)
      // Gone, or stored anew since (a reset, an expiry, a full bucket): the charge is not in it.
      if (record === undefined || (this.#born.get(charge.key) ?? 0) > admission.seq) continue
      const undone = charge.undo(record.state, now)
      if (JSON.stringify(undone.state) === JSON.stringify(record.state)) continue
      refunded = true
      const write = this.#save(charge.key, undone.state, undone.expiresAt, now)
      if (write !== undefined) writes.push(write)
    }
    return { value: { refunded }, write: writes.length === 0 ? undefined : Promise.all(writes) }
  }

  #concurrency(call: ConcurrencyCall): Step<ConcurrencyAnswer> {
    const now = timeOf(call)
    const saved = this.#records.get(CONCURRENCY_KEY)?.state as Record<string, number> | undefined
    // A Map, not a plain object: the lease id of a release comes from the caller, and `in` or an
    // index on an object also finds inherited names (`toString`, `__proto__`, `constructor`), which
    // would "free" a lease that does not exist and cost a storage write each time.
    const leases = new Map<string, number>()
    let latest = 0
    for (const [id, expiresAt] of Object.entries(saved ?? {})) {
      if (expiresAt <= now) continue
      leases.set(id, expiresAt)
      latest = Math.max(latest, expiresAt)
    }
    const count = leases.size
    // Stored as a plain record (the format objects of earlier releases wrote and read back);
    // Object.fromEntries defines each id as an own property, whatever its name.
    const save = () => this.#save(CONCURRENCY_KEY, Object.fromEntries(leases), latest, now)
    switch (call.op) {
      case 'acquire': {
        const max = validateMaxInFlight(call.maxInFlight)
        const ttl = call.leaseTtlMs
        if (!Number.isSafeInteger(ttl) || ttl < 1)
          throw new TenantBackendError(`invalid lease ttl ${String(ttl)}`)
        const given = call.leaseId
        if (given !== undefined && (typeof given !== 'string' || given.length === 0 || given.length > 128))
          throw new TenantBackendError('invalid lease id')
        // The same acquire again (its first answer was lost): it holds its slot already.
        if (given !== undefined && leases.has(given))
          return { value: { allowed: true, inFlight: count, leaseId: given }, write: undefined }
        // Released before it arrived: held now, the slot would stay taken for the lease's ttl.
        if (given !== undefined && this.#released.get(given, now) !== undefined)
          throw new TenantBackendError('this lease was released before its acquire arrived')
        if (count >= max) return { value: { allowed: false, inFlight: count }, write: undefined }
        const leaseId = given ?? crypto.randomUUID()
        leases.set(leaseId, now + ttl)
        latest = Math.max(latest, now + ttl)
        return { value: { allowed: true, inFlight: count + 1, leaseId }, write: save() }
      }
      case 'release': {
        // Remembered either way, so that its acquire, if it comes (again) later, takes no slot.
        // Only an id an acquire could have named: a longer one would cost memory for nothing.
        const id: unknown = call.leaseId
        if (typeof id === 'string' && id.length > 0 && id.length <= 128)
          this.#released.remember(id, undefined, now)
        // An unknown id (released before, reset, expired, never handed out, or its acquire not
        // arrived yet) frees nothing and writes nothing: releases are idempotent.
        if (!leases.delete(call.leaseId)) return { value: { inFlight: count }, write: undefined }
        // A loop, not Math.max(...values): spreading up to 100,000 leases into one call is close
        // to the engine's stack limit for arguments (Node overflows at about 200,000).
        latest = 0
        for (const expiresAt of leases.values()) latest = Math.max(latest, expiresAt)
        return { value: { inFlight: count - 1 }, write: save() }
      }
      case 'inFlight':
        return { value: { inFlight: count }, write: undefined }
      case 'reset':
        return {
          value: { inFlight: 0 },
          write: this.#drop(CONCURRENCY_KEY) ? this.ctx.storage.delete(CONCURRENCY_KEY) : undefined,
        }
      default:
        throw new TenantBackendError(
          `unknown concurrency operation ${JSON.stringify((call as { op: unknown }).op)}`,
        )
    }
  }

  /** Version 2: the tenant's and a subject's windows in one synchronous step (all-or-nothing). */
  #subjectQuota(
    call: QuotaCall,
    algorithm: QuotaAlgorithm<unknown>,
    key: string,
    previous: unknown,
    now: number,
  ): Step<QuotaDecision | QuotaWindowUsage[]> {
    const subject = call.subject!
    const subjectConfig = call.subjectConfig!
    const sKey = subjectKey(call, subject)
    const theirs = this.#records.get(sKey)?.state
    const writes = (tenantState: unknown, subjectState: unknown) => {
      if (call.op === 'reset') return undefined
      // Room only for a subject state that will be stored (see #save): a refund to a subject the
      // object holds nothing for stores nothing, and must not evict a live subject's counts.
      if (algorithm.expiresAt(subjectState) > now) this.#makeRoom(call, sKey)
      const done = [
        this.#saveQuota(key, algorithm, tenantState, now),
        this.#saveQuota(sKey, algorithm, subjectState, now),
      ].filter((w) => w !== undefined)
      return done.length === 0 ? undefined : Promise.all(done)
    }
    switch (call.op) {
      case 'consume': {
        const step = consumeWithSubject(
          algorithm,
          previous,
          theirs,
          call.config,
          subjectConfig,
          call.cost,
          subject,
          now,
        )
        if (!step.allowed) return { value: step.decision, write: undefined }
        return {
          value: step.decision,
          write: writes(step.tenant, step.subject),
          charges: [
            quotaCharge(key, algorithm, call.config, call.cost, now, step.charged?.tenant),
            quotaCharge(sKey, algorithm, subjectConfig, call.cost, now, step.charged?.subject),
          ],
        }
      }
      case 'adjust': {
        const decidedAt = normalizeDecidedAt(call)
        const own = algorithm.adjust(previous, call.config, call.tokens, now, decidedAt)
        const other = algorithm.adjust(theirs, subjectConfig, call.tokens, now, decidedAt)
        return {
          value: [...own.usage, ...tagSubject(other.usage, subject)],
          write: call.tokens === 0 ? undefined : writes(own.state, other.state),
        }
      }
      case 'peek':
        return { value: tagSubject(algorithm.peek(theirs, subjectConfig, now), subject), write: undefined }
      default:
        throw new TenantBackendError(`unknown quota operation ${JSON.stringify(call.op)}`)
    }
  }

  // A new subject past MAX_SUBJECTS_PER_TENANT evicts the subject whose state expires first.
  #makeRoom(call: Pick<QuotaCall, 'algorithm' | 'precision'>, sKey: string): void {
    if (this.#records.has(sKey)) return
    const prefix = subjectKey(call, '')
    let count = 0
    let earliest: [string, number] | undefined
    for (const [k, record] of this.#records) {
      if (!k.startsWith(prefix)) continue
      count++
      if (earliest === undefined || record.expiresAt < earliest[1]) earliest = [k, record.expiresAt]
    }
    if (count >= MAX_SUBJECTS_PER_TENANT && earliest !== undefined) {
      this.#drop(earliest[0])
      void this.ctx.storage.delete(earliest[0])
    }
  }

  #saveQuota(
    key: string,
    algorithm: QuotaAlgorithm<unknown>,
    state: unknown,
    now: number,
  ): Promise<unknown> | undefined {
    // Core keeps the counters of windows the call's config does not name until they end (two
    // Workers may briefly hold different versions of the tenant's limits; without that, one that
    // has not seen a newly added window would erase its count on every write), so the state is
    // saved as core returns it.
    return this.#save(key, state, algorithm.expiresAt(state), now)
  }

  /**
   * Updates the mirror now and returns the storage write. A state that already counts nothing is
   * deleted instead of written. The alarm is set only when none is scheduled: when it fires it
   * moves itself to the latest expiry, so a busy tenant costs one alarm write per expiry period,
   * not one per decision.
   */
  #save(key: string, state: unknown, expiresAt: number, now: number): Promise<unknown> | undefined {
    const storage = this.ctx.storage
    if (expiresAt <= now) {
      return this.#drop(key) ? storage.delete(key) : undefined
    }
    const record: StoredRecord = { state, expiresAt }
    if (!this.#records.has(key)) this.#born.set(key, this.#seq)
    this.#records.set(key, record)
    if (this.#alarmAt !== null) return storage.put(key, record)
    let latest = expiresAt
    for (const r of this.#records.values()) latest = Math.max(latest, r.expiresAt)
    // Capped (see MAX_ALARM_AHEAD_MS): a date setAlarm refuses would fail the call after its charge.
    const alarmAt = alarmTime(latest)
    this.#alarmAt = alarmAt
    return Promise.all([storage.put(key, record), storage.setAlarm(alarmAt)])
  }

  /** Forgets a state in memory (the caller deletes it from storage). True when there was one. */
  #drop(key: string): boolean {
    this.#born.delete(key)
    return this.#records.delete(key)
  }
}

/**
 * How to take a quota admission back out of the state `key`: core's refund at its decision time,
 * of what the admission added to each window (`charged`: less than the cost where an unlimited
 * count saturated, so the refund never takes usage counted before it).
 */
function quotaCharge(
  key: string,
  algorithm: QuotaAlgorithm<unknown>,
  config: QuotaConfig,
  cost: NormalizedCost,
  decidedAt: number,
  charged: QuotaCharge | undefined,
): Charge {
  // A charge is remembered with its op id (RecentOps, up to 4,096 per object for a minute): it
  // keeps the limits its refund needs, not the caller's whole config, whose subject patterns can
  // run to tens of KB per call.
  const limits: QuotaConfig = { limits: config.limits }
  return {
    key,
    undo: (state) => {
      const refunded = algorithm.refund(state, limits, cost, decidedAt, charged)
      return { state: refunded, expiresAt: algorithm.expiresAt(refunded) }
    },
  }
}

/**
 * A call's subject, checked as the managers check it before they send it: the subject is part of a
 * storage key, and a template string would make `42`, `['42']` and `'42'` one key, `null` the
 * subject `'null'`. A call naming a subject is version 2, and one that decides (not a reset) comes
 * with the subject's config; a version 1 call with a subject would be run as the tenant's alone.
 */
function checkSubject(call: QuotaCall): void {
  const { subject, subjectConfig } = call as { subject?: unknown; subjectConfig?: unknown }
  if (subject === undefined && subjectConfig === undefined) return
  if (call.v !== PROTOCOL_VERSION) {
    throw new TenantBackendError(
      `@tenant/cloudflare protocol mismatch: a call naming a subject is version ${PROTOCOL_VERSION}, got ${String(call.v)}`,
    )
  }
  validateSubject(subject as string)
  if (call.op !== 'reset') configObject(subjectConfig, 'subjectConfig')
}

/**
 * Refuses a call whose config is not an object (a call from another build, a bug), which core
 * would read as "no limits": typed, before anything is read or written.
 */
function configObject(config: unknown, path: string): void {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new InvalidTenantConfigError([{ path: [path], message: 'must be an object', code: 'invalid_type' }])
  }
}
