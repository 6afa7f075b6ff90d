/** A results table: a header row and rows of already formatted cells. */
export interface Table {
  title: string
  columns: string[]
  rows: string[][]
  /** Printed under the table. */
  note?: string
}

/** One of the targets, with what this run measured. */
export interface Target {
  name: string
  goal: string
  measured: string
  /** undefined: not measured in this run (section skipped or unavailable). */
  holds: boolean | undefined
  /** What limits it, printed when the target is missed. */
  limitedBy?: string
}

/** A section of BENCHMARKS.md (micro, Redis, HTTP, memory). */
export interface Section {
  title: string
  intro: string
  tables: Table[]
  notes: string[]
}

/** Everything one run produces; rendered to markdown at the end. */
export class Report {
  readonly sections: Section[] = []
  readonly targets: Target[] = []
  /** Facts about the environment sections learn while running (e.g. the Redis server version). */
  readonly environment: [string, string][] = []

  section(title: string, intro: string): Section {
    const section: Section = { title, intro, tables: [], notes: [] }
    this.sections.push(section)
    return section
  }

  target(target: Target): void {
    this.targets.push(target)
  }
}

function escapeCell(cell: string): string {
  return cell.replaceAll('|', '\\|')
}

/** A GitHub markdown table: the first column left-aligned, the others right (numbers) unless `left`. */
export function markdownTable(table: Pick<Table, 'columns' | 'rows'>, left = false): string {
  const lines = [
    `| ${table.columns.map(escapeCell).join(' | ')} |`,
    `| ${table.columns.map((_, i) => (i === 0 || left ? '---' : '---:')).join(' | ')} |`,
    ...table.rows.map((row) => `| ${row.map(escapeCell).join(' | ')} |`),
  ]
  return lines.join('\n')
}

/** A table for the terminal, columns padded. */
export function textTable(table: Pick<Table, 'columns' | 'rows'>): string {
  const all = [table.columns, ...table.rows]
  const widths = table.columns.map((_, i) => Math.max(...all.map((row) => (row[i] ?? '').length)))
  return all
    .map((row) =>
      row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  '),
    )
    .join('\n')
}

/** `true` -> "holds", `false` -> "MISSED", `undefined` -> "not measured". */
export function verdict(holds: boolean | undefined): string {
  if (holds === undefined) return 'not measured'
  return holds ? 'holds' : 'MISSED'
}
