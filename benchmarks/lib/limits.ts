/**
 * What limits each target when it is missed, from profiling the hot paths (`node --cpu-prof`) on
 * this machine. Printed in BENCHMARKS.md next to a missed target only; the numbers that vary per
 * run are in the tables, these texts describe the mechanisms.
 */
export const LIMITS = {
  consume: [
    'The engine was profiled and rebuilt for this target: limits are validated once per frozen config (a WeakMap keyed by the config object), calendar bounds are cached per window kind until the window ends, ids already held skip the id regex, an admission is charged in place in a flat per-tenant entry, and config stores hand out one frozen config instead of a deep copy per read. On this machine that took a one-window consume with InMemoryConfigManager configs from 2.27 µs to about 0.5 µs per call, and a four-window one from 5.1 µs to about 1.1 µs, where it now has twice the throughput of a RateLimiterUnion of four limiters.',
    "What remains per call is what the API promises: an async call and its await, the clock read, the cost check, and a full decision (`allowed`, `remaining` and `limit` of the tightest window, `resetAt`, `retryAfterMs`, and a usage record per window, about eight small objects). RateLimiterMemory answers one counter whose window starts at the key's first hit with one small object; hono-rate-limiter's store is a synchronous Map increment.",
    'Three times RateLimiterMemory would leave about a third of its time per call, less than the promise and the decision objects alone: it needs a different product (a synchronous call, a bare boolean, one fixed limit per limiter instead of per-tenant calendar windows), not a faster engine.',
  ].join(' '),
  configLookup: [
    'A cached hit is now one LRU lookup, a freshness check and an already resolved promise of the stored, deeply frozen config (no copy, no id regex, no async frame). Its cost is the promise: it matches the "lru-cache get in an async function" row, the floor for any lookup behind the Promise-returning ConfigManager interface that every store and stage shares.',
    'Within 2x of a raw synchronous get would need a synchronous lookup API; a request path awaits its stores anyway, so that would move the promise, not remove it.',
    'A negative-cache hit costs several times a positive one: "not found" is reported by rejecting with a `TenantNotFoundError`, and constructing an Error captures a stack trace.',
  ].join(' '),
  redis: [
    'The round-trip half holds: one EVALSHA per decision, counted by the client and by the server.',
    'The throughput half does not, though the gap closed: the script now reads only the configured windows (HMGET) and, when every window is current, overwrites its counters in place (one HSET, no DEL or PEXPIRE) and replies only the counts as integers; the manager caches the limits and script arguments per frozen config.',
    "What remains is the semantics: the script reads Redis's clock (TIME, so processes with skewed clocks agree), finds the calendar window of each limit, and reads before it writes, to refuse without charging when any window is full. That costs about 6.5 µs of server time per call against RateLimiterRedis's 3.5 µs for SET NX + INCRBY + PTTL, whose window starts at a key's first hit and needs no clock; a hand-minimised one-window script with the same semantics still took 5.8 µs. At concurrency 64 the Redis server is the bottleneck, so its time per call decides throughput.",
  ].join(' '),
  chain: [
    "The chain is Fetch-API middleware (Request -> Response, the same code on Node, Bun, Deno and Workers) hosted in Hono through `fromFetch`. This work removed what was ours to remove: config stores hand out frozen configs instead of a deep copy per stage, the stages build event objects only when a hook listens, read headers without awaiting, chain the promises they get instead of wrapping them, and tenancy() writes all stages' response headers once, merged, instead of per stage.",
    "What remains is mostly the price of any middleware on @hono/node-server. Bare Hono answers its route synchronously from the adapter's fast path; the first async middleware, the first read of a request header (which builds a WHATWG Headers object) and the first response header (validated WHATWG Headers, then converted back for node:http) each leave that path. hono-rate-limiter, a single Map increment, pays those too and keeps only about half of bare Hono's req/s in the same run.",
    "On top of that the chain runs four stages, each an async store call with a per-tenant config and a full decision, the tenant context in AsyncLocalStorage (whose promise hooks on Node 20 run for every promise), the IETF RateLimit fields of two stages, and the garbage of all of it. 90% of bare Hono would leave the whole chain a tenth of a bare route's cost, less than hono-rate-limiter alone costs: out of reach for any tenancy chain on this adapter.",
  ].join(' '),
  memory: [
    'The release half holds: once the windows pass, the heap returns to within a few hundred KB of the baseline at every size (collector noise); ExpiringMap copies its heap array once it has fallen to a quarter of its peak, because V8 never shrinks an array on pop().',
    'Bytes per tenant: each active tenant is one Map entry with its key string and one flat entry object holding the counts inline, the window start as whole minutes and the expiry as whole seconds since a base (small integers, so V8 does not box them), plus its expiry-heap slot. For context, hono-rate-limiter holds about 245 B per key and rate-limiter-flexible about 470 B, for a single counter each.',
  ].join(' '),
}
