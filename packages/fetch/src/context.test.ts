import { afterEach, describe, expect, it, vi } from 'vitest'
import { req } from '../test/helpers'

describe('tenant context', () => {
  afterEach(() => {
    vi.unstubAllGlobals()
    vi.resetModules()
  })

  it('currentTenantId follows async work started inside the scope, and only that', async () => {
    const { currentTenantId, runWithTenantId } = await import('./index')
    const inner = async () => {
      await new Promise((resolve) => setTimeout(resolve, 1))
      await Promise.resolve()
      return currentTenantId()
    }
    const [a, b] = await Promise.all([runWithTenantId('acme', inner), runWithTenantId('globex', inner)])
    expect([a, b]).toEqual(['acme', 'globex'])
    expect(currentTenantId()).toBeUndefined()
  })

  it('getTenantId and getTenant are undefined for a request no resolver saw', async () => {
    const { getTenant, getTenantId } = await import('./index')
    const request = req('/', { tenant: 'acme' })
    expect(getTenantId(request)).toBeUndefined()
    expect(getTenant(request)).toBeUndefined()
  })

  it('throws a clear error, not undefined, where the runtime has no AsyncLocalStorage', async () => {
    // The situation of Workers without nodejs_compat: no process.getBuiltinModule, no global class.
    vi.stubGlobal('process', { ...process, getBuiltinModule: undefined, versions: {} })
    vi.resetModules()
    const { currentTenantId, getTenantId, isTenantContextAvailable, runWithTenantId, tenantResolver } =
      await import('./index')
    expect(isTenantContextAvailable()).toBe(false)
    expect(() => currentTenantId()).toThrow(/needs AsyncLocalStorage.*nodejs_compat.*getTenantId\(request\)/)
    // The middleware itself still works; getTenantId is the way to read the tenant there.
    const response = await tenantResolver()(
      req('/', { tenant: 'acme' }),
      async (request) => new Response(getTenantId(request!)),
    )
    expect(await response.text()).toBe('acme')
    expect(runWithTenantId('acme', () => 42)).toBe(42)
  })

  it('tells a Node older than 20.16 what it lacks', async () => {
    vi.stubGlobal('process', { ...process, getBuiltinModule: undefined, versions: { node: '20.11.0' } })
    vi.resetModules()
    const { currentTenantId } = await import('./index')
    expect(() => currentTenantId()).toThrow(/Node 20.11.0 lacks process.getBuiltinModule: use Node >= 20.16/)
  })
})
