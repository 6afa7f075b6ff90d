// schema.sql is documentation that must not drift: applied to an empty PostgreSQL schema, it must
// build the same tables, constraints, indexes and row-level security as the migrations the app runs.
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { drizzle } from 'drizzle-orm/postgres-js'
import postgres from 'postgres'
import { describe, expect, it } from 'vitest'
import { migrateDatabase } from '../src/db/migrate'

const url = process.env.TEST_DATABASE_URL

async function catalog(sql: postgres.Sql, schema: string) {
  const tables = `select c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = '${schema}' and c.relkind = 'r' and c.relname not like '\\_\\_%'`
  const [columns, constraints, indexes, policies, rls] = await Promise.all([
    sql.unsafe(`select table_name, column_name, ordinal_position, data_type, is_nullable, column_default,
        collation_name, is_identity, identity_generation
      from information_schema.columns where table_schema = '${schema}' and table_name not like '\\_\\_%'
      order by table_name, ordinal_position`),
    sql.unsafe(`select conrelid::regclass::text as tbl, conname, contype, pg_get_constraintdef(oid) as def
      from pg_constraint where conrelid in (${tables}) order by conname`),
    sql.unsafe(`select tablename, indexname, replace(indexdef, '${schema}.', '') as def
      from pg_indexes where schemaname = '${schema}' and tablename not like '\\_\\_%' order by indexname`),
    sql.unsafe(`select tablename, policyname, permissive, roles, cmd, qual, with_check
      from pg_policies where schemaname = '${schema}' order by policyname`),
    sql.unsafe(`select relname, relrowsecurity, relforcerowsecurity from pg_class
      where oid in (${tables}) order by relname`),
  ])
  const strip = (rows: postgres.RowList<postgres.Row[]>) =>
    rows.map((r) => JSON.parse(JSON.stringify(r).replaceAll(`${schema}.`, '')))
  return {
    columns: strip(columns),
    constraints: strip(constraints),
    indexes: strip(indexes),
    policies: strip(policies),
    rls: strip(rls),
  }
}

const suite = url ? describe : process.env.CI ? describe : describe.skip

suite(`schema.sql${url ? '' : ' (needs TEST_DATABASE_URL)'}`, () => {
  it('builds the same database as the migrations', async () => {
    if (!url) throw new Error('TEST_DATABASE_URL is required under CI')
    const id = randomBytes(4).toString('hex')
    const [viaMigrations, viaFile] = [`saas_schema_m_${id}`, `saas_schema_f_${id}`]
    const admin = postgres(url, { max: 1, onnotice: () => {} })
    const open = (schema: string) =>
      postgres(url, { max: 1, onnotice: () => {}, connection: { search_path: schema } })
    await admin.unsafe(`create schema "${viaMigrations}"; create schema "${viaFile}"`)
    const m = open(viaMigrations)
    const f = open(viaFile)
    try {
      await migrateDatabase({ dialect: 'pg', db: drizzle({ client: m }), schema: viaMigrations })
      await f.unsafe(await readFile(new URL('../schema.sql', import.meta.url), 'utf8'))
      const expected = await catalog(admin, viaMigrations)
      expect(expected.columns.length).toBeGreaterThan(20)
      expect(expected.policies).toHaveLength(1)
      expect(await catalog(admin, viaFile)).toEqual(expected)
    } finally {
      await Promise.all([m.end({ timeout: 1 }), f.end({ timeout: 1 })])
      await admin.unsafe(
        `drop schema if exists "${viaMigrations}" cascade; drop schema if exists "${viaFile}" cascade`,
      )
      await admin.end({ timeout: 1 })
    }
  })
})
