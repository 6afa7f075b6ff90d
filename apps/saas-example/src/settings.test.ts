import { describe, expect, it } from 'vitest'
import {
  appSettingsSchema,
  isLoopbackHost,
  metricsAccess,
  parseSettings,
  SettingsError,
  serverSettingsSchema,
} from './settings'

describe('parseSettings', () => {
  it('defaults to the embedded database under ./data, port 3000 on 127.0.0.1, in-process fixed windows', () => {
    expect(parseSettings(serverSettingsSchema, {})).toEqual({
      PORT: 3000,
      HOST: '127.0.0.1',
      DATABASE_URL: 'file:./data/saas-example.db',
      RLS_CHECK: 'enforce',
      REDIS_PREFIX: 'saas-example',
      QUOTA_ALGORITHM: 'fixed',
      CONFIG_CACHE_TTL_MS: 30_000,
      LOG_LEVEL: 'info',
    })
  })

  it('treats empty values as unset, as a `KEY=` line in .env means', () => {
    const settings = parseSettings(serverSettingsSchema, { REDIS_URL: '', ADMIN_TOKEN: '', PORT: '' })
    expect(settings.REDIS_URL).toBeUndefined()
    expect(settings.ADMIN_TOKEN).toBeUndefined()
    expect(settings.PORT).toBe(3000)
  })

  it('reads numbers and choices from strings', () => {
    const settings = parseSettings(serverSettingsSchema, {
      PORT: '0',
      DATABASE_URL: 'postgres://app@db/app',
      REDIS_URL: 'rediss://cache:6380',
      QUOTA_ALGORITHM: 'sliding',
      CONFIG_CACHE_TTL_MS: '5000',
    })
    expect(settings).toMatchObject({ PORT: 0, QUOTA_ALGORITHM: 'sliding', CONFIG_CACHE_TTL_MS: 5000 })
  })

  it('lists every problem at once', () => {
    let error: unknown
    try {
      parseSettings(serverSettingsSchema, {
        PORT: '70000',
        DATABASE_URL: 'mysql://db',
        REDIS_URL: 'http://cache',
        ADMIN_TOKEN: 'has spaces in it, sadly',
        JWT_SECRET: 'short',
        LOG_LEVEL: 'debug',
      })
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(SettingsError)
    const problems = (error as SettingsError).problems.map((p) => p.split(':')[0])
    expect(problems.sort()).toEqual([
      'ADMIN_TOKEN',
      'DATABASE_URL',
      'JWT_SECRET',
      'LOG_LEVEL',
      'PORT',
      'REDIS_URL',
    ])
  })

  it('ignores what it does not know: the bindings of a Worker', () => {
    expect(parseSettings(appSettingsSchema, { DB: {}, TENANT_QUOTA: {}, LOG_LEVEL: 'warn' })).toMatchObject({
      LOG_LEVEL: 'warn',
    })
  })
})

describe('the documented settings', () => {
  const keys = Object.keys(serverSettingsSchema.shape)

  it('.env.example lists every setting and parses as it is', async () => {
    const { readFile } = await import('node:fs/promises')
    const text = await readFile(new URL('../.env.example', import.meta.url), 'utf8')
    const lines = text.split('\n')
    // Active lines, and commented-out examples (`# KEY=value`), both count as documented.
    const documented = new Set(lines.flatMap((line) => /^(?:# )?([A-Z_]+)=/.exec(line)?.[1] ?? []))
    const entries = Object.fromEntries(
      lines
        .filter((line) => /^[A-Z_]+=/.test(line))
        .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
    )
    expect([...documented].sort()).toEqual([...keys].sort())
    expect(() => parseSettings(serverSettingsSchema, entries)).not.toThrow()
  })

  it('the README documents every setting', async () => {
    const { readFile } = await import('node:fs/promises')
    const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8')
    for (const key of keys) expect(readme, key).toContain(`| \`${key}\``)
  })
})

describe('isLoopbackHost', () => {
  it('is true for localhost, ::1 and 127.0.0.0/8 only', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', '127.255.255.255', '::1', 'localhost', 'LocalHost']) {
      expect(isLoopbackHost(host), host).toBe(true)
    }
    for (const host of [
      '0.0.0.0',
      '::',
      '10.0.0.5',
      '128.0.0.1',
      '127.0.0.256',
      '127.0.0',
      '[::1]',
      '::ffff:127.0.0.1',
      'localhost.example.com',
      'saas.internal',
    ]) {
      expect(isLoopbackHost(host), host).toBe(false)
    }
  })
})

describe('metricsAccess', () => {
  it('needs the token when METRICS_TOKEN is set, else is open on loopback and off elsewhere', () => {
    const token = 'metrics-token-0123456789'
    expect(metricsAccess({ HOST: '0.0.0.0', METRICS_TOKEN: token })).toBe('token')
    expect(metricsAccess({ HOST: '127.0.0.1', METRICS_TOKEN: token })).toBe('token')
    expect(metricsAccess({ HOST: '127.0.0.1' })).toBe('open')
    expect(metricsAccess({ HOST: '0.0.0.0' })).toBe('off')
    // The default HOST is loopback: a development start serves /metrics as before.
    expect(metricsAccess(parseSettings(serverSettingsSchema, {}))).toBe('open')
  })
})
