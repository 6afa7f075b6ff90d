import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import type { Transport } from '@tenant/fetch/testing'

function toRequest(message: IncomingMessage, origin: string): Request {
  const headers = new Headers()
  for (const [name, value] of Object.entries(message.headers)) {
    if (Array.isArray(value)) for (const item of value) headers.append(name, item)
    else if (value !== undefined) headers.set(name, value)
  }
  const hasBody = message.method !== 'GET' && message.method !== 'HEAD'
  return new Request(new URL(message.url ?? '/', origin), {
    method: message.method,
    headers,
    body: hasBody ? (Readable.toWeb(message) as ReadableStream) : undefined,
    // Required by Node's fetch for a streamed request body.
    ...(hasBody && { duplex: 'half' }),
  } as RequestInit)
}

async function send(response: Response, out: ServerResponse): Promise<void> {
  out.statusCode = response.status
  response.headers.forEach((value, name) => {
    if (name !== 'set-cookie') out.setHeader(name, value)
  })
  const cookies = response.headers.getSetCookie()
  if (cookies.length > 0) out.setHeader('set-cookie', cookies)
  out.end(Buffer.from(await response.arrayBuffer()))
}

/** A real node:http server on a free loopback port, converting to and from Fetch objects. */
export const nodeServer: Transport = {
  name: 'node:http',
  async serve(handler) {
    const server = createServer((message, out) => {
      const origin = `http://${message.headers.host ?? '127.0.0.1'}`
      handler(toRequest(message, origin))
        .then((response) => send(response, out))
        .catch((error) => {
          out.statusCode = 500
          out.end(String(error))
        })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as AddressInfo
    return {
      send: (path, init) => fetch(`http://127.0.0.1:${port}${path}`, init),
      close: () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve())
          // fetch() keeps connections alive; close them so close() does not wait for their timeout.
          server.closeAllConnections()
        }),
    }
  },
}
