import type { RedisScriptClient } from '../../src/client'

/** A consume whose command runs on Redis and whose reply is then lost, when the test says so. */
export interface LostReply {
  /** Resolves once Redis has run the command. */
  ran: Promise<void>
  /** Fails the call on its caller, as a client does whose connection dropped before the reply. */
  lose(): void
}

/** Wraps a client so that the next quota consume it sends loses its reply (see {@link LostReply}). */
export function losingReplies(inner: RedisScriptClient): RedisScriptClient & { loseNext(): LostReply } {
  let next: { ran: () => void; lost: Promise<void> } | undefined
  const wrap =
    <A extends unknown[]>(run: (...args: A) => Promise<unknown>, argsAt: number) =>
    async (...call: A) => {
      const reply = await run(...call)
      const lost = next
      if (lost === undefined || (call[argsAt] as string[])[1] !== 'consume') return reply
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
    loseNext() {
      let ran!: () => void
      let lose!: () => void
      const lost = new Promise<void>((resolve) => (lose = resolve))
      const done = new Promise<void>((resolve) => (ran = resolve))
      next = { ran, lost }
      return { ran: done, lose }
    },
  }
}
