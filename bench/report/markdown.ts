// Markdown as prettier writes it: escaped text, inline code, link destinations and GFM
// tables padded the way prettier pads them, so the generated page passes `npm run lint`.

/** Plain text safe inside markdown prose and table cells. */
export function mdText(text: string): string {
  return text.replace(/[\\`*_[\]<>&|~]/g, (char) => `\\${char}`);
}

/** Inline code that survives backticks in the text. */
export function mdCode(text: string): string {
  const longestRun = Math.max(0, ...(text.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(longestRun + 1);
  const pad = text.startsWith('`') || text.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${text}${pad}${fence}`;
}

/** A link destination, in angle brackets when it holds spaces or parentheses. */
export function mdDestination(path: string): string {
  return /[\s()<>]/.test(path) ? `<${path.replace(/[<>]/g, encodeURIComponent)}>` : path;
}

type Align = 'left' | 'right';

/** A table column: its header and alignment. */
export interface Column {
  readonly header: string;
  readonly align?: Align;
}

/** A GFM table padded the way prettier pads it (columns at least 3 wide). */
export function mdTable(columns: readonly Column[], rows: readonly (readonly string[])[]): string {
  const widths = columns.map((column, index) =>
    Math.max(3, column.header.length, ...rows.map((row) => (row[index] ?? '').length)),
  );
  const cell = (text: string, index: number) => {
    const width = widths[index] ?? 3;
    return columns[index]?.align === 'right' ? text.padStart(width) : text.padEnd(width);
  };
  const line = (cells: readonly string[]) =>
    `| ${columns.map((_, index) => cell(cells[index] ?? '', index)).join(' | ')} |`;
  const delimiter = `| ${widths
    .map((width, index) =>
      columns[index]?.align === 'right' ? `${'-'.repeat(width - 1)}:` : '-'.repeat(width),
    )
    .join(' | ')} |`;
  return [
    line(columns.map((column) => column.header)),
    delimiter,
    ...rows.map((row) => line(row)),
  ].join('\n');
}

/** A right-aligned column (figures). */
export const right = (header: string): Column => ({ header, align: 'right' });
/** A left-aligned column (names). */
export const left = (header: string): Column => ({ header });
