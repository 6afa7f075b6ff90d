// Cloudflare D1 for the tests: a real D1 database in workerd (Miniflare), driven from Node through
// `dispatchFetch`, one request per statement or batch.
//
// Why not `mf.getD1Database()`: its proxy answers D1's synchronous calls (`prepare`, `bind`) with a
// blocking cross-thread fetch that, on a loaded machine, now and then reads a reply that is not its
// own ("AssertionError: false == true" in miniflare's SynchronousFetcher), after which every call on
// that proxy fails. Here nothing is synchronous: `prepare` and `bind` only record the SQL and its
// parameters, and the worker below builds the real statements on the real D1 binding and runs them.
import { Miniflare } from 'miniflare'

/** What one statement of a request asks the worker to run. */
interface Call {
  sql: string
  params: unknown[]
  method: 'all' | 'raw' | 'run' | 'first'
}

// The worker holds the D1 binding and runs what it is sent, exactly as an application would call
// it; a D1 error comes back as its message (the same text the binding's own error carries).
const WORKER = `
export default {
  async fetch(request, env) {
    const { batch, calls } = await request.json()
    try {
      const statements = calls.map((c) => env.DB.prepare(c.sql).bind(...c.params))
      if (batch) return Response.json({ value: await env.DB.batch(statements) })
      const [call] = calls
      const value = await statements[0][call.method]()
      return Response.json({ value: value === undefined ? null : value })
    } catch (error) {
      return Response.json({ error: String(error && error.message ? error.message : error) })
    }
  },
}
`

/** A D1 statement as Drizzle's D1 driver uses it: SQL and bound parameters, run on demand. */
class Statement {
  constructor(
    private readonly send: (batch: boolean, calls: Call[]) => Promise<unknown>,
    readonly sql: string,
    readonly params: unknown[] = [],
  ) {}

  bind(...params: unknown[]): Statement {
    // What survives JSON unchanged and real D1 binds alike; anything else (a Date or undefined,
    // which D1 refuses, a blob, a bigint) fails here rather than pass a test it would fail on D1.
    for (const param of params) {
      const type = typeof param
      if (param !== null && type !== 'string' && type !== 'number' && type !== 'boolean') {
        throw new TypeError(
          `test D1 client: cannot bind ${String(param)} (${type}); bind strings, numbers, booleans or null`,
        )
      }
    }
    return new Statement(this.send, this.sql, params)
  }

  all(): Promise<unknown> {
    return this.send(false, [this.call('all')])
  }

  raw(): Promise<unknown> {
    return this.send(false, [this.call('raw')])
  }

  run(): Promise<unknown> {
    return this.send(false, [this.call('run')])
  }

  first(): Promise<unknown> {
    return this.send(false, [this.call('first')])
  }

  call(method: Call['method']): Call {
    return { sql: this.sql, params: this.params, method }
  }
}

/** The parts of the D1Database binding that Drizzle's D1 driver calls. */
export interface D1Client {
  prepare(sql: string): Statement
  batch(statements: Statement[]): Promise<unknown>
}

/** Starts workerd with one empty D1 database; `dispose` shuts it down (calls then reject). */
export async function startD1(): Promise<{ client: D1Client; dispose: () => Promise<void> }> {
  const mf = new Miniflare({ modules: true, script: WORKER, d1Databases: { DB: 'tenant-drizzle-test' } })
  await mf.ready
  const send = async (batch: boolean, calls: Call[]): Promise<unknown> => {
    const response = await mf.dispatchFetch('http://d1.test/', {
      method: 'POST',
      body: JSON.stringify({ batch, calls }),
    })
    const reply = (await response.json()) as { value?: unknown; error?: string }
    if (reply.error !== undefined) throw new Error(reply.error)
    return reply.value
  }
  return {
    client: {
      prepare: (sql) => new Statement(send, sql),
      batch: (statements) =>
        send(
          true,
          statements.map((s) => s.call('all')),
        ),
    },
    dispose: () => mf.dispose(),
  }
}
