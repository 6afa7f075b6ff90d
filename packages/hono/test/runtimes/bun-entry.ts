// Run by `bun test` (see bun.test.ts): the portable cases through Bun.serve and in-process.
import { test } from 'bun:test'
import { inProcess, type Transport } from '@tenant/fetch/testing'
import { allCases } from '../portable/all-cases'

declare const Bun: {
  serve(options: { port: number; hostname: string; fetch: (request: Request) => Promise<Response> }): {
    port: number
    stop(closeActiveConnections?: boolean): Promise<void> | void
  }
}

const bunServe: Transport = {
  name: 'Bun.serve',
  async serve(handler) {
    const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: handler })
    return {
      send: (path, init) => fetch(`http://127.0.0.1:${server.port}${path}`, init),
      close: async () => {
        await server.stop(true)
      },
    }
  },
}

for (const transport of [bunServe, inProcess]) {
  for (const testCase of allCases) test(`${transport.name} > ${testCase.name}`, () => testCase.run(transport))
}
