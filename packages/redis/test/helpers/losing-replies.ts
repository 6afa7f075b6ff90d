import type { RedisScriptClient } from '../../src/client'

/** A consume whose command runs on Redis and whose reply is then lost, when the test says so. */
export interface LostReply {
  /** Resolves once Redis has run the command. */
  ran: Promise<void>
  /** Fails the call on its caller, as a client does whose connection dropped before the reply. */
  lose(): void
}

/** A quota consume: the op is its second argument. */
const quotaConsume = (args: string[]) => args[1] === 'consume'

/**
 * Wraps a client so that the next command it sends that `which` picks (by its ARGV; by default a
 * quota consume) loses its reply (see {@link LostReply}).
 */
export function losingReplies(
  inner: RedisScriptClient,
): RedisScriptClient & { loseNext(which?: (args: string[]) => boolean): LostReply } {
  let next: { ran: () => void; lost: Promise<void>; which: (args: string[]) => boolean } | undefined
  const wrap =
    <A extends unknown[]>(run: (...args: A) => Promise<unknown>, argsAt: number) =>
    async (...call: A) => {
      const reply = await run(...call)
      const lost = next
      if (lost === undefined || !lost.which(call[argsAt] as string[])) return reply
      next = undefined
      lost.ran()
      await lost.lost
      throw new Error('connection closed before the reply')
    }
  return {
    evalScriptSha: wrap(
      (sha: string, keys: string[], args: string[]) => inner.evalScriptSha(sha, keys, args),
      2,
    ),
    evalScript: wrap((src: string, keys: string[], args: string[]) => inner.evalScript(src, keys, args), 2),
    loseNext(which = quotaConsume) {
      let ran!: () => void
      let lose!: () => void
      const lost = new Promise<void>((resolve) => (lose = resolve))
      const done = new Promise<void>((resolve) => (ran = resolve))
      next = { ran, lost, which }
      return { ran: done, lose }
    },
  }
}
