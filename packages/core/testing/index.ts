export * from './cache-store'
export * from './config-manager'
