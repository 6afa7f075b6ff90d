export * from './cache-store'
export * from './client'
export { DEFAULT_TIMEOUT_MS } from './script'
