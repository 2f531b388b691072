// Text from runs and people (reasons, comments, names) printed on a terminal: control characters are
// shown as escapes, so no value can print a line that looks like another, or move the cursor.
export function escapeText(value: unknown): string {
  return String(value).replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) =>
    c === '\n' ? '\\n' : c === '\r' ? '\\r' : c === '\t' ? '\\t' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}
