// A Worker without nodejs_compat: the package must load and the middleware work; only
// currentTenantId() is unavailable, and says so.
import { currentTenantId, getTenantId, isTenantContextAvailable, withTenancy } from '@tenant/fetch'

function currentOrError(): string {
  try {
    return `value: ${currentTenantId()}`
  } catch (error) {
    return `error: ${(error as Error).message}`
  }
}

export default {
  fetch: withTenancy(async (request: Request) =>
    Response.json({
      tenantId: getTenantId(request),
      contextAvailable: isTenantContextAvailable(),
      current: currentOrError(),
    }),
  ),
}
