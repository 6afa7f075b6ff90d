import { z } from 'zod'
import { findNonJsonValue, storableText } from './json'
import { MAX_TENANT_ID_LENGTH } from './tenant-id'

/** The calendar windows a quota limit can use. Fixed windows align to UTC calendar boundaries. */
export const quotaWindows = ['minute', 'hour', 'day', 'month'] as const

/** One of {@link quotaWindows}. */
export type QuotaWindow = (typeof quotaWindows)[number]

const wholeCount = z
  .number()
  .int('must be a whole number')
  .min(0, 'must be >= 0')
  .max(Number.MAX_SAFE_INTEGER)
  // Every database store gives -0 back as 0: refused, as in metadata, so that all stores agree.
  .refine((n) => !Object.is(n, -0), '-0 is not allowed (stores write it as 0)')

// One rule for tenant and plan ids, with messages that name which id it is. `.` and `..` are dot
// segments: URL parsers remove them from a path, so /admin/tenants/.. could never reach one.
const idSchema = (what: 'tenant' | 'plan') =>
  z
    .string()
    .min(1, `${what} id is empty`)
    .max(MAX_TENANT_ID_LENGTH, `${what} id is longer than ${MAX_TENANT_ID_LENGTH} characters`)
    .regex(/^[A-Za-z0-9._-]+$/, `${what} id may only contain letters, digits, ".", "_" and "-"`)
    .refine(
      (id) => id !== '.' && id !== '..',
      `${what} id may not be "." or ".." (URLs remove them from a path)`,
    )

/** Schema of a tenant id: 1 to 255 characters of `[A-Za-z0-9._-]`, other than `.` and `..`. */
export const tenantIdSchema = idSchema('tenant')

/** Schema of a plan id: the same rule as a tenant id. */
export const planIdSchema = idSchema('plan')

/**
 * Schema of one quota limit. A missing dimension, or 0, means unlimited in that dimension.
 */
export const quotaLimitSchema = z.strictObject({
  window: z.enum(quotaWindows),
  requests: wholeCount.optional(),
  tokens: wholeCount.optional(),
})

// At most one limit per window: shared by the tenant's limits and each subject's.
const quotaLimitsSchema = z
  .array(quotaLimitSchema)
  .max(quotaWindows.length)
  .default([])
  .superRefine((limits, ctx) => {
    const seen = new Set<string>()
    limits.forEach((limit, index) => {
      if (seen.has(limit.window)) {
        ctx.addIssue({
          code: 'custom',
          path: [index, 'window'],
          message: `duplicate "${limit.window}" limit: one limit per window`,
        })
      }
      seen.add(limit.window)
    })
  })

/** Most subject patterns one quota may list (`QuotaConfig.subjects`). */
export const MAX_SUBJECT_PATTERNS = 1000

/**
 * Schema of one subject pattern of a quota: `match` is an exact subject id or `prefix*`, and
 * `limits` the subject's own windows (checked together with the tenant's).
 */
export const subjectQuotaSchema = z.strictObject({
  match: z
    .string()
    .min(1, 'empty')
    .max(256)
    .regex(
      /^[A-Za-z0-9._:/@+-]{0,255}\*?$/,
      'must be a subject id (letters, digits and . _ : / @ + -) or one followed by "*" (a prefix)',
    )
    .refine((m) => m !== '' && m.replace(/\*$/, '').length <= 255, 'at most 255 characters before "*"'),
  limits: quotaLimitsSchema,
})

/**
 * Schema of a tenant's quota: at most one limit per window, and optionally per-subject limits
 * (`subjects`, at most {@link MAX_SUBJECT_PATTERNS}, each `match` listed once).
 */
