import { zValidator } from '@hono/zod-validator'
import {
  type AdminService,
  auditActions,
  InvalidTenantConfigError,
  invalidOption,
  isTenantError,
  MAX_LIST_LIMIT,
  MAX_TENANT_ID_LENGTH,
  planConfigInputSchema,
  planConfigSchema,
  planUpdateInputSchema,
  policyConfigSchema,
  quotaConfigSchema,
  storableText,
  storableTextProblem,
  type TenantError,
  tenantConfigInputSchema,
  tenantConfigSchema,
  tenantUpdateInputSchema,
} from '@tenant/core'
import { PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_PREFIX, pathOf, problemResponse } from '@tenant/fetch'
import { type Context, Hono, type MiddlewareHandler } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { HTTPException } from 'hono/http-exception'
import { timingSafeEqual } from 'hono/utils/buffer'
import { z } from 'zod'

/**
 * What `authorize` returns: `{ actor }` to let the request in (the actor is recorded in the audit
 * log), a `Response` to send instead (a 403 of your own, a redirect), or `false` / `null` /
 * `undefined` to refuse with the default 401.
 */
export type AdminAuthorization = { actor: string } | Response | false | null | undefined

/** Options of {@link adminRoutes}. Exactly one of `token`, `tokens` or `authorize` is required. */
export interface AdminRoutesOptions {
  /**
   * The shared secret expected as `Authorization: Bearer <token>`, compared in constant time.
   * Use a long random value (32+ bytes); characters of RFC 6750 `b64token` only.
   */
  token?: string
  /** The audit actor of requests authenticated with `token`. @default 'admin' */
  actor?: string
  /**
   * Several bearer tokens, keyed by the actor each one stands for (`{ ci: '...', alice: '...' }`),
   * so the audit log tells them apart and one can be rotated without the others.
   */
  tokens?: Readonly<Record<string, string>>
  /**
   * Real identity instead of shared tokens: verify a session, a JWT, mTLS headers, and return
   * `{ actor }` (see {@link AdminAuthorization}). Runs before every admin route.
   */
  authorize?: (request: Request, c: Context) => AdminAuthorization | Promise<AdminAuthorization>
  /**
   * The request id recorded in the audit log.
   * @default `c.var.requestId` (set by hono/request-id) or else the `X-Request-ID` header; ignored
   * unless 1 to 255 visible ASCII characters
   */
  requestId?: (c: Context) => string | undefined
  /** Largest accepted request body in bytes; larger ones get a 413. @default 1048576 (1 MiB) */
  maxBodyBytes?: number
  /** Serve the OpenAPI 3.1 document of these routes at `GET /openapi.json` (behind the same auth). @default true */
  openApi?: boolean
  /**
   * Sees unexpected errors (those answered with a 500). Expected ones (validation, not found,
   * backend unavailable) are answered with their problem+json and not reported.
   * @default console.error
   */
  onError?: (error: unknown, c: Context) => void
}

/** Variables the admin routes set on the context. */
export interface AdminEnv {
  Variables: {
    /** Who is making the request, as recorded in the audit log. */
    adminActor: string
    /** The request id recorded in the audit log, when there was one. */
    adminRequestId: string | undefined
  }
}

/** Error codes the admin routes add to the toolkit's codes (see the README). */
export type AdminProblemCode =
  | 'admin_unauthorized'
  | 'invalid_request'
  | 'unsupported_media_type'
  | 'payload_too_large'
  | 'usage_unavailable'
  | 'plans_unavailable'
  | 'concurrency_unavailable'
  | 'not_found'
  | 'method_not_allowed'
  | 'internal_error'

const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/
const VISIBLE_ASCII = /^[\x21-\x7e]{1,255}$/
// Throws a TypeError on bytes that are not UTF-8.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false })

const JSON_MEDIA_TYPE = /^application\/([\w.-]+\+)?json$/i

/**
 * A whole number in a query string, written in digits: `z.coerce.number()` is `Number()`, which
 * also takes `0x10`, `1e3`, ` 12 ` and an empty value (as 0), as `X-Token-Count` refuses them.
 */
function queryNumber(min: number, max: number) {
  return z
    .string()
    .regex(/^\d{1,16}$/, 'must be a whole number written in digits')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max))
}

const listQuerySchema = z.strictObject({
  limit: queryNumber(1, MAX_LIST_LIMIT).optional(),
  offset: queryNumber(0, Number.MAX_SAFE_INTEGER).optional(),
  // The same rule as core's listTenants options, checked here so the answer is the route's 400.
  after: z.string().min(1).max(MAX_TENANT_ID_LENGTH).superRefine(storableText).optional(),
})

