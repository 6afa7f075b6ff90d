// The Hono apps the HTTP section serves. The same builder makes the app for the same-decision check
// (driven in-process with app.request) and for the load run (served by http-server.ts).

import type { ServerResponse } from 'node:http'
import {
  ConfigPolicyEvaluator,
  InMemoryConcurrencyLimiter,
  InMemoryConfigManager,
  InMemoryQuotaManager,
  type TenantConfigInput,
  TokenBucketRateLimiter,
} from '@tenant/core'
import { runWithTenantId } from '@tenant/fetch'
import { tenancy } from '@tenant/hono'
import { RedisQuotaManager, RedisRateLimiter } from '@tenant/redis'
import { Hono } from 'hono'
import { rateLimiter } from 'hono-rate-limiter'
import { Redis } from 'ioredis'
import { REDIS_URL } from './env'

/** The variants that need nothing outside the server process: served on Node and on Bun. */
export const inProcessVariants = [
  'bare',
  'floor',
  'floor-context',
  'floor-headers',
  'floor-io',
  'floor-io-work',
  'chain-memory',
  'chain-no-context',
  'hono-rate-limiter',
] as const

/** The app variants of the HTTP section, in report order. */
export const httpVariants = [
  ...inProcessVariants,
  'chain-concurrency',
  'chain-redis',
  'example-app',
  'stage-resolve',
  'stage-policy',
  'stage-rate-limit',
] as const
export type HttpVariant = (typeof httpVariants)[number]

/** What each variant is, for the report. */
export const variantTitles: Record<HttpVariant, string> = {
  bare: 'bare Hono route',
  floor: 'floor: async middleware reading X-Tenant-ID, one c.header() before next()',
  'floor-context': 'floor + runWithTenantId around next() (tenant context)',
  'floor-headers':
    "floor + the chain's four response headers (fixed strings; on the Node response under @hono/node-server), no context",
  'floor-io':
    "floor with the chain's I/O: the four response headers (as in the row above) and the tenant context",
  'floor-io-work':
    "control: the floor with the chain's I/O + a fixed loop (the same instructions every request)",
  'chain-memory': 'Hono + full tenancy chain, in memory',
  'chain-no-context': 'the same chain with resolver: { context: false } (no AsyncLocalStorage)',
  'chain-concurrency': 'the same chain with a cap on requests in flight (InMemoryConcurrencyLimiter)',
  'hono-rate-limiter': 'Hono + hono-rate-limiter (memory store)',
  'chain-redis': 'Hono + full tenancy chain, Redis quota and rate limit',
  'example-app': 'example app GET /api/v1/resources, libSQL',
  'stage-resolve': 'in-memory chain cut after resolve',
  'stage-policy': 'in-memory chain cut after policy',
  'stage-rate-limit': 'in-memory chain cut after rate limit',
}

/** The in-memory chain cut after each stage, to see what each stage costs. */
const stageCuts = {
  'stage-resolve': 1,
  'stage-policy': 2,
  'stage-rate-limit': 3,
  'chain-memory': 4,
  'chain-no-context': 4,
  'chain-concurrency': 4,
} as const

// What the full chain sends for these tenants (see tenantConfig), for the floor with headers.
const CHAIN_HEADERS = [
  [
    'RateLimit-Policy',
    '"minute";q=1000000000000;w=60, "minute-tokens";q=1000000000000;w=60;qu="tokens", "rate";q=1000000000000',
  ],
  [
    'RateLimit',
    '"minute";r=999999999999;t=42, "minute-tokens";r=1000000000000;t=42, "rate";r=999999999999;t=1',
  ],
  ['X-Quota-Remaining-Requests', '999999999999'],
  ['X-Quota-Remaining-Tokens', '1000000000000'],
]

/** Tenants the load generator spreads its connections over. */
export const HTTP_TENANTS = Array.from({ length: 8 }, (_, i) => `tenant-${i}`)
/** The path every variant serves (except the example app). */
export const HTTP_PATH = '/api/hello'

/** A built app and how to release what it holds (Redis connections). */
export interface BuiltApp {
  /** `env`: the server adapter's bindings (under @hono/node-server, the Node request and response). */
  fetch: (request: Request, env?: unknown) => Response | Promise<Response>
  close(): Promise<void>
}

function tenantConfig(id: string, requestsPerMinute: number): TenantConfigInput {
  return {
    id,
    quota: { limits: [{ window: 'minute', requests: requestsPerMinute, tokens: 1e12 }] },
    // The rate limit never binds: the checks count quota decisions against hono-rate-limiter's.
    rateLimit: { requestsPerSecond: 1e9, burst: 1e12 },
    // Never binds either; only the chain-concurrency variant has a limiter that reads it.
    concurrency: { maxInFlight: 100_000 },
    policy: {
      allowedModels: ['gpt-4o-mini', 'gpt-4o'],
      allowedTools: [],
      allowedMethods: ['GET', 'POST'],
      allowedPaths: ['/api/*'],
    },
    metadata: { plan: 'pro' },
  }
}

async function configsFor(tenants: readonly string[], limit: number): Promise<InMemoryConfigManager> {
  const configs = new InMemoryConfigManager()
  for (const id of tenants) await configs.setTenantConfig(tenantConfig(id, limit))
  return configs
}

/** Iterations of {@link fixedWork}'s loop: about 4 µs on the development machine (Node and Bun alike). */
const WORK_ITERATIONS = 3_400
/** Where the loop's result goes, so that the compiler cannot drop the loop. */
export let workSink = 0

