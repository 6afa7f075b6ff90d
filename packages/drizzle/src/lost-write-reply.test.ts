import { ManualClock } from '@tenant/core'
import { expect, it } from 'vitest'
import { describeEachDatabase } from '../test/databases'
import { DrizzleConfigManager } from './config-manager'

const T0 = Date.UTC(2026, 0, 1)

// A write that commits but whose reply is lost (a connection reset after the commit) has an
// unknown outcome: the manager must drop its cached entry all the same, or a suspension or a
// delete would stay unseen by this process for the cache's ttl (and ttl + staleTtl while the
// database fails). The fault is the one thing mocked: the next tenant write runs on the real
// database, then the driver rejects as after a reset.
function loseNextWriteReply(db: any, kind: string) {
  const client = db.$client
  const name = kind.startsWith('libsql') ? 'execute' : kind === 'pglite' ? 'query' : 'unsafe'
  const original = client[name].bind(client)
  let armed = true
  client[name] = (...args: any[]) => {
    const text = typeof args[0] === 'string' ? args[0] : (args[0]?.sql ?? '')
    if (armed && /^(insert|update|delete)/i.test(text) && /tenants/.test(text)) {
      armed = false
      const p = original(...args)
      const lost = (v: unknown) =>
        Promise.reject(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET', v }))
      if (name === 'unsafe') {
        const values = p.values.bind(p)
        p.values = () => values().then(lost)
        return p
      }
      return Promise.resolve(p).then(lost)
    }
    return original(...args)
  }
  return () => (client[name] = original)
}

describeEachDatabase(
  'DrizzleConfigManager: a write whose reply is lost',
  (database) => {
    it('sees a suspension that committed though its reply was lost', async () => {
      await database.current.reset()
      const clock = new ManualClock(T0)
      const configs = new DrizzleConfigManager(database.current.db, { clock })
      await configs.setTenantConfig({ id: 'acme' })
      await configs.getTenantConfig('acme') // cached, as on every request
      const restore = loseNextWriteReply(database.current.db, database.kind)
      // The caller is told the write failed (503): its outcome is unknown.
      const written = await configs.setTenantConfig({ id: 'acme', status: 'suspended' }).then(
        () => 'ok',
        (e) => e.code,
      )
      expect(written).toBe('tenant_backend_unavailable')
      restore()
      const inDb = await new DrizzleConfigManager(database.current.db, { cache: false }).getTenantConfig(
        'acme',
      )
      const cached = await configs.getTenantConfig('acme')
      expect(inDb.status).toBe('suspended')
      expect(cached.status).toBe('suspended')
    })

    it('sees a delete that committed though its reply was lost', async () => {
      await database.current.reset()
      const clock = new ManualClock(T0)
      const configs = new DrizzleConfigManager(database.current.db, { clock })
      await configs.setTenantConfig({ id: 'gone' })
      await configs.getTenantConfig('gone')
      const restore = loseNextWriteReply(database.current.db, database.kind)
      const deleted = await configs.deleteTenantConfig('gone').then(
        () => 'ok',
        (e) => e.code,
      )
      expect(deleted).toBe('tenant_backend_unavailable')
      restore()
      clock.advance(29_000)
      const got = await configs.getTenantConfig('gone').then(
        (c) => `served ${c.status}`,
        (e) => e.code,
      )
      expect(got).toBe('tenant_not_found')
    })

    it('never serves such a deleted tenant as stale while the database fails', async () => {
      await database.current.reset()
      const clock = new ManualClock(T0)
      const configs = new DrizzleConfigManager(database.current.db, { clock })
      await configs.setTenantConfig({ id: 'gone', status: 'active' })
      await configs.getTenantConfig('gone')
      const restore = loseNextWriteReply(database.current.db, database.kind)
      await configs.deleteTenantConfig('gone').catch(() => undefined)
      restore()
      await database.current.fail()
      clock.advance(300_000)
      const got = await configs.getTenantConfig('gone').then(
        (c) => `served ${c.status}`,
        (e) => e.code,
      )
      expect(got).not.toMatch(/served/)
    })
  },
  { kinds: ['libsql-memory', 'pglite', 'postgres'] },
)
