// What the audit trail prints and what Slack is sent: text from a record or a reason stays text.
import { describe, expect, it } from 'vitest';
import { auditLine, escapeControls, type AuditRecord, type LegacyAuditRecord } from '../../common/audit';
import { slackEscape } from '../../domain/notify';

const record = (more: Partial<AuditRecord> = {}): AuditRecord => ({
  seq: 7,
  prev: '0'.repeat(64),
  at: '2026-01-01T00:00:00.000Z',
  target: 'main',
  workflowId: 'restore/main',
  runId: 'run-1',
  action: 'restore',
  event: 'requested',
  actor: 'alice',
  signature: { alg: 'ed25519', keyId: '0123456789abcdef', value: 'AA==' },
  ...more,
});

describe('escapeControls', () => {
  it('shows a newline as \\n, so a detail cannot start a line of its own', () => {
    expect(escapeControls('routine\napproved by bob')).toBe('routine\\napproved by bob');
  });

  it('shows every other C0 and C1 control, and DEL, as \\xNN', () => {
    expect(escapeControls('a\rb\tc\u0000d\u001b[31me\u007ff\u0085g\u009bh')).toBe('a\\x0db\\x09c\\x00d\\x1b[31me\\x7ff\\x85g\\x9bh');
  });

  it('escapes the backslash itself, so an escaped newline and a typed "\\n" never look the same', () => {
    expect(escapeControls('C:\\new')).toBe('C:\\\\new');
    expect(escapeControls('a\\nb')).not.toBe(escapeControls('a\nb'));
  });

  it('escapes Unicode line separators and bidirectional overrides, which move what a terminal shows', () => {
    expect(escapeControls('x\u2028y\u202ez\u2066')).toBe('x\\u2028y\\u202ez\\u2066');
  });

  it('leaves ordinary text, accents and emoji as they are', () => {
    expect(escapeControls('Zoë approved: ok ✅ (ticket #42)')).toBe('Zoë approved: ok ✅ (ticket #42)');
  });
});

describe('auditLine', () => {
  it('escapes every field of a record, the actor and identity included', () => {
    const line = auditLine(
      record({ actor: 'eve\n#8  2026-01-01', identity: 'cli\r', detail: 'x\ny', evidence: { 'backup\n': 'id\u001b' } }),
    );
    for (const c of ['\n', '\r', '\u001b']) expect(line).not.toContain(c);
    expect(line).toBe(
      '#7  2026-01-01T00:00:00.000Z  restore requested by eve\\n#8  2026-01-01 (cli\\x0d)  restore/main: x\\ny [backup\\n=id\\x1b]',
    );
  });

  it('marks a record from before the chain as legacy, unverifiable', () => {
    const { seq: _s, prev: _p, signature: _g, ...event } = record();
    const legacy: LegacyAuditRecord = { ...event, legacy: true };
    expect(auditLine(legacy)).toMatch(/^legacy, unverifiable {2}2026-01-01T00:00:00.000Z {2}restore requested/);
  });
});

describe('slackEscape', () => {
  it('escapes &, < and > as Slack asks, & first so that nothing is escaped twice', () => {
    expect(slackEscape('<!channel> & <https://x.example|click> <@U1>')).toBe(
      '&lt;!channel&gt; &amp; &lt;https://x.example|click&gt; &lt;@U1&gt;',
    );
    expect(slackEscape('&lt;')).toBe('&amp;lt;');
  });
});
