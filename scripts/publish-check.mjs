#!/usr/bin/env node
// Checks the packages as npm would publish them, after `pnpm build`:
//   1. versions: every workspace package carries the root version, and CHANGELOG.md has a section for it;
//   2. `pnpm pack` each package (the tarball is what users get: `workspace:*` replaced, `files` applied);
//   3. publint (strict) and attw (node16 profile) on each tarball;
//   4. smoke test: the tarballs unpacked into a scratch node_modules, then every subpath export is
//      `require()`d in a CommonJS process and `import()`ed in an ES module process, and both must
//      expose the same names;
//   5. export surface: for every subpath, the runtime exports and the declarations of the published
//      .d.ts are written to etc/api/<package>.api.md; a difference from the committed file fails, so
//      an accidental API change shows up in review. Every export also needs a JSDoc summary, and
//      every exported class and function an @example.
//
// Usage: node scripts/publish-check.mjs [--update] [--keep] [package-dir-name...]
//   --update  rewrite etc/api/*.api.md instead of comparing (`pnpm api:update`)
//   --keep    keep the scratch directory (printed) for inspection
// Offline: nothing here talks to a registry; peer and third-party dependencies of the unpacked
// packages are symlinked from the workspace's node_modules.
import { execFile as execFileCb } from 'node:child_process'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import { publint } from 'publint'
import { formatMessage } from 'publint/utils'
import ts from 'typescript'

// Are the Types Wrong, in process (one TypeScript load for every package, unlike one CLI run each).
// Its core package is a dependency of the CLI, so it is resolved from there.
const attwCli = createRequire(
  join(
    realpathSync(resolve(dirname(fileURLToPath(import.meta.url)), '../node_modules/@arethetypeswrong/cli')),
    'package.json',
  ),
)
const attw = await import(pathToFileURL(attwCli.resolve('@arethetypeswrong/core')).href)
const { problemKindInfo: attwProblems } = await import(
  pathToFileURL(attwCli.resolve('@arethetypeswrong/core/problems')).href
)

const execFile = promisify(execFileCb)
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const args = process.argv.slice(2)
const update = args.includes('--update')
const keep = args.includes('--keep')
const only = args.filter((a) => !a.startsWith('--'))
const apiDir = join(root, 'etc/api')
const started = Date.now()
let scratch

// Entry points that cannot be loaded with require(): they import vitest, which throws when
// required (Vitest always runs test files as ES modules, so the CommonJS build is never used).
const ESM_ONLY = new Map([['@tenant/core/testing', 'imports vitest, which refuses require()']])
// Modules that exist only inside a runtime; the smoke test supplies a stand-in with the
// same export names so the package around them can be loaded on Node.
const RUNTIME_MODULES = {
  'cloudflare:workers':
    'export class DurableObject { constructor(ctx, env) { this.ctx = ctx; this.env = env } }',
}

const failures = []
const fail = (where, message) => failures.push(`${where}: ${message}`)
const log = (message) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${message}`)

/** Runs `fn` over `items` with at most `limit` in flight (two cores are shared by everything). */
async function pool(items, limit, fn) {
  const results = new Array(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const i = next++
      results[i] = await fn(items[i], i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return results
}

const readJson = (path) => JSON.parse(readFileSync(path, 'utf8'))

// --- 1. packages and versions ---------------------------------------------------------------
const rootPkg = readJson(join(root, 'package.json'))
const version = rootPkg.version
const workspaceDirs = ['packages', 'apps', 'benchmarks']
  .flatMap((dir) => {
    const abs = join(root, dir)
    if (!existsSync(abs)) return []
    if (existsSync(join(abs, 'package.json'))) return [abs]
    return readdirSync(abs).map((name) => join(abs, name))
  })
  .filter((dir) => existsSync(join(dir, 'package.json')))
for (const dir of workspaceDirs) {
  const pkg = readJson(join(dir, 'package.json'))
  if (pkg.version !== undefined && pkg.version !== version && !pkg.private) {
    fail(pkg.name, `version ${pkg.version}, expected the root version ${version}`)
  }
}
const changelog = readFileSync(join(root, 'CHANGELOG.md'), 'utf8')
if (!new RegExp(`^## \\[?${version.replaceAll('.', '\\.')}\\]?`, 'm').test(changelog)) {
  fail('CHANGELOG.md', `no "## ${version}" section`)
}

const packages = readdirSync(join(root, 'packages'))
  .filter((name) => only.length === 0 || only.includes(name))
  .map((name) => ({ name, dir: join(root, 'packages', name) }))
  .filter(({ dir }) => existsSync(join(dir, 'package.json')))
  .map((p) => ({ ...p, pkg: readJson(join(p.dir, 'package.json')) }))
  .filter((p) => !p.pkg.private)
