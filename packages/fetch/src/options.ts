import { assertMethods, type Clock, invalidOption, MAX_TIMER_MS } from '@tenant/core'

function describe(value: unknown): string {
  return value === null ? 'null' : typeof value === 'string' ? JSON.stringify(value) : typeof value
}

/** Validates the options every stage shares. */
export function checkStageOptions(
  name: string,
  options: { failOpen?: unknown; timeoutMs?: unknown; clock?: Clock },
): void {
  if (typeof options !== 'object' || options === null) throw invalidOption(name, 'options must be an object')
  if (options.failOpen !== undefined && typeof options.failOpen !== 'boolean') {
    throw invalidOption(`${name}.failOpen`, `must be a boolean, got ${describe(options.failOpen)}`)
  }
  const { timeoutMs } = options
  if (
    timeoutMs !== undefined &&
    (typeof timeoutMs !== 'number' || !(timeoutMs > 0) || !(timeoutMs <= MAX_TIMER_MS))
  ) {
    // A longer delay would fire after about 1 ms (see MAX_TIMER_MS): every call would time out.
    throw invalidOption(
      `${name}.timeoutMs`,
      `must be a number > 0 and at most ${MAX_TIMER_MS}, got ${describe(timeoutMs)}`,
    )
  }
  if (options.clock !== undefined) assertMethods(options.clock, `${name}.clock`, ['now'])
}

/** Throws unless `value` is a function or undefined. */
export function checkFunction(where: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'function') {
    throw invalidOption(where, `must be a function, got ${describe(value)}`)
  }
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/** Returns `value` if it is a valid HTTP header (or cookie) name; throws otherwise. */
export function checkToken(where: string, value: unknown, what = 'an HTTP header name'): string {
  if (typeof value !== 'string' || !TOKEN.test(value)) {
    throw invalidOption(where, `must be ${what}, got ${describe(value)}`)
  }
  return value
}

// Re-exported so the stages take every option helper from one module.
export { assertMethods, invalidOption }
