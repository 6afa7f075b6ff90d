// Shared by the admin route tests on the in-memory store and on the Drizzle databases: an HTTP
// client for the mounted routes and the scripted mutation run whose audit trail is checked.
import type { AuditLog } from '@tenant/core'
import type { Hono } from 'hono'
import { expect } from 'vitest'

/** One response, with its body parsed when it is JSON. */
export interface CallResult {
  response: Response
  status: number
  text: string
  json: any
}

/** Options of one {@link AdminClient} call. */
export interface CallOptions {
  body?: unknown
  /** The bearer token; null sends no Authorization header. Defaults to the client's token. */
  token?: string | null
  headers?: Record<string, string>
}

/** Calls the admin routes mounted at `/admin` of an app. */
export type AdminClient = (method: string, path: string, options?: CallOptions) => Promise<CallResult>

/** A client for `app` (or whatever `app()` returns at call time) with `token` by default. */
export function adminClient(app: Hono | (() => Hono), token: string): AdminClient {
  return async (method, path, { body, token: bearer = token, headers = {} } = {}) => {
    const sent: Record<string, string> = { ...headers }
    if (bearer !== null) sent.Authorization = `Bearer ${bearer}`
    const init: RequestInit = { method, headers: sent }
    if (body !== undefined) {
      sent['Content-Type'] ??= 'application/json'
      init.body = typeof body === 'string' ? body : JSON.stringify(body)
    }
    const target = typeof app === 'function' ? app() : app
    const response = await target.request(`http://admin.test/admin${path}`, init)
    const text = await response.text()
    const isJson = /json/.test(response.headers.get('Content-Type') ?? '')
    return {
      response,
      status: response.status,
      text,
      json: isJson && text !== '' ? JSON.parse(text) : undefined,
    }
  }
}

/** Asserts an `application/problem+json` answer with `status` and `code`. */
export function expectProblem(result: CallResult, status: number, code: string): void {
  expect(result.status, result.text).toBe(status)
  expect(result.response.headers.get('Content-Type')).toBe('application/problem+json')
  expect(result.json).toMatchObject({ status, code, type: `urn:tenant-toolkit:error:${code}` })
  expect(typeof result.json.title).toBe('string')
  expect(typeof result.json.detail).toBe('string')
}

/**
 * Runs a script of successful and failing mutations on tenant `acme` through the routes, then
 * checks the audit log holds exactly one record per success (none for a failure), in order, each
 * record's `before` equal to the previous one's `after`.
 */
export async function expectOneAuditRecordPerChange(call: AdminClient, auditLog: AuditLog): Promise<void> {
  const script: [method: string, path: string, body: unknown, ok: boolean][] = [
    ['POST', '/tenants', { id: 'acme' }, true],
    ['POST', '/tenants', { id: 'acme' }, false], // 409
    ['POST', '/tenants', { id: 'acme', status: 'paused' }, false], // 400
    ['PUT', '/tenants/acme', { metadata: { v: 2 } }, true],
    ['PUT', '/tenants/acme', { rateLimit: { requestsPerSecond: -1, burst: 1 } }, false],
    ['PUT', '/tenants/acme/quota', { limits: [{ window: 'hour', tokens: 1000 }] }, true],
    ['PUT', '/tenants/acme/quota', { limits: 'lots' }, false],
    ['PUT', '/tenants/acme/policy', { allowedTools: ['search'] }, true],
    ['PUT', '/tenants/acme/policy', { allowedTools: [''] }, false],
    ['POST', '/tenants/acme/suspend', undefined, true],
    ['POST', '/tenants/acme/activate', undefined, true],
    ['POST', '/tenants/ghost/suspend', undefined, false],
    ['GET', '/tenants/acme', undefined, true], // a read: no record
    ['DELETE', '/tenants/acme', undefined, true],
    ['DELETE', '/tenants/acme', undefined, false],
  ]
  for (const [method, path, body, ok] of script) {
    const { status } = await call(method, path, { body })
    expect(status < 300, `${method} ${path} -> ${status}`).toBe(ok)
  }
  const records = (await auditLog.list('acme', { limit: 1000 })).items.reverse()
  expect(records.map((r) => r.action)).toEqual([
    'tenant.create',
    'tenant.update',
    'tenant.quota.update',
    'tenant.policy.update',
    'tenant.suspend',
    'tenant.activate',
    'tenant.delete',
  ])
  expect(records[0]!.before).toBeNull()
  expect(records[records.length - 1]!.after).toBeNull()
  for (let i = 1; i < records.length; i++) expect(records[i]!.before).toEqual(records[i - 1]!.after)
  expect((await auditLog.list('ghost')).items).toEqual([])
}
