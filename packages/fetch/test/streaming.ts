import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

/** OpenAI-style chat completion chunks: one per word, then the usage chunk (if any) and `[DONE]`. */
export function openAiEvents(words: string[], usage?: { prompt: number; completion: number }): string[] {
  const events = words.map(
    (word) =>
      `data: ${JSON.stringify({ object: 'chat.completion.chunk', choices: [{ delta: { content: word } }], usage: null })}\n\n`,
  )
  if (usage) {
    const fields = {
      prompt_tokens: usage.prompt,
      completion_tokens: usage.completion,
      total_tokens: usage.prompt + usage.completion,
    }
    events.push(
      `data: ${JSON.stringify({ object: 'chat.completion.chunk', choices: [], usage: fields })}\n\n`,
    )
  }
  events.push('data: [DONE]\n\n')
  return events
}

async function listen(server: Server): Promise<{ url: string; close(): Promise<void> }> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

/**
 * A real upstream on a free loopback port that streams `events` as `text/event-stream`, one write
 * each. With `hold`, it keeps the response open after them (a model still generating) until the
 * client goes away; `closed` settles when the connection closed.
 */
export async function sseUpstream(events: string[], options: { hold?: boolean } = {}) {
  let closed!: () => void
  const gone = new Promise<void>((resolve) => {
    closed = resolve
  })
  const server = createServer((_message, out) => {
    out.on('close', closed)
    out.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' })
    out.flushHeaders()
    for (const event of events) out.write(event)
    if (!options.hold) out.end()
  })
  const served = await listen(server)
  return { ...served, closed: gone }
}

/**
 * A node:http front server for a Fetch handler that streams the response body chunk by chunk
 * (waiting for `drain`) and cancels it when the client goes away, as a streaming adapter does.
 */
export async function streamingServer(handler: (request: Request) => Promise<Response>) {
  const server = createServer((message: IncomingMessage, out: ServerResponse) => {
    const headers = new Headers()
    for (const [name, value] of Object.entries(message.headers)) {
      if (typeof value === 'string') headers.set(name, value)
    }
    handler(new Request(`http://${message.headers.host}${message.url}`, { method: message.method, headers }))
      .then(async (response) => {
        out.writeHead(response.status, Object.fromEntries(response.headers))
        out.flushHeaders()
        if (response.body === null) return void out.end()
        const reader = response.body.getReader()
        out.on('close', () => {
          if (!out.writableFinished) reader.cancel(new Error('client went away')).catch(() => {})
        })
        for (;;) {
          const { done, value } = await reader.read()
          if (done) break
          if (!out.write(value)) await new Promise((resolve) => out.once('drain', resolve))
        }
        out.end()
      })
      .catch(() => out.destroy())
  })
  return listen(server)
}

/** Reads `response`'s body until `count` SSE events arrived, then stops reading (without cancel). */
export async function readEvents(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  count: number,
): Promise<string> {
  const decoder = new TextDecoder()
  let text = ''
  while (text.split('\n\n').length - 1 < count) {
    const { done, value } = await reader.read()
    if (done) break
    text += decoder.decode(value, { stream: true })
  }
  return text
}
