import { createHash } from 'node:crypto'
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
  passedChecks.push(`${what}: ${entries.map(([name]) => name).join(' = ')} (${describe(reference)})`)
}

/** A short description of an outcome for the report: the value itself, or its size and digest. */
function describe(outcome: unknown): string {
  const json = JSON.stringify(outcome)
  if (json.length <= 80) return json
  const digest = createHash('sha256').update(json).digest('hex').slice(0, 12)
  const size = Array.isArray(outcome) ? `${outcome.length} values` : `${json.length} bytes of JSON`
  return `${size}, sha256 ${digest}`
}

/** Counts how many of `attempts` sequential calls `admit` lets through. */
export async function countAdmitted(attempts: number, admit: (i: number) => Promise<boolean> | boolean) {
  let admitted = 0
  for (let i = 0; i < attempts; i++) if (await admit(i)) admitted++
  return admitted
}