for (const p of packages) {
  if (p.pkg.version !== version) fail(p.pkg.name, `version ${p.pkg.version}, expected ${version}`)
  if (!existsSync(join(p.dir, 'dist'))) fail(p.pkg.name, 'no dist/: run `pnpm build` first')
}
if (failures.length) finish()

// --- 2. pack ---------------------------------------------------------------------------------
scratch = mkdtempSync(join(tmpdir(), 'tenant-publish-check-'))
const tarballs = join(scratch, 'tarballs')
mkdirSync(tarballs)
await pool(packages, 2, async (p) => {
  const { stdout } = await execFile('pnpm', ['pack', '--pack-destination', tarballs], { cwd: p.dir })
  p.tarball = stdout.trim().split('\n').pop().trim()
  if (!p.tarball.startsWith('/')) p.tarball = join(tarballs, p.tarball)
})
log(`packed ${packages.length} packages`)

// --- 3. publint and attw ---------------------------------------------------------------------
await pool(packages, 2, async (p) => {
  const data = readFileSync(p.tarball)
  const tarball = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)
  const { messages, pkg } = await publint({ pack: { tarball }, strict: true, level: 'warning' })
  for (const m of messages) fail(`${p.pkg.name} publint`, formatMessage(m, pkg, { color: false }) ?? m.code)

  // node10 (TypeScript's legacy `moduleResolution: node`) cannot see `exports` subpaths at all;
  // like `attw --profile node16`, every resolution mode that can is checked.
  const analysis = await attw.checkPackage(attw.createPackageFromTarballData(new Uint8Array(data)))
  if (!analysis.types) fail(`${p.pkg.name} attw`, 'the package has no type declarations')
  for (const problem of analysis.problems ?? []) {
    if (problem.resolutionKind === 'node10') continue
    const where = [problem.entrypoint, problem.resolutionKind].filter(Boolean).join(', ')
    fail(
      `${p.pkg.name} attw`,
      `${attwProblems[problem.kind]?.shortDescription ?? problem.kind}${where ? ` (${where})` : ''}`,
    )
  }
})
log('publint and attw done')

// --- 4. smoke test: unpack, require() and import() every subpath ------------------------------
const install = join(scratch, 'install')
const nodeModules = join(install, 'node_modules')
mkdirSync(join(nodeModules, '@tenant'), { recursive: true })
writeFileSync(join(install, 'package.json'), '{"name":"publish-check","private":true}\n')
const ours = new Set(packages.map((p) => p.pkg.name))
const linked = new Set()
for (const p of packages) {
  const target = join(nodeModules, p.pkg.name)
  mkdirSync(target, { recursive: true })
  await execFile('tar', ['-xzf', p.tarball, '-C', target, '--strip-components=1'])
  p.installed = target
  p.packed = readJson(join(target, 'package.json'))
  if (JSON.stringify(p.packed).includes('workspace:'))
    fail(p.pkg.name, 'packed package.json still says workspace:')
  const deps = {
    ...p.packed.dependencies,
    ...p.packed.peerDependencies,
    ...p.packed.optionalDependencies,
  }
  for (const dep of Object.keys(deps)) {
    if (ours.has(dep) || linked.has(dep)) continue
    const from = [join(p.dir, 'node_modules', dep), join(root, 'node_modules', dep)].find((d) =>
      existsSync(d),
    )
    if (!from) {
      // An optional peer nobody installed here is the user's choice; a required one is a packaging bug.
      if (!p.packed.peerDependenciesMeta?.[dep]?.optional)
        fail(p.pkg.name, `dependency ${dep} not found in the workspace`)
      continue
    }
    mkdirSync(dirname(join(nodeModules, dep)), { recursive: true })
    symlinkSync(realpathSync(from), join(nodeModules, dep), 'dir')
    linked.add(dep)
  }
  p.entries = Object.keys(p.packed.exports ?? { '.': null })
    .filter((key) => key !== './package.json')
    .map((key) => ({ key, specifier: key === '.' ? p.pkg.name : `${p.pkg.name}/${key.slice(2)}` }))
}

const runtimeStub = Object.fromEntries(
  Object.entries(RUNTIME_MODULES).map(([name, source]) => [
    name,
    `data:text/javascript,${encodeURIComponent(source)}`,
  ]),
)
writeFileSync(
  join(install, 'esm-hooks.mjs'),
  `const stubs = ${JSON.stringify(runtimeStub)}
export async function resolve(specifier, context, next) {
  return specifier in stubs ? { url: stubs[specifier], shortCircuit: true } : next(specifier, context)
}
`,
)
writeFileSync(
  join(install, 'esm-register.mjs'),
  "import { register } from 'node:module'\nregister('./esm-hooks.mjs', import.meta.url)\n",
)
writeFileSync(
  join(install, 'cjs-stubs.cjs'),
  `const Module = require('node:module')
const stubs = ${JSON.stringify(RUNTIME_MODULES)}
const load = Module._load
Module._load = function (request, parent, isMain) {
  if (request in stubs) {
    const exports = {}
    new Function('exports', stubs[request].replace(/^export class (\\w+)/gm, 'exports.$1 = class $1'))(exports)
    return exports
  }
  return load.call(this, request, parent, isMain)
}
`,
)
const kindOf = `(value) => typeof value === 'function'
  ? (value.prototype instanceof Error ? 'error class'
    : /^class[\\s{]/.test(Function.prototype.toString.call(value)) ? 'class' : 'function')
  : value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value`
