import { isDeepStrictEqual } from 'node:util'

/** Thrown when compared variants disagree: the run stops, nothing is written. */
export class DecisionMismatchError extends Error {
  override name = 'DecisionMismatchError'
}

/** Every same-decision check that passed in this run, for the report. */
export const passedChecks: string[] = []

/**
 * Asserts that every variant produced the same outcome for the same input (for example the
 * number of admitted requests out of 150 against a limit of 100), and that it is `expected`
 * when given. Throws {@link DecisionMismatchError} naming each variant's outcome otherwise.
 *
 * @example
 * ```ts
 * sameDecisions('fixed window, limit 100, 150 attempts', { ours: 100, rlf: 100 }, 100)
 * ```
 */
export function sameDecisions(what: string, outcomes: Record<string, unknown>, expected?: unknown): void {
  const entries = Object.entries(outcomes)
  const reference = expected === undefined ? entries[0]?.[1] : expected
  const wrong = entries.filter(([, outcome]) => !isDeepStrictEqual(outcome, reference))
  if (wrong.length > 0) {
    const detail = entries.map(([name, outcome]) => `  ${name}: ${JSON.stringify(outcome)}`).join('\n')
    throw new DecisionMismatchError(
      `same-decision check failed: ${what}\nexpected ${JSON.stringify(reference)}, got\n${detail}`,
    )
  }
  passedChecks.push(`${what}: ${entries.map(([name]) => name).join(' = ')} (${JSON.stringify(reference)})`)
}

/** Counts how many of `attempts` sequential calls `admit` lets through. */
export async function countAdmitted(attempts: number, admit: (i: number) => Promise<boolean> | boolean) {
  let admitted = 0
  for (let i = 0; i < attempts; i++) if (await admit(i)) admitted++
  return admitted
}
