// Runs the repository's purity checker as a user would (a child process), on the real core
// sources and on throwaway directories, so the gate itself is tested and cannot silently pass.
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

const script = resolve(import.meta.dirname, '../../../scripts/check-core-purity.mjs')
const temp = mkdtempSync(join(tmpdir(), 'core-purity-'))
afterAll(() => rmSync(temp, { recursive: true, force: true }))

function run(dir?: string): { code: number; stdout: string; stderr: string } {
  try {
    const stdout = execFileSync(process.execPath, dir === undefined ? [script] : [script, dir], {
      encoding: 'utf8',
      stdio: 'pipe',
    })
    return { code: 0, stdout, stderr: '' }
  } catch (error) {
    const e = error as { status: number; stdout: string; stderr: string }
    return { code: e.status, stdout: e.stdout, stderr: e.stderr }
  }
}

let counter = 0
function tree(files: Record<string, string>): string {
  const dir = join(temp, `case-${++counter}`)
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true })
    writeFileSync(join(dir, name), content)
  }
  return dir
}

// Each run starts Node and loads the TypeScript compiler, which takes seconds on a busy machine.
describe('scripts/check-core-purity.mjs', { timeout: 60_000 }, () => {
  it('passes on the real packages/core/src', () => {
    const result = run()
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/core purity: \d+ files checked, no offences/)
  })

  it('passes on zod, relative imports, clock.ts reading Date.now, and look-alikes in comments and strings', () => {
    const dir = tree({
      'clock.ts': 'export const systemClock = { now: () => Date.now() }\n',
      'a.ts': [
        "import { z } from 'zod'",
        "import type { $ZodIssue } from 'zod/v4/core'",
        "import { systemClock } from './clock'",
        "export * from '../outside'",
        '// process.env and setTimeout() in a comment',
        "export const s = 'node:fs process Date.now()'",
        'export const d = new Date(0)',
        'export const o = { process: 1, setTimeout: 2, performance: 3 }',
        'export const p = o.process + o.setTimeout',
        'export class C { process = 1; setInterval() {} }',
      ].join('\n'),
      'a.test.ts': "import { readFileSync } from 'node:fs'\nsetTimeout(() => process.exit(), Date.now())\n",
    })
    expect(run(dir)).toMatchObject({ code: 0 })
  })

  // One checker run over one file per case: spawning the checker (and TypeScript) per case is slow.
  const badCases: [string, string][] = [
    ["import { readFileSync } from 'node:fs'", 'imports "node:fs"'],
    ["import type { IncomingMessage } from 'http'", 'imports "http"'],
    ["import { Hono } from 'hono'", 'imports "hono"'],
    ["export { x } from '@tenant/fetch'", 'imports "@tenant/fetch"'],
    ["import zodish from 'zodiac'", 'imports "zodiac"'],
    ["const m = await import('node:crypto')", 'imports "node:crypto"'],
    ["const m = await import('./x' + name)", 'dynamic import() of a computed specifier'],
    ["const fs = require('fs')", 'CommonJS `require`'],
    ['export const t = Date.now()', '`Date.now()` outside clock.ts'],
    ["export const t = Date['now']()", '`Date.now()` outside clock.ts'],
    ['export const t = new Date()', '`new Date()` reads the wall clock'],
    ['export const t = Date()', '`Date()` reads the wall clock'],
    ['export const t = performance.now()', 'wall clock `performance`'],
    ['setTimeout(() => {}, 1)', 'timer `setTimeout`'],
    ['setInterval(() => {}, 1)', 'timer `setInterval`'],
    ['setImmediate(() => {})', 'timer `setImmediate`'],
    ['queueMicrotask(() => {})', 'scheduling with `queueMicrotask`'],
    ['export const env = process.env.NODE_ENV', 'Node global `process`'],
    ['export const env = globalThis.process?.env', 'Node global `process` via globalThis'],
    ["export const t = globalThis['setTimeout']", 'timer `setTimeout` via globalThis'],
    ['export const b = Buffer.from("x")', 'Node global `Buffer`'],
    ['export const d = Deno.env', 'Deno global'],
  ]

  it('fails on each forbidden import, clock read, timer and runtime global, naming file, line and reason', () => {
    const files: Record<string, string> = { 'good.ts': 'export const ok = 1\n' }
    for (const [i, [line]] of badCases.entries()) files[`bad-${i}.ts`] = `// a comment first\n${line}\n`
    const result = run(tree(files))
    expect(result.code).toBe(1)
    expect(result.stderr).toContain(`core purity: ${badCases.length} offence(s)`)
    for (const [i, [line, message]] of badCases.entries()) {
      const reported = result.stderr.split('\n').filter((l) => l.includes(`bad-${i}.ts:`))
      expect(reported, line).toHaveLength(1)
      expect(reported[0], line).toContain(`bad-${i}.ts:2:`)
      expect(reported[0], line).toContain(message)
    }
    expect(result.stderr).not.toContain('good.ts')
  })

  it('lists every offence of every file, in nested directories too', () => {
    const dir = tree({
      'one.ts': "import 'node:fs'\nexport const t = Date.now()\n",
      'nested/two.ts': 'setTimeout(() => {}, 0)\n',
    })
    const result = run(dir)
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('3 offence(s)')
    expect(result.stderr).toMatch(/one\.ts:1:8 imports "node:fs"/)
    expect(result.stderr).toMatch(/one\.ts:2:18 `Date\.now\(\)`/)
    expect(result.stderr).toMatch(/nested[/\\]two\.ts:1:1 timer `setTimeout`/)
  })

  it('reports a missing directory as a usage error', () => {
    expect(run(join(temp, 'does-not-exist')).code).toBe(2)
  })
})
