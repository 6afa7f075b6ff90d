import type { SeedResult } from './demo-tenants'
import type { Server } from './server'

/**
 * The text printed when the server listens: the URL, what it runs on, the admin token (or where it
 * comes from) and the first curl commands to try, which work as printed.
 */
export function banner(
  server: Pick<Server, 'admin' | 'storage' | 'settings'>,
  url: string,
  seeded?: SeedResult[],
): string {
  const token = server.admin.generated ? server.admin.token : '$ADMIN_TOKEN'
  const lines = [
    `saas-example is listening on ${url}`,
    `  database:    ${server.storage.database}`,
    `  limits:      ${server.storage.limits}`,
    server.settings.JWT_SECRET === undefined
      ? '  tenant:      the X-Tenant-ID header (unauthenticated: development, or behind a gateway)'
      : '  tenant:      the tenant_id claim of an HS256 JWT (JWT_SECRET); the curls below need its token',
    server.admin.generated
      ? `  admin token: ${server.admin.token} (generated for this run; set ADMIN_TOKEN to keep one)`
      : '  admin token: from ADMIN_TOKEN',
    '',
  ]
  if (seeded && seeded.length > 0) {
    lines.push(
      `Demo tenants: ${seeded.map((s) => `${s.id} (${s.plan}, ${s.outcome === 'created' ? 'created' : 'already there'})`).join(', ')}`,
      '',
      'Try:',
      `  curl -s -X POST ${url}/api/v1/resources -H 'X-Tenant-ID: ${seeded[0]!.id}' -H 'Content-Type: application/json' -d '{"name":"hello"}'`,
      `  curl -s ${url}/api/v1/resources -H 'X-Tenant-ID: ${seeded[0]!.id}'`,
    )
  } else {
    lines.push(
      'Try:',
      `  curl -s -X POST ${url}/admin/tenants -H "Authorization: Bearer ${token}" -H 'Content-Type: application/json' -d '{"id":"acme"}'`,
      `  curl -s -X POST ${url}/api/v1/resources -H 'X-Tenant-ID: acme' -H 'Content-Type: application/json' -d '{"name":"hello"}'`,
    )
  }
  lines.push(`  curl -s ${url}/admin/tenants -H "Authorization: Bearer ${token}"`, '')
  return lines.join('\n')
}

/** The lines `pnpm seed` prints. */
export function seedReport(results: SeedResult[], adminTokenHint: string): string {
  return [
    ...results.map((r) => `${r.outcome.padEnd(9)}${r.id.padEnd(12)}plan ${r.plan}`),
    `Admin API: ${adminTokenHint}`,
    '',
  ].join('\n')
}

/** `http://host:port`, with a wildcard address shown as `localhost` so the printed URL works. */
export function displayUrl(host: string, port: number): string {
  const shown = host === '0.0.0.0' || host === '::' ? 'localhost' : host.includes(':') ? `[${host}]` : host
  return `http://${shown}:${port}`
}
