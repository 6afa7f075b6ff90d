import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { isEventStream, MAX_SSE_LINE, type SseEvent, SseParser, sseUsage } from './sse'

const encoder = new TextEncoder()

function parse(text: string | Uint8Array, splits: number[] = []): SseEvent[] {
  const bytes = typeof text === 'string' ? encoder.encode(text) : text
  const events: SseEvent[] = []
  const parser = new SseParser((event) => events.push(event))
  let from = 0
  for (const at of [...splits].sort((a, b) => a - b)) {
    parser.push(bytes.subarray(from, at))
    from = at
  }
  parser.push(bytes.subarray(from))
  return events
}

/** A body that hands out `chunks` one per read, counting the reads. */
function chunked(chunks: Uint8Array[]) {
  let reads = 0
  let cancelled: unknown
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        const chunk = chunks[reads++]
        if (chunk === undefined) controller.close()
        else controller.enqueue(chunk)
      },
      cancel(reason) {
        cancelled = reason ?? 'cancelled'
      },
    },
    { highWaterMark: 0 },
  )
  return { stream, reads: () => reads, cancelled: () => cancelled }
}

function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const sorted = [...new Set(cuts)].sort((a, b) => a - b)
  const chunks: Uint8Array[] = []
  let from = 0
  for (const at of sorted) {
    chunks.push(bytes.slice(from, at))
    from = at
  }
  chunks.push(bytes.slice(from))
  return chunks
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer())
}

const openAi = [
  'data: {"id":"c1","choices":[{"delta":{"content":"Hel"}}],"usage":null}\n\n',
  'data: {"id":"c1","choices":[{"delta":{"content":"lo"}}],"usage":null}\n\n',
  'data: {"id":"c1","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14}}\n\n',
  'data: [DONE]\n\n',
].join('')

const anthropic = [
  'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":25,"output_tokens":1}}}\n\n',
  'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"Hi"}}\n\n',
  'event: ping\ndata: {"type": "ping"}\n\n',
  'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":15}}\n\n',
  'event: message_stop\ndata: {"type":"message_stop"}\n\n',
].join('')

describe('SseParser', () => {
  it('dispatches events on blank lines, with event, data and id fields', () => {
    expect(parse('event: a\nid: 7\ndata: one\ndata:two\n\n: comment\ndata: x\n\n')).toEqual([
      { event: 'a', id: '7', data: 'one\ntwo' },
      { event: 'message', data: 'x' },
    ])
  })

  it('ends lines on CR, LF and CRLF alike, also split across chunks', () => {
    const expected = [
      { event: 'message', data: 'a' },
      { event: 'message', data: 'b' },
    ]
    expect(parse('data: a\r\rdata: b\r\r')).toEqual(expected)
    expect(parse('data: a\r\n\r\ndata: b\r\n\r\n')).toEqual(expected)
    expect(parse('data: a\r\n\r\ndata: b\r\n\r\n', [8, 9, 10])).toEqual(expected)
    expect(parse('data: a\n\ndata: b\n\n')).toEqual(expected)
  })

  it('discards an event the stream ended in the middle of', () => {
    expect(parse('data: a\n\ndata: b\n')).toEqual([{ event: 'message', data: 'a' }])
  })

  it('passes over a line longer than 64 KiB: its event counts, with no data parsed', () => {
    const long = `data: ${'x'.repeat(MAX_SSE_LINE + 10)}\n\n`
    expect(parse(`${long}data: after\n\n`)).toEqual([
      { event: 'message', data: '' },
      { event: 'message', data: 'after' },
    ])
  })

  it('holds an unfinished line in about its own size, however finely it is split', async () => {
    // A chunk copied per piece would cost an ArrayBuffer each: a 60 KB line dripped a byte at a
    // time held about 200 times its size.
    const { setFlagsFromString } = await import('node:v8')
    const { runInNewContext } = await import('node:vm')
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as () => void
    const held = (chunkSize: number): number => {
      gc()
      const before = process.memoryUsage()
      const chunk = new Uint8Array(chunkSize).fill(0x78)
      const parsers = Array.from({ length: 10 }, () => {
        const parser = new SseParser(() => {})
        parser.push(encoder.encode('data: '))
        for (let i = 0; i < 60_000 / chunkSize; i++) parser.push(chunk)
        return parser
      })
      gc()
      const after = process.memoryUsage()
      expect(parsers).toHaveLength(10)
      return after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers
    }
    const whole = held(60_000)
    const dripped = held(1)
    expect(dripped).toBeLessThan(Math.max(whole, 10 * 60_000) * 4)
    // And the line still parses once it ends.
    const events: SseEvent[] = []
    const parser = new SseParser((event) => events.push(event))
    for (const byte of encoder.encode('data: héllo\r\n\r\n')) parser.push(new Uint8Array([byte]))
    expect(events).toEqual([{ event: 'message', data: 'héllo' }])
  })

  it('decodes multi-byte characters split between chunks', () => {
    const bytes = encoder.encode('data: héllo €\n\n')
    for (let at = 1; at < bytes.length; at++) {
      expect(parse(bytes, [at])).toEqual([{ event: 'message', data: 'héllo €' }])
    }
  })
  it('drops a byte order mark at the start of the stream only', () => {
    expect(parse('\uFEFFdata: a\n\n')).toEqual([{ event: 'message', data: 'a' }])
    // Later, a line starting with one names the field "\uFEFFdata", which clients ignore.
    expect(parse('data: a\n\n\uFEFFdata: hidden\n\n')).toEqual([{ event: 'message', data: 'a' }])
    const bytes = encoder.encode('\uFEFFdata: a\n\n')
    for (let at = 1; at < 4; at++) expect(parse(bytes, [at])).toEqual([{ event: 'message', data: 'a' }])
  })
})

