import { describe, expect, it } from 'vitest';
import { parseCommands } from '../../domain/restore/rdb-master';

describe('the replication handshake parser of the worker-served master', () => {
  it('reads RESP arrays and inline commands, and keeps an incomplete tail for later', () => {
    const wire = Buffer.from('PING\r\n*3\r\n$8\r\nREPLCONF\r\n$14\r\nlistening-port\r\n$4\r\n6380\r\n*3\r\n$5\r\nPSYNC\r\n$1\r\n?');
    const { commands, rest } = parseCommands(wire);
    expect(commands).toEqual([['PING'], ['REPLCONF', 'listening-port', '6380']]);
    expect(rest.toString()).toBe('*3\r\n$5\r\nPSYNC\r\n$1\r\n?');
    const more = parseCommands(Buffer.concat([rest, Buffer.from('\r\n$2\r\n-1\r\n')]));
    expect(more.commands).toEqual([['PSYNC', '?', '-1']]);
    expect(more.rest.length).toBe(0);
  });

  it('returns nothing until a command is complete, whatever the split', () => {
    const wire = '*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n';
    for (let i = 0; i < wire.length; i++) {
      const first = parseCommands(Buffer.from(wire.slice(0, i)));
      expect(first.commands).toEqual([]);
      expect(parseCommands(Buffer.concat([first.rest, Buffer.from(wire.slice(i))])).commands).toEqual([['AUTH', 'secret']]);
    }
  });
});
