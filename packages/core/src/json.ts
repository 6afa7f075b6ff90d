import type { z } from 'zod'

/** A value that survives `JSON.stringify` / `JSON.parse` unchanged. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue }

/** Deepest nesting {@link findNonJsonValue} accepts, so a hostile value cannot exhaust the stack. */
export const MAX_JSON_DEPTH = 64

/** Where a value stops being plain JSON data, and why. */
export interface NonJsonValue {
  path: (string | number)[]
  message: string
}

// An unpaired surrogate: a high one not followed by a low one, or a low one not preceded by a high one.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/**
 * Why `text` would not come back from a store exactly as written, or `undefined` when it would.
 * U+0000 is refused by Postgres `text` and `jsonb`; an unpaired UTF-16 surrogate is written as
 * U+FFFD by every UTF-8 client (Redis, Postgres), so two different strings would become one.
 * Validation refuses both up front, so every store answers the same, and with a 400 rather than a
 * backend error.
 *
 * @example
 * ```ts
 * storableTextProblem('acme') // undefined
 * storableTextProblem('a\u0000b') // 'contains U+0000, which Postgres cannot store'
 * ```
 */
export function storableTextProblem(text: string): string | undefined {
  if (text.includes('\u0000')) return 'contains U+0000, which Postgres cannot store'
  if (LONE_SURROGATE.test(text)) return 'contains an unpaired UTF-16 surrogate, which UTF-8 cannot store'
  return undefined
}

/**
 * {@link storableTextProblem} as a zod refinement: one issue with its reason when `text` would not
 * come back from a store as written.
 *
 * @example
 * ```ts
 * const cursor = z.string().max(255).superRefine(storableText)
 * ```
 */
export function storableText(text: string, ctx: z.RefinementCtx): void {
  const problem = storableTextProblem(text)
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem })
}

function isPlainObject(value: object): value is Record<string, unknown> {
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

// A getter is not data: what it answers when checked need not be what it answers when the value is
// copied or written, so a value could pass the check and be stored as something else.
const ACCESSOR = 'a getter or setter is not JSON data'

function isAccessor(value: object, key: string | number): boolean {
  const descriptor = Object.getOwnPropertyDescriptor(value, key)
  return descriptor !== undefined && !('value' in descriptor)
}

/**
 * Finds the first part of `value` that is not plain JSON data: `undefined`, functions, symbols,
 * bigints, non-finite numbers, `-0`, strings or keys {@link storableTextProblem} refuses, class instances (`Date`, `Map`, ...), sparse arrays, getters and setters, symbol keys,
 * circular references, or nesting deeper than {@link MAX_JSON_DEPTH}. Returns `undefined` when
 * `value` is plain JSON.
 *
 * Stores disagree on everything else (a database stores a `Date` as a string, memory keeps the
 * object), so the schemas refuse it up front and every store returns what it was given.
 *
 * @example
 * ```ts
 * findNonJsonValue({ a: [1, new Date()] }) // { path: ['a', 1], message: 'Date is not JSON data' }
 * ```
 */
export function findNonJsonValue(value: unknown): NonJsonValue | undefined {
  const ancestors: object[] = []
  const path: (string | number)[] = []
  const fail = (message: string): NonJsonValue => ({ path: [...path], message })

  const visit = (v: unknown): NonJsonValue | undefined => {
    switch (typeof v) {
      case 'string': {
        const problem = storableTextProblem(v)
        return problem === undefined ? undefined : fail(`string ${problem}`)
      }
      case 'boolean':
        return undefined
      case 'number':
        if (Object.is(v, -0)) return fail('-0 is not JSON data (JSON writes it as 0)')
        return Number.isFinite(v) ? undefined : fail(`${v} is not JSON data`)
      case 'object':
        break
      default:
        return fail(`${typeof v} is not JSON data`)
    }
    if (v === null) return undefined
    if (ancestors.includes(v)) return fail('circular reference')
    if (ancestors.length >= MAX_JSON_DEPTH) return fail(`nested deeper than ${MAX_JSON_DEPTH} levels`)
    if (!Array.isArray(v) && !isPlainObject(v)) {
      return fail(`${v.constructor?.name ?? 'object'} is not JSON data`)
    }
    if (Object.getOwnPropertySymbols(v).length > 0) return fail('symbol keys are not JSON data')
    // What JSON.stringify would drop without a word: an array's named properties, an object's
    // non-enumerable ones (an array's own names are its indices, fewer with holes, and `length`).
    const names = Object.getOwnPropertyNames(v).length
    if (Array.isArray(v) ? names > v.length + 1 : names !== Object.keys(v).length) {
      return fail(
        Array.isArray(v)
          ? 'an array with named properties is not JSON data'
          : 'non-enumerable properties are not JSON data',
      )
    }
    ancestors.push(v)
    try {
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) {
          path.push(i)
          const problem = !(i in v)
            ? fail('sparse array hole is not JSON data')
            : isAccessor(v, i)
              ? fail(ACCESSOR)
              : visit(v[i])
          path.pop()
          if (problem) return problem
        }
      } else {
        for (const key of Object.keys(v)) {
          path.push(key)
          const keyProblem = storableTextProblem(key)
          const problem =
            keyProblem !== undefined
              ? fail(`key ${keyProblem}`)
              : isAccessor(v, key)
                ? fail(ACCESSOR)
                : visit(v[key])
          path.pop()
          if (problem) return problem
        }
      }
      return undefined
    } finally {
      ancestors.pop()
    }
  }
  return visit(value)
}

