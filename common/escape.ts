// Text from runs and people (reasons, comments, names, audit records) printed on a terminal.
/**
 * Text made safe for a terminal: no record can print a line that looks like another.
 * A newline shows as \n, a backslash as \\, every other C0/C1 control as \xNN, and the Unicode line
 * separators and bidirectional overrides (which reorder what a terminal shows) as \uNNNN.
 */
export function escapeControls(text: string): string {
  // eslint-disable-next-line no-control-regex -- finding control characters is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f\\\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\\') return '\\\\';
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}
