import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { expect, it } from 'vitest'

const packageDir = join(import.meta.dirname, '..')
const bun = join(packageDir, '..', '..', 'node_modules', '.bin', 'bun')

// bun:sqlite is Drizzle's synchronous SQLite driver (the `sqlite-sync` path: a synchronous
// transaction for applyChange and migrations), and only exists inside Bun. Bun's own test runner
// runs test/bun-sqlite.spec.ts, which holds the core conformance suites, unchanged.
it('passes the conformance suites and the atomicity checks on bun:sqlite, under bun test', async () => {
  const { stdout, stderr } = await promisify(execFile)(
    bun,
    ['test', '--conditions=@tenant/source', 'test/bun-sqlite.spec.ts'],
    { cwd: packageDir, timeout: 120_000, env: { ...process.env, NO_COLOR: '1' } },
  ).catch((error: { stdout: string; stderr: string }) => {
    throw new Error(`bun test failed:\n${error.stdout}\n${error.stderr}`)
  })
  const output = stdout + stderr
  const passed = Number(/(\d+) pass/.exec(output)?.[1])
  expect(output).toMatch(/\b0 fail\b/)
  // 19 config-manager, 10 audit-log and 9 audited-store conformance tests, plus 2 of its own.
  expect(passed).toBeGreaterThanOrEqual(40)
}, 180_000)