const auditQuerySchema = z.strictObject({
  limit: queryNumber(1, MAX_LIST_LIMIT).optional(),
  before: z.string().min(1).max(255).optional(),
})

function adminProblem(
  status: number,
  code: AdminProblemCode,
  title: string,
  detail: string,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify({ type: PROBLEM_TYPE_PREFIX + code, title, status, detail, code }), {
    status,
    headers: { ...headers, 'Content-Type': PROBLEM_CONTENT_TYPE, 'Cache-Control': 'no-store' },
  })
}

function noConcurrency(): Response {
  return adminProblem(
    501,
    'concurrency_unavailable',
    'In-flight counts unavailable',
    'this admin service was created without a concurrency limiter',
  )
}

/**
 * A {@link TenantError} as problem+json, with the zod `issues` of a validation error and the
 * `planId` of a plan error (ids are checked before a store sees them, so it is a valid id).
 */
function tenantProblem(error: TenantError): Response {
  const { issues, planId } = error as Partial<InvalidTenantConfigError> & { planId?: unknown }
  return problemResponse(error, {
    extensions: {
      ...(issues === undefined ? {} : { issues }),
      ...(typeof planId === 'string' ? { planId } : {}),
    },
  })
}

// The validator hook: turns zod's failure into the same problem a service-side validation gives.
function invalid(result: { success: boolean; error?: { issues: readonly unknown[] } }): Response | undefined {
  if (result.success) return undefined
  return tenantProblem(new InvalidTenantConfigError((result.error?.issues ?? []) as never))
}

type Authenticate = (c: Context) => Promise<{ actor: string } | Response>

function unauthorized(detail: string, invalidToken: boolean): Response {
  // RFC 6750 section 3: say which scheme is expected, and that a presented token was refused.
  const challenge = invalidToken
    ? 'Bearer realm="tenant-admin", error="invalid_token"'
    : 'Bearer realm="tenant-admin"'
  return adminProblem(401, 'admin_unauthorized', 'Unauthorized', detail, { 'WWW-Authenticate': challenge })
}

// What the audit log stores as an actor: 1 to 255 characters, text every store keeps as written
// (no U+0000, no lone surrogate), so that a write is never refused for its actor after auth.
function isActor(actor: unknown): actor is string {
  return (
    typeof actor === 'string' &&
    actor.length > 0 &&
    actor.length <= 255 &&
    storableTextProblem(actor) === undefined
  )
}

function authenticator(options: AdminRoutesOptions): Authenticate {
  const given = (['token', 'tokens', 'authorize'] as const).filter((k) => options[k] !== undefined)
  if (given.length !== 1) {
    throw invalidOption(
      'adminRoutes',
      `pass exactly one of token, tokens or authorize (got ${given.length === 0 ? 'none' : given.join(', ')})`,
    )
  }
  const { authorize } = options
  if (authorize !== undefined) {
    if (typeof authorize !== 'function') throw invalidOption('adminRoutes.authorize', 'must be a function')
    return async (c) => {
      const result = await authorize(c.req.raw, c)
      if (result instanceof Response) return result
      if (!result) return unauthorized('authorization refused', false)
      // A bug in the app's authorize, found while serving a request: a 500 it gets reported, not
      // a config error the client would see as its own 400.
      if (!isActor(result.actor)) {
        throw new TypeError(
          'adminRoutes: the actor returned by authorize must be a string of 1 to 255 characters, without U+0000 or lone surrogates',
        )
      }
      return { actor: result.actor }
    }
  }
  const where = options.tokens !== undefined ? 'adminRoutes.tokens' : 'adminRoutes.token'
  if (options.tokens !== undefined && (typeof options.tokens !== 'object' || options.tokens === null)) {
    throw invalidOption(where, 'must be an object of { actor: token }')
  }
  const actor = options.actor ?? 'admin'
  if (options.tokens === undefined && !isActor(actor)) {
    throw invalidOption(
      'adminRoutes.actor',
      'must be a string of 1 to 255 characters, without U+0000 or lone surrogates',
    )
  }
  const entries: [actor: string, token: string][] =
    options.tokens !== undefined ? Object.entries(options.tokens) : [[actor, options.token!]]
  if (entries.length === 0) throw invalidOption(where, 'is empty')
  const owners = new Map<string, string>()
  for (const [actor, token] of entries) {
    if (!isActor(actor))
      throw invalidOption(
        where,
        'an actor in tokens must be a string of 1 to 255 characters, without U+0000 or lone surrogates',
      )
    if (typeof token !== 'string' || !B64TOKEN.test(token)) {
      throw invalidOption(where, `the token of "${actor}" must be a non-empty RFC 6750 b64token`)
    }
    // One token per actor: a shared one would record every change as the first actor's, and could
    // not be rotated for one of them alone.
    const owner = owners.get(token)
    if (owner !== undefined) throw invalidOption(where, `"${owner}" and "${actor}" have the same token`)
    owners.set(token, actor)
  }
  return async (c) => {
    const header = c.req.header('Authorization')
    const match = header === undefined ? null : /^Bearer +(\S+) *$/i.exec(header)
    if (!match) return unauthorized('send Authorization: Bearer <token>', false)
    const presented = match[1]!
    // Compare against every token, without stopping at the first match, so timing does not say
    // which (or whether an earlier) entry matched. Each comparison hashes both sides first.
    let actor: string | undefined
    for (const [candidate, token] of entries) {
      if ((await timingSafeEqual(token, presented)) && actor === undefined) actor = candidate
    }
    return actor === undefined ? unauthorized('the bearer token is not valid', true) : { actor }
  }
}

