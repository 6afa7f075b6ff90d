import { describe, expect, it } from 'vitest'
import { copyJson, deepFreeze } from '../json'
import type { QuotaConfig } from '../schemas'
import { limitsOf } from './memo'

const frozen = (config: QuotaConfig) => deepFreeze(copyJson(config))

describe('limitsOf', () => {
  it('shares one frozen list between equal frozen quotas in distinct objects', () => {
    const quota: QuotaConfig = {
      limits: [
        { window: 'day', requests: 500, tokens: 0 },
        { window: 'minute', tokens: 9 },
      ],
    }
    const a = limitsOf(frozen(quota))
    const b = limitsOf(frozen(quota))
    expect(a).toBe(b)
    expect(Object.isFrozen(a) && a.every((limit) => Object.isFrozen(limit))).toBe(true)
    expect(a).toEqual([
      { window: 'minute', tokens: 9 },
      { window: 'day', requests: 500 },
    ])
  })

  it('keeps quotas that differ in any window, dimension or amount apart', () => {
    const lists = [
      { limits: [{ window: 'minute', requests: 5 }] },
      { limits: [{ window: 'minute', tokens: 5 }] },
      { limits: [{ window: 'hour', requests: 5 }] },
      { limits: [{ window: 'minute', requests: 6 }] },
      { limits: [{ window: 'minute', requests: 5, tokens: 5 }] },
      {
        limits: [
          { window: 'minute', requests: 5 },
          { window: 'hour', requests: 5 },
        ],
      },
    ].map((quota) => limitsOf(frozen(quota as QuotaConfig)))
    expect(new Set(lists).size).toBe(lists.length)
    expect(lists[1]).toEqual([{ window: 'minute', tokens: 5 }])
  })

  it('computes a fresh list for a quota that is not frozen (its owner may change it)', () => {
    const quota: QuotaConfig = { limits: [{ window: 'minute', requests: 5 }] }
    const first = limitsOf(quota)
    ;(quota.limits[0] as { requests: number }).requests = 7
    expect(limitsOf(quota)).toEqual([{ window: 'minute', requests: 7 }])
    expect(first).toEqual([{ window: 'minute', requests: 5 }])
  })
})
