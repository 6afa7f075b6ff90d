import type { TenantConfig } from '@tenant/core'
import { Hono, type MiddlewareHandler } from 'hono'
import { describe, expectTypeOf, it } from 'vitest'
import {
  type OptionalTenantEnv,
  type TenantEnv,
  tenancy,
  tenantPolicy,
  tenantQuota,
  tenantRateLimit,
  tenantResolver,
} from './index'

describe('TenantEnv', () => {
  it('types c.var.tenantId and c.var.tenant on an app declared with it', () => {
    new Hono<TenantEnv>().get('/', (c) => {
      expectTypeOf(c.var.tenantId).toEqualTypeOf<string>()
      expectTypeOf(c.var.tenant).toEqualTypeOf<TenantConfig | undefined>()
      expectTypeOf(c.get('tenantId')).toEqualTypeOf<string>()
      return c.text(c.var.tenantId)
    })
  })

  it('types the variables of an untyped app after app.use(tenancy())', () => {
    new Hono().use(tenancy()).get('/', (c) => {
      expectTypeOf(c.var.tenantId).toEqualTypeOf<string>()
      return c.text('ok')
    })
  })

  it('merges with the app bindings', () => {
    new Hono<{ Bindings: { DB: string } }>().use(tenantResolver()).get('/', (c) => {
      expectTypeOf(c.env.DB).toEqualTypeOf<string>()
      expectTypeOf(c.var.tenantId).toEqualTypeOf<string>()
      return c.text('ok')
    })
  })

  it('every middleware is a MiddlewareHandler<TenantEnv>', () => {
    expectTypeOf(tenantResolver()).toEqualTypeOf<MiddlewareHandler<TenantEnv>>()
    expectTypeOf(tenantPolicy()).toEqualTypeOf<MiddlewareHandler<TenantEnv>>()
    expectTypeOf(tenantRateLimit()).toEqualTypeOf<MiddlewareHandler<TenantEnv>>()
    expectTypeOf(tenantQuota()).toEqualTypeOf<MiddlewareHandler<TenantEnv>>()
    expectTypeOf(tenancy()).toEqualTypeOf<MiddlewareHandler<TenantEnv>>()
  })

  it('makes tenantId optional behind allowMissing', () => {
    expectTypeOf(tenantResolver({ allowMissing: true })).toEqualTypeOf<MiddlewareHandler<OptionalTenantEnv>>()
    expectTypeOf(tenancy({ resolver: { allowMissing: true } })).toEqualTypeOf<
      MiddlewareHandler<OptionalTenantEnv>
    >()
    new Hono().use(tenantResolver({ allowMissing: true })).get('/', (c) => {
      expectTypeOf(c.var.tenantId).toEqualTypeOf<string | undefined>()
      return c.text('ok')
    })
  })

  it('rejects unknown variables and wrong option types', () => {
    new Hono<TenantEnv>().get('/', (c) => {
      // @ts-expect-error not a variable of TenantEnv
      c.var.tenantName
      return c.text('ok')
    })
    // @ts-expect-error principal takes the Hono context and returns an id
    tenantResolver({ principal: () => 42 })
    // @ts-expect-error failOpen is a boolean
    tenancy({ failOpen: 'yes' })
  })
})