export const quotaConfigSchema = z.strictObject({
  limits: quotaLimitsSchema,
  subjects: z
    .array(subjectQuotaSchema)
    .max(MAX_SUBJECT_PATTERNS)
    .superRefine((subjects, ctx) => {
      const seen = new Set<string>()
      subjects.forEach((subject, index) => {
        if (seen.has(subject.match)) {
          ctx.addIssue({
            code: 'custom',
            path: [index, 'match'],
            message: `duplicate subject pattern "${subject.match}"`,
          })
        }
        seen.add(subject.match)
      })
    })
    .optional(),
})

/**
 * Smallest `requestsPerSecond` of a rate limit: 1e-8, one request per about 3.2 years. A slower
 * refill is a quota (monthly windows), not a rate. Stores also cap the expiry of a bucket whose
 * refill would take longer than their storage allows (see the Redis and Cloudflare READMEs).
 */
export const MIN_REQUESTS_PER_SECOND = 1e-8

/** Schema of a tenant's token-bucket rate limit. */
export const rateLimitConfigSchema = z.strictObject({
  requestsPerSecond: z
    .number()
    .finite()
    .min(
      MIN_REQUESTS_PER_SECOND,
      `must be >= ${MIN_REQUESTS_PER_SECOND} (> 0; one request per about 3.2 years)`,
    ),
  burst: z.number().int('must be a whole number').min(1, 'must be >= 1').max(Number.MAX_SAFE_INTEGER),
})

/** Largest `maxInFlight` a tenant may have. */
export const MAX_IN_FLIGHT = 100_000

/** Schema of a tenant's concurrency cap: at most `maxInFlight` requests in flight at once. */
export const concurrencyConfigSchema = z.strictObject({
  maxInFlight: z
    .number()
    .int('must be a whole number')
    .min(1, 'must be >= 1')
    .max(MAX_IN_FLIGHT, `must be <= ${MAX_IN_FLIGHT}`),
})

// Text every store keeps as given: refused here (400) instead of by one store's driver (503).
const allowEntry = z.string().min(1).max(1024).superRefine(storableText)
const allowList = z.array(allowEntry).max(10_000).default([])

// A path entry is matched against a URL pathname, which always starts with "/"; an entry that
// does not, or a "*" anywhere but at the end, would silently never match what its author meant.
const pathEntry = allowEntry
  .refine((p) => p === '*' || p.startsWith('/'), 'must start with "/" or be "*"')
  .refine((p) => !p.slice(0, -1).includes('*'), '"*" is only allowed at the end (a prefix match)')

/**
 * Schema of a tenant's policy. An empty list allows everything in that dimension; paths are
 * exact matches or `prefix*`.
 */
export const policyConfigSchema = z.strictObject({
  allowedModels: allowList,
  allowedTools: allowList,
  allowedMethods: allowList,
  allowedPaths: z.array(pathEntry).max(10_000).default([]),
})

/** Tenant lifecycle states. A suspended tenant is refused by the resolver. */
export const tenantStatuses = ['active', 'suspended'] as const

/** One of {@link tenantStatuses}. */
export type TenantStatus = (typeof tenantStatuses)[number]

/**
 * A JSON object a store keeps exactly as given: plain JSON only (`findNonJsonValue`: no `Date`,
 * `undefined`, `-0`, U+0000 or unpaired surrogates, at most 64 levels deep), since a database
 * store would turn a Date into a string and drop undefined, so anything else would come back
 * different depending on the store. `what` names the field in messages (`metadata`, `data`).
 *
 * A `__proto__` key of the object itself (JSON.parse makes it an own key) is refused: a zod record
 * leaves it out, so it would be answered 201 with different data, and code that copies the object
 * with Object.assign or a deep merge would set the copy's prototype from it. Deeper down it is
 * plain data that every store keeps (copyJson and JSON columns preserve own keys), and rows
 * stored with it must stay readable, so only the top level is checked.
 *
 * @example
 * ```ts
 * const resourceInput = z.strictObject({ name: z.string(), data: storableJsonObject('data').default({}) })
 * ```
 */
