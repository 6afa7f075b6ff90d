import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const packageDir = fileURLToPath(new URL('../', import.meta.url))
const deno = fileURLToPath(new URL('../../../node_modules/.bin/deno', import.meta.url))

function run(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(deno, args, {
      cwd: packageDir,
      env: { ...process.env, NO_COLOR: '1', DENO_NO_UPDATE_CHECK: '1', DENO_NO_PROMPT: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (chunk) => {
      output += chunk
    })
    child.stderr.on('data', (chunk) => {
      output += chunk
    })
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, output }))
  })
}

// Deno.serve passes the raw request-target as request.url; the other runtimes normalise it. The
// case runs the policy on a real Deno server (sources through the @tenant/source condition, npm
// packages from the existing node_modules, loopback only), requests written byte for byte.
describe('runtime: deno, raw request-target', () => {
  it('refuses raw dot segments and a raw Host with "\\\\", "?" or "#" or an empty one under allowedPaths ["/v1/*"], whichever way the app routes', async () => {
    const { code, output } = await run([
      'run',
      '--no-check',
      '--node-modules-dir=manual',
      '--conditions=@tenant/source',
      '--unstable-sloppy-imports',
      '--allow-net=127.0.0.1',
      '--allow-read',
      './test/runtimes/deno-raw-target.ts',
    ])
    expect(code, output).toBe(0)
    const line = output.trim().split('\n').at(-1)!
    const results = JSON.parse(line) as { target: string; status: number; body: string }[]
    expect(results.map((r) => [r.target, r.status])).toEqual([
      ['/v1/chat', 200],
      ['/admin', 403],
      ['/v1/../admin', 403],
      ['/v1/%2e%2e/admin', 403],
      ['/v1/%2E%2e/admin', 403],
      // A router that slices the text would run /admin/* for this one, a URL parser /v1/chat.
      ['/admin/../v1/chat', 403],
      // A raw Host with "\\", "?" or "#": URL reads /v1/admin/keys or /, a slicing router /admin/keys.
      ['api.example.com\\v1 /admin/keys', 403],
      ['api.example.com? /admin/keys', 403],
      ['api.example.com# /admin/keys', 403],
      // An empty Host before the path: URL reads /admin/keys (host "v1").
      ['/v1 /admin/keys', 403],
    ])
    expect(results.map((r) => r.body)).not.toContain('ADMIN')
  }, 60_000)
})
