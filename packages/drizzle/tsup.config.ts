import { packageConfig } from '../../tsup.shared'

export default packageConfig({
  index: 'src/index.ts',
  'sqlite/index': 'src/sqlite/index.ts',
  'pg/index': 'src/pg/index.ts',
})
