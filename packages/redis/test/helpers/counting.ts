import type { RedisScriptClient } from '../../src/client'

/**
 * Wraps a client to count what it sends: `calls` the EVALSHAs, `evals` the EVALs (a script the
 * server did not have yet). Their sum is the round trips of decisions.
 */
export function counting(inner: RedisScriptClient): RedisScriptClient & { calls: number; evals: number } {
  const client = {
    calls: 0,
    evals: 0,
    evalScriptSha: (sha: string, keys: string[], args: string[]) => {
      client.calls++
      return inner.evalScriptSha(sha, keys, args)
    },
    evalScript: (src: string, keys: string[], args: string[]) => {
      client.evals++
      return inner.evalScript(src, keys, args)
    },
  }
  return client
}
