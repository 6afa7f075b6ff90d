import type { AnyDb } from './driver'
import { UnsafeQueryError } from './raw-sql-ast'

// Internal: a transaction handed to a callback, and the session under it, refuse work once the
// callback is over. Kept past it (assigned to a variable, or a builder made inside and run later),
// the raw transaction would run on its pooled connection inside whatever transaction that
// connection serves next, another tenant's included (seen with postgres.js and a pool of one).

/**
 * What one transaction call guards (`withTenantRls`, `TenantDB.transaction`): its tenant, the
 * call as a message names it, and the sessions to end once it is over.
 */
export interface TransactionScope {
  readonly tenantId: string
  /** The call, for the error: `withTenantRls(db, "acme")`. */
  readonly call: string
  readonly sessions: SessionGuard[]
}

function endedError(scope: { tenantId: string; call: string }): UnsafeQueryError {
  return new UnsafeQueryError(`the transaction of ${scope.call} has ended; use it only inside the callback`, {
    tenantId: scope.tenantId,
  })
}

/**
 * The transaction as `fn` sees it: once `fn` has settled, every use throws. Kept past the call, the
 * raw transaction would run on its connection inside whatever transaction that connection serves
 * next, another tenant's included (seen with postgres.js and a pool of one). A savepoint opened
 * from it (`transaction()`) is handed out the same way, and its session, when the driver gives it
 * one of its own (postgres.js), refuses work once the whole call is over.
 */
export function endingWith<T extends object>(tx: T, scope: TransactionScope): { tx: T; end(): void } {
  let open = true
  const proxy = new Proxy(tx, {
    get(target, prop, receiver) {
      if (!open) {
        // Awaiting the ended handle (a value fn returned) must not throw: it is not a thenable.
        if (prop === 'then') return undefined
        throw endedError(scope)
      }
      const value = Reflect.get(target, prop, receiver)
      if (prop !== 'transaction' || typeof value !== 'function') return value
      return (inner: (savepoint: AnyDb) => unknown, config?: unknown) =>
        value.call(
          receiver,
          async (savepoint: AnyDb) => {
            const own = (savepoint as AnyDb).session
            if (own !== (target as AnyDb).session) scope.sessions.push(guardSession(own, scope))
            const handle = endingWith(savepoint, scope)
            try {
              return await inner(handle.tx)
            } finally {
              handle.end()
            }
          },
          config,
        )
    },
  })
  return {
    tx: proxy,
    end: () => {
      open = false
    },
  }
}

export interface SessionGuard {
  end(): void
}

/**
 * Makes the transaction's own session refuse work once the transaction is over. Builders,
 * relational queries and prepared statements made inside `fn` hold this session (or a prepared
 * query of it), not the handle; run later, they would execute on the connection inside whatever
 * transaction it serves next. Every method of the session instance is shadowed by one that checks
 * first, and each prepared query it hands out is wrapped the same way.
 */
export function guardSession(session: object, scope: { tenantId: string; call: string }): SessionGuard {
  let open = true
  const guarded = <T extends object>(target: T): T =>
    new Proxy(target, {
      get(t, prop, receiver) {
        if (!open) {
          if (prop === 'then') return undefined
          throw endedError(scope)
        }
        return Reflect.get(t, prop, receiver)
      },
    })
  for (const name of methodNames(session)) {
    const original = (session as Record<string, unknown>)[name] as (...args: unknown[]) => unknown
    Object.defineProperty(session, name, {
      configurable: true,
      writable: true,
      value(this: unknown, ...args: unknown[]) {
        if (!open) throw endedError(scope)
        const result = original.apply(this, args)
        return name === 'prepareQuery' && typeof result === 'object' && result !== null
          ? guarded(result)
          : result
      },
    })
  }
  return {
    end: () => {
      open = false
    },
  }
}

/** The methods an object inherits from its classes (not Object's own). */
export function methodNames(object: object): Set<string> {
  const names = new Set<string>()
  for (
    let proto = Object.getPrototypeOf(object);
    proto && proto !== Object.prototype;
    proto = Object.getPrototypeOf(proto)
  ) {
    for (const name of Object.getOwnPropertyNames(proto)) {
      if (name !== 'constructor' && typeof Object.getOwnPropertyDescriptor(proto, name)?.value === 'function')
        names.add(name)
    }
  }
  return names
}
