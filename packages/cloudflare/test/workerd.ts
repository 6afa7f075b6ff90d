// Starts test/worker.ts on workerd through Miniflare (local, no Cloudflare account) and gives the
// Node-side tests a QuotaManager / RateLimiter that forward every call to the real
// DurableObjectQuotaManager / DurableObjectRateLimiter running inside workerd.
import { fileURLToPath } from 'node:url'
import type {
  Clock,
  ConcurrencyDecision,
  ConcurrencyLimiter,
  QuotaCost,
  QuotaDecision,
  QuotaManager,
  QuotaProvider,
  QuotaSubjectOptions,
  QuotaUsage,
  RateLimitDecision,
  RateLimiter,
  RateLimitProvider,
} from '@tenant/core'
import { isTenantError, TenantError } from '@tenant/core'
import { build } from 'esbuild'
import { Miniflare, type WebSocket } from 'miniflare'
import { afterAll, beforeAll } from 'vitest'
import type { Inspection, PrefilterMode, TestMessage, TestReply } from './worker'

const root = fileURLToPath(new URL('..', import.meta.url))

const bundles = new Map<string, Promise<string>>()

/**
 * A test worker of this folder (`test/<file>`) bundled the way wrangler would (ESM, workerd
 * conditions, our sources), once per file.
 */
export function bundledWorker(file: string): Promise<string> {
  let bundle = bundles.get(file)
  if (bundle === undefined) {
    bundle = build({
      entryPoints: [`${root}test/${file}`],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      conditions: ['@tenant/source', 'workerd', 'worker', 'browser'],
      external: ['cloudflare:workers'],
      write: false,
      logLevel: 'silent',
    }).then((result) => result.outputFiles[0]!.text)
    bundles.set(file, bundle)
  }
  return bundle
}

/** Options of {@link startWorkerd}. */
export interface WorkerdOptions {
  /** A directory for Durable Object storage that outlives the runtime; default: in memory. */
  persist?: string
  /** The limit of the emulated Rate Limiting binding `SHIELD` (per 60 s). */
  shieldLimit?: number
}

function encode(message: TestMessage | { id: number; message: TestMessage }): string {
  return JSON.stringify(message, (_key, value) =>
    typeof value === 'number' && !Number.isFinite(value) ? { $n: String(value) } : value,
  )
}

function unwrap(reply: TestReply): unknown {
  if (reply.ok) return reply.value
  const { error } = reply
  if (error.code !== undefined) {
    const rebuilt = new TenantError(error.code as never, error.message, { tenantId: error.tenantId })
    rebuilt.name = error.name
    throw rebuilt
  }
  const plain = new Error(error.message)
  plain.name = error.name
  throw plain
}

/** A running workerd with the test worker, and ways to call it. */
export class Workerd {
  readonly #mf: Miniflare
  #socket: Promise<WebSocket> | undefined
  readonly #pending = new Map<number, (reply: TestReply) => void>()
  #next = 0

  private constructor(mf: Miniflare) {
    this.#mf = mf
  }

  static async start(options: WorkerdOptions = {}): Promise<Workerd> {
    const mf = new Miniflare({
      modules: true,
      script: await bundledWorker('worker.ts'),
      compatibilityDate: '2025-09-01',
      durableObjects: { TENANT_QUOTA: { className: 'CountingQuotaObject', useSQLite: true } },
      durableObjectsPersist: options.persist ?? false,
      ratelimits: { SHIELD: { simple: { limit: options.shieldLimit ?? 3, period: 60 } } },
    })
    await mf.ready
    return new Workerd(mf)
  }