function defaultRequestId(c: Context): string | undefined {
  const fromMiddleware = (c.var as Record<string, unknown>).requestId
  return typeof fromMiddleware === 'string' ? fromMiddleware : c.req.header('X-Request-ID')
}

/**
 * Reusable admin routes over an {@link AdminService}: tenant CRUD, quota and policy updates,
 * suspend and activate, usage and audit history. Mount them under a prefix of your choice. Every
 * route requires authentication (a bearer token by default, compared in constant time, or your own
 * `authorize`), and the authenticated actor is recorded on every change. Bodies and queries are
 * validated with zod; every error is `application/problem+json` with a stable `code`, and
 * validation errors list the `issues`.
 *
 * | Route | Success |
 * | --- | --- |
 * | `GET /tenants?limit&offset` or `?limit&after` | 200 `{ items, next? }` |
 * | `POST /tenants` | 201 the tenant, `Location` |
 * | `GET /tenants/:id` | 200 the tenant |
 * | `PUT /tenants/:id` | 200 the tenant |
 * | `DELETE /tenants/:id` | 204 |
 * | `PUT /tenants/:id/quota`, `PUT /tenants/:id/policy` | 200 the tenant |
 * | `POST /tenants/:id/suspend`, `POST /tenants/:id/activate` | 200 the tenant |
 * | `GET /tenants/:id/usage` | 200 `{ tenantId, windows }` (501 without a quota manager); `?subject=` for one subject's windows (400 `invalid_subject` for a bad id) |
 * | `POST /tenants/:id/usage/reset` | 200 `{ tenantId, windows }` after the reset, audited (501 without a quota manager that can reset) |
 * | `GET /tenants/:id/in-flight` | 200 `{ tenantId, inFlight, maxInFlight }` (501 without a concurrency limiter) |
 * | `POST /tenants/:id/in-flight/reset` | 200 `{ tenantId, inFlight, maxInFlight }` after freeing every slot, audited (501 without a concurrency limiter) |
 * | `GET /tenants/:id/audit?limit&before` | 200 `{ items, next? }`, newest first |
 * | `GET /plans?limit&offset` or `?limit&after` | 200 `{ items, next? }` (501 without a plan store) |
 * | `POST /plans` | 201 the plan, `Location` |
 * | `GET /plans/:id`, `PUT /plans/:id` | 200 the plan |
 * | `DELETE /plans/:id` | 204 (409 `plan_in_use` while tenants are on it) |
 * | `GET /plans/:id/audit?limit&before` | 200 `{ items, next? }`, newest first |
 * | `GET /openapi.json` | 200 the OpenAPI 3.1 document |
 *
 * @example
 * ```ts
 * const admin = new AdminService({ store: auditedStore(configs, auditLog), auditLog, quotas })
 * const app = new Hono()
 * app.route('/admin', adminRoutes(admin, { token: process.env.ADMIN_TOKEN }))
 * // curl -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
 * //   -d '{"id":"acme"}' http://localhost:3000/admin/tenants
 * ```
 */
