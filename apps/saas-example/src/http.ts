import type { Context } from 'hono'
import type { z } from 'zod'

/** The app's own problem codes (the tenancy chain and the admin plane add theirs). */
export type AppProblemCode =
  | 'invalid_request'
  | 'model_mismatch'
  | 'unsupported_media_type'
  | 'payload_too_large'
  | 'resource_not_found'
  | 'not_found'
  | 'unauthorized'
  | 'admin_disabled'
  | 'metrics_disabled'
  | 'service_unavailable'
  | 'internal_error'

const titles: Record<AppProblemCode, string> = {
  invalid_request: 'Invalid request',
  model_mismatch: 'Model mismatch',
  unsupported_media_type: 'Unsupported media type',
  payload_too_large: 'Payload too large',
  resource_not_found: 'Resource not found',
  not_found: 'Not found',
  unauthorized: 'Unauthorized',
  admin_disabled: 'Admin plane disabled',
  metrics_disabled: 'Metrics disabled',
  service_unavailable: 'Service unavailable',
  internal_error: 'Internal server error',
}

/** One validation problem: where it is and what is wrong (the admin plane's shape). */
export interface Issue {
  path: (string | number)[]
  message: string
  code: string
}

/**
 * An `application/problem+json` response (RFC 9457) in the format of the toolkit's own problems:
 * `type`, `title`, `status`, `detail`, a stable `code`, then extension members.
 *
 * @example
 * ```ts
 * return problem(404, 'resource_not_found', 'no resource "res_1" for this tenant')
 * ```
 */
export function problem(
  status: number,
  code: AppProblemCode,
  detail: string,
  extensions: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): Response {
  const body = {
    type: `urn:saas-example:error:${code}`,
    title: titles[code],
    status,
    detail,
    code,
    ...extensions,
  }
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/problem+json', 'Cache-Control': 'no-store', ...headers },
  })
}

/** zod issues in the {@link Issue} shape. */
export function toIssues(error: z.ZodError): Issue[] {
  return error.issues.map((i) => ({
    path: i.path.map((p) => (typeof p === 'symbol' ? String(p) : p)),
    message: i.message,
    code: String(i.code),
  }))
}

// Throws a TypeError on bytes that are not UTF-8.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false })

/**
 * Reads and validates a JSON body: 415 unless the content type is JSON, 400 `invalid_request` when
 * the body is not JSON (with the parser's complaint) or fails `schema` (with every issue). Returns
 * the parsed value or the problem response to send.
 */
export async function readJson<S extends z.ZodType>(
  c: Context,
  schema: S,
): Promise<{ ok: true; value: z.infer<S> } | { ok: false; response: Response }> {
  const type = c.req.header('Content-Type') ?? ''
  if (!/^application\/([a-z0-9.+-]*\+)?json\s*(;|$)/i.test(type)) {
    return {
      ok: false,
      response: problem(415, 'unsupported_media_type', 'send the body as application/json'),
    }
  }
  let text: string
  try {
    // JSON is UTF-8: decoded leniently, a bad byte would be stored as U+FFFD, two bodies as one.
    text = strictUtf8.decode(await c.req.arrayBuffer())
  } catch (error) {
    if (!(error instanceof TypeError)) throw error
    return { ok: false, response: problem(400, 'invalid_request', 'the body is not valid UTF-8') }
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (error) {
    return {
      ok: false,
      response: problem(400, 'invalid_request', `the body is not valid JSON: ${(error as Error).message}`),
    }
  }
  const result = schema.safeParse(parsed)
  if (!result.success) {
    return {
      ok: false,
      response: problem(400, 'invalid_request', 'the body does not match the schema', {
        issues: toIssues(result.error),
      }),
    }
  }
  return { ok: true, value: result.data }
}