describe('sseUsage', () => {
  it('reads OpenAI usage from the final event and counts the data events', async () => {
    const { stream } = chunked([encoder.encode(openAi)])
    const { body, progress } = sseUsage(stream)
    expect(new TextDecoder().decode(await readAll(body))).toBe(openAi)
    expect(await progress).toMatchObject({
      end: 'complete',
      tokens: 14,
      usage: { inputTokens: 12, outputTokens: 2, totalTokens: 14 },
      events: 3,
      done: true,
    })
  })

  it('reads Anthropic message_start input and message_delta output tokens', async () => {
    const { body, progress } = sseUsage(chunked([encoder.encode(anthropic)]).stream)
    await readAll(body)
    expect(await progress).toMatchObject({
      tokens: 40,
      usage: { inputTokens: 25, outputTokens: 15 },
      events: 5,
      done: false,
    })
  })

  it('takes a custom usage reader, the last number it answers winning', async () => {
    const text = 'data: {"n":3}\n\ndata: {"n":9}\n\ndata: {}\n\n'
    const { body, progress } = sseUsage(chunked([encoder.encode(text)]).stream, {
      usage: (event) => (JSON.parse(event.data) as { n?: number }).n,
    })
    await readAll(body)
    expect((await progress).tokens).toBe(9)
  })

  it('takes message_start for the prompt only: without a message_delta the stream reported no usage', async () => {
    const cut = anthropic.slice(0, anthropic.indexOf('event: message_delta'))
    const { body, progress } = sseUsage(chunked([encoder.encode(cut)]).stream)
    await readAll(body)
    expect(await progress).toMatchObject({
      tokens: undefined,
      usage: { inputTokens: 25, outputTokens: 1 },
      events: 3,
    })
  })

  it('takes null from a custom usage reader as no answer', async () => {
    const text = 'data: {"n":9}\n\ndata: {}\n\n'
    const { body, progress } = sseUsage(chunked([encoder.encode(text)]).stream, {
      usage: (event) => (JSON.parse(event.data) as { n?: number }).n ?? (null as unknown as undefined),
    })
    await readAll(body)
    expect((await progress).tokens).toBe(9)
  })

  it('counts Anthropic cache writes and reads as input: billed, and not in input_tokens', async () => {
    const text = [
      'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":4,"cache_creation_input_tokens":9000,"cache_read_input_tokens":20000,"output_tokens":1}}}\n\n',
      'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":15}}\n\n',
    ].join('')
    const { body, progress } = sseUsage(chunked([encoder.encode(text)]).stream)
    await readAll(body)
    expect(await progress).toMatchObject({ tokens: 29_019, usage: { inputTokens: 29_004, outputTokens: 15 } })
  })

  it('takes the last usage report whole: a total only an earlier one gave does not stand', async () => {
    const text =
      'data: {"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}\n\n' +
      'data: {"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":90}}\n\n'
    const { body, progress } = sseUsage(chunked([encoder.encode(text)]).stream)
    await readAll(body)
    expect(await progress).toMatchObject({ tokens: 100, usage: { inputTokens: 10, outputTokens: 90 } })
    expect((await progress).usage.totalTokens).toBeUndefined()
  })

  it('reads no usage from a line a client ignores (a byte order mark mid-stream)', async () => {
    const text =
      'data: {"choices":[{"delta":{"content":"hi"}}],"usage":null}\n\n' +
      '\uFEFFdata: {"choices":[],"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}}\n\n'
    const { body, progress } = sseUsage(chunked([encoder.encode(text)]).stream)
    await readAll(body)
    expect(await progress).toMatchObject({ tokens: undefined, events: 1 })
  })

  it('reads no usage from a stream without one', async () => {
    const { body, progress } = sseUsage(chunked([encoder.encode('data: a\n\ndata: b\n\n')]).stream)
    await readAll(body)
    expect(await progress).toMatchObject({ end: 'complete', tokens: undefined, events: 2 })
  })

  it('keeps backpressure: reads the upstream only as the body is read', async () => {
    const source = chunked(['data: 1\n\n', 'data: 2\n\n', 'data: 3\n\n'].map((s) => encoder.encode(s)))
    const reader = sseUsage(source.stream).body.getReader()
    await new Promise((resolve) => setTimeout(resolve, 5))
    expect(source.reads()).toBe(0)
    await reader.read()
    expect(source.reads()).toBe(1)
    await reader.read()
    expect(source.reads()).toBe(2)
  })

  it('settles as aborted when the reader cancels, and cancels the upstream', async () => {
    const source = chunked(['data: 1\n\n', 'data: 2\n\n', 'data: 3\n\n'].map((s) => encoder.encode(s)))
    const { body, progress } = sseUsage(source.stream)
    const reader = body.getReader()
    await reader.read()
    await reader.cancel('client left')
    expect(await progress).toMatchObject({ end: 'aborted', events: 1, tokens: undefined })
    expect(source.cancelled()).toBe('client left')
  })

  it('settles as errored when the upstream fails, and fails the body', async () => {
    let sent = false
    const failing = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent) controller.error(new Error('upstream reset'))
        else controller.enqueue(encoder.encode('data: 1\n\n'))
        sent = true
      },
    })
    const { body, progress } = sseUsage(failing)
    await expect(readAll(body)).rejects.toThrow('upstream reset')
    expect(await progress).toMatchObject({ end: 'errored', events: 1 })
  })

  it('gives the same bytes, events and usage however the stream is split (property)', async () => {
    const lineEnd = fc.constantFrom('\n', '\r', '\r\n')
    const field = fc.oneof(
      fc.string({ unit: 'grapheme', maxLength: 20 }).map((s) => `data: ${s.replace(/[\r\n]/g, '')}`),
      fc.constantFrom('event: delta', 'id: 1', ': keep-alive', 'data: [DONE]', 'retry: 10'),
      fc
        .record({ p: fc.nat(1000), c: fc.nat(1000) })
        .map(({ p, c }) => `data: {"usage":{"prompt_tokens":${p},"completion_tokens":${c}}}`),
    )
    const document = fc
      .array(fc.tuple(fc.array(field, { maxLength: 4 }), lineEnd), { maxLength: 8 })
      .map((events) => events.map(([lines, end]) => `${lines.map((l) => l + end).join('')}${end}`).join(''))
    await fc.assert(
      fc.asyncProperty(document, fc.array(fc.nat(), { maxLength: 10 }), async (text, cuts) => {
        const bytes = encoder.encode(text)
        const whole = sseUsage(chunked([bytes]).stream)
        const wholeBytes = await readAll(whole.body)
        const pieces = split(
          bytes,
          cuts.map((cut) => (bytes.length === 0 ? 0 : cut % (bytes.length + 1))),
        )
        const parts = sseUsage(chunked(pieces).stream)
        const partBytes = await readAll(parts.body)
        expect(partBytes).toEqual(bytes)
        expect(wholeBytes).toEqual(bytes)
        const [a, b] = [await whole.progress, await parts.progress]
        expect(b).toEqual(a)
        expect(
          parse(
            bytes,
            cuts.map((cut) => cut % (bytes.length + 1)),
          ),
        ).toEqual(parse(bytes))
      }),
    )
  })
})

describe('isEventStream', () => {
  it('matches text/event-stream with parameters and any case, with a body', () => {
    const sse = (type: string, body: string | null = 'data: x\n\n') =>
      isEventStream(new Response(body, { headers: { 'Content-Type': type } }))
    expect(sse('text/event-stream')).toBe(true)
    expect(sse('Text/Event-Stream; charset=utf-8')).toBe(true)
    expect(sse('application/json')).toBe(false)
    expect(sse('text/event-stream', null)).toBe(false)
    expect(isEventStream(new Response('x'))).toBe(false)
  })
})
