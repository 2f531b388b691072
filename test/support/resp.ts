// The first command in what a client sent to a fake server: a RESP array or an inline line.
export function parseCommand(buf: string): { args: string[]; used: number } | undefined {
  const eol = buf.indexOf('\r\n');
  if (eol < 0) return undefined;
  if (buf[0] !== '*') return { args: buf.slice(0, eol).split(' ').filter(Boolean), used: eol + 2 };
  const n = Number(buf.slice(1, eol));
  let pos = eol + 2;
  const args: string[] = [];
  for (let i = 0; i < n; i++) {
    const e = buf.indexOf('\r\n', pos);
    if (e < 0) return undefined;
    const len = Number(buf.slice(pos + 1, e));
    if (buf.length < e + 2 + len + 2) return undefined;
    args.push(Buffer.from(buf.slice(e + 2, e + 2 + len), 'latin1').toString('utf8'));
    pos = e + 2 + len + 2;
  }
  return { args, used: pos };
}
