import { keepPromiseAlive, type WaitUntil } from './execution-context'

/** How a response body ended: read to its end, failed part-way, or cancelled by its reader. */
export type BodyEnd = 'complete' | 'errored' | 'cancelled'

/**
 * A stream that passes every chunk of `upstream` through unchanged, read from it only as fast as
 * the copy is read, and calls `end` once when the copy completes, fails or is cancelled (`seen`,
 * if given, gets each chunk on its way). A cancel can come while a read is pending (a client that
 * leaves an SSE stream); that read then settles into a closed copy, which is no second end.
 */
export function passThrough(
  upstream: ReadableStream<Uint8Array>,
  end: (how: BodyEnd) => void,
  seen?: (chunk: Uint8Array) => void,
): ReadableStream<Uint8Array> {
  const reader = upstream.getReader()
  let ended = false
  const finish = (how: BodyEnd): boolean => {
    if (ended) return false
    ended = true
    end(how)
    return true
  }
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        let read: Awaited<ReturnType<typeof reader.read>>
        try {
          read = await reader.read()
        } catch (error) {
          if (finish('errored')) controller.error(error)
          return
        }
        if (ended) return
        if (read.done) {
          finish('complete')
          controller.close()
        } else {
          seen?.(read.value)
          controller.enqueue(read.value)
        }
      },
      cancel(reason) {
        finish('cancelled')
        return reader.cancel(reason)
      },
    },
    // No queue of its own: a chunk is read from the upstream only when the copy's reader asks.
    { highWaterMark: 0 },
  )
}

/**
 * Calls `end` once `response` has been sent: now, when it has no body (or one already read, or is a
 * protocol switch), answering `undefined`; otherwise it answers a copy whose body is a
 * {@link passThrough} of the original. What the concurrency stage frees a slot with, and the
 * metrics middleware measures a stream with. Pass the runtime's execution context (Workers'
 * `ctx`, see `executionContextOf`) where there is one: the copy then goes out through
 * {@link pipedUnder}, and a client that leaves mid-body calls `end('cancelled')` there too. Any
 * middleware outside that wraps the body again must do the same, or the runtime never tells the
 * inner ones.
 *
 * @example
 * ```ts
 * const sent = whenBodyEnds(response, (how) => log.info({ how }, 'response sent'), ctx) ?? response
 * ```
 */
export function whenBodyEnds(
  response: Response,
  end: (how: BodyEnd) => void,
  context?: WaitUntil,
): Response | undefined {
  const body = response.body
  if (body === null || response.bodyUsed || response.status === 101) {
    end('complete')
    return undefined
  }
  return new Response(pipedUnder(passThrough(body, end), context), {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  })
}

/**
 * `stream` as the readable side of an identity `TransformStream` whose pipe runs under
 * `context.waitUntil`, or `stream` itself without a context. On Workers, a client that leaves
 * mid-body has the runtime drop the response's body outside the request: a JavaScript stream's
 * `cancel()` does not run where the request's I/O is allowed (a Durable Object release, a quota
 * adjustment), and `request.signal` does not fire. A pipe handed to `waitUntil` does run there:
 * when the runtime cancels the readable side, the pipe fails inside the request's context and
 * cancels `stream`, whose end callback then runs where it can reach the stores.
 *
 * @example
 * ```ts
 * return new Response(pipedUnder(passThrough(body, end), ctx), response)
 * ```
 */
export function pipedUnder(
  stream: ReadableStream<Uint8Array>,
  context: WaitUntil | undefined,
): ReadableStream<Uint8Array> {
  if (context === undefined) return stream
  // A pipe needs room for one chunk on the writable side (with none it never writes), so it reads
  // one chunk of `stream` ahead of the runtime: a client that leaves has been "sent" that one too.
  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>()
  keepPromiseAlive(context, stream.pipeTo(writable))
  return readable
}
