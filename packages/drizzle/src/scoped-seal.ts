import {
  Column,
  type DriverValueEncoder,
  eq,
  is,
  isSQLWrapper,
  Name,
  Param,
  Placeholder,
  SQL,
  type SQLWrapper,
  StringChunk,
  Subquery,
  Table,
  View,
} from 'drizzle-orm'
import { LRUCache } from 'lru-cache'
import { UnsafeQueryError } from './raw-sql-ast'

// Internal: what the scoped API checks is what runs. Drizzle's SQL objects are mutable and shared
// by reference (a builder's config holds the caller's condition objects, `.as()` keeps the
// statement in `sq._.sql`, getSQL() shows the tenant condition's parameter), so a check made when
// a query is built would not hold for what runs later. Here every expression the scoped API
// accepts is copied as it is checked into objects nobody else holds and nobody can change
// ("sealed": frozen, Drizzle's own classes, every chunk read once), and everything it hands out
// (subqueries, $count, prepared statements, selected fields) is a read-only view.

/**
 * A mark that holds a tenant id in a private field of the object it marks: nobody can read, forge
 * or remove it (a symbol could be read and copied onto any object), and, unlike a WeakMap entry,
 * it costs the garbage collector nothing. The objects it marks are made here, each marked once,
 * before it is frozen.
 */
function tenantMark(): {
  mark: (value: object, tenantId: string) => void
  of: (value: object) => string | undefined
} {
  // A base class whose constructor answers the given object: the subclass's private field is
  // added to that object.
  class Target {
    constructor(value: object) {
      // biome-ignore lint/correctness/noConstructorReturn: how a private field is added to an object made elsewhere
      return value
    }
  }
  class Marked extends Target {
    readonly #tenant: string
    constructor(value: object, tenantId: string) {
      super(value)
      this.#tenant = tenantId
    }
    static of(value: object): string | undefined {
      return #tenant in value ? (value as Marked).#tenant : undefined
    }
  }
  return { mark: (value, tenantId) => void new Marked(value, tenantId), of: Marked.of }
}

// Every object a scoped database hands out (builders, subqueries, $count), with its tenant.
const artefacts = tenantMark()

// The sealed objects (frozen SQL, subqueries, $count), with the tenant they were checked for:
// embedding one again needs no copy and no second look.
const sealed = tenantMark()

/** The tenant a scoped builder, subquery or count was made for, or undefined for anything else. */
export function scopedTenantOf(value: unknown): string | undefined {
  return typeof value === 'object' && value !== null ? artefacts.of(value) : undefined
}

/** Records `value`, made by a scoped database of `tenantId` and not recorded before, as handed out by it. */
export function register<T extends object>(value: T, tenantId: string): T {
  if (typeof value === 'object' && value !== null) artefacts.mark(value, tenantId)
  return value
}

export function internal(prop: string | symbol): never {
  throw new UnsafeQueryError(
    `"${String(prop)}" is not part of the scoped query API (Drizzle's internals would bypass the tenant)`,
  )
}

function immutable(): never {
  throw new UnsafeQueryError(
    'a scoped query, subquery or statement cannot be changed after it was built (its SQL would no longer be the one checked)',
  )
}

/**
 * The traps that keep a scoped object's internals out of reach by other routes than reading them:
 * their property descriptors (which hold the values), writing, defining or deleting any property
 * (a rewritten config or SQL would run unscoped), and swapping the prototype (a forged method
 * would run with the raw object as `this`). `hidden` tells an internal name. A class, so that a
 * handler is one small object and its traps are shared: handlers of closures made per proxy got
 * their allocation sites pretenured by V8, and kept whole statements alive through young
 * collections.
 */
export abstract class SealedTraps<T extends object> implements ProxyHandler<T> {
  /** True for the name of an internal. */
  abstract hidden(prop: string | symbol): boolean

  getOwnPropertyDescriptor(t: T, prop: string | symbol): PropertyDescriptor | undefined {
    if (this.hidden(prop)) internal(prop)
    return Reflect.getOwnPropertyDescriptor(t, prop)
  }

  set(_t: T, prop: string | symbol): boolean {
    return internal(prop)
  }

  defineProperty(_t: T, prop: string | symbol): boolean {
    return internal(prop)
  }

  deleteProperty(_t: T, prop: string | symbol): boolean {
    return internal(prop)
  }

  setPrototypeOf(): boolean {
    return immutable()
  }

  preventExtensions(): boolean {
    return immutable()
  }
}

