export { migrations } from './migrations'
export * from './schema'
