import { describe, expect, it } from 'vitest'
import { costAmount, normalizeCost, normalizeTokenDelta } from './cost'
import { InvalidCostError, isTenantError } from './errors'
import type { QuotaCost } from './quota'

function thrown(fn: () => unknown): InvalidCostError {
  try {
    fn()
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidCostError)
    expect(isTenantError(error)).toBe(true)
    return error as InvalidCostError
  }
  throw new Error('expected InvalidCostError')
}

describe('normalizeCost', () => {
  it('fills in one request and no tokens', () => {
    expect(normalizeCost()).toEqual({ requests: 1, tokens: 0 })
    expect(normalizeCost({})).toEqual({ requests: 1, tokens: 0 })
    expect(normalizeCost({ tokens: 250 })).toEqual({ requests: 1, tokens: 250 })
    expect(normalizeCost({ requests: 0, tokens: 0 })).toEqual({ requests: 0, tokens: 0 })
    expect(normalizeCost({ requests: undefined, tokens: Number.MAX_SAFE_INTEGER })).toEqual({
      requests: 1,
      tokens: Number.MAX_SAFE_INTEGER,
    })
  })

  it('turns -0 into 0', () => {
    expect(Object.is(normalizeCost({ tokens: -0 }).tokens, 0)).toBe(true)
  })

  it.each([
    ['negative requests', { requests: -1 }, /cost.requests must be a whole number >= 0, got -1/],
    ['fractional tokens', { tokens: 2.5 }, /cost.tokens .* got 2.5/],
    ['NaN', { tokens: Number.NaN }, /got NaN/],
    ['Infinity', { tokens: Number.POSITIVE_INFINITY }, /got Infinity/],
    ['an unsafe integer', { tokens: Number.MAX_SAFE_INTEGER + 1 }, /whole number/],
    ['a numeric string', { tokens: '10' }, /got the string "10"/],
    ['null requests', { requests: null }, /got null/],
    ['a bigint', { tokens: 10n }, /got bigint/],
    ['a string cost', 'ten', /cost must be an object/],
    ['a null cost', null, /got null/],
    ['an array cost', [1], /cost must be an object/],
  ])('rejects %s with InvalidCostError (400)', (_label, cost, message) => {
    const error = thrown(() => normalizeCost(cost as QuotaCost))
    expect(error.code).toBe('invalid_cost')
    expect(error.status).toBe(400)
    expect(error.message).toMatch(message)
  })
})

describe('costAmount', () => {
  it('returns the fallback for undefined and validates the rest', () => {
    expect(costAmount(undefined, 'cost', 1)).toBe(1)
    expect(costAmount(7, 'cost', 1)).toBe(7)
    expect(thrown(() => costAmount(-7, 'cost', 1)).message).toBe('cost must be a whole number >= 0, got -7')
  })
})

describe('normalizeTokenDelta', () => {
  it('accepts whole numbers of either sign', () => {
    expect(normalizeTokenDelta({ tokens: 120 })).toBe(120)
    expect(normalizeTokenDelta({ tokens: -120 })).toBe(-120)
    expect(Object.is(normalizeTokenDelta({ tokens: -0 }), 0)).toBe(true)
  })

  it.each([{ tokens: 1.5 }, { tokens: Number.NaN }, { tokens: '5' }, {}, null, 5])('rejects %j', (delta) => {
    expect(thrown(() => normalizeTokenDelta(delta as { tokens: number })).code).toBe('invalid_cost')
  })
})