export function adminRoutes(service: AdminService, options: AdminRoutesOptions) {
  if (typeof service?.create !== 'function')
    throw invalidOption('adminRoutes.service', 'must be an AdminService')
  if (typeof options !== 'object' || options === null)
    throw invalidOption('adminRoutes', 'options must be an object')
  const authenticate = authenticator(options)
  const requestIdOf = options.requestId ?? defaultRequestId
  const onError =
    options.onError ?? ((error: unknown) => console.error('[@tenant/hono] admin route error:', error))
  const maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024
  if (!Number.isInteger(maxBodyBytes) || maxBodyBytes < 1) {
    throw invalidOption('adminRoutes.maxBodyBytes', 'must be a whole number >= 1')
  }

  const auth: MiddlewareHandler<AdminEnv> = async (c, next) => {
    const result = await authenticate(c)
    if (result instanceof Response) return result
    c.set('adminActor', result.actor)
    const requestId = requestIdOf(c)
    c.set(
      'adminRequestId',
      typeof requestId === 'string' && VISIBLE_ASCII.test(requestId) ? requestId : undefined,
    )
    await next()
  }

  // Without this, a body sent as text/plain would reach the validator as `{}` and come back as a
  // confusing "id: required"; say what is actually wrong instead.
  const jsonOnly: MiddlewareHandler<AdminEnv> = async (c, next) => {
    const mediaType = (c.req.header('Content-Type') ?? '').split(';')[0]!.trim()
    if (!JSON_MEDIA_TYPE.test(mediaType)) {
      return adminProblem(
        415,
        'unsupported_media_type',
        'Unsupported media type',
        'send the body as JSON with Content-Type: application/json',
      )
    }
    await next()
  }
  const sizeLimit = bodyLimit({
    maxSize: maxBodyBytes,
    onError: () =>
      adminProblem(
        413,
        'payload_too_large',
        'Payload too large',
        `the body is larger than ${maxBodyBytes} bytes`,
      ),
  })
  // JSON is UTF-8 (RFC 8259): bytes that are not would be read as U+FFFD and stored so, two
  // different bodies as one, so they are refused. Read once the size is known to be within bounds
  // (Hono keeps the bytes for the validator).
  const limitBody: MiddlewareHandler<AdminEnv> = async (c, next) => {
    let malformed = false
    const limited = await sizeLimit(c, async () => {
      try {
        strictUtf8.decode(await c.req.arrayBuffer())
      } catch (error) {
        if (!(error instanceof TypeError)) throw error
        malformed = true
        return
      }
      await next()
    })
    if (malformed) {
      return adminProblem(400, 'invalid_request', 'Invalid request', 'the body is not valid UTF-8')
    }
    return limited
  }

  const context = (c: Context<AdminEnv>) => {
    const requestId = c.get('adminRequestId')
    return requestId === undefined
      ? { actor: c.get('adminActor') }
      : { actor: c.get('adminActor'), requestId }
  }

  // Plans need a plan store in the service; without one the routes say so instead of a 500.
  const plansOnly: MiddlewareHandler<AdminEnv> = async (_c, next) => {
    if (!service.hasPlans) {
      return adminProblem(
        501,
        'plans_unavailable',
        'Plans unavailable',
        'this admin service was created without a plan store',
      )
    }
    await next()
  }
  const setLocation = (c: Context, id: string) => {
    // The path the client sent (c.req.path is the one inside a mounted app), read as text: a URL
    // parser refuses some Host headers @hono/node-server passes on (`1.2.3.4.5`).
    const path = (pathOf(c.req.url) ?? c.req.path).replace(/\/+$/, '')
    c.header('Location', `${path}/${encodeURIComponent(id)}`)
  }

  const app = new Hono<AdminEnv>()
  app.onError((error, c) => {
    if (isTenantError(error)) return tenantProblem(error)
    if (error instanceof HTTPException && error.status < 500) {
      // The validator's "Malformed JSON in request body" and similar client mistakes.
      return adminProblem(error.status, 'invalid_request', 'Invalid request', error.message)
    }
    onError(error, c)
    return adminProblem(500, 'internal_error', 'Internal error', 'the admin request failed unexpectedly')
  })
  app.use('*', async (c, next) => {
    await next()
    c.header('Cache-Control', 'no-store')
  })
  // @hono/node-server passes on a Host header a URL parser refuses (`1.2.3.4.5`) and fails on the
  // first read of the body (it builds a Request from the URL then): a 400 before anything runs,
  // not a 500 halfway through a change.
  app.use('*', async (c, next) => {
    if (!URL.canParse(c.req.url)) {
      return adminProblem(400, 'invalid_request', 'Invalid request', 'the Host header is no valid host name')
    }
    await next()
  })
  app.use('*', auth)

  const routes = app
    .get('/tenants', zValidator('query', listQuerySchema, invalid), async (c) =>
      c.json(await service.list(c.req.valid('query'))),
    )
    .post(
      '/tenants',
      jsonOnly,
      limitBody,
      zValidator('json', tenantConfigInputSchema, invalid),
      async (c) => {
        const tenant = await service.create(c.req.valid('json'), context(c))
        setLocation(c, tenant.id)
        return c.json(tenant, 201)
      },
    )
    .get('/tenants/:id', async (c) => c.json(await service.get(c.req.param('id'))))
    .put(
      '/tenants/:id',
      jsonOnly,
      limitBody,
      zValidator('json', tenantUpdateInputSchema, invalid),
      async (c) => c.json(await service.update(c.req.param('id'), c.req.valid('json'), context(c))),
    )
    .delete('/tenants/:id', async (c) => {
      await service.delete(c.req.param('id'), context(c))
      return c.body(null, 204)
    })
    .put(
      '/tenants/:id/quota',
      jsonOnly,
      limitBody,
      zValidator('json', quotaConfigSchema, invalid),
      async (c) => c.json(await service.updateQuota(c.req.param('id'), c.req.valid('json'), context(c))),
    )
    .put(
      '/tenants/:id/policy',
      jsonOnly,
      limitBody,
      zValidator('json', policyConfigSchema, invalid),
      async (c) => c.json(await service.updatePolicy(c.req.param('id'), c.req.valid('json'), context(c))),
    )
    .post('/tenants/:id/suspend', async (c) => c.json(await service.suspend(c.req.param('id'), context(c))))
    .post('/tenants/:id/activate', async (c) => c.json(await service.activate(c.req.param('id'), context(c))))
    .get('/tenants/:id/usage', async (c) => {
      if (!service.hasUsage) {
        return adminProblem(
          501,
          'usage_unavailable',
          'Usage unavailable',
          'this admin service was created without a quota manager',
        )
      }
      const subject = c.req.query('subject')
      return c.json(await service.usage(c.req.param('id'), subject === undefined ? undefined : { subject }))
    })
    .post('/tenants/:id/usage/reset', async (c) => {
      if (!service.canResetUsage) {
        return adminProblem(
          501,
          'usage_unavailable',
          'Usage unavailable',
          'this admin service was created without a quota manager that can reset usage',
        )
      }
      return c.json(await service.resetUsage(c.req.param('id'), context(c)))
    })
    .get('/tenants/:id/in-flight', async (c) => {
      if (!service.hasConcurrency) return noConcurrency()
      return c.json(await service.inFlight(c.req.param('id')))
    })
    .post('/tenants/:id/in-flight/reset', async (c) => {
      if (!service.hasConcurrency) return noConcurrency()
      return c.json(await service.resetInFlight(c.req.param('id'), context(c)))
    })
    .get('/tenants/:id/audit', zValidator('query', auditQuerySchema, invalid), async (c) =>
      c.json(await service.audit(c.req.param('id'), c.req.valid('query'))),
    )
    .get('/plans', plansOnly, zValidator('query', listQuerySchema, invalid), async (c) =>
      c.json(await service.listPlans(c.req.valid('query'))),
    )
    .post(
      '/plans',
      plansOnly,
      jsonOnly,
      limitBody,
      zValidator('json', planConfigInputSchema, invalid),
      async (c) => {
        const plan = await service.createPlan(c.req.valid('json'), context(c))
        setLocation(c, plan.id)
        return c.json(plan, 201)
      },
    )
    .get('/plans/:id', plansOnly, async (c) => c.json(await service.getPlan(c.req.param('id'))))
    .put(
      '/plans/:id',
      plansOnly,
      jsonOnly,
      limitBody,
      zValidator('json', planUpdateInputSchema, invalid),
      async (c) => c.json(await service.updatePlan(c.req.param('id'), c.req.valid('json'), context(c))),
    )
    .delete('/plans/:id', plansOnly, async (c) => {
      await service.deletePlan(c.req.param('id'), context(c))
      return c.body(null, 204)
    })
    .get('/plans/:id/audit', plansOnly, zValidator('query', auditQuerySchema, invalid), async (c) =>
      c.json(await service.planAudit(c.req.param('id'), c.req.valid('query'))),
    )

  const document = adminOpenApiDocument()
  if (options.openApi !== false) routes.get('/openapi.json', (c) => c.json(document))
  // Registered last, so they only answer what no route above did. Hono consults `notFound` only
  // on the top-level app, so a mounted sub-app needs its own catch-all to keep every error
  // problem+json. The methods of each path come from the OpenAPI document, which a test holds
  // equal to the routes served.
  for (const [path, methods] of allowedMethods(document, options.openApi !== false)) {
    routes.all(path, (c) =>
      adminProblem(
        405,
        'method_not_allowed',
        'Method not allowed',
        `${c.req.method} is not allowed here; use ${methods.join(', ')}`,
        { Allow: methods.join(', ') },
      ),
    )
  }
  routes.all('*', (c) =>
    adminProblem(404, 'not_found', 'Not found', `no admin route for ${c.req.method} ${c.req.path}`),
  )
  return routes
}

