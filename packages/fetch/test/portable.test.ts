import { inProcess, portableCases } from '@tenant/fetch/testing'
import { describe, it } from 'vitest'
import { nodeServer } from './portable/node-server'

// The portable suite on Node: every case through a real node:http server, and called directly.
// Bun, Deno and workerd run it too, with the Hono cases, from packages/hono/test/runtimes.
describe('runtime: node', () => {
  for (const transport of [nodeServer, inProcess]) {
    describe(transport.name, () => {
      for (const testCase of portableCases) it(testCase.name, () => testCase.run(transport))
    })
  }
})
