/**
 * A short, safe description of a value for an error message: a number as written, a string
 * quoted (first 40 characters), anything else by its type. Never calls the value's own
 * `toString` (an object without a prototype has none; a hostile one could throw or lie).
 */
export function describeValue(value: unknown): string {
  if (typeof value === 'number') return String(value)
  if (typeof value === 'string') return `the string ${JSON.stringify(value.slice(0, 40))}`
  return value === null ? 'null' : typeof value
}
