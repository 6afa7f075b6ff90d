import { type PortableCase, portableCases } from '@tenant/fetch/testing'
import { honoCases } from './hono-cases'

/** What the runtime matrix runs on Bun, Deno and workerd: the @tenant/fetch suite and the Hono cases. */
export const allCases: PortableCase[] = [...portableCases, ...honoCases]
