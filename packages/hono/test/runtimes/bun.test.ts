import { describe, expect, it } from 'vitest'
import { allCases } from '../portable/all-cases'
import { bin, packageDir, run } from './spawn'

// `bun test` runs the portable suite (through Bun.serve and in-process) on the TypeScript sources.
// A missing or failing bun fails this test: a runtime that did not run is not a pass.
describe('runtime: bun', () => {
  it(`passes the portable suite (${allCases.length * 2} cases) under bun test`, async () => {
    const { code, output } = await run(
      bin('bun'),
      ['test', '--conditions=@tenant/source', '--timeout=20000', './test/runtimes/bun-entry.ts'],
      { cwd: packageDir, timeoutMs: 60_000 },
    )
    expect(output, output).toMatch(new RegExp(`\\b${allCases.length * 2} pass\\b`))
    expect(output, output).toMatch(/\b0 fail\b/)
    expect(code, output).toBe(0)
    console.log(output.trim().split('\n').slice(-5).join('\n'))
  }, 90_000)
})