/** How an expression is walked. */
enum Mode {
  /** The caller's expression: checked and copied. */
  Caller = 0,
  /** SQL a scoped builder of the tenant produced (tables allowed): copied, not checked. */
  Scoped = 1,
  /** A value Drizzle binds as a parameter: checked, not copied (it is data). */
  Data = 2,
}

interface Plan {
  /** What to walk first, in `mode`. */
  children: readonly unknown[]
  mode: Mode
  /** The sealed replacement, from the replacements of the children; none: the object itself. */
  build?: (replaced: (value: unknown, mode: Mode) => unknown) => unknown
}

// Nothing to walk first.
const NONE: readonly unknown[] = Object.freeze([])

const LEAF: Plan = { children: NONE, mode: Mode.Data }

/** Drizzle's SQL object with the fields it marks internal. */
interface RawSql {
  queryChunks: unknown[]
  decoder: unknown
  shouldInlineParams: boolean
  usedTables: string[]
}

function foreign(): never {
  throw new UnsafeQueryError('an expression embeds a query built for another tenant')
}

function directReference(): never {
  throw new UnsafeQueryError(
    'an expression refers to a table, view or subquery directly; build subqueries with the same scoped database',
  )
}

/** Freezes a copy made here, marked as sealed for `tenantId`. */
function lock<T extends object>(node: T, tenantId: string): T {
  sealed.mark(node, tenantId)
  return Object.freeze(node)
}

// The decoder Drizzle gives an SQL object.
const DEFAULT_DECODER = (new SQL([]) as unknown as RawSql).decoder

const TableSchema = Symbol.for('drizzle:Schema')
const TableName = Symbol.for('drizzle:Name')

/** The names Drizzle's SQL constructor records for the tables among `chunks`. */
function usedTablesOf(chunks: readonly unknown[]): string[] {
  const names: string[] = []
  for (const chunk of chunks) {
    // Drizzle's own classes of SQL parts are no tables: only the rest is asked.
    if (typeof chunk !== 'object' || chunk === null || KNOWN.has(Object.getPrototypeOf(chunk))) continue
    if (!is(chunk, Table)) continue
    const table = chunk as unknown as Record<symbol, string>
    const schema = table[TableSchema]
    names.push(schema === undefined ? table[TableName]! : `${schema}.${table[TableName]}`)
  }
  return names
}

/**
 * A sealed SQL object over `chunks` (sealed already): Drizzle's SQL class with Drizzle's fields in
 * Drizzle's order, each defined read-only and for good on a new object, which is then closed, so
 * its prototype cannot change either (making them read-only on an object Drizzle built costs
 * several times as much). `decoder` stays writable: Drizzle sets the decoder of a subquery
 * selected as a field (result decoding only, never SQL text).
 */
function sealedSql(
  chunks: unknown[],
  tenantId: string,
  from?: Pick<RawSql, 'decoder' | 'shouldInlineParams'>,
  usedTables: readonly string[] = usedTablesOf(chunks),
): SQL {
  const node = Object.create(SQL.prototype) as SQL
  Object.defineProperty(node, 'decoder', {
    value: from === undefined ? DEFAULT_DECODER : from.decoder,
    writable: true,
    enumerable: true,
  })
  Object.defineProperty(node, 'shouldInlineParams', {
    value: from?.shouldInlineParams === true,
    enumerable: true,
  })
  Object.defineProperty(node, 'usedTables', { value: Object.freeze(usedTables), enumerable: true })
  Object.defineProperty(node, 'queryChunks', { value: Object.freeze(chunks), enumerable: true })
  sealed.mark(node, tenantId)
  return Object.preventExtensions(node)
}

/** A wrapper renders as its SQL, in parentheses unless it says otherwise (Drizzle's rule). */
function wrapperPlan(wrapper: SQLWrapper, mode: Mode, inner: Mode, tenantId: string): Plan {
  const omit = (wrapper as { shouldOmitSQLParens?: () => boolean }).shouldOmitSQLParens?.() === true
  const sql = wrapper.getSQL()
  if (mode === Mode.Data) return { children: [sql], mode: Mode.Data }
  return {
    children: [sql],
    mode: inner,
    build: (r) =>
      sealedSql(
        omit
          ? [r(sql, inner)]
          : [lock(new StringChunk('('), tenantId), r(sql, inner), lock(new StringChunk(')'), tenantId)],
        tenantId,
      ),
  }
}

function turnedIntoSql(): never {
  throw new UnsafeQueryError(
    'a value passed as data became an SQL object after it was checked (its prototype was changed); it is not rendered as SQL',
  )
}

