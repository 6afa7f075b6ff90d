// The Worker the workerd tests run: the managers and TenantQuotaObject from src/, bundled by
// esbuild and driven from Node (test/workerd.ts) over HTTP and a WebSocket. The tenant configs
// and the time come from the Node side with each message, exactly as a provider and a clock in a
// real Worker would hand them to the managers.
import type { QuotaConfig, RateLimitConfig } from '@tenant/core'
import { isTenantError, TenantNotFoundError } from '@tenant/core'
import {
  DurableObjectConcurrencyLimiter,
  DurableObjectQuotaManager,
  DurableObjectRateLimiter,
  PROTOCOL_VERSION,
  type PrefilterOptions,
  type RateLimitBinding,
  TenantQuotaObject,
} from '../src/index'

interface Env {
  TENANT_QUOTA: DurableObjectNamespace<CountingQuotaObject>
  SHIELD: RateLimitBinding
}

/** What each message asks for. */
export type TestMessage =
  | {
      kind: 'quota'
      op: 'consume' | 'adjust' | 'peek' | 'reset'
      tenantId: string
      /** The cost (consume) or the delta (adjust), passed to the manager as it is. */
      arg?: unknown
      /** The provider's answer; absent: the provider throws TenantNotFoundError. */
      config?: QuotaConfig
      now?: number
      algorithm?: 'fixed' | 'sliding'
      precision?: number
      prefilter?: PrefilterMode
      prefix?: string
    }
  | {
      kind: 'rate'
      /** Absent: a take; `reset`: the limiter's reset. */
      op?: 'reset'
      tenantId: string
      arg?: unknown
      config?: RateLimitConfig | null
      now?: number
      prefilter?: PrefilterMode
    }
  | {
      kind: 'concurrency'
      op: 'acquire' | 'release' | 'inFlight' | 'reset'
      tenantId: string
      /** `acquire`: the cap, passed to the limiter as it is. */
      arg?: unknown
      leaseId?: string
      leaseTtlMs?: number
      now?: number
    }
  /** Storage and call counts of a tenant's object. */
  | { kind: 'inspect'; tenantId: string; prefix?: string }
  /** Runs the object's alarm handler now. */
  | { kind: 'alarm'; tenantId: string }
  /** The next RPC into the tenant's object throws a plain Error (a backend fault). */
  | { kind: 'break'; tenantId: string }
  /**
   * The next quota, rate-limit or concurrency RPC runs, then its answer is lost (the call throws
   * after the write). Voids are not affected.
   */
  | { kind: 'loseAnswer'; tenantId: string }
  /** The next `times` voids into the tenant's object throw before they run (a failed void RPC). */
  | { kind: 'breakVoids'; tenantId: string; times: number }
  /** Sends a quota call as it is (a wrong protocol version, an op id of the test's choosing). */
  | { kind: 'raw'; tenantId: string; call: unknown }
  /** Sends a rate-limit call as it is. */
  | { kind: 'raw-rate'; tenantId: string; call: unknown }
  /** Sends a void as it is. */
  | { kind: 'raw-void'; tenantId: string; call: unknown }
  /** Sends a concurrency call as it is, at the current protocol version. */
  | { kind: 'raw-concurrency'; tenantId: string; call: Record<string, unknown> }
  /** The keys the recording pre-filter binding saw. */
  | { kind: 'shieldKeys' }

/** `real`: miniflare's emulated binding; the others are fakes for faults that cannot be produced. */
export type PrefilterMode = 'real' | 'refuse' | 'throw' | 'record'

export type TestReply =
  | { ok: true; value: unknown }
  | { ok: false; error: { name: string; code?: string; status?: number; message: string; tenantId?: string } }

/** What `inspect` reports. */
export interface Inspection {
  keys: string[]
  alarm: number | null
  calls: number
  /** `voidOp` RPCs, counted apart from `calls`. */
  voids: number
  writes: number
  deletes: number
  alarmWrites: number
}

let shieldKeys: string[] = []
const errorsSeen: unknown[] = []

function bindingFor(mode: PrefilterMode | undefined, env: Env): PrefilterOptions | undefined {
  switch (mode) {
    case undefined:
      return undefined
    case 'real':
      return { binding: env.SHIELD, key: (id) => `shield:${id}` }
    case 'refuse':
      return { binding: { limit: async () => ({ success: false }) }, period: 10 }
    case 'throw':
      return {
        binding: {
          limit: async () => {
            throw new Error('rate limiting binding unavailable')
          },
        },
        onError: (error) => errorsSeen.push(error),
      }
    case 'record':
      return {
        binding: {
          limit: async ({ key }) => {
            shieldKeys.push(key)
            return { success: true }
          },
        },
        key: (id) => `tenant:${id}`,
      }
  }
}

