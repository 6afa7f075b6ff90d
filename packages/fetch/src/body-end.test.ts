import { describe, expect, it } from 'vitest'
import { type BodyEnd, whenBodyEnds } from './body-end'

/** A body the test feeds chunk by chunk, counting how often it was asked for one. */
function fedBody() {
  let controller!: ReadableStreamDefaultController<Uint8Array>
  let pulls = 0
  const stream = new ReadableStream<Uint8Array>(
    {
      start(c) {
        controller = c
      },
      pull() {
        pulls++
      },
    },
    { highWaterMark: 0 },
  )
  return {
    response: new Response(stream, { status: 200, headers: { 'Content-Type': 'text/event-stream' } }),
    push: (text: string) => controller.enqueue(new TextEncoder().encode(text)),
    close: () => controller.close(),
    fail: (error: Error) => controller.error(error),
    pulls: () => pulls,
  }
}

function watched(response: Response) {
  const ends: BodyEnd[] = []
  const copy = whenBodyEnds(response, (how) => ends.push(how))
  return { copy, ends }
}

describe('whenBodyEnds', () => {
  it('ends once, cancelled, when the reader cancels while a read is pending (a client leaving an SSE stream)', async () => {
    const body = fedBody()
    const { copy, ends } = watched(body.response)
    const reader = copy!.body!.getReader()
    body.push('data: 1\n\n')
    expect((await reader.read()).done).toBe(false)
    const pending = reader.read()
    // The copy is now waiting on the original for the next chunk.
    await new Promise((resolve) => setImmediate(resolve))
    await reader.cancel('client went away')
    expect((await pending).done).toBe(true)
    // The pending read of the original settles after the cancel: no second end, no error.
    await new Promise((resolve) => setImmediate(resolve))
    expect(ends).toEqual(['cancelled'])
  })

  it('ends once, complete, when the body is read to its end, and passes the bytes through', async () => {
    const body = fedBody()
    const { copy, ends } = watched(body.response)
    body.push('a')
    body.push('b')
    body.close()
    expect(await copy!.text()).toBe('ab')
    expect(ends).toEqual(['complete'])
    expect(copy!.status).toBe(200)
    expect(copy!.headers.get('Content-Type')).toBe('text/event-stream')
  })

  it('ends once, errored, when the body fails part-way', async () => {
    const body = fedBody()
    const { copy, ends } = watched(body.response)
    const reader = copy!.body!.getReader()
    body.push('a')
    await reader.read()
    body.fail(new Error('upstream died'))
    await expect(reader.read()).rejects.toThrow('upstream died')
    expect(ends).toEqual(['errored'])
  })

  it('reads the original only as fast as the copy is read', async () => {
    const body = fedBody()
    const { copy } = watched(body.response)
    await new Promise((resolve) => setImmediate(resolve))
    expect(body.pulls()).toBe(0)
    const reader = copy!.body!.getReader()
    const first = reader.read()
    body.push('a')
    await first
    expect(body.pulls()).toBe(1)
  })

  it('ends at once, complete, for a response without a body, and answers no copy', () => {
    const { copy, ends } = watched(new Response(null, { status: 204 }))
    expect(copy).toBeUndefined()
    expect(ends).toEqual(['complete'])
  })
})
