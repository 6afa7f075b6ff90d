import { z } from 'zod'
import { logLevels } from './logger'

// RFC 6750 b64token characters: what adminRoutes accepts as a bearer token.
const bearerToken = z
  .string()
  .min(16, 'use at least 16 characters (32 random bytes, base64url, is a good choice)')
  .regex(/^[A-Za-z0-9\-._~+/]+=*$/, 'only letters, digits and -._~+/ (then = padding) may appear')

/** Settings every runtime reads (Node and Bun from the environment, Workers from vars and secrets). */
export const appSettingsSchema = z.object({
  /** Bearer token of the admin plane. Node/Bun generate one per start when unset; Workers disable `/admin`. */
  ADMIN_TOKEN: bearerToken.optional(),
  /**
   * When set, `/metrics` requires `Authorization: Bearer <METRICS_TOKEN>` (Prometheus `authorization`).
   * Unset: Workers do not serve `/metrics`; Node/Bun serve it only on a loopback HOST ({@link metricsAccess}).
   */
  METRICS_TOKEN: bearerToken.optional(),
  /** When set, `/api/*` requires an HS256 JWT whose `tenant_id` claim names the tenant. */
  JWT_SECRET: z.string().min(32, 'use at least 32 characters').optional(),
  /** `fixed` (UTC calendar windows) or `sliding` (sub-window buckets). */
  QUOTA_ALGORITHM: z.enum(['fixed', 'sliding']).default('fixed'),
  /** How long a tenant config is served from the in-process cache. */
  CONFIG_CACHE_TTL_MS: z.coerce.number().int().min(1).max(3_600_000).default(30_000),
  /** `info`: one line per decision; `warn`: refusals and errors only; `error`; `silent`. */
  LOG_LEVEL: z.enum(logLevels).default('info'),
})

/** Settings of the Node and Bun servers. */
export const serverSettingsSchema = appSettingsSchema.extend({
  /** Port to listen on; 0 picks a free one. */
  PORT: z.coerce.number().int().min(0).max(65_535).default(3000),
  /** Interface to listen on. 127.0.0.1 keeps a development server off the network (see {@link isLoopbackHost}). */
  HOST: z.string().min(1).default('127.0.0.1'),
  /** `file:` / `libsql:` (libSQL) or `postgres:` / `postgresql:` (PostgreSQL). */
  DATABASE_URL: z
    .string()
    .regex(/^(file|libsql|https?|wss?|postgres|postgresql):/, 'must start with file:, libsql: or postgres:')
    .default('file:./data/saas-example.db'),
  /** Auth token of a remote libSQL database (Turso). */
  DATABASE_AUTH_TOKEN: z.string().optional(),
  /** PostgreSQL schema of the tables (the connection's search_path); the server's default when unset. */
  DATABASE_SCHEMA: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lower-case identifier')
    .optional(),
  /** PostgreSQL connection that owns the tables and runs the migrations; DATABASE_URL when unset. */
  MIGRATION_DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:/, 'must be a postgres: URL')
    .optional(),
  /** `enforce`: refuse to start when row-level security would not apply to the app's role; `warn`: log it. */
  RLS_CHECK: z.enum(['enforce', 'warn']).default('enforce'),
  /** Redis for quotas and rate limits shared by every instance; in-process counters when unset. */
  REDIS_URL: z
    .string()
    .regex(/^rediss?:/, 'must be a redis: or rediss: URL')
    .optional(),
  /** Start of every Redis key of this app. */
  REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:._-]{1,100}$/, '1 to 100 characters of [A-Za-z0-9:._-]')
    .default('saas-example'),
})

/** The validated settings of the Workers entry. */
export type AppSettings = z.infer<typeof appSettingsSchema>
/** The validated settings of the Node and Bun servers. */
export type ServerSettings = z.infer<typeof serverSettingsSchema>

/**
 * Whether listening on `host` keeps the server off the network: `localhost` (any case), `::1`, or an
 * IPv4 address in 127.0.0.0/8 (`127.0.0.1`). Anything else counts as reachable from the network:
 * `0.0.0.0`, `::`, an interface's address, any other host name, and other spellings of loopback
 * (`[::1]`, `::ffff:127.0.0.1`), so a doubt fails closed.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase()
  if (h === 'localhost' || h === '::1') return true
  const octets = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(h)?.slice(1) ?? []
  return octets.length === 3 && octets.every((octet) => Number(octet) <= 255)
}

/**
 * Who may read `/metrics` on Node/Bun, whose labels name every tenant: `token` (METRICS_TOKEN set:
 * bearer required), `open` (no token, but HOST is loopback: only this machine reaches it), `off`
 * (no token on a network-reachable HOST: not served). The Worker has no HOST: without a token, `off`.
 */
export function metricsAccess(
  settings: Pick<ServerSettings, 'METRICS_TOKEN' | 'HOST'>,
): 'token' | 'open' | 'off' {
  if (settings.METRICS_TOKEN !== undefined) return 'token'
  return isLoopbackHost(settings.HOST) ? 'open' : 'off'
}

/** A setting that failed validation, at start-up. */
export class SettingsError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid settings:\n${problems.map((p) => `  - ${p}`).join('\n')}`)
    this.name = 'SettingsError'
  }
}

/**
 * Validates settings from an environment-like record. Empty values count as unset (a `.env` line
 * `REDIS_URL=` turns Redis off rather than failing). Throws {@link SettingsError} listing every
 * problem.
 *
 * @example
 * ```ts
 * const settings = parseSettings(serverSettingsSchema, process.env)
 * ```
 */
export function parseSettings<S extends z.ZodType>(schema: S, source: Record<string, unknown>): z.infer<S> {
  const present: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(source))
    if (value !== '' && value !== undefined) present[key] = value
  const result = schema.safeParse(present)
  if (!result.success) {
    throw new SettingsError(result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`))
  }
  return result.data
}