/** A provider answering what the Node side sent: the config, or TenantNotFoundError without one. */
function configOf<T>(config: T | undefined): (tenantId: string) => Promise<T> {
  return async (tenantId) => {
    if (config === undefined) throw new TenantNotFoundError(tenantId)
    return config
  }
}

/** The options both managers take, from the message. */
function commonOptions(message: { now?: number; prefilter?: PrefilterMode }, env: Env) {
  return {
    namespace: env.TENANT_QUOTA,
    ...(message.now === undefined ? {} : { clock: { now: () => message.now! } }),
    ...(message.prefilter ? { prefilter: bindingFor(message.prefilter, env) } : {}),
  }
}

async function handle(message: TestMessage, env: Env): Promise<unknown> {
  const stub = (tenantId: string, prefix = '') =>
    env.TENANT_QUOTA.get(env.TENANT_QUOTA.idFromName(prefix + tenantId))
  switch (message.kind) {
    case 'quota': {
      const manager = new DurableObjectQuotaManager(
        { quotaConfig: configOf(message.config) },
        {
          ...commonOptions(message, env),
          ...(message.algorithm ? { algorithm: message.algorithm } : {}),
          ...(message.precision ? { precision: message.precision } : {}),
          ...(message.prefix ? { prefix: message.prefix } : {}),
        },
      )
      if (message.op === 'consume') return manager.consume(message.tenantId, message.arg as never)
      if (message.op === 'adjust') return manager.adjust(message.tenantId, message.arg as never)
      if (message.op === 'reset') return (await manager.reset(message.tenantId, message.arg as never)) ?? null
      return manager.peek(message.tenantId, message.arg as never)
    }
    case 'rate': {
      const limiter = new DurableObjectRateLimiter(
        { rateLimitConfig: configOf(message.config) },
        commonOptions(message, env),
      )
      if (message.op === 'reset') return (await limiter.reset(message.tenantId)) ?? null
      return limiter.consume(message.tenantId, message.arg as never)
    }
    case 'concurrency': {
      const limiter = new DurableObjectConcurrencyLimiter({
        ...commonOptions(message, env),
        ...(message.leaseTtlMs ? { leaseTtlMs: message.leaseTtlMs } : {}),
      })
      if (message.op === 'acquire') {
        // A lease is a function pair that cannot cross to Node: its id goes, and Node releases by id.
        const { lease, ...decision } = await limiter.acquire(message.tenantId, message.arg as never)
        return lease === undefined ? decision : { ...decision, leaseId: lease.id }
      }
      if (message.op === 'release') return (await limiter.release(message.tenantId, message.leaseId!)) ?? null
      if (message.op === 'reset') return (await limiter.reset(message.tenantId)) ?? null
      return limiter.inFlight(message.tenantId)
    }
    case 'inspect':
      return stub(message.tenantId, message.prefix).inspect()
    case 'alarm':
      return stub(message.tenantId).runAlarm()
    case 'break':
      return stub(message.tenantId).breakNext()
    case 'loseAnswer':
      return stub(message.tenantId).loseNextAnswer()
    case 'breakVoids':
      return stub(message.tenantId).breakVoids(message.times)
    case 'raw':
      return stub(message.tenantId).quota(message.call as never)
    case 'raw-rate':
      return stub(message.tenantId).rateLimit(message.call as never)
    case 'raw-void':
      return stub(message.tenantId).voidOp(message.call as never)
    case 'raw-concurrency':
      return stub(message.tenantId).concurrency({ v: PROTOCOL_VERSION, ...message.call } as never)
    case 'shieldKeys': {
      const keys = shieldKeys
      shieldKeys = []
      return { keys, errors: errorsSeen.splice(0).map(String) }
    }
  }
}

async function reply(message: TestMessage, env: Env): Promise<TestReply> {
  try {
    return { ok: true, value: await handle(message, env) }
  } catch (error) {
    const e = error as Error
    return {
      ok: false,
      error: isTenantError(error)
        ? {
            name: e.name,
            code: error.code,
            status: error.status,
            message: e.message,
            tenantId: error.tenantId,
          }
        : { name: e?.name ?? 'Error', message: String(e?.message ?? e) },
    }
  }
}