type Encoder = DriverValueEncoder<unknown, unknown>
const dataEncoders = new WeakMap<object, Encoder>()

/**
 * `encoder` for a value checked as data: Drizzle renders a parameter whose encoded value is an SQL
 * object as that SQL, deciding when the statement runs, and an object passed as data can be made
 * one later (its prototype swapped to `SQL.prototype`, through an encoder that hands the object on
 * unchanged). This one answers what `encoder` answers and refuses SQL. It inherits from `encoder`,
 * so a column's class checks (Postgres parameter typings) answer as before. One per encoder.
 */
export function dataOnly(encoder: Encoder): Encoder {
  let guarded = dataEncoders.get(encoder)
  if (guarded === undefined) {
    guarded = Object.create(encoder, {
      mapToDriverValue: {
        value: (value: unknown): unknown => {
          const out = encoder.mapToDriverValue(value)
          return typeof out === 'object' && out !== null && is(out, SQL) ? turnedIntoSql() : out
        },
      },
    }) as Encoder
    dataEncoders.set(encoder, Object.freeze(guarded))
  }
  return guarded
}

// Drizzle's default encoder (the value as it is), guarded.
const DATA = dataOnly({ mapToDriverValue: (value: unknown) => value })

/**
 * `value` as a parameter Drizzle binds and never renders as SQL: an object goes through the
 * guarded default encoder (see {@link dataOnly}), a primitive as it is.
 */
export function dataParameter(value: unknown): Param {
  return typeof value === 'object' && value !== null ? new Param(value, DATA) : new Param(value)
}

/** A sealed parameter binding `value` (an object) as data through `encoder`, never as SQL. */
function dataParam(value: object, encoder: Encoder | undefined, tenantId: string): Param {
  return lock(new Param(value, encoder === undefined ? DATA : dataOnly(encoder)), tenantId)
}

/**
 * An object `value` written to `column` (an insert's row, an update's `set`), as Drizzle gets it:
 * a sealed SQL binding it as data through the column's encoder (Drizzle keeps an SQL value as it
 * is; anything else it binds through the column's encoder, which could render SQL later).
 */
export function sealedValue(value: object, column: Column | undefined, tenantId: string): SQL {
  return sealedSql([dataParam(value, column as Encoder | undefined, tenantId)], tenantId)
}

function paramPlan(param: Param, mode: Mode, tenantId: string): Plan {
  const { value, encoder } = param
  if (is(value, Placeholder)) {
    // Filled in when the statement runs, through the encoder, as a bound value.
    if (mode === Mode.Data) return LEAF
    return { children: [value], mode, build: (r) => lock(new Param(r(value, mode), encoder), tenantId) }
  }
  // Drizzle renders a parameter whose value, after the encoder, is an SQL object as that SQL.
  // The encoder of a column is the schema's; any other encoder is applied once, here, so that
  // what was checked is what runs.
  const column = is(encoder, Column)
  let mapped: unknown
  try {
    mapped = value === null || value === undefined ? value : encoder.mapToDriverValue(value)
  } catch (error) {
    if (!column) throw error
    mapped = undefined // Drizzle's own rendering throws the same.
  }
  if (mode === Mode.Data) return { children: [value, mapped], mode: Mode.Data }
  if (is(mapped, SQL)) return { children: [mapped], mode, build: (r) => r(mapped, mode) }
  return {
    children: mode === Mode.Caller ? [value, mapped] : NONE,
    mode: Mode.Data,
    // An object is bound through a guarded encoder: it was no SQL when it was checked, and must
    // not become one before it runs.
    build: () => {
      const bound = column ? value : mapped
      if (typeof bound === 'object' && bound !== null)
        return dataParam(bound, column ? encoder : undefined, tenantId)
      return lock(column ? new Param(value, encoder) : new Param(mapped), tenantId)
    },
  }
}

/** What Drizzle's `is()` answers for an object, by its first match in the order `plan` asks. */
enum Kind {
  Column,
  Param,
  StringChunk,
  Name,
  Placeholder,
  Sql,
  Aliased,
  Entity,
  Other,
}

// The prototypes of Drizzle's own classes `plan` tells apart, answered without walking the
// prototype chain in `is()` each time (Drizzle's classes are what they are); any other object,
// its prototype swappable, is asked with `is()` every time.
const KNOWN = new Map<object, Kind>([
  [Param.prototype, Kind.Param],
  [StringChunk.prototype, Kind.StringChunk],
  [Name.prototype, Kind.Name],
  [Placeholder.prototype, Kind.Placeholder],
  [SQL.prototype, Kind.Sql],
  [SQL.Aliased.prototype, Kind.Aliased],
])

