// Internal (not exported from the package): which ConfigManagers are withPlans views, so that
// auditedStore can refuse one without importing withPlans.

// The views withPlans made: their reads are effective configs, so they are no store to edit.
const planViews = new WeakSet<object>()

/** Records `view` as a withPlans view. */
export function markPlanView(view: object): void {
  planViews.add(view)
}

/**
 * Whether `configs` is a withPlans view. `auditedStore` refuses one, since a change read through it
 * would write the plan's values into the tenant's own config.
 */
export function isPlanView(configs: unknown): boolean {
  return typeof configs === 'object' && configs !== null && planViews.has(configs)
}