const specifiers = packages.flatMap((p) => p.entries.map((e) => e.specifier))
const cjsSpecifiers = specifiers.filter((s) => !ESM_ONLY.has(s))
const probe = (load) => `
const kindOf = ${kindOf}
const out = {}
for (const s of SPECIFIERS) {
  try {
    const m = ${load}
    out[s] = Object.fromEntries(Object.keys(m).filter((k) => k !== 'default' && k !== '__esModule' && k !== 'module.exports').sort().map((k) => [k, kindOf(m[k])]))
  } catch (error) {
    out[s] = { error: String(error && error.stack || error).split('\\n').slice(0, 3).join(' | ') }
  }
}
process.stdout.write(JSON.stringify(out))
`
const runProbe = async (flags, code) => {
  const { stdout } = await execFile(process.execPath, [...flags, '-e', code], {
    cwd: install,
    maxBuffer: 64 << 20,
  })
  return JSON.parse(stdout)
}
const [esm, cjs] = await Promise.all([
  runProbe(
    ['--import', './esm-register.mjs', '--input-type=module'],
    probe('await import(s)').replace('SPECIFIERS', JSON.stringify(specifiers)),
  ),
  runProbe(
    ['--require', './cjs-stubs.cjs'],
    probe('require(s)').replace('SPECIFIERS', JSON.stringify(cjsSpecifiers)),
  ),
])
for (const s of specifiers) {
  if (esm[s]?.error) fail(`${s} import()`, esm[s].error)
  if (ESM_ONLY.has(s)) continue
  if (cjs[s]?.error) fail(`${s} require()`, cjs[s].error)
  else if (!esm[s]?.error && JSON.stringify(esm[s]) !== JSON.stringify(cjs[s])) {
    fail(
      s,
      `require() and import() differ:\n  import(): ${Object.keys(esm[s]).join(', ')}\n  require(): ${Object.keys(cjs[s]).join(', ')}`,
    )
  }
  if (!esm[s]?.error && Object.keys(esm[s]).length === 0) fail(s, 'exports nothing at runtime')
}
log(`smoke test: ${specifiers.length} entry points imported, ${cjsSpecifiers.length} required`)

// --- 5. export surface from the published .d.ts -----------------------------------------------
const printer = ts.createPrinter({ removeComments: true, newLine: ts.NewLineKind.LineFeed })

/** The file a condition path of `exports` points at, for the given conditions, in order. */
function conditionTarget(entry, conditions) {
  if (typeof entry === 'string') return entry
  for (const [condition, value] of Object.entries(entry ?? {})) {
    if (condition === 'default' || conditions.includes(condition)) {
      const hit = conditionTarget(value, conditions)
      if (hit) return hit
    }
  }
  return undefined
}

const dtsFiles = []
for (const p of packages) {
  for (const e of p.entries) {
    const exportsEntry = p.packed.exports?.[e.key]
    e.dts = join(p.installed, conditionTarget(exportsEntry, ['types', 'import']) ?? p.packed.types)
    e.dcts = join(p.installed, conditionTarget(exportsEntry, ['types', 'require']) ?? p.packed.types)
    dtsFiles.push(e.dts, e.dcts)
  }
}
const program = ts.createProgram(dtsFiles, {
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  target: ts.ScriptTarget.ES2022,
  lib: ['lib.es2023.d.ts', 'lib.dom.d.ts'],
  types: [],
  skipLibCheck: true,
  noEmit: true,
})
const checker = program.getTypeChecker()

function moduleExports(file) {
  const source = program.getSourceFile(file)
  const symbol = source && checker.getSymbolAtLocation(source)
  return symbol ? checker.getExportsOfModule(symbol) : undefined
}

function declarationText(decl) {
  const node = ts.isVariableDeclaration(decl) ? decl.parent.parent : decl
  let text = printer.printNode(ts.EmitHint.Unspecified, node, decl.getSourceFile())
  text = text.replace(/^(export )?declare /, '')
  return text
}

