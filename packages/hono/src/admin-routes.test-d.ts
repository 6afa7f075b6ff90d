import type { TenantConfig } from '@tenant/core'
import { hc, type InferResponseType } from 'hono/client'
import { describe, expectTypeOf, it } from 'vitest'
import type { adminRoutes } from './admin-routes'

type Admin = ReturnType<typeof adminRoutes>

describe('adminRoutes types', () => {
  it('gives hc clients typed routes, bodies and responses', () => {
    const client = hc<Admin>('http://localhost/admin')
    expectTypeOf(client.tenants.$get).toBeFunction()
    expectTypeOf(client.tenants[':id'].quota.$put).parameter(0).toHaveProperty('json')
    expectTypeOf<InferResponseType<typeof client.tenants.$post, 201>>()
      .toHaveProperty('id')
      .toEqualTypeOf<string>()
    expectTypeOf<InferResponseType<(typeof client.tenants)[':id']['$get']>>()
      .toHaveProperty('status')
      .toEqualTypeOf<TenantConfig['status']>()
  })
})
