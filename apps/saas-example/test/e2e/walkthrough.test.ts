// The README's curl walkthrough, run as written (only the URL is this server's) through `sh -e`
// against the Node entry: the documentation of every route cannot drift from the app.
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { appDir, bin, type Child, childEnv, startChild } from './process'

const ADMIN_TOKEN = 'walkthrough-admin-token-0123456789'
let dir: string
let child: Child
let url: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'saas-e2e-walkthrough-'))
  child = startChild(bin('tsx'), ['--conditions=@tenant/source', 'src/node.ts'], {
    cwd: appDir,
    env: childEnv({ PORT: '0', ADMIN_TOKEN, DATABASE_URL: `file:${join(dir, 'app.db')}`, LOG_LEVEL: 'warn' }),
  })
  ;[, url = ''] = await child.waitFor(/listening on (http:\/\/\S+)/, 60_000)
})

afterAll(async () => {
  await child?.stop()
  await rm(dir, { recursive: true, force: true })
})

it('runs the README walkthrough with the documented answers', async () => {
  const readme = await readFile(join(appDir, 'README.md'), 'utf8')
  const block = /<!-- walkthrough:start -->\n```sh\n([\s\S]*?)```\n<!-- walkthrough:end -->/.exec(readme)?.[1]
  expect(block, 'README.md has no walkthrough block').toBeDefined()
  const script = block!.replace(/^URL=.*$/m, `URL=${url}`)
  let stdout: string
  try {
    ;({ stdout } = await promisify(execFile)('sh', ['-e', '-c', script], {
      env: { ...process.env, ADMIN_TOKEN },
      timeout: 30_000,
    }))
  } catch (error) {
    throw new Error(
      `the walkthrough failed:\n${(error as { stdout?: string }).stdout ?? ''}\n${child.output()}`,
      {
        cause: error,
      },
    )
  }
  const lines = stdout.split('\n')
  expect(lines).toContain('{"status":"ok","checks":{"database":"ok"}}')
  expect(lines).toContain('# TYPE tenant_requests_total counter')
  // Cross-tenant read, update and delete.
  expect(stdout).toMatch(/^404\n404\n404$/m)
  expect(stdout).toContain('"code":"tenant_policy_denied","tenantId":"acme","rule":"model"')
  expect(stdout).toContain('"code":"tenant_policy_denied","tenantId":"globex","rule":"tool"')
  expect(stdout).toMatch(/^x-quota-remaining-tokens: 49600\r?$/m)
  // initech on the starter plan: 3 a day, then 100 a day once the plan changed.
  expect(stdout).toContain('"id":"initech","status":"active","plan":"starter"')
  expect(stdout).toMatch(/^x-quota-remaining-requests: 2\r?\n(.*\n)*x-quota-remaining-requests: 98\r?$/m)
  expect(stdout).toContain('"planId":"starter","actor":"admin","action":"plan.update"')
  expect(stdout).toContain('"code":"plan_in_use"')
  // The streamed chat completion, and acme's tokens settled at its usage chunk: 400 + 5.
  expect(stdout).toContain('"usage":{"prompt_tokens":2,"completion_tokens":3,"total_tokens":5}')
  expect(stdout).toMatch(/^data: \[DONE\]$/m)
  expect(stdout).toMatch(
    /"tenantId":"acme","windows":\[\{"window":"day".*"used":\{"requests":\d+,"tokens":405\}/,
  )
  expect(stdout).toMatch(/^200 200$/m)
  expect(stdout).toMatch(/^HTTP\/1\.1 429 Too Many Requests\r?$/m)
  expect(stdout).toMatch(/^retry-after: [1-9]\d*\r?$/m)
  expect(stdout).toContain(
    '"tenantId":"trial","windows":[{"window":"day","limit":{"requests":2},"used":{"requests":2',
  )
  expect(stdout).toContain('"code":"tenant_suspended"')
  expect(stdout).toContain('"code":"invalid_request"')
  expect(stdout).toContain('"code":"tenant_unknown"')
  expect(stdout).toContain('"code":"tenant_required"')
  expect(stdout).toMatch(/^204\n204$/m)
  expect(stdout).toContain('"openapi":"3.1')
})