function docsOf(symbol) {
  const summary = ts.displayPartsToString(symbol.getDocumentationComment(checker)).trim()
  const tags = symbol.getJsDocTags(checker).map((t) => t.name)
  return { summary, hasExample: tags.includes('example') }
}

const docProblems = []
const changed = []
for (const p of packages) {
  const sections = []
  for (const e of p.entries) {
    const exportsOf = moduleExports(e.dts)
    if (!exportsOf) {
      fail(e.specifier, `no declarations at ${relative(p.installed, e.dts)}`)
      continue
    }
    const ctsNames = (moduleExports(e.dcts) ?? []).map((s) => s.name).sort()
    const names = exportsOf.map((s) => s.name).sort()
    if (JSON.stringify(ctsNames) !== JSON.stringify(names)) {
      fail(
        e.specifier,
        `.d.ts and .d.cts export different names: ${names.filter((n) => !ctsNames.includes(n)).join(', ')} / ${ctsNames.filter((n) => !names.includes(n)).join(', ')}`,
      )
    }
    const runtime = esm[e.specifier] && !esm[e.specifier].error ? esm[e.specifier] : {}
    for (const name of Object.keys(runtime)) {
      if (!names.includes(name)) fail(e.specifier, `runtime export ${name} has no declaration`)
    }
    const blocks = []
    for (const symbol of [...exportsOf].sort((a, b) => a.name.localeCompare(b.name))) {
      const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol
      const decls = target.declarations ?? []
      const text = decls.map(declarationText).join('\n')
      const isValue = symbol.name in runtime
      const heading = isValue ? `${symbol.name} (${runtime[symbol.name]})` : `${symbol.name} (type)`
      blocks.push(`// ${heading}\n${text}`)
      const { summary, hasExample } = docsOf(target)
      const kind = runtime[symbol.name]
      if (!summary) docProblems.push(`${e.specifier} ${symbol.name}: no JSDoc summary`)
      else if ((kind === 'class' || kind === 'function') && !hasExample) {
        docProblems.push(`${e.specifier} ${symbol.name}: ${kind} without an @example`)
      }
    }
    sections.push(
      `## \`${e.specifier}\`\n\n` +
        `Runtime exports (the same from \`import\` and${ESM_ONLY.has(e.specifier) ? ' ESM only: ' + ESM_ONLY.get(e.specifier) : ' `require`'}): ` +
        `${Object.keys(runtime).length}. Declarations: ${names.length}.\n\n` +
        '```ts\n' +
        blocks.join('\n\n') +
        '\n```\n',
    )
  }
  const content =
    `# ${p.pkg.name} API surface\n\n` +
    'Generated by `pnpm api:update` from the packed package (its published `.d.ts` and what `import()` returns).\n' +
    'Do not edit: a change here is a change to the public API, so review it as one.\n\n' +
    sections.join('\n')
  const file = join(apiDir, `${p.name}.api.md`)
  const current = existsSync(file) ? readFileSync(file, 'utf8') : undefined
  if (current === content) continue
  if (update) {
    mkdirSync(apiDir, { recursive: true })
    writeFileSync(file, content)
    changed.push(relative(root, file))
  } else {
    fail(
      p.pkg.name,
      `export surface differs from ${relative(root, file)}:\n${diff(current ?? '', content)}\n` +
        'If the change is intended, run `pnpm api:update` and commit the file.',
    )
  }
}
for (const problem of docProblems) fail('docs', problem)
log(
  `export surface of ${packages.length} packages ${update ? `written (${changed.length} changed)` : 'compared'}`,
)

/** A small line diff (longest common subsequence) for the failure message. */
function diff(before, after) {
  const a = before.split('\n')
  const b = after.split('\n')
  if (a.length * b.length > 4e7)
    return '(files too different to diff; compare them with git diff after pnpm api:update)'
  const lcs = Array.from({ length: a.length + 1 }, () => new Uint32Array(b.length + 1))
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1])
    }
  }
  const out = []
  let i = 0
  let j = 0
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      i++
      j++
    } else if (j < b.length && (i === a.length || lcs[i][j + 1] >= lcs[i + 1][j])) out.push(`+ ${b[j++]}`)
    else out.push(`- ${a[i++]}`)
  }
  return (
    out.slice(0, 200).join('\n') + (out.length > 200 ? `\n... ${out.length - 200} more changed lines` : '')
  )
}

function finish() {
  if (!keep && typeof scratch === 'string') rmSync(scratch, { recursive: true, force: true })
  else if (typeof scratch === 'string') console.log(`scratch directory kept: ${scratch}`)
  if (failures.length) {
    console.error(`\npublish checks failed (${failures.length}):\n`)
    for (const f of failures) console.error(`- ${f}`)
    process.exit(1)
  }
  log(`publish checks passed for ${packages.map((p) => p.pkg.name).join(', ')}`)
  process.exit(0)
}
finish()
