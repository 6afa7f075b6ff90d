// Internal to the suites (not re-exported from the testing entry).
let runCounter = 0

/**
 * A prefix unique per test and per process, starting with `tag`: a shared database may hold other
 * runs' rows, so every test creates ids under its own prefix and only ever looks at ids with it.
 */
export function uniquePrefix(tag: string): string {
  runCounter += 1
  return `${tag}${Math.random().toString(36).slice(2, 10).padEnd(8, '0')}${runCounter.toString(36)}-`
}