function kindOf(item: object): Kind {
  const known = KNOWN.get(Object.getPrototypeOf(item))
  if (known !== undefined) return known
  if (is(item, Column)) return Kind.Column
  if (is(item, Param)) return Kind.Param
  if (is(item, StringChunk)) return Kind.StringChunk
  if (is(item, Name)) return Kind.Name
  if (is(item, Placeholder)) return Kind.Placeholder
  if (is(item, SQL)) return Kind.Sql
  if (is(item, SQL.Aliased)) return Kind.Aliased
  if (is(item, Table) || is(item, View) || is(item, Subquery)) return Kind.Entity
  return Kind.Other
}

/** What a walk of a caller's expression noticed. */
export interface SealNotes {
  /**
   * The expression holds raw text that could end its place in the statement or renumber
   * parameters (brackets, quotes, comment or parameter characters, `;`): its rendered text needs
   * the bracket rule. Text of only words, spaces and operators (`asc`, ` = `) cannot.
   */
  text: boolean
}

// Raw text that can neither close, open, quote, comment nor name a parameter.
const INERT_TEXT = /^[\w\s,.=<>!+*%&|^~]*$/

function plan(item: object, mode: Mode, tenantId: string, notes: SealNotes | undefined): Plan {
  const sealedFor = sealed.of(item)
  if (sealedFor !== undefined) {
    if (sealedFor !== tenantId) foreign()
    return LEAF
  }
  const owner = artefacts.of(item)
  if (owner !== undefined) {
    if (owner !== tenantId) foreign()
    // A builder of this tenant: embedded as its SQL now, so that changing the builder later (a
    // raw orderBy closing the brackets around a condition) does not change this statement.
    return mode === Mode.Data ? LEAF : wrapperPlan(item as SQLWrapper, mode, Mode.Scoped, tenantId)
  }
  const kind = kindOf(item)
  if (kind === Kind.Column) return LEAF
  if (kind === Kind.Param) return paramPlan(item as Param, mode, tenantId)
  const copy = mode !== Mode.Data
  if (kind === Kind.StringChunk) {
    const { value } = item as { value: unknown }
    const texts = Array.isArray(value) ? value.map(String) : [String(value)]
    if (notes !== undefined && mode === Mode.Caller && !notes.text) {
      notes.text = texts.some((text) => !INERT_TEXT.test(text))
    }
    return copy
      ? {
          children: NONE,
          mode,
          build: () => lock(new StringChunk(Object.freeze(texts) as string[]), tenantId),
        }
      : LEAF
  }
  if (kind === Kind.Name) {
    const value = String((item as Name).value)
    return copy ? { children: NONE, mode, build: () => lock(new Name(value), tenantId) } : LEAF
  }
  if (kind === Kind.Placeholder) {
    const name = String((item as Placeholder).name)
    return copy ? { children: NONE, mode, build: () => lock(new Placeholder(name), tenantId) } : LEAF
  }
  if (kind === Kind.Sql) {
    const chunks = Array.from((item as SQL).queryChunks)
    if (!copy) return { children: chunks, mode }
    const { decoder, shouldInlineParams } = item as unknown as RawSql
    const from = { decoder, shouldInlineParams }
    return {
      children: chunks,
      mode,
      build: (r) => {
        const node = sealedSql(
          chunks.map((c) => r(c, mode)),
          tenantId,
          from,
        )
        if (from.shouldInlineParams === true) checkInlinable(node)
        return node
      },
    }
  }
  if (kind === Kind.Aliased) {
    const { sql, isSelectionField } = item as SQL.Aliased & { isSelectionField: boolean }
    // Text Drizzle quotes with the string's own methods when it renders: read once, here.
    const fieldAlias = String((item as SQL.Aliased).fieldAlias)
    if (!copy) return { children: [sql], mode: Mode.Data }
    return {
      children: [sql],
      mode,
      build: (r) => {
        const aliased = new SQL.Aliased(r(sql, mode) as SQL, fieldAlias) as SQL.Aliased & {
          isSelectionField: boolean
        }
        aliased.isSelectionField = isSelectionField
        return lock(aliased, tenantId)
      },
    }
  }
  if (kind === Kind.Entity) {
    if (mode === Mode.Scoped) return LEAF
    directReference()
  }
  if (isSQLWrapper(item)) return wrapperPlan(item, mode, mode, tenantId)
  if (Array.isArray(item)) {
    // Drizzle renders an array inside SQL as a list of its rendered elements.
    const elements = Array.from(item as unknown[])
    if (!copy) return { children: elements, mode }
    return {
      children: elements,
      mode,
      build: (r) =>
        lock(
          elements.map((e) => r(e, mode)),
          tenantId,
        ),
    }
  }
  const proto = Object.getPrototypeOf(item)
  if (proto === Object.prototype || proto === null) {
    // Selected fields, upsert configs: copied, not frozen (Drizzle proxies selections, and a
    // proxy over a frozen object must answer its exact values). Nobody else holds the copy.
    const entries = Object.entries(item)
    const children = entries.map(([, v]) => v)
    if (!copy) return { children, mode }
    return {
      children,
      mode,
      build: (r) => {
        const out: Record<string, unknown> = proto === null ? Object.create(null) : {}
        for (const [key, v] of entries) out[key] = r(v, mode)
        return out
      },
    }
  }
  // Anything else (Date, Uint8Array, class instances) is a value to bind, not SQL: bound as a
  // parameter that stays data (Drizzle would ask at render time whether it is SQL, or a wrapper).
  if (!copy) return LEAF
  return { children: NONE, mode, build: () => dataParam(item, undefined, tenantId) }
}

