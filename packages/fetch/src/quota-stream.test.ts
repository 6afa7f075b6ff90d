import {
  InMemoryConfigManager,
  InMemoryQuotaManager,
  ManualClock,
  type QuotaManager,
  SlidingWindowQuotaManager,
} from '@tenant/core'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { expectInvalidOption, recorder } from '../test/helpers'
import { openAiEvents, readEvents, sseUpstream, streamingServer } from '../test/streaming'
import { type AdjustEvent, type QuotaOptions, type SettleEvent, tenantQuota, withTenancy } from './index'

// 30 s into a minute: every request of a test falls in one minute window.
const START = Date.UTC(2026, 0, 15, 10, 20, 30)

const managers = {
  fixed: (configs: InMemoryConfigManager, clock: ManualClock) => new InMemoryQuotaManager(configs, { clock }),
  sliding: (configs: InMemoryConfigManager, clock: ManualClock) =>
    new SlidingWindowQuotaManager(configs, { clock }),
}

describe.each(Object.entries(managers))(
  'quota streamUsage (%s window, real streaming upstream)',
  (_, make) => {
    let clock: ManualClock
    let configs: InMemoryConfigManager
    let manager: QuotaManager
    let closers: (() => Promise<void>)[]
    beforeEach(async () => {
      clock = new ManualClock(START)
      configs = new InMemoryConfigManager({ clock })
      await configs.setTenantConfig({ id: 'acme', quota: { limits: [{ window: 'minute', tokens: 10_000 }] } })
      manager = make(configs, clock)
      closers = []
    })
    afterEach(async () => {
      for (const close of closers) await close()
    })

    /** The app: the tenancy chain in front of a proxy to `upstream`, served over real HTTP. */
    async function app(upstream: string, quota: Omit<QuotaOptions, 'manager'> = {}) {
      const { hooks, events, errors } = recorder()
      let settled!: (event: SettleEvent) => void
      const settlement = new Promise<SettleEvent>((resolve) => {
        settled = resolve
      })
      const handler = withTenancy(() => fetch(upstream), {
        quota: { manager, clock, streamUsage: true, ...quota },
        hooks: [hooks, { onSettle: settled }],
      })
      const server = await streamingServer(handler)
      closers.push(server.close)
      const send = (signal?: AbortSignal) =>
        fetch(server.url, { headers: { 'X-Tenant-ID': 'acme', 'X-Token-Count': '100' }, signal })
      return { send, settlement, events, errors }
    }

    async function serve(events: string[], options: { hold?: boolean } = {}) {
      const upstream = await sseUpstream(events, options)
      closers.push(upstream.close)
      return upstream
    }

    const used = async () => (await manager.peek('acme')).windows[0]!.used.tokens

    it('passes the body through unchanged and settles at the final usage event', async () => {
      const events = openAiEvents(['Hello', ' there', '!'], { prompt: 90, completion: 160 })
      const upstream = await serve(events)
      const { send, settlement, events: seen } = await app(upstream.url)
      const response = await send()
      expect(response.headers.get('Content-Type')).toBe('text/event-stream')
      // Charged at the estimate while streaming; the headers went out before the usage was known.
      expect(response.headers.get('X-Quota-Remaining-Tokens')).toBe('9900')
      expect(await response.text()).toBe(events.join(''))
      expect(await settlement).toMatchObject({ how: 'usage', estimatedTokens: 100, tokens: 250, events: 4 })
      expect(await used()).toBe(250)
      // The adjustment is also an onAdjust, so metrics count streamed tokens as any other.
      expect(seen.find((e) => e.hook === 'onAdjust')!.event).toMatchObject({
        estimatedTokens: 100,
        actualTokens: 250,
      })
    })

    it('hands onSettle the usage the store answered, whatever an onAdjust hook did to it', async () => {
      const upstream = await serve(openAiEvents(['Hello'], { prompt: 90, completion: 160 }))
      const meddling = {
        onAdjust: (event: AdjustEvent) => {
          for (const window of event.usage!.windows) window.used.tokens = 1
        },
      }
      const { send, settlement, errors } = await app(upstream.url, { hooks: meddling })
      await (await send()).text()
      const settled = await settlement
      expect(settled).toMatchObject({ how: 'usage', tokens: 250 })
      expect(settled.usage!.windows[0]!.used).toEqual({ requests: 1, tokens: 250 })
      expect(errors.map((e) => [e.info.hook, e.error instanceof TypeError])).toEqual([['onAdjust', true]])
    })

    it('settles an aborted stream at what was sent, and closes the upstream', async () => {
      const upstream = await serve(openAiEvents(['a', 'b', 'c']).slice(0, 3), { hold: true })
      const { send, settlement } = await app(upstream.url)
      const controller = new AbortController()
      const response = await send(controller.signal)
      const reader = response.body!.getReader()
      expect(await readEvents(reader, 3)).toContain('"c"')
      controller.abort()
      expect(await settlement).toMatchObject({ how: 'aborted', estimatedTokens: 100, tokens: 103, events: 3 })
      await upstream.closed
      expect(await used()).toBe(103)
    })

    it('settles an Anthropic stream cut short after message_start at what was sent, not its prompt count', async () => {
      // message_start reports the input tokens and a placeholder output count; the real output
      // count comes in message_delta at the end, which a client that leaves early never waits for.
      const start =
        'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":25,"output_tokens":1}}}\n\n'
      const deltas = Array.from(
        { length: 20 },
        (_, i) =>
          `event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"w${i}"}}\n\n`,
      )
      const upstream = await serve([start, ...deltas], { hold: true })
      const { send, settlement } = await app(upstream.url)
      const controller = new AbortController()
      const reader = (await send(controller.signal)).body!.getReader()
      expect(await readEvents(reader, 21)).toContain('"w19"')
      controller.abort()
      // The prompt as reported plus one token per data event (message_start is one of the 21).
      expect(await settlement).toMatchObject({
        how: 'aborted',
        estimatedTokens: 100,
        tokens: 25 + 21,
        events: 21,
      })
      await upstream.closed
      expect(await used()).toBe(46)
    })

    it('settles a stream cut short at what was sent, never below the running usage it reported', async () => {
      // A proxy that puts a usage object on every chunk: the last one read is a count so far.
      const chunk = (i: number, total: number) =>
        `data: {"choices":[{"delta":{"content":"w${i}"}}],"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":${total}}}\n\n`
      const early = await serve(
        Array.from({ length: 30 }, (_, i) => chunk(i, 0)),
        { hold: true },
      )
      const first = await app(early.url)
      const controller = new AbortController()
      const reader = (await first.send(controller.signal)).body!.getReader()
      expect(await readEvents(reader, 30)).toContain('"w29"')
      controller.abort()
      // A usage of 0 so far does not refund the stream: 30 data events went out.
      expect(await first.settlement).toMatchObject({ how: 'aborted', tokens: 30, events: 30 })
      await early.closed

      const ahead = await serve([chunk(0, 500)], { hold: true })
      const second = await app(ahead.url)
      const stop = new AbortController()
      const read = (await second.send(stop.signal)).body!.getReader()
      expect(await readEvents(read, 1)).toContain('"w0"')
      stop.abort()
      expect(await second.settlement).toMatchObject({ how: 'aborted', tokens: 500, events: 1 })
      expect(await used()).toBe(530)
    })

    it('settles a stream cut short at its usage when sent() fails, never at the estimate below it', async () => {
      const chunk =
        'data: {"choices":[],"usage":{"prompt_tokens":100,"completion_tokens":400,"total_tokens":500}}\n\n'
      for (const sent of [
        () => {
          throw new Error('sent() failed')
        },
        () => -5,
      ]) {
        const upstream = await serve([chunk], { hold: true })
        const { send, settlement, errors } = await app(upstream.url, { streamUsage: { sent } })
        const controller = new AbortController()
        const reader = (await send(controller.signal)).body!.getReader()
        expect(await readEvents(reader, 1)).toContain('total_tokens')
        controller.abort()
        const event = await settlement
        expect(event).toMatchObject({ how: 'aborted', tokens: 500 })
        expect(event.error).toBeDefined()
        expect(errors.map((e) => e.error)).toEqual([event.error])
        await upstream.closed
      }
      expect(await used()).toBe(1000)
    })

    it('takes the usage of a stream whose [DONE] went through, though the client left before its end', async () => {
      const upstream = await serve(openAiEvents(['a', 'b'], { prompt: 70, completion: 5 }), { hold: true })
      const { send, settlement } = await app(upstream.url)
      const controller = new AbortController()
      const reader = (await send(controller.signal)).body!.getReader()
      expect(await readEvents(reader, 4)).toContain('[DONE]')
      controller.abort()
      expect(await settlement).toMatchObject({ how: 'usage', tokens: 75 })
      expect(await used()).toBe(75)
    })

    it('settles a stream that ended without its usage report (an Anthropic error event) as estimated', async () => {
      const upstream = await serve([
        'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":25,"output_tokens":1}}}\n\n',
        'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"Hi"}}\n\n',
        'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n',
      ])
      const { send, settlement } = await app(upstream.url)
      await (await send()).text()
      expect(await settlement).toMatchObject({ how: 'estimated', tokens: 25 + 3, events: 3 })
      expect(await used()).toBe(28)
    })

    it('charges the estimate plus one token per data event when no usage event came', async () => {
      const upstream = await serve(openAiEvents(['one', 'two', 'three', 'four']))
      const { send, settlement } = await app(upstream.url)
      await (await send()).text()
      expect(await settlement).toMatchObject({ how: 'estimated', tokens: 104, events: 4 })
      expect(await used()).toBe(104)
    })

    it('takes custom usage and sent readers', async () => {
      const upstream = await serve(['data: {"n":1}\n\n', 'data: {"n":2,"spent":42}\n\n'])
      const { send, settlement } = await app(upstream.url, {
        streamUsage: { usage: (event) => (JSON.parse(event.data) as { spent?: number }).spent },
      })
      await (await send()).text()
      expect(await settlement).toMatchObject({ how: 'usage', tokens: 42 })
      expect(await used()).toBe(42)

      // `null` answers nothing, as `undefined` does: the 42 read before it stands.
      const nulls = await serve(['data: {"spent":42}\n\n', 'data: {"n":3}\n\n'])
      const third = await app(nulls.url, {
        streamUsage: {
          usage: (event) =>
            (JSON.parse(event.data) as { spent?: number }).spent ?? (null as unknown as undefined),
        },
      })
      await (await third.send()).text()
      expect(await third.settlement).toMatchObject({ how: 'usage', tokens: 42 })
      expect(await used()).toBe(84)

      const silent = await serve(['data: x\n\n', 'data: y\n\n'])
      const second = await app(silent.url, { streamUsage: { sent: (progress) => progress.bytes } })
      await (await second.send()).text()
      expect(await second.settlement).toMatchObject({ how: 'estimated', tokens: 18 })
      expect(await used()).toBe(84 + 18)
    })

    it('reports a usage answer that is no whole number, and settles at what the stream sent', async () => {
      const upstream = await serve(['data: {"n":1}\n\n', 'data: {"n":2}\n\n', 'data: {"spent":-1}\n\n'])
      const { send, settlement, errors } = await app(upstream.url, {
        streamUsage: { usage: (event) => (JSON.parse(event.data) as { spent?: number }).spent },
      })
      await (await send()).text()
      const event = await settlement
      // The estimate (100) and one token per event sent: not the estimate alone.
      expect(event).toMatchObject({ how: 'estimated', tokens: 103, estimatedTokens: 100 })
      expect(errors.map((e) => e.error)).toEqual([event.error])
      expect(await used()).toBe(103)
    })

    it('keeps the estimate and reports it when sent() returns no whole number', async () => {
      const upstream = await serve(['data: x\n\n'])
      const { send, settlement, errors } = await app(upstream.url, { streamUsage: { sent: () => -5 } })
      await (await send()).text()
      const event = await settlement
      expect(event).toMatchObject({ how: 'estimated', estimatedTokens: 100 })
      expect(event.tokens).toBeUndefined()
      expect(errors.map((e) => e.error)).toEqual([event.error])
      expect(await used()).toBe(100)
    })

    it('leaves other responses to actualTokens, and streams alone when streamUsage is off', async () => {
      const upstream = await serve(openAiEvents(['x'], { prompt: 1, completion: 1 }))
      const { hooks, events } = recorder()
      const handler = withTenancy(
        (request: Request) =>
          request.url.endsWith('/json')
            ? Promise.resolve(Response.json({}, { headers: { 'X-Usage-Tokens': '7' } }))
            : fetch(upstream.url),
        {
          quota: {
            manager,
            clock,
            actualTokens: (r) => Number(r.headers.get('X-Usage-Tokens') ?? Number.NaN) || undefined,
          },
          hooks,
        },
      )
      const init = { headers: { 'X-Tenant-ID': 'acme', 'X-Token-Count': '100' } }
      await (await handler(new Request('http://app.test/json', init))).text()
      expect(await used()).toBe(7)
      // Off by default: an SSE response is left to actualTokens, which finds no usage header here.
      await (await handler(new Request('http://app.test/sse', init))).text()
      expect(events.some((e) => e.hook === 'onSettle')).toBe(false)
      expect(await used()).toBe(107)
    })

    it('hands the settlement to the Workers ctx.waitUntil', async () => {
      const upstream = await serve(openAiEvents(['hi'], { prompt: 5, completion: 1 }))
      const waited: Promise<unknown>[] = []
      const ctx = { waitUntil: (promise: Promise<unknown>) => void waited.push(promise) }
      const handler = withTenancy(
        (_request: Request, _env: unknown, _ctx: typeof ctx) => fetch(upstream.url),
        {
          quota: { manager, clock, streamUsage: true },
        },
      )
      const response = await handler(
        new Request('http://app.test/', { headers: { 'X-Tenant-ID': 'acme', 'X-Token-Count': '100' } }),
        {},
        ctx,
      )
      // The settlement, and the pipe the body goes out through (see pipedUnder).
      expect(waited).toHaveLength(2)
      await response.text()
      await Promise.all(waited)
      expect(await used()).toBe(6)
    })

    it('refunds a stream settled in a later minute from the windows it was charged in', async () => {
      await configs.setTenantConfig({
        id: 'acme',
        quota: {
          limits: [
            { window: 'minute', tokens: 10_000 },
            { window: 'day', tokens: 100_000 },
          ],
        },
      })
      let upstream!: ReadableStreamDefaultController<Uint8Array>
      const body = new ReadableStream<Uint8Array>({
        start: (controller) => {
          upstream = controller
        },
      })
      let settled!: (event: SettleEvent) => void
      const settlement = new Promise<SettleEvent>((resolve) => {
        settled = resolve
      })
      const handler = withTenancy(
        () => new Response(body, { headers: { 'Content-Type': 'text/event-stream' } }),
        { quota: { manager, clock, streamUsage: true }, hooks: { onSettle: settled } },
      )
      const response = await handler(
        new Request('http://app.test/', { headers: { 'X-Tenant-ID': 'acme', 'X-Token-Count': '100' } }),
      )
      const [first, ...rest] = openAiEvents(['Hi'], { prompt: 10, completion: 20 })
      const bytes = new TextEncoder()
      upstream.enqueue(bytes.encode(first!))
      // The stream runs on into a later minute (one the sliding minute no longer reaches back
      // from), where the tenant's other requests are charged.
      clock.set(START + 90_000)
      await manager.consume('acme', { tokens: 40 })
      for (const event of rest) upstream.enqueue(bytes.encode(event))
      upstream.close()
      await response.text()
      expect(await settlement).toMatchObject({ how: 'usage', estimatedTokens: 100, tokens: 30 })
      // Estimated 100, used 30: the 70 come back from the day (charged 100 + 40), and the new
      // minute keeps the 40 of the request charged in it.
      expect((await manager.peek('acme')).windows.map((w) => [w.window, w.used.tokens])).toEqual([
        ['minute', 40],
        ['day', 70],
      ])
    })

    it('rejects a bad streamUsage option', () => {
      expectInvalidOption(
        () => tenantQuota({ manager, streamUsage: 'yes' as never }),
        'tenantQuota.streamUsage',
        /boolean/,
      )
      expectInvalidOption(
        () => tenantQuota({ manager, streamUsage: { sent: 3 as never } }),
        'tenantQuota.streamUsage.sent',
        /function/,
      )
    })
  },
)
