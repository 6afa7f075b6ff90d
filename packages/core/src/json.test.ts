import { describe, expect, it } from 'vitest'
import {
  copyJson,
  deepFreeze,
  findNonJsonValue,
  isDeeplyFrozen,
  MAX_JSON_DEPTH,
  storableTextProblem,
} from './json'

describe('storableTextProblem', () => {
  it('accepts text every store keeps as written, surrogate pairs included', () => {
    for (const text of ['', 'acme', 'ü🚀', '\uD83D\uDE80x', 'tab\tnew\nline'])
      expect(storableTextProblem(text)).toBeUndefined()
  })

  it('refuses U+0000 and unpaired surrogates, wherever they are', () => {
    for (const text of ['\u0000', 'a\u0000', '\uD800', 'a\uD800b', '\uDC00', 'x\uDC00\uD800', '🚀\uDE00']) {
      expect(storableTextProblem(text)).toMatch(/U\+0000|surrogate/)
    }
  })
})

describe('findNonJsonValue', () => {
  it('accepts plain JSON data', () => {
    const values: unknown[] = [
      null,
      true,
      0,
      -1.5,
      '',
      'ü🚀',
      [],
      {},
      [1, 'a', null, { b: [{}] }],
      Object.create(null),
    ]
    for (const value of values) expect(findNonJsonValue(value)).toBeUndefined()
  })

  it('reports the path and kind of the first non-JSON part', () => {
    class Point {}
    const cases: [unknown, (string | number)[], string][] = [
      [undefined, [], 'undefined is not JSON data'],
      [{ a: undefined }, ['a'], 'undefined is not JSON data'],
      [{ a: [1, () => 1] }, ['a', 1], 'function is not JSON data'],
      [{ a: Symbol('s') }, ['a'], 'symbol is not JSON data'],
      [{ a: 1n }, ['a'], 'bigint is not JSON data'],
      [{ a: Number.NaN }, ['a'], 'NaN is not JSON data'],
      [{ a: Number.NEGATIVE_INFINITY }, ['a'], '-Infinity is not JSON data'],
      [{ a: new Date(0) }, ['a'], 'Date is not JSON data'],
      [{ a: new Point() }, ['a'], 'Point is not JSON data'],
      [{ a: new Set() }, ['a'], 'Set is not JSON data'],
      [{ a: /x/ }, ['a'], 'RegExp is not JSON data'],
      [{ a: new Uint8Array(1) }, ['a'], 'Uint8Array is not JSON data'],
      [{ a: { [Symbol('k')]: 1 } }, ['a'], 'symbol keys are not JSON data'],
      [{ a: -0 }, ['a'], '-0 is not JSON data (JSON writes it as 0)'],
      [{ a: ['ok', 'x\u0000'] }, ['a', 1], 'string contains U+0000, which Postgres cannot store'],
      [{ 'k\uD800': 1 }, ['k\uD800'], 'key contains an unpaired UTF-16 surrogate, which UTF-8 cannot store'],
      // biome-ignore lint/suspicious/noSparseArray: the case under test
      [{ a: [1, , 3] }, ['a', 1], 'sparse array hole is not JSON data'],
      // What JSON.stringify drops without a word: an array's named properties, hidden properties.
      [{ a: Object.assign([1, 2], { extra: 3 }) }, ['a'], 'an array with named properties is not JSON data'],
      [
        { a: Object.defineProperty({ x: 1 }, 'hidden', { value: 2, enumerable: false }) },
        ['a'],
        'non-enumerable properties are not JSON data',
      ],
    ]
    for (const [value, path, message] of cases) expect(findNonJsonValue(value)).toEqual({ path, message })
  })

  it('refuses getters and setters, which could answer one value when checked and another when stored', () => {
    let reads = 0
    const nested = {
      get x(): unknown {
        reads += 1
        return reads === 1 ? 'ok' : new Date(0)
      },
    }
    expect(findNonJsonValue({ a: nested })).toMatchObject({ path: ['a', 'x'], message: /getter or setter/ })
    expect(reads).toBe(0)
    const list = [1]
    Object.defineProperty(list, 0, { get: () => 1, enumerable: true })
    expect(findNonJsonValue({ list })).toMatchObject({ path: ['list', 0] })
  })

  it('reports an object without a constructor by kind', () => {
    const odd = Object.create(Object.create(null))
    expect(findNonJsonValue({ odd })).toEqual({ path: ['odd'], message: 'object is not JSON data' })
  })

  it('detects cycles without recursing forever, but allows shared references', () => {
    const cyclic: Record<string, unknown> = { a: { b: [] } }
    ;((cyclic.a as { b: unknown[] }).b as unknown[]).push(cyclic)
    expect(findNonJsonValue(cyclic)).toEqual({ path: ['a', 'b', 0], message: 'circular reference' })
    const shared = { x: 1 }
    expect(findNonJsonValue({ a: shared, b: [shared, shared] })).toBeUndefined()
  })

  it('limits nesting depth so a hostile value cannot exhaust the stack', () => {
    const nest = (depth: number) => {
      let value: unknown = 1
      for (let i = 0; i < depth; i++) value = [value]
      return value
    }
    expect(findNonJsonValue(nest(MAX_JSON_DEPTH))).toBeUndefined()
    expect(findNonJsonValue(nest(MAX_JSON_DEPTH + 1))?.message).toBe(
      `nested deeper than ${MAX_JSON_DEPTH} levels`,
    )
    expect(findNonJsonValue(nest(100_000))?.path).toHaveLength(MAX_JSON_DEPTH)
  })
})

