#!/usr/bin/env node
// Keeps @tenant/core pure: it must run unchanged on Node, Bun, Deno and Workers, and every
// time-dependent part must read the injected Clock. Parses each file with the TypeScript
// compiler (no regex over source text), so comments and strings never cause false alarms.
//
// Usage: node scripts/check-core-purity.mjs [dir]   (default: packages/core/src)
// Exit 0 when clean; exit 1 listing every offence as path:line:col; exit 2 on a usage error.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const dir = resolve(process.argv[2] ?? join(root, 'packages/core/src'))

// The one file allowed to read the wall clock (systemClock).
const CLOCK_FILE = 'clock.ts'

// Free identifiers that tie code to a runtime, a timer or the wall clock.
const FORBIDDEN_GLOBALS = new Map([
  ['process', 'Node global `process`'],
  ['Buffer', 'Node global `Buffer`'],
  ['global', 'Node global `global`'],
  ['__dirname', 'Node global `__dirname`'],
  ['__filename', 'Node global `__filename`'],
  ['require', 'CommonJS `require`'],
  ['Bun', 'Bun global'],
  ['Deno', 'Deno global'],
  ['setTimeout', 'timer `setTimeout`'],
  ['setInterval', 'timer `setInterval`'],
  ['setImmediate', 'timer `setImmediate`'],
  ['clearTimeout', 'timer `clearTimeout`'],
  ['clearInterval', 'timer `clearInterval`'],
  ['clearImmediate', 'timer `clearImmediate`'],
  ['queueMicrotask', 'scheduling with `queueMicrotask`'],
  ['performance', 'wall clock `performance`'],
])

// Objects through which the globals above can be reached by property access.
const GLOBAL_OBJECTS = new Set(['globalThis', 'global', 'window', 'self'])

const isTestFile = (name) => /\.(test|spec|test-d|bench)\.[cm]?[jt]sx?$/.test(name)
const isSource = (name) => /\.[cm]?[jt]sx?$/.test(name) && !name.endsWith('.d.ts')

function sourceFiles(path) {
  const stat = statSync(path)
  if (stat.isFile()) return [path]
  return readdirSync(path, { withFileTypes: true })
    .flatMap((entry) => {
      const full = join(path, entry.name)
      if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : sourceFiles(full)
      return isSource(entry.name) && !isTestFile(entry.name) ? [full] : []
    })
    .sort()
}

function allowedSpecifier(specifier) {
  return (
    specifier === 'zod' ||
    specifier.startsWith('zod/') ||
    specifier.startsWith('./') ||
    specifier.startsWith('../')
  )
}

// True when `node` is a name in a position that is not a reference to a variable: a property
// of `a.b`, a key in `{ b: 1 }`, a class member, a named import/export alias, a label.
function isPropertyName(node) {
  const parent = node.parent
  if (!parent) return false
  if (ts.isPropertyAccessExpression(parent) && parent.name === node) return true
  if (ts.isQualifiedName(parent) && parent.right === node) return true
  if (
    (ts.isPropertyAssignment(parent) ||
      ts.isPropertyDeclaration(parent) ||
      ts.isPropertySignature(parent) ||
      ts.isMethodDeclaration(parent) ||
      ts.isMethodSignature(parent) ||
      ts.isGetAccessorDeclaration(parent) ||
      ts.isSetAccessorDeclaration(parent) ||
      ts.isEnumMember(parent) ||
      ts.isBindingElement(parent)) &&
    parent.name === node
  ) {
    return true
  }
  if (ts.isBindingElement(parent) && parent.propertyName === node) return true
  if ((ts.isImportSpecifier(parent) || ts.isExportSpecifier(parent)) && parent.propertyName === node)
    return true
  if (ts.isLabeledStatement(parent) || ts.isBreakOrContinueStatement(parent)) return true
  return false
}

function check(file) {
  const text = readFileSync(file, 'utf8')
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true)
  const isClockFile = file.endsWith(`/${CLOCK_FILE}`) || file.endsWith(`\\${CLOCK_FILE}`)
  const offences = []
  const report = (node, message) => {
    const { line, character } = source.getLineAndCharacterOfPosition(node.getStart(source))
    offences.push(`${relative(process.cwd(), file)}:${line + 1}:${character + 1} ${message}`)
  }
  const checkSpecifier = (node) => {
    if (node && ts.isStringLiteralLike(node) && !allowedSpecifier(node.text)) {
      report(node, `imports "${node.text}": core may import only zod and its own files`)
    }
  }
  const isDate = (node) => ts.isIdentifier(node) && node.text === 'Date'

  const visit = (node) => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) {
      checkSpecifier(node.moduleSpecifier)
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      checkSpecifier(node.moduleReference.expression)
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      checkSpecifier(node.argument.literal)
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [arg] = node.arguments
      if (arg && ts.isStringLiteralLike(arg)) checkSpecifier(arg)
      else report(node, 'dynamic import() of a computed specifier')
    } else if (ts.isPropertyAccessExpression(node)) {
      if (isDate(node.expression) && node.name.text === 'now' && !isClockFile) {
        report(node, '`Date.now()` outside clock.ts: take a Clock')
      }
      if (ts.isIdentifier(node.expression) && GLOBAL_OBJECTS.has(node.expression.text)) {
        const what = FORBIDDEN_GLOBALS.get(node.name.text)
        if (what) report(node, `${what} via ${node.expression.text}`)
      }
    } else if (ts.isElementAccessExpression(node)) {
      const key = node.argumentExpression
      if (ts.isStringLiteralLike(key)) {
        if (isDate(node.expression) && key.text === 'now' && !isClockFile) {
          report(node, '`Date.now()` outside clock.ts: take a Clock')
        }
        if (ts.isIdentifier(node.expression) && GLOBAL_OBJECTS.has(node.expression.text)) {
          const what = FORBIDDEN_GLOBALS.get(key.text)
          if (what) report(node, `${what} via ${node.expression.text}`)
        }
      }
    } else if (ts.isNewExpression(node) && isDate(node.expression) && (node.arguments?.length ?? 0) === 0) {
      if (!isClockFile) report(node, '`new Date()` reads the wall clock: take a Clock')
    } else if (ts.isCallExpression(node) && isDate(node.expression)) {
      if (!isClockFile) report(node, '`Date()` reads the wall clock: take a Clock')
    } else if (ts.isIdentifier(node) && FORBIDDEN_GLOBALS.has(node.text) && !isPropertyName(node)) {
      report(node, FORBIDDEN_GLOBALS.get(node.text))
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return offences
}

let files
try {
  files = sourceFiles(dir)
} catch (error) {
  console.error(`check-core-purity: cannot read ${dir}: ${error.message}`)
  process.exit(2)
}
// Loaded only once there is something to parse: a usage error should not pay for TypeScript.
const { default: ts } = await import('typescript')
const offences = files.flatMap(check)
if (offences.length > 0) {
  console.error(`core purity: ${offences.length} offence(s) in ${relative(process.cwd(), dir) || '.'}`)
  for (const offence of offences) console.error(`  ${offence}`)
  process.exit(1)
}
console.log(`core purity: ${files.length} files checked, no offences`)