function inlinedObject(): never {
  throw new UnsafeQueryError(
    'an inlined parameter (.inlineParams()) must be a string, number, boolean or null: Drizzle writes an object into the statement as the text its own toString() answers when the statement runs',
  )
}

/**
 * Refuses an object among the values a sealed SQL object with `shouldInlineParams` writes into its
 * text (at any depth: its parts inherit the flag): Drizzle writes such a value with its own
 * `toString()` and quotes the result with that result's own `replace()`, both called when the
 * statement runs, so the text could change after the check. Strings, numbers, booleans and null
 * Drizzle writes itself; placeholders are bound when the statement runs.
 */
function checkInlinable(node: SQL): void {
  const stack: unknown[] = [node]
  while (stack.length > 0) {
    const item = stack.pop()
    if (typeof item === 'function') inlinedObject()
    if (item === null || typeof item !== 'object') continue
    const proto = Object.getPrototypeOf(item)
    if (proto === SQL.prototype) stack.push(...(item as SQL).queryChunks)
    else if (proto === SQL.Aliased.prototype) stack.push((item as SQL.Aliased).sql)
    else if (Array.isArray(item)) stack.push(...item)
    else if (is(item, Subquery)) stack.push((item as unknown as { _: { sql: SQL } })._.sql)
    else if (is(item, SQL)) stack.push(...(item as SQL).queryChunks)
    else if (proto === Param.prototype) {
      const { value } = item as Param
      if (
        ((value !== null && typeof value === 'object') || typeof value === 'function') &&
        !is(value, Placeholder)
      ) {
        inlinedObject()
      }
    } else if (proto === Object.prototype || proto === null) inlinedObject()
  }
}

function functionInExpression(): never {
  throw new UnsafeQueryError(
    'a function is not an SQL value: Drizzle would render one with a getSQL() method (or its properties, as fields) when the statement runs',
  )
}

// What a walk records for an object while its children are walked.
const OPEN = Symbol('open')

/** An object to walk, and how; with its plan once its children are on the stack. */
interface Frame {
  item: object
  mode: Mode
  plan: Plan | undefined
}

/**
 * A part sealed already, met again in a caller's expression: it needs no copy, but its text was
 * checked for the place it was first written, not for this one (a chunk taken from a `getSQL()`
 * copy, harmless inside a string literal there, could end a `set` value here), so the expression
 * is noted as holding raw text and gets the bracket rule.
 */
function reused<T>(part: T, mode: Mode, notes: SealNotes | undefined): T {
  if (notes !== undefined && mode === Mode.Caller) notes.text = true
  return part
}

/**
 * Walks `root` in `mode` with its own stack (an expression's depth is no limit) and answers its
 * sealed copy. Children are sealed before their parent; an object met again is sealed once, and an
 * object sealed for this tenant already stands for itself without a look.
 */