describe('copyJson', () => {
  it('makes a deep copy that shares nothing with the original', () => {
    const original = { a: [1, { b: 'c' }], d: { e: null }, f: true }
    const copy = copyJson(original)
    expect(copy).toEqual(original)
    expect(copy).not.toBe(original)
    expect(copy.a).not.toBe(original.a)
    expect(copy.a[1]).not.toBe(original.a[1])
    ;(copy.a[1] as { b: string }).b = 'changed'
    expect(original.a[1]).toEqual({ b: 'c' })
  })

  it('returns primitives as they are', () => {
    for (const value of [null, 0, 'x', false]) expect(copyJson(value)).toBe(value)
  })

  it('keeps a "__proto__" key as data and never changes the prototype', () => {
    const parsed = JSON.parse('{"__proto__": {"polluted": true}, "a": 1}')
    const copy = copyJson(parsed)
    expect(Object.getPrototypeOf(copy)).toBe(Object.prototype)
    expect(Object.keys(copy)).toEqual(['__proto__', 'a'])
    expect((copy as { polluted?: boolean }).polluted).toBeUndefined()
    expect(({} as { polluted?: boolean }).polluted).toBeUndefined()
  })
})

describe('isDeeplyFrozen', () => {
  it('is true only when every object inside is frozen', () => {
    for (const value of [null, 0, 'x', true]) expect(isDeeplyFrozen(value)).toBe(true)
    expect(isDeeplyFrozen(deepFreeze({ limits: [{ window: 'minute', requests: 1 }] }))).toBe(true)
    expect(isDeeplyFrozen({ limits: [] })).toBe(false)
    expect(isDeeplyFrozen(Object.freeze({ limits: [] }))).toBe(false)
    expect(isDeeplyFrozen(Object.freeze({ limits: Object.freeze([{ window: 'minute' }]) }))).toBe(false)
  })

  it('gives up below MAX_JSON_DEPTH levels instead of recursing without end', () => {
    let deep: unknown = 1
    for (let i = 0; i <= MAX_JSON_DEPTH + 1; i++) deep = Object.freeze([deep])
    expect(isDeeplyFrozen(deep)).toBe(false)
    const cycle: { self?: unknown } = {}
    cycle.self = cycle
    expect(isDeeplyFrozen(Object.freeze(cycle))).toBe(false)
  })
})