/** The control row's work: the same arithmetic every request, no allocation, no I/O. */
function fixedWork(): void {
  let acc = workSink
  for (let i = 0; i < WORK_ITERATIONS; i++) acc = (Math.imul(acc, 31) + i) | 0
  workSink = acc
}

/**
 * Builds one variant whose tenants may make `limit` requests per minute. `prefix` keeps Redis keys
 * of one run apart from every other run's.
 */
export async function buildApp(
  variant: Exclude<HttpVariant, 'example-app'>,
  options: { limit: number; tenants: readonly string[]; prefix: string },
): Promise<BuiltApp> {
  const app = new Hono()
  const handler = (c: { json: (value: unknown) => Response }) => c.json({ ok: true })
  switch (variant) {
    case 'bare': {
      app.get(HTTP_PATH, handler)
      return { fetch: app.fetch, close: async () => {} }
    }
    case 'floor':
    case 'floor-context':
    case 'floor-headers':
    case 'floor-io':
    case 'floor-io-work': {
      // The least any tenancy middleware does on this adapter: an async middleware that reads the
      // tenant header and sets one response header before the handler. With the tenant context,
      // it also runs the handler in an AsyncLocalStorage scope, as tenancy() does; with the
      // headers, it sends the four the full chain sends, as fixed strings of the same length. With
      // both (floor-io), it is the cheapest middleware doing the chain's I/O: the row to hold it to.
      // The four headers go out the cheapest way the host has: under @hono/node-server straight
      // onto the Node response (setHeader), which the chain matches; elsewhere c.header().
      // floor-io-work adds the same fixed loop to every request: a control for how much work added
      // in process costs under load (its in-process cost is in the steady table beside it). The
      // loop runs in a synchronous middleware of its own: V8 compiles a long loop inlined into an
      // async function (or any try block) about 4x slower (3.85 µs against 16.8 µs for this loop
      // on Node 20), and the control is meant to measure the host, not that.
      const withIo = variant === 'floor-headers' || variant === 'floor-io' || variant === 'floor-io-work'
      const scoped = variant === 'floor-context' || variant === 'floor-io' || variant === 'floor-io-work'
      const work = variant === 'floor-io-work'
      if (work) {
        app.use('/api/*', (_c, next) => {
          fixedWork()
          return next()
        })
      }
      if (withIo) {
        app.use('/api/*', async (c, next) => {
          const tenantId = c.req.header('x-tenant-id')
          const outgoing = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing
          if (outgoing) for (const [name, value] of CHAIN_HEADERS) outgoing.setHeader(name!, value!)
          else for (const [name, value] of CHAIN_HEADERS) c.header(name!, value!)
          await (scoped ? runWithTenantId(tenantId, next) : next())
        })
      } else {
        app.use('/api/*', async (c, next) => {
          const tenantId = c.req.header('x-tenant-id')
          c.header('X-Tenant', tenantId ?? '-')
          await (scoped ? runWithTenantId(tenantId, next) : next())
        })
      }
      app.get(HTTP_PATH, handler)
      return { fetch: app.fetch, close: async () => {} }
    }
    case 'stage-resolve':
    case 'stage-policy':
    case 'stage-rate-limit':
    case 'chain-memory':
    case 'chain-no-context':
    case 'chain-concurrency': {
      const configs = await configsFor(options.tenants, options.limit)
      const stages = stageCuts[variant]
      app.use(
        '/api/*',
        tenancy({
          configManager: configs,
          ...(variant === 'chain-no-context' ? { resolver: { context: false } } : {}),
          ...(variant === 'chain-concurrency' ? { concurrency: new InMemoryConcurrencyLimiter() } : {}),
          ...(stages >= 2 ? { policy: new ConfigPolicyEvaluator(configs) } : {}),
          ...(stages >= 3 ? { rateLimit: new TokenBucketRateLimiter(configs) } : {}),
          ...(stages >= 4 ? { quota: new InMemoryQuotaManager(configs) } : {}),
        }),
      )
      app.get(HTTP_PATH, handler)
      return { fetch: app.fetch, close: async () => {} }
    }
    case 'hono-rate-limiter': {
      app.use(
        '/api/*',
        rateLimiter({
          windowMs: 60_000,
          limit: options.limit,
          standardHeaders: 'draft-6',
          keyGenerator: (c) => c.req.header('x-tenant-id') ?? '',
        }),
      )
      app.get(HTTP_PATH, handler)
      return { fetch: app.fetch, close: async () => {} }
    }
    case 'chain-redis': {
      const configs = await configsFor(options.tenants, options.limit)
      const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 })
      app.use(
        '/api/*',
        tenancy({
          configManager: configs,
          policy: new ConfigPolicyEvaluator(configs),
          rateLimit: new RedisRateLimiter(configs, { redis, prefix: `${options.prefix}b`, timeoutMs: 5_000 }),
          quota: new RedisQuotaManager(configs, { redis, prefix: `${options.prefix}q`, timeoutMs: 5_000 }),
        }),
      )
      app.get(HTTP_PATH, handler)
      return {
        fetch: app.fetch,
        close: async () => {
          const keys: string[] = []
          let cursor = '0'
          do {
            const [next, found] = await redis.scan(cursor, 'MATCH', `*${options.prefix}*`, 'COUNT', 1000)
            cursor = next
            keys.push(...found)
          } while (cursor !== '0')
          if (keys.length > 0) await redis.del(...keys)
          redis.disconnect()
        },
      }
    }
  }
}
