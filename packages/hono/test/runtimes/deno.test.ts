import { describe, expect, it } from 'vitest'
import { allCases } from '../portable/all-cases'
import { bin, packageDir, run } from './spawn'

// `deno test` runs the portable suite (through Deno.serve and in-process) on the TypeScript
// sources: npm packages from the existing node_modules (no install, no network), our
// extensionless imports through --unstable-sloppy-imports, @tenant/* through the source condition.
// Only loopback network access is granted. A missing or failing deno fails this test.
describe('runtime: deno', () => {
  it(`passes the portable suite (${allCases.length * 2} cases) under deno test`, async () => {
    const { code, output } = await run(
      bin('deno'),
      [
        'test',
        '--no-check',
        '--node-modules-dir=manual',
        '--conditions=@tenant/source',
        '--unstable-sloppy-imports',
        '--allow-net=127.0.0.1',
        '--allow-read',
        './test/runtimes/deno-entry.ts',
      ],
      { cwd: packageDir, timeoutMs: 60_000 },
    )
    expect(output, output).toMatch(new RegExp(`ok \\| ${allCases.length * 2} passed \\| 0 failed`))
    expect(code, output).toBe(0)
    console.log(output.trim().split('\n').slice(-3).join('\n'))
  }, 90_000)
})
