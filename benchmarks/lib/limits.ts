/**
 * What limits each target when it is missed, from profiling the hot paths (`node --cpu-prof`) on
 * this machine. Printed in BENCHMARKS.md next to a missed target only; the numbers that vary per
 * run are in the tables, these texts describe the mechanisms.
 */
/** `2.10 µs more` / `0.52 µs less`: a difference between two rows, said in words. */
function more(micros: number, digits: number): string {
  return `${Math.abs(micros).toFixed(digits)} µs ${micros >= 0 ? 'more' : 'less'}`
}

export const LIMITS = {
  /** Built from this run's numbers: the public consume() and the fast path vs RateLimiterMemory. */
  consume: (m: { publicNs: number; fastNs: number; peerNs: number }): string =>
    [
      `Measured in this run: the public \`consume()\` takes ${m.publicNs.toFixed(0)} ns per call, RateLimiterMemory ${m.peerNs.toFixed(0)} ns, and the synchronous decision the tenancy chain calls (\`consumeNow\`, config handed over) ${m.fastNs.toFixed(0)} ns.`,
      'The difference between the first and the last is the public contract: a promise per call (already resolved, so one microtask for the caller) and the config read through the provider; the decision itself (one flat entry per tenant charged in place, a decision with the usage of every window) is the fast path.',
    ].join(' '),
  /** Built from this run's numbers (ns per lookup). */
  configLookup: (m: {
    fast: number
    manual: number
    raw: number
    clock: number
    ttl: number
    ttlEveryGet: number
  }): string =>
    [
      `Measured in this run: a raw lru-cache get takes ${m.raw.toFixed(0)} ns; the fast read of a cached config takes ${m.fast.toFixed(0)} ns on the system clock and ${m.manual.toFixed(0)} ns on a ManualClock, whose \`now()\` is a field read.`,
      `The difference is the freshness check: every hit compares the entry's age with \`ttl\` on the cache's clock, and \`Date.now()\` alone takes ${m.clock.toFixed(0)} ns on this machine (the row beside it). The rest of a hit is the LRU get, the age comparison and the hit counter.`,
      `lru-cache with a \`ttl\` does the same check: ${m.ttlEveryGet.toFixed(0)} ns when it reads the clock on every get (\`ttlResolution: 0\`), ${m.ttl.toFixed(0)} ns by default, where it reuses one clock reading until a timer clears it a millisecond later. @tenant/core keeps no timers (it runs where they cost or are not allowed), so its cache reads the clock on every hit.`,
    ].join(' '),
  redis: [
    'The round-trip half holds: one EVALSHA per decision, counted by the client and by the server.',
    'The throughput half does not, though the gap closed: the script now reads only the configured windows (HMGET) and, when every window is current, overwrites its counters in place (one HSET, no DEL or PEXPIRE) and replies only the counts as integers; the manager caches the limits and script arguments per frozen config.',
    "What remains is the semantics: the script reads Redis's clock (TIME, so processes with skewed clocks agree), finds the calendar window of each limit, and reads before it writes, to refuse without charging when any window is full. That costs about 6.5 µs of server time per call against RateLimiterRedis's 3.5 µs for SET NX + INCRBY + PTTL, whose window starts at a key's first hit and needs no clock; a hand-minimised one-window script with the same semantics still took 5.8 µs. At concurrency 64 the Redis server is the bottleneck, so its time per call decides throughput.",
    'On top of that, each admission now writes a receipt (one key for 15 s), which makes a decision count once when a client re-sends it and lets a failed call be taken back: in a separate A/B on this machine (INFO commandstats, 64 concurrent, three alternating rounds of 8 s, 2026-12-07) the script took 8.3 to 11.3 µs of server time per call without receipts and 15.4 to 21.0 µs with them, with about 450,000 receipts (80 to 100 MB) live at that rate. The row with `receipts: false` is the same manager without them.',
  ].join(' '),
  /**
   * The chain's text is built from this run's numbers: µs of server CPU per request over bare Hono
   * under load, and µs per request in process (the steady table).
   */
  chain: (m: {
    runtime: 'node' | 'bun'
    added: number
    ratio: number
    floor: number
    context: number
    headers: number
    withoutContext: number
    peer: number
    /** The floor with the chain's I/O (four headers and the tenant context) over bare Hono. */
    io: number
    /** The control: what a fixed loop adds to the floor with the chain's I/O, under load and in process. */
    work: { underLoad: number; inProcess: number }
    inProcess: {
      added: number
      floor: number
      headers: number
      context: number
      io: number
      withoutContext: number
    }
  }): string => {
    const contextCost =
      m.runtime === 'node'
        ? 'AsyncLocalStorage, which on Node 20 puts hooks on every promise of the process'
        : 'AsyncLocalStorage'
    const p = m.inProcess
    return [
      `Measured in this run on ${m.runtime === 'node' ? 'Node with @hono/node-server' : 'Bun'}, under load: the chain adds ${m.added.toFixed(1)} µs of server CPU per request over bare Hono and keeps ${(m.ratio * 100).toFixed(0)}% of its req/s. The floor rows beside it: an async middleware that reads X-Tenant-ID and sets one response header before \`await next()\` adds ${m.floor.toFixed(1)} µs; sending the chain's four response headers instead of that one (${m.runtime === 'node' ? 'set on the Node response, as the chain sends them' : 'through c.header()'}) costs ${more(m.headers, 1)}; running the handler in the tenant context (${contextCost}) costs ${more(m.context, 1)}; the floor with both, the chain's whole I/O, adds ${m.io.toFixed(1)} µs, so the chain's own work under load comes to ${(m.added - m.io).toFixed(1)} µs. hono-rate-limiter adds ${m.peer.toFixed(1)} µs, and the chain without the tenant context (\`resolver: { context: false }\`) ${m.withoutContext.toFixed(1)} µs. Under load these differences move by several µs from run to run on a shared machine.`,
      `In process (the steady table), the chain adds ${p.added.toFixed(2)} µs per request over bare Hono. The floor with the same I/O (four headers and the tenant context) takes ${p.io.toFixed(2)} µs of it; apart, ${p.floor.toFixed(2)} µs for the floor itself (one header through \`c.header()\`), ${more(p.headers, 2)} for the four long header values instead of that one (${m.runtime === 'node' ? 'set on the Node response, as the chain sends them; through c.header() they cost about 5 µs more, as the Headers class checks every byte of every value in JavaScript and the server copies them out again, which one header through c.header() already sets off' : 'through c.header(); the Headers class checks every byte of every value'}) and ${more(p.context, 2)} for the tenant context. The rest, ${(p.added - p.io).toFixed(2)} µs, is the chain's own work: four request header reads (X-Tenant-ID, X-Model, X-Tool, X-Token-Count), the policy, token-bucket and quota decisions, formatting the header values (quotas of 10^12), ${m.runtime === 'node' ? "merging them with the handler's own as the head is written" : 'checking after the handler that the response carries the headers'}, and the garbage of all of it.`,
      `The control row (the floor with the chain's I/O plus a fixed loop in a synchronous middleware of its own, the same instructions every request, no allocation; in an async function V8 compiles that loop about 4 times slower, which is why it is kept out of one) shows what work added in process costs under load on this host: the loop takes ${m.work.inProcess.toFixed(2)} µs per request in process and adds ${m.work.underLoad.toFixed(1)} µs of CPU per request under load, ${(m.work.underLoad / m.work.inProcess).toFixed(1)} times as much. At that rate the chain's own work in process, ${(p.added - p.io).toFixed(2)} µs, would come to ${((p.added - p.io) * (m.work.underLoad / m.work.inProcess)).toFixed(1)} µs under load; it measured ${(m.added - m.io).toFixed(1)} µs (the chain also touches more memory than the loop, which the loop's rate does not include).`,
    ].join(' ')
  },
  memory: [
    'The release half holds: once the windows pass, the heap returns to within a few hundred KB of the baseline at every size (collector noise); ExpiringMap copies its heap array once it has fallen to a quarter of its peak, because V8 never shrinks an array on pop().',
    'Bytes per tenant: each active tenant is one Map entry with its key string and one flat entry object holding the counts inline, the window start as whole minutes and the expiry as whole seconds since a base (small integers, so V8 does not box them), plus its expiry-heap slot. For context, hono-rate-limiter holds about 245 B per key and rate-limiter-flexible about 470 B, for a single counter each.',
  ].join(' '),
}
