import { packageProject } from '../../vitest.shared'

export default packageProject('saas-example')
