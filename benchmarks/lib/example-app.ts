// The example app (apps/saas-example) for the HTTP section: built with its own composition root
// on a libSQL file, with benchmark tenants whose limits are never reached.
import type { BuiltApp } from './http-apps'

/** The example app ready to serve, or why it cannot be measured. */
export type ExampleApp =
  | { ok: true; app: BuiltApp; path: string; tenants: readonly string[] }
  | { ok: false; reason: string }

/** Builds the example app, or says why not (for example: it does not exist yet). */
export async function loadExampleApp(): Promise<ExampleApp> {
  return { ok: false, reason: 'not wired yet' }
}
