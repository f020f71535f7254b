/**
 * Splits a SQL script into its statements at top-level semicolons, leaving semicolons
 * inside quotes, quoted identifiers, dollar-quoted bodies and comments alone.
 * Slonik runs one statement per query, and migration files hold several.
 */
export const splitSqlStatements = (script: string): string[] => {
  const statements: string[] = [];
  let start = 0;
  let i = 0;
  const skipPast = (terminator: string, from: number) => {
    const end = script.indexOf(terminator, from);
    return end === -1 ? script.length : end + terminator.length;
  };
  while (i < script.length) {
    const char = script[i];
    const next = script[i + 1];
    if (char === '-' && next === '-') i = skipPast('\n', i + 2);
    else if (char === '/' && next === '*') i = skipPast('*/', i + 2);
    else if (char === "'" || char === '"') {
      // A doubled quote inside a literal is an escaped quote: keep scanning past it.
      let end = i + 1;
      for (;;) {
        end = skipPast(char, end);
        if (script[end] !== char || end >= script.length) break;
        end += 1;
      }
      i = end;
    } else if (char === '$') {
      const tag = /^\$[A-Za-z_]?\w*\$/.exec(script.slice(i))?.[0];
      i = tag === undefined ? i + 1 : skipPast(tag, i + tag.length);
    } else if (char === ';') {
      statements.push(script.slice(start, i));
      i += 1;
      start = i;
    } else i += 1;
  }
  statements.push(script.slice(start));
  return statements
    .map((statement) => statement.trim())
    .filter((statement) => !isOnlyComments(statement));
};

const isOnlyComments = (statement: string): boolean =>
  statement
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/--[^\n]*/g, '')
    .trim() === '';
