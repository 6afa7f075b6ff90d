/**
 * What limits each target when it is missed, from profiling the hot paths (`node --cpu-prof`) on
 * this machine. Printed in BENCHMARKS.md next to a missed target only; the numbers that vary per
 * run are in the tables, these texts describe the mechanisms.
 */
export const LIMITS = {
  consume: [
    'A decision of the quota manager does much more than a rate-limiter increment, and the profile (static provider, so no config copy) has no single hot spot to fix: the time is spread over validating the tenant id (a regex) and the cost, awaiting the provider, re-validating the limits it returned (`effectiveLimits`: a hand-written provider bypasses the zod schema, and a negative or fractional limit must never turn into arithmetic), the calendar window of each limit, the decision itself (per-window usage, `remaining`/`limit` of the tightest window, `resetAt`), a fresh state object, its expiry for the sweep heap, and the garbage all of that leaves (about 8% in GC).',
    "RateLimiterMemory keeps one counter per key whose window starts at the key's first hit, and answers with one small object; hono-rate-limiter's store is a synchronous Map increment.",
    "With InMemoryConfigManager as the provider each call also deep-copies the tenant's QuotaConfig (the store contract: callers may mutate what they get). That copy was 29% of the profile before this work; `copyJson` in @tenant/core now assigns keys instead of calling `Object.defineProperty` for each (4-6x faster copies), which left the engine itself as the cost.",
    'Three times the throughput of RateLimiterMemory would need a different product: a synchronous call, one fixed limit per limiter instead of per-tenant configs, a bare boolean instead of a decision. The four-window table is the like-for-like comparison: one call checks and charges four windows all-or-nothing, where rate-limiter-flexible needs a RateLimiterUnion of four limiters.',
  ].join(' '),
  configLookup: [
    'A cached hit is an async call that returns a deep copy of the whole TenantConfig (about thirty values), because every ConfigManager returns copies that callers may mutate; a raw lru-cache get is one hash lookup that hands out the stored object. The promise alone costs several raw gets (the "lru-cache get in an async function" row), and the copy dominates the rest.',
    'The copy was 4-6x slower before this work (`Object.defineProperty` per key); the faster `copyJson` in @tenant/core is what remains.',
    'Within 2x of a raw get would mean a synchronous lookup returning shared, frozen configs: a contract change for every ConfigManager, not a hot-path fix.',
    'A negative-cache hit costs several times a positive one: "not found" is reported by throwing `TenantNotFoundError`, and constructing an Error captures a stack trace.',
  ].join(' '),
  redis: [
    'The round-trip half holds: one EVALSHA per decision, counted by the client and by the server.',
    "The throughput half does not: the Lua script does more per decision than RateLimiterRedis's SET NX + INCRBY + PTTL. It reads the tenant's hash (HGETALL), recomputes the calendar windows in Lua, rewrites the hash (DEL + HSET) with its expiry (PEXPIRE) and returns the previous state; the client then decodes that state and re-runs core's algorithm to build the full decision (remaining, resetAt, per-window usage, exact retryAfterMs), so Redis and TypeScript share one arithmetic and the manager can check that both agree.",
    "Pipelined (no network wait), the script costs about twice RateLimiterRedis's on the server, and the client side adds the config copy, argument encoding, decoding and the full decision. On two cores shared by Redis, the client and everything else, both show up in throughput, by how much varies from run to run with the machine's load (compare the two concurrency tables). hono-rate-limiter's script is INCR + PTTL (+ PEXPIRE on a new key).",
    'Closing the gap means a lighter script (an HINCRBY fast path when every current window already exists, returning only the counts) and a leaner decision on the client: a change to @tenant/redis and its Lua/core conformance tests, not a small fix.',
  ].join(' '),
  chain: [
    "The chain is Fetch-API middleware (Request -> Response, the same code on Node, Bun, Deno and Workers) hosted in Hono through `fromFetch`, and on @hono/node-server that forfeits the adapter's fast paths: the resolver reads `c.req.raw`, which materialises a WHATWG Request for every request; the rate-limit and quota stages add six response headers through WHATWG `Headers` (undici's header validation shows in the profile); each stage reads the tenant's config from its provider and gets a deep copy (four copies per request); the tenant context runs the rest of the request in AsyncLocalStorage (promise hooks on every await); and each decision builds event objects for the hooks. Garbage collection is about a tenth of the server profile.",
    'The stage-by-stage table shows where it goes: the largest single step is the first stage (the Fetch adapter, the Request, the existence check with its config copy, and the tenant context); each further stage adds its config lookup, its decision and, for rate limit and quota, its headers. No stage stands out in the profile; it is the sum of many small costs per request.',
    "hono-rate-limiter, by comparison, increments a Map and sets its headers with `c.header()` before the response exists. Keeping 90% of bare Hono's req/s leaves the whole chain about a tenth of bare Hono's own cost per request, less than one config copy: out of reach for four stages with per-tenant configs. What would move it most (package changes, not done here): a Hono-native path that reads `c.req.header()` and sets headers with `c.header()`, and one config read per request shared by the stages.",
  ].join(' '),
  memory: [
    "The release half holds: once the windows pass, the heap returns to within a few hundred KB of the baseline at every size (collector noise). Before this work a million expired tenants left about 10 MB behind, the expiry heap's array, because V8 never shrinks an array's backing store on pop(); ExpiringMap in @tenant/core now copies the array once it has fallen to a quarter of its peak.",
    'The bytes-per-tenant half does not: about 320 bytes per active tenant on Node 20 (64-bit, no pointer compression). Each tenant costs a Map entry and its key string (~70 B), the expiry-heap slot object (~64 B) with two boxed timestamps (2 x 16 B) and its array slot, and the state: a per-tenant object holding a counter object `{ start, requests, tokens }` whose `start` is boxed too (~120 B).',
    'For context, hono-rate-limiter holds about 245 B per key and rate-limiter-flexible about 470 B, for a single counter each. Under 200 B needs a flatter layout (state and expiry in one object, window starts as small integers, or typed-array columns): a rewrite of the in-memory engine, not a small fix.',
  ].join(' '),
}
