import { packageConfig } from '../../tsup.shared'

// `cloudflare:workers` is the Workers runtime's built-in module: wrangler resolves it when it
// bundles the user's Worker, so it must stay an import here.
export default packageConfig({ index: 'src/index.ts' }, { external: ['cloudflare:workers'] })
