// The README's Usage snippet is test/readme-usage.ts, verbatim: this test fails if the two drift
// apart, then runs the snippet and checks that it prints what its comments claim.
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'

const read = (path: string) => readFileSync(resolve(import.meta.dirname, path), 'utf8')

describe('README', () => {
  afterEach(() => vi.restoreAllMocks())

  it('shows test/readme-usage.ts as its Usage snippet', () => {
    const readme = read('../README.md')
    const usage = readme.slice(readme.indexOf('## Usage'))
    const snippet = /```ts\n([\s\S]*?)```/.exec(usage)?.[1]
    expect(snippet).toBe(read('./readme-usage.ts'))
  })

  it('runs the Usage snippet and prints what its comments say', async () => {
    const logged: unknown[][] = []
    vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
      logged.push(args)
    })
    await import('./readme-usage')
    expect(logged).toEqual([
      [{ allowed: true }],
      [{ allowed: false, rule: 'model', reason: 'model "gpt-4o" is not allowed' }],
      [{ name: 'Ada' }],
      [undefined],
      [['acme'], undefined],
      ['tenant_invalid_config', 400],
    ])
  })
})