  /** One message over the shared WebSocket (cheap; many may be in flight at once). */
  async send(message: TestMessage): Promise<unknown> {
    const socket = await this.#open()
    const id = this.#next++
    const reply = new Promise<TestReply>((resolve) => this.#pending.set(id, resolve))
    socket.send(encode({ id, message }))
    return unwrap(await reply)
  }

  /** One message as its own HTTP request: a separate Worker invocation, like real traffic. */
  async request(message: TestMessage): Promise<unknown> {
    const response = await this.#mf.dispatchFetch('http://tenant.test/', {
      method: 'POST',
      body: encode(message),
    })
    return unwrap((await response.json()) as TestReply)
  }

  inspect(tenantId: string, prefix?: string): Promise<Inspection> {
    return this.send({ kind: 'inspect', tenantId, ...(prefix ? { prefix } : {}) }) as Promise<Inspection>
  }

  /** A QuotaManager whose every call runs DurableObjectQuotaManager inside workerd. */
  quotaManager(
    provider: QuotaProvider,
    options: ForwardOptions & { algorithm?: 'fixed' | 'sliding'; precision?: number; prefix?: string } = {},
  ): QuotaManager {
    const { clock, transport = 'socket', ...rest } = options
    const call = async (op: 'consume' | 'adjust' | 'peek' | 'reset', tenantId: string, arg?: unknown) => {
      const config = await configOf(() => provider.quotaConfig(tenantId))
      const message: TestMessage = { kind: 'quota', op, tenantId, arg, ...config, ...rest }
      if (clock) message.now = clock.now()
      return transport === 'socket' ? this.send(message) : this.request(message)
    }
    return {
      consume: (tenantId: string, cost?: QuotaCost) =>
        call('consume', tenantId, cost) as Promise<QuotaDecision>,
      adjust: (tenantId: string, delta: { tokens: number }) =>
        call('adjust', tenantId, delta) as Promise<QuotaUsage>,
      peek: (tenantId: string, options?: QuotaSubjectOptions) =>
        call('peek', tenantId, options) as Promise<QuotaUsage>,
      reset: async (tenantId: string, options?: QuotaSubjectOptions) => {
        await call('reset', tenantId, options)
      },
    }
  }

  /** A RateLimiter whose every call runs DurableObjectRateLimiter inside workerd. */
  rateLimiter(provider: RateLimitProvider, options: ForwardOptions = {}): RateLimiter {
    const { clock, transport = 'socket', ...rest } = options
    return {
      consume: async (tenantId: string, arg?: { cost?: number }) => {
        const config = await configOf(() => provider.rateLimitConfig(tenantId))
        const message: TestMessage = { kind: 'rate', tenantId, arg, ...config, ...rest }
        if (clock) message.now = clock.now()
        return (
          transport === 'socket' ? this.send(message) : this.request(message)
        ) as Promise<RateLimitDecision>
      },
      reset: async (tenantId: string) => {
        const message: TestMessage = { kind: 'rate', op: 'reset', tenantId, ...rest }
        await (transport === 'socket' ? this.send(message) : this.request(message))
      },
    }
  }

  /** A ConcurrencyLimiter whose every call runs DurableObjectConcurrencyLimiter inside workerd. */
  concurrencyLimiter(options: { clock?: Clock; leaseTtlMs?: number } = {}): ConcurrencyLimiter {
    const { clock, leaseTtlMs } = options
    const send = (message: Omit<Extract<TestMessage, { kind: 'concurrency' }>, 'kind'>) =>
      this.send({
        kind: 'concurrency',
        ...message,
        ...(leaseTtlMs ? { leaseTtlMs } : {}),
        ...(clock ? { now: clock.now() } : {}),
      })
    return {
      acquire: async (tenantId, maxInFlight) => {
        const { leaseId, ...decision } = (await send({ op: 'acquire', tenantId, arg: maxInFlight })) as Omit<
          ConcurrencyDecision,
          'lease'
        > & { leaseId?: string }
        if (leaseId === undefined) return decision
        return {
          ...decision,
          lease: {
            id: leaseId,
            release: async () => {
              await send({ op: 'release', tenantId, leaseId })
            },
          },
        }
      },
      inFlight: (tenantId) => send({ op: 'inFlight', tenantId }) as Promise<number>,
      reset: async (tenantId) => {
        await send({ op: 'reset', tenantId })
      },
    }
  }

  async dispose(): Promise<void> {
    const socket = await this.#socket?.catch(() => undefined)
    socket?.close()
    await this.#mf.dispose()
  }

  #open(): Promise<WebSocket> {
    this.#socket ??= this.#mf
      .dispatchFetch('http://tenant.test/', { headers: { Upgrade: 'websocket' } })
      .then((response) => {
        const socket = response.webSocket
        if (!socket) throw new Error(`no WebSocket from the test worker (status ${response.status})`)
        socket.accept()
        socket.addEventListener('message', (event) => {
          const { id, reply } = JSON.parse(String(event.data)) as { id: number; reply: TestReply }
          this.#pending.get(id)?.(reply)
          this.#pending.delete(id)
        })
        return socket
      })
    return this.#socket
  }
}

/** How a forwarding manager reaches the worker. */
export interface ForwardOptions {
  /** Sent as the manager's clock; absent: the object's own time. */
  clock?: Clock
  /** `socket` (default, cheap) or one HTTP request per call. */
  transport?: 'socket' | 'http'
  prefilter?: PrefilterMode
}

/** The provider's answer as message fields: the config, or none when the tenant is unknown. */
async function configOf<T>(get: () => Promise<T>): Promise<{ config?: T }> {
  try {
    return { config: await get() }
  } catch (error) {
    if (isTenantError(error) && error.code === 'tenant_not_found') return {}
    throw error
  }
}

/**
 * One runtime for the calling test file: started before its tests, disposed after them. Returns
 * a getter, since the runtime only exists once `beforeAll` has run.
 */
export function useWorkerd(options?: WorkerdOptions): () => Workerd {
  let workerd: Workerd | undefined
  beforeAll(async () => {
    workerd = await Workerd.start(options)
  }, 60_000)
  afterAll(async () => {
    await workerd?.dispose()
  })
  return () => {
    if (workerd === undefined) throw new Error('the workerd runtime is not started yet')
    return workerd
  }
}
