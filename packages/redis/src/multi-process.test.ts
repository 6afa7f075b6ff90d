import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { calendarWindow } from '@tenant/core'
import { randomTenantId } from '@tenant/core/testing'
import { describe, expect, it } from 'vitest'
import { REDIS_URL, useTestRedis } from '../test/helpers/redis-env'

const packageDir = fileURLToPath(new URL('..', import.meta.url))
const child = fileURLToPath(new URL('../test/fixtures/consume-child.ts', import.meta.url))

interface ChildResult {
  admitted: number
  denied: number
  errors: string[]
}

/** Starts one host process and resolves once it is connected and waiting for `go`. */
async function startHost(
  env: Record<string, string>,
): Promise<{ proc: ChildProcess; result: Promise<ChildResult> }> {
  const proc = spawn(process.execPath, ['--conditions=@tenant/source', '--import', 'tsx', child], {
    cwd: packageDir,
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  proc.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString()
  })
  const ready = new Promise<void>((resolve, reject) => {
    proc.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString()
      if (stdout.startsWith('ready\n')) resolve()
    })
    proc.once('exit', (code) => reject(new Error(`host exited with ${code} before ready: ${stderr}`)))
  })
  const result = once(proc, 'exit').then(([code]) => {
    if (code !== 0) throw new Error(`host exited with ${code}: ${stderr}`)
    return JSON.parse(stdout.slice('ready\n'.length)) as ChildResult
  })
  result.catch(() => {})
  await ready
  return { proc, result }
}

describe.runIf(REDIS_URL)('exactness across OS processes', () => {
  const { client: redis, prefix } = useTestRedis('processes')

  async function redisNow(): Promise<number> {
    const [s, us] = await redis.time()
    return Number(s) * 1000 + Math.floor(Number(us) / 1000)
  }

  it.each(['fixed', 'sliding'] as const)(
    '%s: two processes with clocks 5 hours apart fire 500 concurrent consumes each at a limit of 100: exactly 100 pass',
    async (algorithm) => {
      for (let attempt = 0; ; attempt++) {
        const tenant = randomTenantId('mp')
        const env = {
          REDIS_URL: REDIS_URL!,
          PREFIX: prefix,
          TENANT: tenant,
          LIMIT: '100',
          CONSUMES: '500',
          ALGORITHM: algorithm,
        }
        const hosts = await Promise.all([
          startHost({ ...env, SKEW_MS: String(3 * 3_600_000) }),
          startHost({ ...env, SKEW_MS: String(-2 * 3_600_000) }),
        ])
        const before = await redisNow()
        for (const host of hosts) host.proc.stdin!.end('go\n')
        const [a, b] = await Promise.all(hosts.map((h) => h.result))
        const after = await redisNow()
        // A fixed day window that turned over mid-run may rightly admit more; run again.
        const sameDay = calendarWindow('day', before).start === calendarWindow('day', after).start
        if (algorithm === 'fixed' && !sameDay && attempt < 2) continue
        expect(a!.errors).toEqual([])
        expect(b!.errors).toEqual([])
        expect(a!.admitted + a!.denied).toBe(500)
        expect(b!.admitted + b!.denied).toBe(500)
        expect(a!.admitted + b!.admitted).toBe(100)
        break
      }
    },
    60_000,
  )
})
