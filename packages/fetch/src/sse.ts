import { passThrough } from './body-end'
/** One server-sent event, as dispatched by a blank line (WHATWG HTML, "event stream interpretation"). */
export interface SseEvent {
  /** The `event:` field; `'message'` when the event named none. */
  event: string
  /** The `data:` lines joined with `\n`; `''` when a line of the event was over the line bound (not parsed). */
  data: string
  /** The `id:` field of this event, when it had one. */
  id?: string
}

/** Token usage an event stream reported, as far as it got. */
export interface SseTokenUsage {
  /**
   * Prompt tokens: OpenAI `usage.prompt_tokens` (cached ones included), Anthropic `input_tokens`
   * plus `cache_creation_input_tokens` and `cache_read_input_tokens` (billed, and not part of its
   * `input_tokens`).
   */
  inputTokens?: number
  /** Completion tokens: OpenAI `usage.completion_tokens`, Anthropic `message_delta` `output_tokens`. */
  outputTokens?: number
  /** OpenAI `usage.total_tokens`, when reported. */
  totalTokens?: number
}

/** How far a stream got: what {@link sseUsage} resolves with once it ended. */
export interface SseProgress {
  /**
   * `'complete'`: the upstream body ended; `'aborted'`: the reader cancelled it (the client went
   * away); `'errored'`: the upstream body failed mid-stream.
   */
  end: 'complete' | 'aborted' | 'errored'
  /**
   * Tokens the stream's last usage event reported (see {@link SseUsageOptions.usage}); `undefined`
   * without one. Anthropic's `message_start` is none: it only gives `usage.inputTokens`.
   */
  tokens: number | undefined
  /** What the built-in reader found of the OpenAI / Anthropic usage fields, final or partial. */
  usage: SseTokenUsage
  /** Events with data passed through, `data: [DONE]` not counted. */
  events: number
  /** Bytes passed through to the reader. */
  bytes: number
  /** True once `data: [DONE]` went through. */
  done: boolean
}

/** Options of {@link sseUsage}. */
export interface SseUsageOptions {
  /**
   * Reads the total tokens from one event; the last event that answers a number wins. Replaces
   * the built-in reader of OpenAI `usage` and Anthropic `message_start` / `message_delta`.
   * @default undefined (the built-in reader)
   */
  usage?: (event: SseEvent) => number | undefined
}

/** What {@link sseUsage} answers: the body to send in place of the upstream's, and its outcome. */
export interface SseUsageStream {
  /** The same bytes as the upstream body, read from it only as fast as this one is read. */
  body: ReadableStream<Uint8Array>
  /** Settles (never rejects) once the body completed, was cancelled or failed. */
  progress: Promise<SseProgress>
}

/** Lines longer than this are passed through but not parsed, so one line cannot grow memory. */
export const MAX_SSE_LINE = 64 * 1024

const LF = 0x0a
const CR = 0x0d
// Keeps a byte order mark: the parser drops one only at the start of the stream (WHATWG), and a
// line that starts with one elsewhere names no field a client knows.
const decoder = new TextDecoder('utf-8', { ignoreBOM: true })
const BOM = 0xfeff
// The line buffer's first size (an event line of a chat stream fits), and the most it keeps
// between lines.
const LINE_START = 1024
const LINE_KEEP = 16 * 1024

/**
 * An incremental `text/event-stream` parser: feed it byte chunks split anywhere, it calls `onEvent`
 * for each event. CR, LF and CRLF end lines; a line (and an event's data) over
 * {@link MAX_SSE_LINE} bytes is dropped, its event dispatched with empty data.
 */
export class SseParser {
  // The current line's bytes so far, in one buffer that grows by doubling up to MAX_SSE_LINE (a
  // copy per chunk would cost an ArrayBuffer per piece: a line dripped byte by byte would hold
  // hundreds of times its size). `lineLength` counts them, `overflow` marks a dropped line.
  #line = new Uint8Array(LINE_START)
  #lineLength = 0
  #overflow = false
  #afterCR = false
  #data: string[] = []
  #dataLength = 0
  #hasData = false
  #truncated = false
  #event = ''
  #id: string | undefined = undefined
  #first = true