// Non-finite numbers and undefined do not survive JSON; the Node side encodes them so that a bad
// cost reaches the manager as the very value the suite passed.
function revive(_key: string, value: unknown): unknown {
  if (value !== null && typeof value === 'object' && '$n' in value)
    return Number((value as { $n: string }).$n)
  return value
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    if (request.headers.get('Upgrade') !== 'websocket') {
      const message = JSON.parse(await request.text(), revive) as TestMessage
      return Response.json(await reply(message, env))
    }
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket]
    server.accept()
    server.addEventListener('message', async (event) => {
      const { id, message } = JSON.parse(event.data as string, revive) as { id: number; message: TestMessage }
      server.send(JSON.stringify({ id, reply: await reply(message, env) }))
    })
    return new Response(null, { status: 101, webSocket: client })
  },
}

/**
 * TenantQuotaObject with instruments around its storage: counts of RPCs, writes and deletes, a
 * way to run the alarm now, and a one-shot fault. The code under test is the parent class.
 */
export class CountingQuotaObject extends TenantQuotaObject<Env> {
  #calls = 0
  #voids = 0
  #writes = 0
  #deletes = 0
  #alarmWrites = 0
  #broken = false
  #loseAnswer = false
  #brokenVoids = 0

  constructor(ctx: DurableObjectState, env: Env) {
    const count = (field: 'writes' | 'deletes' | 'alarmWrites', n = 1) => {
      if (this) this.#bump(field, n)
    }
    const storage = new Proxy(ctx.storage, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target)
        if (typeof value !== 'function') return value
        return (...args: unknown[]) => {
          if (prop === 'put')
            count('writes', typeof args[0] === 'string' ? 1 : Object.keys(args[0] as object).length)
          if (prop === 'delete') count('deletes', Array.isArray(args[0]) ? args[0].length : 1)
          if (prop === 'deleteAll') count('deletes')
          if (prop === 'setAlarm') count('alarmWrites')
          return value.apply(target, args)
        }
      },
    })
    super(ctx, env)
    // The parent reads `this.ctx.storage` on every write; the base class insists on the real
    // DurableObjectState in its constructor, so the counting view is swapped in afterwards.
    const counted = new Proxy(ctx, {
      get(target, prop) {
        if (prop === 'storage') return storage
        const value = Reflect.get(target, prop, target)
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
    Object.defineProperty(this, 'ctx', { value: counted, configurable: true, writable: true })
  }

  #bump(field: 'writes' | 'deletes' | 'alarmWrites', n: number): void {
    if (field === 'writes') this.#writes += n
    else if (field === 'deletes') this.#deletes += n
    else this.#alarmWrites += n
  }

  override async quota(call: Parameters<TenantQuotaObject['quota']>[0]) {
    this.#calls++
    this.#fault()
    return this.#lost(await super.quota(call))
  }

  override async concurrency(call: Parameters<TenantQuotaObject['concurrency']>[0]) {
    this.#calls++
    return this.#lost(await super.concurrency(call))
  }

  override async rateLimit(call: Parameters<TenantQuotaObject['rateLimit']>[0]) {
    this.#calls++
    this.#fault()
    return this.#lost(await super.rateLimit(call))
  }

  override async voidOp(call: Parameters<TenantQuotaObject['voidOp']>[0]) {
    this.#voids++
    if (this.#brokenVoids > 0) {
      this.#brokenVoids--
      throw new Error('simulated void failure')
    }
    return super.voidOp(call)
  }

  // The call ran and its write is made; the caller sees a failed call, as when the connection
  // drops or the object is reset before its answer reaches the Worker.
  #lost<T>(answer: T): T {
    if (!this.#loseAnswer) return answer
    this.#loseAnswer = false
    throw new Error('simulated lost answer')
  }

  async inspect(): Promise<Inspection> {
    const keys = [...(await this.ctx.storage.list()).keys()]
    return {
      keys,
      alarm: await this.ctx.storage.getAlarm(),
      calls: this.#calls,
      voids: this.#voids,
      writes: this.#writes,
      deletes: this.#deletes,
      alarmWrites: this.#alarmWrites,
    }
  }

  async runAlarm(): Promise<void> {
    await this.alarm()
  }

  breakNext(): void {
    this.#broken = true
  }

  loseNextAnswer(): void {
    this.#loseAnswer = true
  }

  breakVoids(times: number): void {
    this.#brokenVoids = times
  }

  #fault(): void {
    if (!this.#broken) return
    this.#broken = false
    throw new Error('simulated storage failure')
  }
}