/**
 * A deep copy of plain JSON data (see {@link findNonJsonValue}), so a caller holding the copy
 * cannot change the original. `structuredClone` is not part of the ES library core targets.
 *
 * @example
 * ```ts
 * const copy = copyJson({ a: [1, { b: 2 }] })
 * copy.a.push(3) // the original is unchanged
 * ```
 */
export function copyJson<T>(value: T): T {
  if (typeof value !== 'object' || value === null) return value
  if (Array.isArray(value)) return value.map(copyJson) as T
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(value)) {
    const copy = copyJson((value as Record<string, unknown>)[key])
    // Assignment keeps the copy a fast-properties object (defineProperty on every key made config
    // lookups several times slower, see BENCHMARKS.md); only a "__proto__" key needs defineProperty,
    // so that it stays data and never switches the prototype.
    if (key === '__proto__') {
      Object.defineProperty(out, key, { value: copy, enumerable: true, writable: true, configurable: true })
    } else {
      out[key] = copy
    }
  }
  return out as T
}

/**
 * Freezes plain JSON data (see {@link findNonJsonValue}) and everything inside it, and returns it.
 * Stores hand out frozen configs and records so that one object can be shared by every caller
 * instead of copied per call: a caller that tries to change one gets a `TypeError` (in strict
 * code) rather than silently changing what every other caller sees.
 *
 * @example
 * ```ts
 * const config = deepFreeze(copyJson(parsed))
 * config.policy.allowedModels.push('x') // TypeError: Cannot add property 1, object is not extensible
 * ```
 */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v)
    Object.freeze(value)
  }
  return value
}

/**
 * Whether `value` and every object inside it are frozen, as {@link deepFreeze} leaves them (a
 * primitive is). What is derived from such a value can be cached for as long as the object lives:
 * the quota engines key their compiled limits on it. Nesting deeper than {@link MAX_JSON_DEPTH}
 * counts as not frozen, so a hostile value cannot exhaust the stack.
 *
 * @example
 * ```ts
 * isDeeplyFrozen(deepFreeze({ limits: [{ window: 'minute', requests: 10 }] })) // true
 * isDeeplyFrozen(Object.freeze({ limits: [] })) // false: the array is not frozen
 * ```
 */
export function isDeeplyFrozen(value: unknown): boolean {
  return frozenFrom(value, 0)
}

function frozenFrom(value: unknown, depth: number): boolean {
  if (typeof value !== 'object' || value === null) return true
  if (depth > MAX_JSON_DEPTH || !Object.isFrozen(value)) return false
  for (const child of Object.values(value)) if (!frozenFrom(child, depth + 1)) return false
  return true
}
