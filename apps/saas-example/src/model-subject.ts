/**
 * The quota subject of an API request: the model it names in `X-Model`, as `model:<name>`, so a
 * plan's `quota.subjects` can give each model its own limits (per-model requests or tokens per
 * minute) that also draw on the tenant's pool. No header: no subject, only the tenant's windows.
 * A model name outside `[A-Za-z0-9._:/@+-]` is refused with 400 `invalid_subject`.
 *
 * @example
 * ```ts
 * tenancy({ configManager, quota: { manager: quotas, subject: modelSubject } })
 * ```
 */
export function modelSubject(request: Request): string | undefined {
  const model = request.headers.get('X-Model')
  return model === null ? undefined : `model:${model}`
}
