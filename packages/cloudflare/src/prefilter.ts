import { invalidOption } from '@tenant/core'

/**
 * The Workers Rate Limiting binding (a `[[ratelimits]]` entry in wrangler.toml; workers-types
 * calls it `RateLimit`). Only `limit` is used.
 */
export interface RateLimitBinding {
  /** Counts one request for `key`; `success` is false when the binding's limit is reached. */
  limit(options: { key: string }): Promise<{ success: boolean }>
}

/**
 * A coarse, approximate pre-filter through the Workers Rate Limiting binding, run before the
 * exact Durable Object check. It is abuse shielding, not accounting: the binding counts per
 * Cloudflare location, approximately, over 10 s or 60 s only. What it refuses never reaches the
 * tenant's object (no Durable Object request is billed for it); what it lets through is decided
 * exactly by the object. Set its limit well above any tenant's legitimate peak.
 */
export interface PrefilterOptions {
  /** The binding, e.g. `env.QUOTA_SHIELD`. */
  binding: RateLimitBinding
  /**
   * The binding key for a tenant. Give two managers that share one binding different keys.
   * @default (tenantId) => tenantId
   */
  key?: (tenantId: string) => string
  /**
   * The binding's `period` in seconds as configured in wrangler.toml (the binding does not report
   * it). A refusal's `retryAfterMs` is one period.
   * @default 60
   */
  period?: 10 | 60
  /**
   * Called when the binding itself throws. The request then goes on to the exact check: a broken
   * shield must not refuse traffic the quota would admit.
   * @default undefined (ignored)
   */
  onError?: (error: unknown, tenantId: string) => void
}

/** The fields of a pre-filter refusal, shared by the quota and the rate-limit decision. */
export interface PrefilterDenial {
  allowed: false
  resetAt: number
  retryAfterMs: number
  reason: string
}

/** A checked pre-filter. */
export interface Prefilter {
  /** Asks the binding; the refusal's fields when it refused (times from `now()`), else `undefined`. */
  deny(tenantId: string, now: () => number): Promise<PrefilterDenial | undefined>
}

/** Validates {@link PrefilterOptions} once, at construction. */
export function createPrefilter(owner: string, options: PrefilterOptions | undefined): Prefilter | undefined {
  if (options === undefined) return undefined
  if (typeof options !== 'object' || options === null || typeof options.binding?.limit !== 'function') {
    throw invalidOption(`${owner}.prefilter.binding`, 'must be a Workers Rate Limiting binding')
  }
  const { binding, key = (tenantId: string) => tenantId, period = 60, onError } = options
  if (typeof key !== 'function') throw invalidOption(`${owner}.prefilter.key`, 'must be a function')
  if (period !== 10 && period !== 60) {
    throw invalidOption(`${owner}.prefilter.period`, "must be 10 or 60 (the binding's periods)")
  }
  if (onError !== undefined && typeof onError !== 'function') {
    throw invalidOption(`${owner}.prefilter.onError`, 'must be a function')
  }
  const periodMs = period * 1000
  const reason =
    `refused by the coarse pre-filter (Workers Rate Limiting binding, per ${period} s and per ` +
    'location): too many requests for this tenant'
  return {
    async deny(tenantId, now) {
      try {
        const outcome = await binding.limit({ key: key(tenantId) })
        if (outcome?.success !== false) return undefined
      } catch (error) {
        onError?.(error, tenantId)
        return undefined
      }
      return { allowed: false, resetAt: now() + periodMs, retryAfterMs: periodMs, reason }
    },
  }
}
