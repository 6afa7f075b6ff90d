// Starts test/faulty-worker.ts on workerd through Miniflare and runs its scenarios by name.
import { Miniflare } from 'miniflare'
import { afterAll, beforeAll } from 'vitest'
import { bundledWorker } from './workerd'

/** Inside a `describe`: a function that runs one scenario of the faulty worker and answers its value. */
export function useFaultyObject(): (name: string, arg: unknown) => Promise<any> {
  let mf: Miniflare | undefined
  beforeAll(async () => {
    mf = new Miniflare({
      modules: true,
      script: await bundledWorker('faulty-worker.ts'),
      compatibilityDate: '2025-09-01',
      durableObjects: { TENANT_QUOTA: { className: 'FaultyObject', useSQLite: true } },
    })
    await mf.ready
  }, 60_000)
  afterAll(async () => {
    await mf?.dispose()
  })
  return async (name, arg) => {
    const response = await mf!.dispatchFetch('http://faulty.test/', {
      method: 'POST',
      body: JSON.stringify({ name, arg }),
    })
    const reply = (await response.json()) as { ok: boolean; value?: unknown; error?: unknown }
    if (!reply.ok) throw new Error(JSON.stringify(reply.error))
    return reply.value
  }
}