export function storableJsonObject(what: string) {
  return z.preprocess(
    // Typed as the record it checks, so the schema's input type stays `Record<string, unknown>`.
    (value: Record<string, unknown>, ctx) => {
      if (typeof value === 'object' && value !== null && Object.hasOwn(value, '__proto__')) {
        ctx.issues.push({
          code: 'custom',
          path: ['__proto__'],
          message: `a ${what} key may not be "__proto__" (JavaScript reads it as the prototype)`,
          input: value,
        })
      }
      return value
    },
    z.record(z.string(), z.unknown()).superRefine((object, ctx) => {
      const problem = findNonJsonValue(object)
      if (problem) ctx.addIssue({ code: 'custom', path: problem.path, message: problem.message })
    }),
  )
}

const metadataSchema = storableJsonObject('metadata').default({})
const timestamp = z.number().int().min(0)

// The parts a tenant and a plan share, with the same defaults: no limits, no rate limit, every
// allow-list empty, no metadata.
const limitFields = {
  quota: quotaConfigSchema.default({ limits: [] }),
  rateLimit: rateLimitConfigSchema.nullable().default(null),
  concurrency: concurrencyConfigSchema.nullable().default(null),
  policy: policyConfigSchema.default({
    allowedModels: [],
    allowedTools: [],
    allowedMethods: [],
    allowedPaths: [],
  }),
  metadata: metadataSchema,
}

/**
 * Schema of what a caller supplies to create or replace a tenant. Everything but `id` has a
 * default; timestamps are stamped by the store's clock and cannot be supplied. `plan` names the
 * plan the tenant inherits its limits from (`null`: none, the tenant's own config is all there is).
 */
export const tenantConfigInputSchema = z.strictObject({
  id: tenantIdSchema,
  status: z.enum(tenantStatuses).default('active'),
  plan: planIdSchema.nullable().default(null),
  ...limitFields,
})

/** Schema of a stored tenant configuration. Timestamps are ms since the epoch. */
export const tenantConfigSchema = tenantConfigInputSchema.extend({
  createdAt: timestamp,
  updatedAt: timestamp,
})

/**
 * Schema of what a caller supplies to create or replace a plan: the limits, rate limit and policy
 * its tenants inherit. Everything but `id` has a default; timestamps are stamped by the store.
 */
export const planConfigInputSchema = z.strictObject({
  id: planIdSchema,
  ...limitFields,
})

/** Schema of a stored plan. Timestamps are ms since the epoch. */
export const planConfigSchema = planConfigInputSchema.extend({
  createdAt: timestamp,
  updatedAt: timestamp,
})

/** One quota limit: a calendar window and its request and/or token allowance. */
export type QuotaLimit = z.infer<typeof quotaLimitSchema>
/** One subject pattern of a quota and its limits. */
export type SubjectQuota = z.infer<typeof subjectQuotaSchema>
/** A tenant's quota: the list of its limits, all checked on every request. */
export type QuotaConfig = z.infer<typeof quotaConfigSchema>
/** A tenant's token-bucket rate limit. */
export type RateLimitConfig = z.infer<typeof rateLimitConfigSchema>
/** A tenant's cap on requests in flight at once. */
export type ConcurrencyConfig = z.infer<typeof concurrencyConfigSchema>
/** A tenant's model/tool/method/path allow-lists. */
export type PolicyConfig = z.infer<typeof policyConfigSchema>
/** A stored tenant configuration. */
export type TenantConfig = z.infer<typeof tenantConfigSchema>
/** What a caller supplies to create or replace a tenant (defaults applied by the schema). */
export type TenantConfigInput = z.input<typeof tenantConfigInputSchema>
/** A stored plan: the quota, rate limit and policy its tenants inherit. */
export type PlanConfig = z.infer<typeof planConfigSchema>
/** What a caller supplies to create or replace a plan (defaults applied by the schema). */
export type PlanConfigInput = z.input<typeof planConfigInputSchema>