function walk(root: unknown, mode: Mode, tenantId: string, notes?: SealNotes): unknown {
  if (typeof root === 'function' && mode !== Mode.Data) functionInExpression()
  if (root === null || typeof root !== 'object') return root
  if (sealed.of(root) === tenantId) return reused(root, mode, notes)
  // Per mode: what each object was replaced by, or OPEN while its children are walked (an object
  // met again while it is open is a cycle, which Drizzle could not render either).
  const done: (Map<object, unknown> | undefined)[] = []
  const replaced = (value: unknown, m: Mode): unknown =>
    value !== null && typeof value === 'object' && done[m]?.has(value) ? done[m].get(value) : value
  const built = (item: object, p: Plan): unknown => (p.build === undefined ? item : p.build(replaced))
  const stack: Frame[] = [{ item: root, mode, plan: undefined }]
  while (stack.length > 0) {
    const frame = stack.pop()!
    const { item, mode: m } = frame
    done[m] ??= new Map()
    const seen = done[m]
    if (frame.plan !== undefined) {
      seen.set(item, built(item, frame.plan))
      continue
    }
    // A replacement is never undefined: an object, or the object itself.
    const state = seen.get(item)
    if (state === OPEN) throw new UnsafeQueryError('an expression that contains itself cannot be rendered')
    if (state !== undefined) continue
    const p = plan(item, m, tenantId, notes)
    frame.plan = p
    stack.push(frame)
    const below = stack.length
    for (const child of p.children) {
      if (child !== null && typeof child === 'object') {
        if (sealed.of(child) !== tenantId) stack.push({ item: child, mode: p.mode, plan: undefined })
        else reused(child, p.mode, notes)
      } else if (typeof child === 'function' && p.mode !== Mode.Data) functionInExpression()
    }
    // Nothing to walk first: sealed now, as it would be when its frame came off the stack next.
    if (stack.length === below) {
      stack.pop()
      seen.set(item, built(item, p))
    } else seen.set(item, OPEN)
  }
  return replaced(root, mode)
}

/**
 * Checks a caller's expression for `tenantId` and answers the sealed copy to hand to Drizzle:
 * refuses a table, view or subquery inside it and a builder, subquery or count not made by a
 * scoped database of this tenant; a scoped builder is embedded as its SQL at this moment. Columns,
 * parameters and plain values pass. (Raw text inside `sql` is the caller's own code.)
 */
export function sealExpression<T>(value: T, tenantId: string, notes?: SealNotes): T {
  return walk(value, Mode.Caller, tenantId, notes) as T
}

/** Checks a value Drizzle binds as data (nothing to copy) by the rules of {@link sealExpression}. */
export function inspectData(value: unknown, tenantId: string): void {
  walk(value, Mode.Data, tenantId)
}

/** Seals SQL the scoped API produced itself for `tenantId` (tables allowed, nothing checked). */
export function sealScoped<T>(value: T, tenantId: string): T {
  return walk(value, Mode.Scoped, tenantId) as T
}

/**
 * Drizzle's `sql` tag for SQL the scoped API writes itself around parts it holds (the tenant
 * condition, a checked condition): what {@link sealScoped} answers for `sql` of the same template,
 * without a walk over the parts that are sealed already.
 *
 * @example
 * ```ts
 * scopedSql(tenantId)`(${condition} and (${checked}))`
 * ```
 */
export function scopedSql(tenantId: string): (strings: TemplateStringsArray, ...values: unknown[]) => SQL {
  return (strings, ...values) => {
    const text = (value: string) => lock(new StringChunk(Object.freeze([value]) as string[]), tenantId)
    // The values in the order a walk of the whole statement checks them: the last first.
    const parts = new Array<unknown>(values.length)
    for (let i = values.length - 1; i >= 0; i--) parts[i] = walk(values[i], Mode.Scoped, tenantId)
    // Drizzle's layout: the leading text (unless empty and alone), then each value and the text after it.
    const chunks: unknown[] = []
    if (values.length > 0 || (strings.length > 0 && strings[0] !== '')) chunks.push(text(strings[0]!))
    for (const [i, part] of parts.entries()) chunks.push(part, text(strings[i + 1]!))
    return sealedSql(chunks, tenantId)
  }
}

// The tenant condition of each tenant column, sealed, by tenant: every scoped statement has one,
// and a sealed statement is immutable. Bounded by the tenants seen last.
const tenantConditions = new LRUCache<string, WeakMap<Column, SQL>>({ max: 4096 })

/**
 * `column = tenantId`, sealed for the tenant: a new SQL object (its decoder is its own) over the
 * sealed parts of the first one made for this column and tenant.
 */
export function sealedTenantCondition(column: Column, tenantId: string): SQL {
  let byColumn = tenantConditions.get(tenantId)
  if (byColumn === undefined) {
    byColumn = new WeakMap()
    tenantConditions.set(tenantId, byColumn)
  }
  let first = byColumn.get(column)
  if (first === undefined) {
    first = sealScoped(eq(column, tenantId), tenantId)
    byColumn.set(column, first)
  }
  const raw = first as unknown as RawSql
  return sealedSql(raw.queryChunks, tenantId, raw, raw.usedTables)
}

