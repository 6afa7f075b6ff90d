import { InvalidTenantConfigError } from '@tenant/core'

/**
 * A store option that cannot work, reported at construction the way core reports bad wiring:
 * `InvalidTenantConfigError` (`tenant_invalid_config`) naming the option.
 */
export function optionError(path: string, message: string): InvalidTenantConfigError {
  return new InvalidTenantConfigError([{ path: path.split('.'), message, code: 'custom' }])
}
