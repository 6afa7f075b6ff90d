import { describe, it } from 'vitest'
import { nodeServer } from '../portable/node-server'
import { inProcess, portableCases } from '../portable/suite'

// The portable suite on Node: every case through a real node:http server, and called directly.
describe('runtime: node', () => {
  for (const transport of [nodeServer, inProcess]) {
    describe(transport.name, () => {
      for (const testCase of portableCases) it(testCase.name, () => testCase.run(transport))
    })
  }
})