// Read-only views, and objects known to be immutable, which a view hands out as they are.
const views = new WeakSet<object>()
// The view of each object that has one.
const viewOf = new WeakMap<object, object>()

// What a view hands out as it is: values, sealed objects, views, columns (the schema's), and the
// aliased fields Drizzle's selection proxies clone for each read.
function passesAsIs(value: unknown): boolean {
  return (
    value === null ||
    typeof value !== 'object' ||
    sealed.of(value) !== undefined ||
    views.has(value) ||
    is(value, Column) ||
    is(value, SQL.Aliased)
  )
}

const readOnlyHandler: ProxyHandler<object> = {
  get(t, prop) {
    const value = Reflect.get(t, prop, t)
    return passesAsIs(value) ? value : readOnly(value as object)
  },
  getOwnPropertyDescriptor(t, prop) {
    const desc = Reflect.getOwnPropertyDescriptor(t, prop)
    // A non-configurable property must be reported as it is (arrays' length, frozen arrays).
    if (desc === undefined || !desc.configurable || !('value' in desc)) return desc
    return { ...desc, value: readOnlyHandler.get!(t, prop, t) }
  },
  set: immutable,
  defineProperty: immutable,
  deleteProperty: immutable,
  setPrototypeOf: immutable,
  preventExtensions: immutable,
}

/**
 * A view of `value` that answers reads like `value` (Drizzle's selection proxies included) and
 * refuses any change, at any depth: the objects it hands out are views too, except the ones in
 * {@link passesAsIs}. Its property descriptors hold views as well.
 */
export function readOnly<T extends object>(value: T): T {
  // One view per object: Drizzle reads `sq._` and nested field maps on every use of a subquery.
  const known = viewOf.get(value)
  if (known !== undefined) return known as T
  const view = new Proxy(value, readOnlyHandler) as T
  views.add(view)
  viewOf.set(value, view)
  return view
}

function copyFields(fields: unknown): unknown {
  if (fields === null || typeof fields !== 'object' || views.has(fields)) return fields
  const proto = Object.getPrototypeOf(fields)
  if (proto !== Object.prototype && proto !== null) return fields
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(fields)) out[key] = copyFields(value)
  return out
}

/**
 * `builder.as(alias)` as a subquery whose SQL, fields and alias nobody can change: Drizzle's own
 * subquery (so `from()`, joins, `with()` and field access work as ever) with `_` replaced before
 * anyone sees it by the sealed statement and a copy of the fields, behind a read-only view.
 */
export function sealedSubquery(builder: any, alias: string, tenantId: string): object {
  // Text Drizzle quotes with the string's own methods when it renders: read once, here.
  const subquery = builder.as(String(alias))
  const view = subquery._
  Reflect.set(subquery, '_', {
    ...view,
    sql: sealScoped(view.sql, tenantId),
    selectedFields: copyFields(builder.config.fields),
    usedTables: Object.freeze([...(view.usedTables ?? [])]),
  })
  const out = readOnly(subquery)
  sealed.mark(out, tenantId)
  return register(out, tenantId)
}

// What a count builder holds to run itself: its session, and the SQL and params it runs.
const COUNT_INTERNALS = new Set(['session', 'sql', 'params'])

/**
 * Drizzle's count builder is an SQL object (so it can be embedded in a select), which Drizzle
 * renders through its fields; only what runs it on its own is hidden: its session (which runs any
 * SQL unscoped) and the statement it runs, which awaiting it uses from the builder itself. Both
 * statements are sealed first, so neither can be rewritten through the chunks it shows.
 */
export function sealedCount<T extends object>(count: T, tenantId: string): T {
  const raw = count as unknown as { queryChunks: unknown[]; sql: SQL }
  raw.queryChunks = sealScoped(raw.queryChunks, tenantId)
  raw.sql = sealScoped(raw.sql, tenantId)
  const proxy = new Proxy(count, COUNT_TRAPS as SealedTraps<T>)
  sealed.mark(proxy, tenantId)
  return register(proxy, tenantId)
}

class CountTraps extends SealedTraps<object> {
  hidden(prop: string | symbol): boolean {
    return typeof prop === 'string' && COUNT_INTERNALS.has(prop)
  }

  get(t: object, prop: string | symbol): unknown {
    if (this.hidden(prop)) internal(prop)
    const value = Reflect.get(t, prop, t)
    // then/catch/finally read the session and the statement: they run on the builder itself.
    if (prop === 'then' || prop === 'catch' || prop === 'finally') {
      return (value as (...a: unknown[]) => unknown).bind(t)
    }
    return value
  }
}

