import { storableJsonObject, storableText, type TenantRef } from '@tenant/core'
import type { TenantEnv } from '@tenant/hono'
import { type Context, Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { z } from 'zod'
import { RESOURCE_ID_PATTERN, type ResourceStore } from '../db/resource-store'
import { problem, readJson, toIssues } from '../http'

/** Largest request body the resource routes read. */
export const MAX_BODY_BYTES = 64 * 1024

// `data` is stored as JSON text: it must come back exactly as sent, from libSQL, PostgreSQL and
// D1 alike, so it is checked as @tenant/core checks a tenant's metadata (`storableJsonObject`:
// no U+0000 or unpaired surrogates, at most 64 levels deep, which would otherwise overflow the
// stack while the row is written, no top-level `__proto__`); the body limit bounds the size.
const resourceDataSchema = storableJsonObject('data')

/**
 * What `POST /resources` and `PUT /resources/:id` accept. Unknown members are refused, and so is
 * anything a store would not give back as sent (see `storableText`), with a 400 rather than a 503.
 */
export const resourceInputSchema = z.strictObject({
  name: z
    .string()
    .trim()
    .min(1, 'must not be empty')
    .max(200, 'at most 200 characters')
    .superRefine(storableText),
  data: resourceDataSchema.default({}),
})

/** The query of `GET /resources`. */
export const listQuerySchema = z.strictObject({
  // Digits only, as the toolkit's admin routes read theirs: z.coerce.number() is Number(), which
  // also takes 0x10, 1e1, ' 10 ' and 5.0.
  limit: z
    .string()
    .regex(/^\d{1,3}$/, 'must be a whole number from 1 to 100, written in digits')
    .transform(Number)
    .pipe(z.number().int().min(1).max(100))
    .default(20),
  after: z.string().regex(RESOURCE_ID_PATTERN, 'must be a resource id (the `next` of a page)').optional(),
})

function notFound(id: string): Response {
  // The same answer whether the id belongs to another tenant or to nobody: nothing leaks. Only a
  // well-formed id is echoed; anything else is arbitrary client text.
  const name = RESOURCE_ID_PATTERN.test(id) ? `"${id}"` : 'with this id'
  return problem(404, 'resource_not_found', `no resource ${name} for this tenant`)
}

/**
 * The tenant the chain resolved, with the `createdAt` that tells it from other tenants of its id.
 * Only unset when the routes are mounted without the chain: a bug of the app, a 500.
 */
function tenantOf(c: Context<TenantEnv>): TenantRef {
  const tenant = c.var.tenant
  if (tenant === undefined) throw new Error('resourceRoutes must be mounted behind the tenancy chain')
  return tenant
}

/**
 * The tenant-scoped resource API, mounted behind the tenancy chain: `c.var.tenant` is the
 * resolved, active tenant, and every store call is for that tenant only.
 *
 * | Route               | Success                          |
 * | ------------------- | -------------------------------- |
 * | `GET /`             | 200 `{ items, next? }`, id order |
 * | `POST /`            | 201 the resource, `Location`     |
 * | `GET /:id`          | 200 the resource                 |
 * | `PUT /:id`          | 200 the replaced resource        |
 * | `DELETE /:id`       | 204                              |
 *
 * @example
 * ```ts
 * api.route('/resources', resourceRoutes(new DrizzleResourceStore(db)))
 * ```
 */
export function resourceRoutes(store: ResourceStore) {
  const limit = bodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: () => problem(413, 'payload_too_large', `the body is larger than ${MAX_BODY_BYTES} bytes`),
  })
  return new Hono<TenantEnv>()
    .get('/', async (c) => {
      const query = listQuerySchema.safeParse(c.req.query())
      if (!query.success) {
        return problem(400, 'invalid_request', 'invalid query parameters', { issues: toIssues(query.error) })
      }
      return c.json(await store.list(tenantOf(c), query.data))
    })
    .post('/', limit, async (c) => {
      const body = await readJson(c, resourceInputSchema)
      if (!body.ok) return body.response
      const created = await store.create(tenantOf(c), body.value)
      c.header('Location', `${c.req.path.replace(/\/$/, '')}/${created.id}`)
      return c.json(created, 201)
    })
    .get('/:id', async (c) => {
      const id = c.req.param('id')
      const found = RESOURCE_ID_PATTERN.test(id) ? await store.get(tenantOf(c), id) : undefined
      return found ? c.json(found) : notFound(id)
    })
    .put('/:id', limit, async (c) => {
      const id = c.req.param('id')
      // The body is checked first: a malformed request is a 400 whether or not the id exists.
      const body = await readJson(c, resourceInputSchema)
      if (!body.ok) return body.response
      const updated = RESOURCE_ID_PATTERN.test(id)
        ? await store.update(tenantOf(c), id, body.value)
        : undefined
      return updated ? c.json(updated) : notFound(id)
    })
    .delete('/:id', async (c) => {
      const id = c.req.param('id')
      const deleted = RESOURCE_ID_PATTERN.test(id) && (await store.delete(tenantOf(c), id))
      return deleted ? c.body(null, 204) : notFound(id)
    })
}
