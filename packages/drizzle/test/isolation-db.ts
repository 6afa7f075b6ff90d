// Fixtures for the tenant-isolation tests (scoped queries, raw SQL, RLS, leak tests): a small
// multi-tenant schema in both dialects, created in the databases of ./databases.ts.
import { sql } from 'drizzle-orm'
import * as pg from 'drizzle-orm/pg-core'
import * as sqlite from 'drizzle-orm/sqlite-core'
import { pgTenantIdColumn, sqliteTenantIdColumn } from '../src/scoped-columns'
import type { TestDatabase } from './databases'

/** The SQLite-family tables (notes and shares use tenantIdColumn, users a plain column). */
export const sqliteTables = {
  plans: sqlite.sqliteTable('plans', {
    id: sqlite.text('id').primaryKey(),
    name: sqlite.text('name').notNull(),
  }),
  users: sqlite.sqliteTable('users', {
    id: sqlite.text('id').primaryKey(),
    tenantId: sqlite.text('tenant_id').notNull(),
    name: sqlite.text('name').notNull(),
    planId: sqlite.text('plan_id'),
  }),
  notes: sqlite.sqliteTable('notes', {
    id: sqlite.text('id').primaryKey(),
    tenantId: sqliteTenantIdColumn(),
    ownerId: sqlite.text('owner_id'),
    title: sqlite.text('title').notNull(),
    score: sqlite.integer('score').notNull().default(0),
  }),
  shares: sqlite.sqliteTable('shares', {
    noteId: sqlite.text('note_id').notNull(),
    tenantId: sqliteTenantIdColumn(),
    userId: sqlite.text('user_id').notNull(),
  }),
}

/** The Postgres tables (same shape). */
export const pgTables = {
  plans: pg.pgTable('plans', {
    id: pg.text('id').primaryKey(),
    name: pg.text('name').notNull(),
  }),
  users: pg.pgTable('users', {
    id: pg.text('id').primaryKey(),
    tenantId: pg.text('tenant_id').notNull(),
    name: pg.text('name').notNull(),
    planId: pg.text('plan_id'),
  }),
  notes: pg.pgTable('notes', {
    id: pg.text('id').primaryKey(),
    tenantId: pgTenantIdColumn(),
    ownerId: pg.text('owner_id'),
    title: pg.text('title').notNull(),
    score: pg.integer('score').notNull().default(0),
  }),
  shares: pg.pgTable('shares', {
    noteId: pg.text('note_id').notNull(),
    tenantId: pgTenantIdColumn(),
    userId: pg.text('user_id').notNull(),
  }),
}

/**
 * The tables of `database`'s dialect. Typed as the SQLite ones: the tests use the same calls on
 * both dialects, and Drizzle's types for the two do not unify.
 */
export function tablesFor(database: TestDatabase): typeof sqliteTables {
  return (database.dialect === 'pg' ? pgTables : sqliteTables) as unknown as typeof sqliteTables
}

const DDL = [
  'create table if not exists plans (id text primary key, name text not null)',
  'create table if not exists users (id text primary key, tenant_id text not null, name text not null, plan_id text)',
  'create table if not exists notes (id text primary key, tenant_id text not null, owner_id text, title text not null, score integer not null default 0)',
  'create table if not exists shares (note_id text not null, tenant_id text not null, user_id text not null, primary key (note_id, user_id))',
]

/** Creates the isolation tables (idempotent). */
export async function createIsolationTables(database: TestDatabase): Promise<void> {
  for (const statement of DDL) await database.query(sql.raw(statement))
}

/** The tenants every isolation test seeds. */
export const TENANTS = ['acme', 'globex', 'initech'] as const

/**
 * Empties the tables and seeds, per tenant `t`: users `t-u1`, `t-u2`; notes `t-n1..t-n3` titled
 * `t note 1..3` (score 1..3, owned by `t-u1`); a share of `t-n1` with `t-u2`. Plans `free`, `pro`.
 */
export async function seedIsolationData(database: TestDatabase): Promise<void> {
  for (const table of ['shares', 'notes', 'users', 'plans'])
    await database.query(sql.raw(`delete from ${table}`))
  await database.query(sql.raw(`insert into plans (id, name) values ('free', 'Free'), ('pro', 'Pro')`))
  for (const t of TENANTS) {
    await database.query(
      sql.raw(
        `insert into users (id, tenant_id, name, plan_id) values ('${t}-u1', '${t}', '${t} one', 'free'), ('${t}-u2', '${t}', '${t} two', 'pro')`,
      ),
    )
    for (const n of [1, 2, 3]) {
      await database.query(
        sql.raw(
          `insert into notes (id, tenant_id, owner_id, title, score) values ('${t}-n${n}', '${t}', '${t}-u1', '${t} note ${n}', ${n})`,
        ),
      )
    }
    await database.query(
      sql.raw(`insert into shares (note_id, tenant_id, user_id) values ('${t}-n1', '${t}', '${t}-u2')`),
    )
  }
}

/** Every row of `table`, unscoped, as plain objects sorted by their JSON. */
export async function allRows(database: TestDatabase, table: string): Promise<Record<string, unknown>[]> {
  const rows = await database.query(sql.raw(`select * from ${table}`))
  return rows.map((r) => ({ ...r })).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)))
}