const COUNT_TRAPS = new CountTraps()

// What a prepared statement offers: running it, and the statement it runs (as a copy).
const PREPARED_PUBLIC = new Set([
  'execute',
  'all',
  'get',
  'run',
  'values',
  'getQuery',
  'isResponseInArrayMode',
])

/**
 * Refuses, on SQLite, a bound value that is an object other than a date or binary data. bun:sqlite
 * reads an object given as the first parameter as named parameters, index keys included, in place
 * of every positional one after it: `{ 0: 'g1', 1: 'globex' }` would bind the tenant's place to
 * `'globex'`. The other SQLite drivers refuse such a value anyway, so nothing that runs is lost;
 * store an object through a JSON column (`text({ mode: 'json' })`) or as `JSON.stringify(value)`.
 */
export function checkSqliteValues(values: readonly unknown[]): void {
  for (const value of values) {
    if (
      typeof value === 'object' &&
      value !== null &&
      !ArrayBuffer.isView(value) &&
      !(value instanceof ArrayBuffer) &&
      !(value instanceof Date) &&
      // Filled in when a prepared statement runs, its value checked then (sealedPrepared): bare,
      // or through a column's encoder (Drizzle's insert and set()).
      !is(value, Placeholder) &&
      !(is(value, Param) && is(value.value, Placeholder))
    ) {
      throw new UnsafeQueryError(
        'on SQLite a bound value must be a string, number, bigint, boolean, null, Date or binary data, not an object: ' +
          "bun:sqlite reads an object as named parameters in place of the others (the tenant's among them); " +
          "store it through a JSON column (mode: 'json') or as JSON.stringify(value)",
      )
    }
  }
}

/**
 * A prepared statement that runs as prepared and shows its statement, but keeps its driver
 * client, session and the text and parameters it runs out of reach: a rewritten `query` or
 * `queryString` would run unscoped, and the client runs anything. On SQLite the values given for
 * its placeholders are held to {@link checkSqliteValues}.
 */
export function sealedPrepared<T extends object>(prepared: T, sqlite = false): T {
  return new Proxy(prepared, (sqlite ? SQLITE_PREPARED_TRAPS : PREPARED_TRAPS) as SealedTraps<T>)
}

class PreparedTraps extends SealedTraps<object> {
  hidden(prop: string | symbol): boolean {
    return typeof prop === 'string' && !PREPARED_PUBLIC.has(prop)
  }

  get(t: object, prop: string | symbol): unknown {
    if (typeof prop === 'symbol' || prop === 'constructor') return Reflect.get(t, prop, t)
    if (this.hidden(prop)) internal(prop)
    const value = Reflect.get(t, prop, t)
    if (typeof value !== 'function') return value
    if (prop === 'getQuery') {
      return () => {
        const query = (value as () => { sql: string; params: unknown[] }).call(t)
        return Object.freeze({ ...query, params: Object.freeze([...query.params]) })
      }
    }
    return (value as (...a: unknown[]) => unknown).bind(t)
  }
}

const PREPARED_TRAPS = new PreparedTraps()

// The methods of a prepared statement that take the values of its placeholders.
const RUNS = new Set(['execute', 'all', 'get', 'run', 'values'])

class SqlitePreparedTraps extends PreparedTraps {
  override get(t: object, prop: string | symbol): unknown {
    const method = super.get(t, prop)
    if (typeof prop !== 'string' || !RUNS.has(prop) || typeof method !== 'function') return method
    return (placeholders?: Record<string, unknown>, ...rest: unknown[]) => {
      // The values as the driver will get them: a placeholder's value through its column's
      // encoder, as Drizzle fills it in (a JSON column's object becomes text).
      const { params } = (t as { getQuery(): { params: unknown[] } }).getQuery()
      checkSqliteValues(params.map((param) => filledIn(param, placeholders)))
      return (method as (...a: unknown[]) => unknown)(placeholders, ...rest)
    }
  }
}

/** A prepared statement's parameter as it is bound once `values` fill in its placeholders. */
function filledIn(param: unknown, values: Record<string, unknown> | undefined): unknown {
  if (is(param, Placeholder)) return values?.[param.name]
  if (is(param, Param) && is(param.value, Placeholder)) {
    const value = values?.[param.value.name]
    return value === null || value === undefined ? value : param.encoder.mapToDriverValue(value)
  }
  return param
}

const SQLITE_PREPARED_TRAPS = new SqlitePreparedTraps()
