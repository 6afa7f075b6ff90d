import { requestTokenCount, type TenantEnv } from '@tenant/hono'
import { type Context, Hono, type MiddlewareHandler, type Next } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { z } from 'zod'
import { problem, readJson } from '../http'
import { checkedModel, MODEL_HEADER, useBodyModel } from '../model'
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
  const prompt = promptOf(request)
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

// The text the fake model reads as the prompt (and counts as prompt_tokens).
function promptOf(request: ChatRequest): string {
  return request.messages.map((message) => message.content).join('\n')
}

// The chat request read by readChatRequest(), for the route, keyed by the Request the chain saw.
const chatRequests = new WeakMap<Request, ChatRequest>()

/**
 * The quota stage's `tokenEstimator`: the tokens a request is charged when it is admitted. A chat
 * completion is charged its prompt (what the model reads whether or not the client stays for the
 * usage chunk), or the client's `X-Token-Count` when that is more (room kept for the completion);
 * so a prompt alone over the tenant's token quota is refused before it reaches the model. Other
 * requests are charged their `X-Token-Count` (0 without one); one that is not a whole number is
 * 400 `invalid_cost`, as without an estimator.
 *
 * @example
 * ```ts
 * tenancy({ quota: { manager, streamUsage: true, tokenEstimator: chatTokenEstimate } })
 * ```
 */
export function chatTokenEstimate(request: Request): number {
  const declared = requestTokenCount(request)
  const chat = chatRequests.get(request)
  return chat === undefined ? declared : Math.max(declared, tokensOf(promptOf(chat)))
}

/**
 * Reads and validates the body of `POST /chat/completions` **before the tenancy chain**: the
 * body's `model` is the request's model (as in OpenAI's API), so the chain's policy stage checks
 * it and its quota stage charges it as the subject `model:<name>` (see `requestModel`), and the
 * route serves the very body read here. A body over 64 KiB is 413, one that is not JSON or fails
 * {@link chatRequestSchema} 400 `invalid_request`, and an `X-Model` header naming another model
 * than the body 400 `model_mismatch`: each before anything is charged. Other methods pass.
 *
 * @example
 * ```ts
 * api.use('/chat/completions', readChatRequest())
 * api.use(tenancy({ policy: { evaluator, extract: policyInput }, quota: { manager, subject: modelSubject } }))
 * api.route('/chat', chatRoutes())
 * ```
 */
export function readChatRequest(): MiddlewareHandler {
  const limit = bodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: () => problem(413, 'payload_too_large', `the body is larger than ${MAX_BODY_BYTES} bytes`),
  })
  return async (c, next) => {
    if (c.req.method !== 'POST') return next()
    const sent = c.req.raw
    let refused: Response | undefined
    const tooLarge = await limit(c, async () => {
      refused = await read(c, next, sent)
    })
    c.req.raw = sent
    return tooLarge ?? refused
  }
}

/**
 * The body check of {@link readChatRequest}: its refusal, or undefined once `next()` ran. `sent` is
 * the Request as it came in: for a body without Content-Length, bodyLimit put a copy that counts
 * the bytes in its place, and what outer middleware keyed on the Request (the request id, the
 * tenant the metrics count) would not be found on the copy. Once the body is read, the request
 * goes on as `sent`.
 */
async function read(c: Context, next: Next, sent: Request): Promise<Response | undefined> {
  const body = await readJson(c, chatRequestSchema)
  c.req.raw = sent
  if (!body.ok) return body.response
  const { model } = body.value
  const named = c.req.header(MODEL_HEADER)
  if (named !== undefined && named !== model) {
    return problem(
      400,
      'model_mismatch',
      `${MODEL_HEADER} names ${JSON.stringify(named)} but the body's model is ${JSON.stringify(model)}: send one model (the body's), or the same in both`,
      { model, header: named },
    )
  }
  useBodyModel(c.req.raw, model)
  chatRequests.set(c.req.raw, body.value)
  await next()
  return undefined
}

/**
 * `POST /chat/completions`: an OpenAI-compatible streaming endpoint in front of
 * {@link fakeUpstream}. It serves the body {@link readChatRequest} read before the tenancy chain,
 * and only when the chain's policy stage checked that body's model (`policyInput`): a request
 * that reached it any other way is a wiring error, answered 500 and logged, never served with an
 * unchecked model. The tenancy chain charged the prompt up front ({@link chatTokenEstimate}); its
 * `streamUsage` reads the usage chunk as the stream goes out and settles the quota at it when the
 * stream ends (at what was sent, if the client leaves early).
 *
 * @example
 * ```ts
 * api.route('/chat', chatRoutes())
 * ```
 */
export function chatRoutes() {
  return new Hono<TenantEnv>().post('/completions', (c) => {
    const chat = chatRequests.get(c.req.raw)
    if (chat === undefined) {
      throw new Error('POST /chat/completions reached without readChatRequest() before the tenancy chain')
    }
    const checked = checkedModel(c.req.raw)
    if (checked !== chat.model) {
      throw new Error(
        `POST /chat/completions: the policy stage checked model ${JSON.stringify(checked)}, not the body's ${JSON.stringify(chat.model)} (wire policyInput as the policy's extract)`,
      )
    }
    return fakeUpstream(chat)
  })
}