  constructor(readonly onEvent: (event: SseEvent) => void) {}

  /** Parses one chunk of the stream. */
  push(chunk: Uint8Array): void {
    let start = 0
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i]
      if (byte !== LF && byte !== CR) continue
      // The LF of a CRLF split across chunks (or right after a CR) ends no second line.
      if (byte === LF && this.#afterCR && i === start) {
        this.#afterCR = false
        start = i + 1
        continue
      }
      this.#take(chunk, start, i)
      this.#endLine()
      this.#afterCR = byte === CR
      start = i + 1
    }
    if (start < chunk.length) {
      this.#afterCR = false
      this.#take(chunk, start, chunk.length)
    }
  }

  #take(chunk: Uint8Array, from: number, to: number): void {
    if (to <= from || this.#overflow) return
    const length = this.#lineLength + (to - from)
    if (length > MAX_SSE_LINE) {
      this.#overflow = true
      this.#restart()
      return
    }
    if (length > this.#line.length) {
      const grown = new Uint8Array(Math.min(MAX_SSE_LINE, Math.max(length, this.#line.length * 2)))
      grown.set(this.#line.subarray(0, this.#lineLength))
      this.#line = grown
    }
    // A copy: the reader may reuse or transfer the chunk once it went through.
    this.#line.set(chunk.subarray(from, to), this.#lineLength)
    this.#lineLength = length
  }

  // Empties the line; a buffer a long line grew is let go rather than kept for the stream's life.
  #restart(): void {
    if (this.#line.length > LINE_KEEP) this.#line = new Uint8Array(LINE_START)
    this.#lineLength = 0
  }

  #endLine(): void {
    if (this.#overflow) {
      this.#overflow = false
      this.#first = false
      // The event still happened (it counts as sent) but its content is not parsed.
      this.#truncated = true
      this.#hasData = true
      return
    }
    let line = this.#lineLength === 0 ? '' : decoder.decode(this.#line.subarray(0, this.#lineLength))
    this.#restart()
    if (this.#first) {
      this.#first = false
      if (line.charCodeAt(0) === BOM) line = line.slice(1)
    }
    this.#field(line)
  }

  #field(line: string): void {
    if (line === '') {
      this.#dispatch()
      return
    }
    if (line.charCodeAt(0) === 0x3a) return // ':' starts a comment
    const colon = line.indexOf(':')
    const name = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.charCodeAt(0) === 0x20) value = value.slice(1)
    if (name === 'data') {
      this.#hasData = true
      if (this.#truncated) return
      this.#dataLength += value.length + 1
      if (this.#dataLength > MAX_SSE_LINE) {
        this.#truncated = true
        this.#data = []
        return
      }
      this.#data.push(value)
    } else if (name === 'event') this.#event = value
    else if (name === 'id' && !value.includes('\0')) this.#id = value
  }

  #dispatch(): void {
    if (this.#hasData) {
      const event: SseEvent = {
        event: this.#event || 'message',
        data: this.#truncated ? '' : this.#data.join('\n'),
      }
      if (this.#id !== undefined) event.id = this.#id
      this.onEvent(event)
    }
    this.#data = []
    this.#dataLength = 0
    this.#hasData = false
    this.#truncated = false
    this.#event = ''
    this.#id = undefined
  }
}

function count(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : undefined
}

/**
 * What one event told of the usage: nothing; only the prompt (Anthropic's `message_start`, whose
 * output count is a placeholder); or a usage report (OpenAI's `usage`, Anthropic's
 * `message_delta`).
 */
export type UsageRead = 'none' | 'prompt' | 'usage'

/**
 * Reads the usage fields of one event's JSON into `usage`: OpenAI's `usage` object (present on
 * the final chunk with `stream_options.include_usage`, `null` on the others), Anthropic's
 * `message_start` (input tokens) and `message_delta` (cumulative output tokens).
 */
export function readUsage(data: string, usage: SseTokenUsage): UsageRead {
  // Most events carry no usage: skip their JSON.parse.
  if (!data.includes('_tokens')) return 'none'
  let json: unknown
  try {
    json = JSON.parse(data)
  } catch {
    return 'none'
  }
  if (typeof json !== 'object' || json === null) return 'none'
  const record = json as Record<string, any>
  const type = record.type
  const found =
    type === 'message_start'
      ? record.message?.usage
      : typeof record.usage === 'object' && record.usage !== null
        ? record.usage
        : undefined
  if (typeof found !== 'object' || found === null) return 'none'
  const prompt = found.prompt_tokens
  const input = prompt !== undefined && prompt !== null ? count(prompt) : anthropicInput(found)
  const output = count(found.completion_tokens ?? found.output_tokens)
  const total = count(found.total_tokens)
  if (input === undefined && output === undefined && total === undefined) return 'none'
  if (input !== undefined) usage.inputTokens = input
  if (output !== undefined) usage.outputTokens = output
  if (type === 'message_start') return 'prompt'
  // A later report replaces an earlier one: a total only the earlier one gave no longer holds.
  // (The prompt, which Anthropic gives only in message_start, is kept.)
  if (total !== undefined) usage.totalTokens = total
  else delete usage.totalTokens
  return 'usage'
}

// Anthropic bills cache writes and reads as input and leaves them out of `input_tokens`.
function anthropicInput(found: Record<string, unknown>): number | undefined {
  const base = count(found.input_tokens)
  const created = count(found.cache_creation_input_tokens)
  const read = count(found.cache_read_input_tokens)
  if (base === undefined && created === undefined && read === undefined) return undefined
  return (base ?? 0) + (created ?? 0) + (read ?? 0)
}

function usageTotal(usage: SseTokenUsage): number {
  return usage.totalTokens ?? (usage.inputTokens ?? 0) + (usage.outputTokens ?? 0)
}

/**
 * True when `response` has a body of media type `text/event-stream` (parameters and case ignored).
 *
 * @example
 * ```ts
 * if (isEventStream(response)) console.log('streaming')
 * ```
 */
export function isEventStream(response: Response): boolean {
  if (response.body === null) return false
  const type = response.headers.get('Content-Type')
  if (type === null) return false
  const semicolon = type.indexOf(';')
  return (semicolon === -1 ? type : type.slice(0, semicolon)).trim().toLowerCase() === 'text/event-stream'
}

/**
 * Passes an SSE body through unchanged and reads its token usage on the way: the returned body
 * pulls from the upstream only when it is read (backpressure is kept, nothing is buffered beyond
 * the current line), and `progress` settles when the body completed, was cancelled by its reader
 * (the client went away) or failed.
 *
 * @example
 * ```ts
 * const { body, progress } = sseUsage(upstream.body!)
 * progress.then(({ tokens, end }) => console.log(end, tokens))
 * return new Response(body, upstream)
 * ```
 */
export function sseUsage(
  upstream: ReadableStream<Uint8Array>,
  options: SseUsageOptions = {},
): SseUsageStream {
  const custom = options.usage
  const state: SseProgress = {
    end: 'complete',
    tokens: undefined,
    usage: {},
    events: 0,
    bytes: 0,
    done: false,
  }
  let found = false
  const parser = new SseParser((event) => {
    if (event.data === '[DONE]') {
      state.done = true
      return
    }
    state.events++
    if (custom !== undefined) {
      // A throwing `usage` callback must not break the body: that event reports nothing.
      // `null` answers nothing, as `undefined` does (`?? null` is a common way to write a reader).
      try {
        const tokens = custom(event)
        if (tokens !== undefined && tokens !== null) state.tokens = tokens
      } catch {}
    } else if (readUsage(event.data, state.usage) === 'usage') found = true
  })
  let settle!: (progress: SseProgress) => void
  const progress = new Promise<SseProgress>((resolve) => {
    settle = resolve
  })
  // passThrough ends the body once.
  const end = (how: SseProgress['end']) => {
    state.end = how
    if (found) state.tokens = usageTotal(state.usage)
    settle(state)
  }
  // The reader cancelling is the client going away: 'aborted' in SseProgress's words.
  const body = passThrough(
    upstream,
    (how) => end(how === 'cancelled' ? 'aborted' : how),
    (chunk) => {
      state.bytes += chunk.byteLength
      parser.push(chunk)
    },
  )
  return { body, progress }
}
