// Run by `deno test` (see deno.test.ts): the portable cases through Deno.serve and in-process.
import { inProcess, type Transport } from '@tenant/fetch/testing'
import { allCases } from '../portable/all-cases'

declare const Deno: {
  test(name: string, fn: () => Promise<void>): void
  serve(
    options: { port: number; hostname: string; onListen?: (address: { port: number }) => void },
    handler: (request: Request) => Promise<Response>,
  ): { addr: { port: number }; shutdown(): Promise<void> }
}

const denoServe: Transport = {
  name: 'Deno.serve',
  async serve(handler) {
    const server = Deno.serve({ port: 0, hostname: '127.0.0.1', onListen: () => {} }, handler)
    return {
      send: (path, init) => fetch(`http://127.0.0.1:${server.addr.port}${path}`, init),
      close: () => server.shutdown(),
    }
  },
}

for (const transport of [denoServe, inProcess]) {
  for (const testCase of allCases)
    Deno.test(`${transport.name} > ${testCase.name}`, () => testCase.run(transport))
}
