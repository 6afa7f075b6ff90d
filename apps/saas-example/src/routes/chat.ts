import type { TenantEnv } from '@tenant/hono'
import { Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { z } from 'zod'
import { problem, readJson } from '../http'
import { MAX_BODY_BYTES } from './resources'

/** What `POST /chat/completions` accepts: the OpenAI request's shape, as far as the fake model reads it. */
export const chatRequestSchema = z.object({
  model: z.string().min(1).max(200),
  messages: z
    .array(
      z.object({ role: z.enum(['system', 'user', 'assistant']), content: z.string().max(MAX_BODY_BYTES) }),
    )
    .min(1, 'at least one message'),
  stream: z.literal(true, { error: 'this example only streams: set "stream": true' }),
})

/** A chat request, as validated by {@link chatRequestSchema}. */
export type ChatRequest = z.infer<typeof chatRequestSchema>

/** Rough tokens of a text: about four characters each, as OpenAI's rule of thumb has it. */
function tokensOf(text: string): number {
  return Math.ceil(text.length / 4)
}

/**
 * A fake upstream model: streams an OpenAI-style completion (one `chat.completion.chunk` per word,
 * echoing the last user message), then the usage chunk that `stream_options.include_usage` asks
 * for, then `data: [DONE]`. It is read only as fast as the client reads it, like a real upstream
 * behind `fetch()`.
 *
 * @example
 * ```ts
 * const response = fakeUpstream({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: true })
 * ```
 */
export function fakeUpstream(request: ChatRequest): Response {
  const prompt = request.messages.map((message) => message.content).join('\n')
  const last = request.messages.findLast((message) => message.role === 'user')?.content ?? ''
  const words = `You said: ${last}`.split(/(?<= )/)
  const id = `chatcmpl-${crypto.randomUUID().replaceAll('-', '').slice(0, 24)}`
  const chunk = (body: Record<string, unknown>) =>
    `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', model: request.model, ...body })}\n\n`
  const events = [
    ...words.map((word) => chunk({ choices: [{ index: 0, delta: { content: word } }], usage: null })),
    chunk({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], usage: null }),
    chunk({
      choices: [],
      usage: {
        prompt_tokens: tokensOf(prompt),
        completion_tokens: words.length,
        total_tokens: tokensOf(prompt) + words.length,
      },
    }),
    'data: [DONE]\n\n',
  ]
  const encoder = new TextEncoder()
  let next = 0
  const body = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        const event = events[next++]
        if (event === undefined) controller.close()
        else controller.enqueue(encoder.encode(event))
      },
    },
    { highWaterMark: 0 },
  )
  return new Response(body, { headers: { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' } })
}

/**
 * `POST /chat/completions`: an OpenAI-compatible streaming endpoint in front of
 * {@link fakeUpstream}. The tenancy chain charged the request's `X-Token-Count` up front; its
 * `streamUsage` reads the usage chunk as the stream goes out and settles the quota at it when the
 * stream ends (at what was sent, if the client leaves early).
 *
 * @example
 * ```ts
 * api.route('/chat', chatRoutes())
 * ```
 */
export function chatRoutes() {
  const limit = bodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: () => problem(413, 'payload_too_large', `the body is larger than ${MAX_BODY_BYTES} bytes`),
  })
  return new Hono<TenantEnv>().post('/completions', limit, async (c) => {
    const body = await readJson(c, chatRequestSchema)
    if (!body.ok) return body.response
    return fakeUpstream(body.value)
  })
}