// Each documented path in Hono's syntax, with its methods (HEAD wherever GET is: Hono answers it).
function allowedMethods(document: Record<string, unknown>, openApi: boolean): [string, string[]][] {
  const paths = document.paths as Record<string, Record<string, unknown>>
  const entries = Object.entries(paths).map(([path, operations]): [string, string[]] => [
    path.replace(/\{(\w+)\}/g, ':$1'),
    Object.keys(operations).map((method) => method.toUpperCase()),
  ])
  if (openApi) entries.push(['/openapi.json', ['GET']])
  return entries.map(([path, methods]) => [path, methods.includes('GET') ? [...methods, 'HEAD'] : methods])
}

/** Options of {@link adminOpenApiDocument}. */
export interface AdminOpenApiOptions {
  /** Where the routes are mounted, e.g. `https://api.example.com/admin`. @default no `servers` entry */
  serverUrl?: string
  /** @default 'Tenant admin API' */
  title?: string
  /** The API's version string. @default '1.1.0' */
  version?: string
}

type JsonSchema = Record<string, unknown>

function schemaOf(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as JsonSchema
  return rest
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` })
const jsonContent = (schema: unknown) => ({ 'application/json': { schema } })
const problemRef = (description: string) => ({
  description,
  content: { [PROBLEM_CONTENT_TYPE]: { schema: ref('Problem') } },
})

/**
 * The OpenAPI 3.1 document of {@link adminRoutes}, with request and response schemas generated from
 * the same zod schemas the routes validate with. Served at `GET /openapi.json` unless `openApi` is
 * false; call it yourself to publish it elsewhere (a docs site, a public route).
 *
 * @example
 * ```ts
 * app.get('/docs/admin.json', (c) => c.json(adminOpenApiDocument({ serverUrl: 'https://api.example.com/admin' })))
 * ```
 */
export function adminOpenApiDocument(options: AdminOpenApiOptions = {}): Record<string, unknown> {
  const idParam = {
    name: 'id',
    in: 'path',
    required: true,
    schema: { type: 'string', minLength: 1, maxLength: MAX_TENANT_ID_LENGTH, pattern: '^[A-Za-z0-9._-]+$' },
  }
  const limitParam = {
    name: 'limit',
    in: 'query',
    schema: { type: 'integer', minimum: 1, maximum: MAX_LIST_LIMIT, default: 50 },
  }
  const errors = {
    400: problemRef('Invalid input; `issues` lists each problem'),
    401: problemRef('Missing or invalid credentials'),
    503: problemRef('The store is unavailable'),
  }
  // What every route with a JSON body answers besides: its body checks run before anything else.
  const bodyErrors = {
    413: problemRef('The body is too large'),
    415: problemRef('The body is not JSON'),
  }
  const withBody = (extra: Record<string, unknown>) => (extra.requestBody === undefined ? {} : bodyErrors)
  const tenant = { description: 'The tenant', content: jsonContent(ref('TenantConfig')) }
  const notFound = problemRef('No such tenant')
  const plan = { description: 'The plan', content: jsonContent(ref('PlanConfig')) }
  const planNotFound = problemRef('No such plan (`plan_not_found`)')
  const noPlans = problemRef('No plan store configured (`plans_unavailable`)')
  const planIdParam = { ...idParam, description: 'The plan id' }
  const beforeParam = {
    name: 'before',
    in: 'query',
    description: 'The `next` of the previous page',
    schema: { type: 'string' },
  }
  const planOp = (summary: string, operationId: string, extra: Record<string, unknown> = {}) => ({
    summary,
    operationId,
    parameters: [planIdParam],
    ...extra,
    responses: { 200: plan, 404: planNotFound, 501: noPlans, ...errors, ...withBody(extra) },
  })
  const auditRecord = (subject: 'tenantId' | 'planId', actions: string[], snapshot: string) => ({
    type: 'object',
    required: ['id', subject, 'actor', 'action', 'before', 'after', 'at'],
    properties: {
      id: { type: 'string' },
      [subject]: { type: 'string' },
      actor: { type: 'string' },
      action: { type: 'string', enum: actions },
      before: { anyOf: [ref(snapshot), { type: 'null' }] },
      after: { anyOf: [ref(snapshot), { type: 'null' }] },
      at: { type: 'integer', description: 'ms since the epoch' },
      requestId: { type: 'string' },
    },
  })
  const body = (name: string) => ({ required: true, content: jsonContent(ref(name)) })
  const tenantOp = (summary: string, operationId: string, extra: Record<string, unknown> = {}) => ({
    summary,
    operationId,
    parameters: [idParam],
    ...extra,
    responses: {
      200: tenant,
      404: notFound,
      ...errors,
      ...withBody(extra),
      ...((extra.responses as object) ?? {}),
    },
  })
  const page = (item: string) => ({
    type: 'object',
    required: ['items'],
    properties: { items: { type: 'array', items: ref(item) }, next: { type: 'string' } },
  })

  return {
    openapi: '3.1.0',
    info: { title: options.title ?? 'Tenant admin API', version: options.version ?? '1.1.0' },
    ...(options.serverUrl === undefined ? {} : { servers: [{ url: options.serverUrl }] }),
    security: [{ bearerAuth: [] }],
    paths: {
      '/tenants': {
        get: {
          summary: 'List tenants in id order',
          operationId: 'listTenants',
          parameters: [
            limitParam,
            { name: 'offset', in: 'query', schema: { type: 'integer', minimum: 0 } },
            {
              name: 'after',
              in: 'query',
              description: 'The `next` of the previous page',
              schema: { type: 'string' },
            },
          ],
          responses: { 200: { description: 'One page', content: jsonContent(ref('TenantPage')) }, ...errors },
        },
        post: {
          summary: 'Create a tenant',
          operationId: 'createTenant',
          requestBody: body('TenantConfigInput'),
          responses: {
            201: { ...tenant, headers: { Location: { schema: { type: 'string' } } } },
            409: problemRef('The id is taken'),
            ...bodyErrors,
            ...errors,
            400: problemRef('Invalid input, or a `plan` that does not exist (issue at path `plan`)'),
          },
        },
      },
      '/tenants/{id}': {
        get: tenantOp('Get a tenant', 'getTenant'),
        put: tenantOp('Replace a tenant (status and plan kept unless given)', 'updateTenant', {
          requestBody: body('TenantUpdateInput'),
        }),
        delete: {
          summary: 'Delete a tenant',
          operationId: 'deleteTenant',
          parameters: [idParam],
          responses: { 204: { description: 'Deleted' }, 404: notFound, ...errors },
        },
      },
      '/tenants/{id}/quota': {
        put: tenantOp("Replace a tenant's quota", 'updateTenantQuota', { requestBody: body('QuotaConfig') }),
      },
      '/tenants/{id}/policy': {
        put: tenantOp("Replace a tenant's policy", 'updateTenantPolicy', {
          requestBody: body('PolicyConfig'),
        }),
      },
      '/tenants/{id}/suspend': { post: tenantOp('Suspend a tenant', 'suspendTenant') },
      '/tenants/{id}/activate': { post: tenantOp('Activate a tenant', 'activateTenant') },
      '/tenants/{id}/usage': {
        get: {
          summary: 'Current usage per quota limit (consumes nothing)',
          operationId: 'getTenantUsage',
          parameters: [
            idParam,
            {
              name: 'subject',
              in: 'query',
              required: false,
              description: "A subject of the tenant (quota.subjects): that subject's windows only",
              schema: { type: 'string' },
            },
          ],
          responses: {
            200: { description: 'Usage', content: jsonContent(ref('QuotaUsage')) },
            404: notFound,
            501: problemRef('No quota manager configured'),
            ...errors,
          },
        },
      },
      '/tenants/{id}/usage/reset': {
        post: {
          summary: "Forget all of a tenant's quota usage (audited as tenant.usage.reset)",
          operationId: 'resetTenantUsage',
          parameters: [idParam],
          responses: {
            200: { description: 'Usage after the reset', content: jsonContent(ref('QuotaUsage')) },
            404: notFound,
            501: problemRef('No quota manager that can reset configured'),
            ...errors,
          },
        },
      },
      '/tenants/{id}/in-flight': {
        get: {
          summary: 'Requests of a tenant in flight now, and its own cap',
          operationId: 'getTenantInFlight',
          parameters: [idParam],
          responses: {
            200: { description: 'In flight', content: jsonContent(ref('TenantInFlight')) },
            404: notFound,
            501: problemRef('No concurrency limiter configured'),
            ...errors,
          },
        },
      },
      '/tenants/{id}/in-flight/reset': {
        post: {
          summary: 'Free every concurrency slot of a tenant (audited as tenant.concurrency.reset)',
          operationId: 'resetTenantInFlight',
          parameters: [idParam],
          responses: {
            200: { description: 'In flight after the reset', content: jsonContent(ref('TenantInFlight')) },
            404: notFound,
            501: problemRef('No concurrency limiter configured'),
            ...errors,
          },
        },
      },
      '/tenants/{id}/audit': {
        get: {
          summary: 'Audit history of a tenant, newest first',
          operationId: 'getTenantAudit',
          parameters: [idParam, limitParam, beforeParam],
          responses: { 200: { description: 'One page', content: jsonContent(ref('AuditPage')) }, ...errors },
        },
      },
      '/plans': {
        get: {
          summary: 'List plans in id order',
          operationId: 'listPlans',
          parameters: [
            limitParam,
            { name: 'offset', in: 'query', schema: { type: 'integer', minimum: 0 } },
            { ...beforeParam, name: 'after' },
          ],
          responses: {
            200: { description: 'One page', content: jsonContent(ref('PlanPage')) },
            501: noPlans,
            ...errors,
          },
        },
        post: {
          summary: 'Create a plan',
          operationId: 'createPlan',
          requestBody: body('PlanConfigInput'),
          responses: {
            201: { ...plan, headers: { Location: { schema: { type: 'string' } } } },
            409: problemRef('The id is taken (`plan_already_exists`)'),
            ...bodyErrors,
            501: noPlans,
            ...errors,
          },
        },
      },
      '/plans/{id}': {
        get: planOp('Get a plan', 'getPlan'),
        put: planOp('Replace a plan; its tenants follow at their next read', 'updatePlan', {
          requestBody: body('PlanUpdateInput'),
        }),
        delete: {
          summary: 'Delete a plan no tenant is on',
          operationId: 'deletePlan',
          parameters: [planIdParam],
          responses: {
            204: { description: 'Deleted' },
            404: planNotFound,
            409: problemRef('Tenants are on the plan (`plan_in_use`)'),
            501: noPlans,
            ...errors,
          },
        },
      },
      '/plans/{id}/audit': {
        get: {
          summary: 'Audit history of a plan, newest first',
          operationId: 'getPlanAudit',
          parameters: [planIdParam, limitParam, beforeParam],
          responses: {
            200: { description: 'One page', content: jsonContent(ref('PlanAuditPage')) },
            501: noPlans,
            ...errors,
          },
        },
      },
    },
    components: {
      securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer' } },
      schemas: {
        TenantConfig: schemaOf(tenantConfigSchema, 'output'),
        TenantConfigInput: schemaOf(tenantConfigInputSchema, 'input'),
        TenantUpdateInput: schemaOf(tenantUpdateInputSchema, 'input'),
        QuotaConfig: schemaOf(quotaConfigSchema, 'input'),
        PolicyConfig: schemaOf(policyConfigSchema, 'input'),
        TenantPage: page('TenantConfig'),
        AuditRecord: auditRecord(
          'tenantId',
          auditActions.filter((a) => a.startsWith('tenant.')),
          'TenantConfig',
        ),
        AuditPage: page('AuditRecord'),
        PlanConfig: schemaOf(planConfigSchema, 'output'),
        PlanConfigInput: schemaOf(planConfigInputSchema, 'input'),
        PlanUpdateInput: schemaOf(planUpdateInputSchema, 'input'),
        PlanPage: page('PlanConfig'),
        PlanAuditRecord: auditRecord(
          'planId',
          auditActions.filter((a) => a.startsWith('plan.')),
          'PlanConfig',
        ),
        PlanAuditPage: page('PlanAuditRecord'),
        TenantInFlight: {
          type: 'object',
          required: ['tenantId', 'inFlight', 'maxInFlight'],
          properties: {
            tenantId: { type: 'string' },
            inFlight: { type: 'integer', minimum: 0 },
            maxInFlight: { type: ['integer', 'null'], minimum: 1 },
          },
        },
        QuotaUsage: {
          type: 'object',
          required: ['tenantId', 'windows'],
          properties: {
            tenantId: { type: 'string' },
            windows: {
              type: 'array',
              items: {
                type: 'object',
                required: ['window', 'limit', 'used', 'remaining', 'resetAt'],
                properties: {
                  window: { type: 'string', enum: ['minute', 'hour', 'day', 'month'] },
                  limit: ref('QuotaAmounts'),
                  used: ref('QuotaAmounts'),
                  remaining: ref('QuotaAmounts'),
                  resetAt: { type: 'integer', description: 'ms since the epoch' },
                },
              },
            },
          },
        },
        QuotaAmounts: {
          type: 'object',
          description: 'Unlimited dimensions are absent',
          properties: { requests: { type: 'integer' }, tokens: { type: 'integer' } },
        },
        Problem: {
          type: 'object',
          required: ['type', 'title', 'status', 'detail', 'code'],
          properties: {
            type: { type: 'string' },
            title: { type: 'string' },
            status: { type: 'integer' },
            detail: { type: 'string' },
            code: { type: 'string' },
            tenantId: { type: 'string' },
            planId: { type: 'string' },
            issues: {
              type: 'array',
              items: {
                type: 'object',
                properties: {
                  path: { type: 'array', items: { type: ['string', 'integer'] } },
                  message: { type: 'string' },
                  code: { type: 'string' },
                },
              },
            },
          },
        },
      },
    },
  }
}
