// The report of one target as a single HTML page: its backups, drills, restores and approvals over a
// period. Everything is inline (CSS and hand-drawn SVG, no script, nothing fetched), so that the file
// opens offline and can be attached to a ticket or an audit. All text from the data is escaped: ids,
// reasons, details and names come from storage and may contain anything.
import type { AuditEvent } from '../common/audit';
import type { DrillReport } from '../common/drill-types';
import type { Manifest } from '../common/types';
import { TOOL_VERSION } from '../common/version';

export interface ReportData {
  target: string;
  /** ISO 8601; ages are measured to this moment. */
  generatedAt: string;
  objectives: { rpoMs: number; rtoMs: number };
  backups: Manifest[];
  drills: DrillReport[];
  audit: AuditEvent[];
  /** The period the data covers, for the header. */
  periodDays?: number;
}

export const PALETTE = {
  rdbVerified: '#a9c5e6',
  storedVerified: '#2c5f9e',
  rdbUnverified: '#f3cf9c',
  storedUnverified: '#c46a0c',
  passed: '#2f7d4f',
  failed: '#c62828',
  objective: '#6b7280',
  grid: '#e5e7eb',
  axis: '#6b7280',
} as const;

// ---- text ----

export function escapeHtml(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}
const esc = escapeHtml;

/** 1.50 -> "1.5", 2.0 -> "2": few digits, none that say nothing. */
const short = (v: number, digits: number): string => String(Number(v.toFixed(digits)));

export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '?';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${short(v, v < 10 ? 2 : v < 100 ? 1 : 0)} ${units[i]}`;
}

export function formatDuration(ms: number | null | undefined): string {
  if (ms == null || !Number.isFinite(ms)) return '–';
  if (ms < 0) return `-${formatDuration(-ms)}`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${short(ms / 1000, ms < 10_000 ? 1 : 0)} s`;
  if (ms < 3_600_000) return `${short(ms / 60_000, ms < 600_000 ? 1 : 0)} min`;
  if (ms < 2 * 86_400_000) return `${short(ms / 3_600_000, ms < 36_000_000 ? 1 : 0)} h`;
  return `${short(ms / 86_400_000, 1)} d`;
}

/** "2026-05-01T02:00:00.000Z" -> "2026-05-01 02:00 UTC"; anything else as it is. */
function when(iso: string | undefined, zone = true): string {
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})/.exec(iso ?? '');
  return m ? `${m[1]} ${m[2]}${zone ? ' UTC' : ''}` : String(iso ?? '');
}

const ageMs = (from: string, to: string): number => Date.parse(to) - Date.parse(from);
const finite = (n: unknown): number => (typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : 0);

const copiesOf = (m: Manifest) => m.verification?.copies ?? [];
export const isVerified = (m: Manifest): boolean => copiesOf(m).length > 0 && copiesOf(m).every((c) => c.ok);

// ---- charts ----

const W = 900;
const H = 230;
const M = { top: 14, right: 40, bottom: 40, left: 70 };
const PW = W - M.left - M.right;
const PH = H - M.top - M.bottom;

interface Scale {
  max: number;
  ticks: { value: number; label: string }[];
}

const BYTE_UNITS: [number, string][] = [
  [1, 'B'],
  [1024, 'KiB'],
  [1024 ** 2, 'MiB'],
  [1024 ** 3, 'GiB'],
  [1024 ** 4, 'TiB'],
];
const TIME_UNITS: [number, string][] = [
  [1, 'ms'],
  [1000, 's'],
  [60_000, 'min'],
  [3_600_000, 'h'],
  [86_400_000, 'd'],
];

/** A y axis from 0 past `top`, in steps of 1, 2, 2.5 or 5 (times a power of ten) of the largest unit the values reach. */
function scale(top: number, units: [number, string][]): Scale {
  const value = top > 0 ? top : 1;
  const [unit, name] = units.filter(([u]) => value >= u).pop() ?? units[0]!;
  const raw = value / unit / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  const step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * mag;
  const count = Math.ceil(value / unit / step);
  const ticks = Array.from({ length: count + 1 }, (_, i) => ({ value: i * step * unit, label: `${short(i * step, 2)} ${name}` }));
  return { max: count * step * unit, ticks };
}

const y = (s: Scale, v: number): number => M.top + PH - (Math.min(finite(v), s.max) / s.max) * PH;
const slotX = (i: number, n: number): number => M.left + (PW / n) * (i + 0.5);
const px = (v: number): string => short(v, 1);

/** Up to six evenly spread x labels, the first and the last included. */
function xLabels(times: string[]): string {
  const n = times.length;
  const picks = n <= 6 ? times.map((_, i) => i) : [...new Set(Array.from({ length: 6 }, (_, k) => Math.round((k * (n - 1)) / 5)))];
  return picks
    .map((i) => {
      const x = slotX(i, n);
      const label = when(times[i], false).replace(/^\d{4}-/, '');
      return `<line x1="${px(x)}" x2="${px(x)}" y1="${M.top + PH}" y2="${M.top + PH + 4}" stroke="${PALETTE.axis}"/><text x="${px(x)}" y="${M.top + PH + 17}" text-anchor="middle">${esc(label)}</text>`;
    })
    .join('');
}

function frame(id: string, label: string, s: Scale, times: string[], yTitle: string, body: string): string {
  const grid = s.ticks
    .map((t) => {
      const ty = px(y(s, t.value));
      return `<line x1="${M.left}" x2="${W - M.right}" y1="${ty}" y2="${ty}" stroke="${PALETTE.grid}"/><text x="${M.left - 8}" y="${ty}" dy="0.32em" text-anchor="end">${esc(t.label)}</text>`;
    })
    .join('');
  return [
    `<svg id="${id}" class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(label)}" xmlns="http://www.w3.org/2000/svg">`,
    `<g class="axis">${grid}`,
    `<line x1="${M.left}" x2="${W - M.right}" y1="${M.top + PH}" y2="${M.top + PH}" stroke="${PALETTE.axis}"/>`,
    xLabels(times),
    `<text x="${M.left + PW / 2}" y="${H - 4}" text-anchor="middle" class="axis-title">oldest → newest (UTC)</text>`,
    `<text transform="translate(14 ${M.top + PH / 2}) rotate(-90)" text-anchor="middle" class="axis-title">${esc(yTitle)}</text></g>`,
    body,
    '</svg>',
  ].join('\n');
}

function objectiveLine(s: Scale, valueMs: number, label: string): string {
  const ly = px(y(s, valueMs));
  return (
    `<line class="objective" x1="${M.left}" x2="${W - M.right}" y1="${ly}" y2="${ly}" stroke="${PALETTE.objective}" stroke-width="1.5" stroke-dasharray="6 4"><title>${esc(label)}</title></line>` +
    `<text class="objective-label" x="${W - M.right - 4}" y="${ly}" dy="-0.45em" text-anchor="end">${esc(label)}</text>`
  );
}

function backupTooltip(m: Manifest): string {
  const copies = copiesOf(m);
  return [
    m.backupId,
    when(m.createdAt),
    `RDB ${formatBytes(m.rdb?.size)}, stored ${formatBytes(m.artifact?.size)} (${m.artifact?.compression ?? '?'})`,
    `took ${formatDuration(m.durationMs)}`,
    `${isVerified(m) ? 'verified' : 'NOT verified'}: ${copies.filter((c) => c.ok).length}/${copies.length} copies`,
  ].join('\n');
}

function sizeChart(backups: Manifest[]): string {
  const n = backups.length;
  const s = scale(Math.max(...backups.map((m) => Math.max(finite(m.rdb?.size), finite(m.artifact?.size)))), BYTE_UNITS);
  const w = Math.min(30, Math.max(1.5, (PW / n) * 0.7));
  const body = backups
    .map((m, i) => {
      const x = slotX(i, n);
      const ok = isVerified(m);
      const bar = (size: number, width: number, fill: string, cls: string) => {
        const top = Math.min(y(s, size), M.top + PH - (finite(size) > 0 ? 1 : 0));
        return `<rect class="${cls}" x="${px(x - width / 2)}" y="${px(top)}" width="${px(width)}" height="${px(M.top + PH - top)}" fill="${fill}"/>`;
      };
      return (
        `<g class="point ${ok ? 'verified' : 'unverified'}" data-backup-id="${esc(m.backupId)}"><title>${esc(backupTooltip(m))}</title>` +
        bar(m.rdb?.size, w, ok ? PALETTE.rdbVerified : PALETTE.rdbUnverified, 'rdb') +
        bar(m.artifact?.size, w * 0.5, ok ? PALETTE.storedVerified : PALETTE.storedUnverified, 'stored') +
        '</g>'
      );
    })
    .join('\n');
  return frame(
    'chart-sizes',
    'RDB and stored size per backup',
    s,
    backups.map((m) => m.createdAt),
    'size',
    body,
  );
}

function durationChart(backups: Manifest[]): string {
  const n = backups.length;
  const s = scale(Math.max(...backups.map((m) => finite(m.durationMs))), TIME_UNITS);
  const w = Math.min(18, Math.max(1.5, (PW / n) * 0.5));
  const body = backups
    .map((m, i) => {
      const ok = isVerified(m);
      const top = Math.min(y(s, m.durationMs), M.top + PH - (finite(m.durationMs) > 0 ? 1 : 0));
      return (
        `<g class="point ${ok ? 'verified' : 'unverified'}" data-backup-id="${esc(m.backupId)}"><title>${esc(backupTooltip(m))}</title>` +
        `<rect x="${px(slotX(i, n) - w / 2)}" y="${px(top)}" width="${px(w)}" height="${px(M.top + PH - top)}" fill="${ok ? PALETTE.storedVerified : PALETTE.storedUnverified}"/></g>`
      );
    })
    .join('\n');
  return frame(
    'chart-durations',
    'Duration per backup',
    s,
    backups.map((m) => m.createdAt),
    'duration',
    body,
  );
}

const drillColour = (d: DrillReport) => (d.outcome === 'passed' ? PALETTE.passed : PALETTE.failed);

function drillTooltip(d: DrillReport): string {
  return [
    `drill ${d.drillId}: ${d.outcome}${d.reason ? ` (${d.reason})` : ''}`,
    when(d.startedAt),
    `RTO ${d.rto?.measuredMs == null ? 'never usable' : formatDuration(d.rto.measuredMs)}`,
    `RPO largest gap ${formatDuration(d.rpo?.maxGapMs)}, newest backup ${formatDuration(d.rpo?.newestAgeMs)} old`,
  ].join('\n');
}

function rtoChart(drills: DrillReport[], objectiveMs: number): string {
  const n = drills.length;
  const s = scale(Math.max(objectiveMs * 1.2, ...drills.map((d) => finite(d.rto?.measuredMs) * 1.05)), TIME_UNITS);
  const body = drills
    .map((d, i) => {
      const x = slotX(i, n);
      const fill = drillColour(d);
      const measured = d.rto?.measuredMs;
      // A drill that never became usable has no RTO: a cross at the top says so.
      const mark =
        measured == null
          ? `<path class="mark never" d="M${px(x - 6)} ${M.top}l12 12m0 -12l-12 12" stroke="${fill}" fill="${fill}" stroke-width="3"/>` +
            `<text class="never-label" x="${px(x + 10)}" y="${M.top + 6}" dy="0.32em">never usable</text>`
          : `<circle class="mark" cx="${px(x)}" cy="${px(y(s, measured))}" r="6" fill="${fill}" stroke="#fff" stroke-width="1.5"/>`;
      return `<g class="point ${esc(d.outcome)}" data-drill-id="${esc(d.drillId)}"><title>${esc(drillTooltip(d))}</title>${mark}</g>`;
    })
    .join('\n');
  return frame(
    'chart-rto',
    'Measured RTO per drill against the objective',
    s,
    drills.map((d) => d.startedAt),
    'RTO',
    objectiveLine(s, objectiveMs, `RTO objective ${formatDuration(objectiveMs)}`) + body,
  );
}

function rpoChart(drills: DrillReport[], objectiveMs: number): string {
  const n = drills.length;
  const values = drills.flatMap((d) => [finite(d.rpo?.maxGapMs), finite(d.rpo?.newestAgeMs)]);
  const s = scale(Math.max(objectiveMs * 1.2, ...values.map((v) => v * 1.05)), TIME_UNITS);
  const body = drills
    .map((d, i) => {
      const x = slotX(i, n);
      const colour = drillColour(d);
      const gap = d.rpo?.maxGapMs;
      const age = d.rpo?.newestAgeMs;
      return (
        `<g class="point ${esc(d.outcome)}" data-drill-id="${esc(d.drillId)}"><title>${esc(drillTooltip(d))}</title>` +
        (gap == null
          ? ''
          : `<circle class="mark gap" cx="${px(x)}" cy="${px(y(s, gap))}" r="6" fill="${colour}" stroke="#fff" stroke-width="1.5"/>`) +
        (age == null
          ? ''
          : `<circle class="mark age" cx="${px(x)}" cy="${px(y(s, age))}" r="4.5" fill="#fff" stroke="${colour}" stroke-width="2"/>`) +
        '</g>'
      );
    })
    .join('\n');
  return frame(
    'chart-rpo',
    'RPO per drill (largest gap and newest backup age) against the objective',
    s,
    drills.map((d) => d.startedAt),
    'RPO',
    objectiveLine(s, objectiveMs, `RPO objective ${formatDuration(objectiveMs)}`) + body,
  );
}

// ---- page ----

const swatch = (colour: string, label: string, shape: 'box' | 'dot' | 'ring' | 'dash' = 'box'): string =>
  `<li><i class="${shape}" style="--c:${colour}"></i>${esc(label)}</li>`;

/** Cells are markup, escaped by the caller; the columns in `wrap` hold prose and may wrap. */
function table(cls: string, head: string[], rows: string[][], wrap: number[] = []): string {
  const td = (c: string, i: number) => (wrap.includes(i) ? `<td class="wrap">${c}</td>` : `<td>${c}</td>`);
  return `<div class="scroll"><table class="${cls}"><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>\n${rows
    .map((r) => `<tr>${r.map(td).join('')}</tr>`)
    .join('\n')}\n</tbody></table></div>`;
}

const badge = (text: string, kind: string): string => `<span class="badge ${kind}">${esc(text)}</span>`;
const mono = (text: string | undefined): string => `<span class="mono">${esc(text ?? '')}</span>`;

function summary(d: ReportData, backups: Manifest[], drills: DrillReport[]): string {
  const verified = backups.filter(isVerified);
  const newest = verified[verified.length - 1];
  const parts: string[] = [];
  if (newest) {
    const age = ageMs(newest.createdAt, d.generatedAt);
    const within = age <= d.objectives.rpoMs;
    parts.push(
      `Newest verified backup ${mono(newest.backupId)}, ${esc(formatDuration(age))} old ` +
        badge(within ? 'within RPO' : 'older than the RPO', within ? 'ok' : 'bad'),
    );
  } else {
    parts.push(`${badge('no verified backup', 'bad')} in this period`);
  }
  const last = drills[drills.length - 1];
  if (last) {
    parts.push(
      `last drill ${badge(last.outcome, last.outcome === 'passed' ? 'ok' : 'bad')} ${esc(formatDuration(ageMs(last.startedAt, d.generatedAt)))} ago` +
        (last.reason ? `: ${esc(last.reason)}` : ''),
    );
  } else {
    parts.push('no drills yet');
  }
  return `<p class="summary">${parts.join('<span class="sep">·</span>')}</p>`;
}

function backupsSection(backups: Manifest[]): string {
  if (backups.length === 0)
    return '<section id="backups"><h2>Backups over time</h2><p class="empty">No backups in this period.</p></section>';
  const rows = [...backups].reverse().map((m) => {
    const copies = copiesOf(m);
    const ok = copies.filter((c) => c.ok).length;
    const problems = copies.filter((c) => !c.ok).map((c) => `${c.destination}: ${c.detail}`);
    return [
      mono(m.backupId),
      esc(when(m.createdAt, false)),
      `<span class="num">${esc((m.rdb?.keys ?? 0).toLocaleString('en-US'))}</span>`,
      `<span class="num">${esc(formatBytes(m.rdb?.size))}</span>`,
      `<span class="num">${esc(formatBytes(m.artifact?.size))}</span>`,
      esc(m.artifact?.compression ?? '?'),
      m.artifact?.encryption ? `yes <span class="muted">(${esc(m.artifact.encryption.keyId)})</span>` : 'no',
      `<span class="num">${esc(formatDuration(m.durationMs))}</span>`,
      badge(`${ok}/${copies.length}`, isVerified(m) ? 'ok' : 'bad') +
        (problems.length ? ` <span class="muted">${esc(problems.join('; '))}</span>` : ''),
    ];
  });
  return `<section id="backups"><h2>Backups over time</h2>
<h3>Size per backup</h3>
<ul class="legend">${swatch(PALETTE.rdbVerified, 'RDB size')}${swatch(PALETTE.storedVerified, 'stored size (compressed, encrypted)')}${swatch(PALETTE.rdbUnverified, 'RDB size, not verified')}${swatch(PALETTE.storedUnverified, 'stored size, not verified')}</ul>
${sizeChart(backups)}
<h3>Duration per backup</h3>
<ul class="legend">${swatch(PALETTE.storedVerified, 'verified')}${swatch(PALETTE.storedUnverified, 'not verified')}</ul>
${durationChart(backups)}
${table('backups', ['Backup', 'Created (UTC)', 'Keys', 'RDB size', 'Stored size', 'Compression', 'Encrypted', 'Duration', 'Verified copies'], rows, [8])}
</section>`;
}

function drillsSection(drills: DrillReport[], objectives: ReportData['objectives']): string {
  if (drills.length === 0) return '<section id="drills"><h2>Drills</h2><p class="empty">No drills yet in this period.</p></section>';
  const rows = [...drills].reverse().map((d) => {
    const rto = d.rto?.measuredMs;
    return [
      `${esc(when(d.startedAt, false))}<br>${mono(d.drillId)}`,
      badge(d.outcome, d.outcome === 'passed' ? 'ok' : 'bad'),
      d.reason ? esc(d.reason) : '<span class="muted">–</span>',
      d.backup
        ? `${mono(d.backup.backupId)}<br><span class="muted">${esc(formatDuration(d.backup.ageMs))} old, from ${esc(d.backup.destination)}</span>`
        : '<span class="muted">none</span>',
      (d.phases ?? []).map((p) => `${esc(p.name)} ${esc(formatDuration(p.durationMs))}`).join('<br>') || '<span class="muted">–</span>',
      `${esc(rto == null ? 'never usable' : formatDuration(rto))} ${badge(d.rto?.met ? 'met' : 'missed', d.rto?.met ? 'ok' : 'bad')}`,
      `gap ${esc(formatDuration(d.rpo?.maxGapMs))} ${badge(d.rpo?.met ? 'met' : 'missed', d.rpo?.met ? 'ok' : 'bad')}<br><span class="muted">newest ${esc(formatDuration(d.rpo?.newestAgeMs))} old</span>`,
    ];
  });
  return `<section id="drills"><h2>Drills</h2>
<h3>Measured RTO per drill</h3>
<ul class="legend">${swatch(PALETTE.passed, 'passed', 'dot')}${swatch(PALETTE.failed, 'failed', 'dot')}${swatch(PALETTE.objective, `objective (${formatDuration(objectives.rtoMs)})`, 'dash')}</ul>
${rtoChart(drills, objectives.rtoMs)}
<h3>RPO per drill</h3>
<ul class="legend">${swatch(PALETTE.objective, 'largest gap between verified backups', 'dot')}${swatch(PALETTE.objective, 'age of the newest backup', 'ring')}${swatch(PALETTE.objective, `objective (${formatDuration(objectives.rpoMs)})`, 'dash')}</ul>
${rpoChart(drills, objectives.rpoMs)}
${table('drills', ['Started (UTC)', 'Outcome', 'Reason', 'Backup', 'Phases', 'RTO', 'RPO'], rows, [2])}
</section>`;
}

const EVENT_KIND: Record<string, string> = {
  approved: 'ok',
  restored: 'ok',
  recovered: 'ok',
  rejected: 'bad',
  failed: 'bad',
  expired: 'warn',
  cancelled: 'warn',
};

function auditSection(audit: AuditEvent[]): string {
  if (audit.length === 0)
    return '<section id="audit"><h2>Restores and approvals</h2><p class="empty">No restores or approvals in this period.</p></section>';
  const rows = audit.map((e) => [
    esc(when(e.at, false)),
    badge(`${e.action} ${e.event}`, EVENT_KIND[e.event] ?? 'info'),
    esc(e.actor),
    e.identity ? mono(e.identity) : '<span class="muted">–</span>',
    mono(e.workflowId),
    e.detail ? esc(e.detail) : '<span class="muted">–</span>',
  ]);
  return `<section id="audit"><h2>Restores and approvals</h2>
${table('audit', ['Time (UTC)', 'Event', 'Actor', 'Identity', 'Workflow', 'Detail'], rows, [5])}
</section>`;
}

const STYLE = `
:root { color-scheme: light; --fg: #1f2937; --muted: #6b7280; --line: #e5e7eb; --bg: #fff; --soft: #f8fafc; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--soft); color: var(--fg); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1160px; margin: 0 auto; padding: 28px 24px 40px; }
header, section { background: var(--bg); border: 1px solid var(--line); border-radius: 8px; padding: 18px 22px; margin-bottom: 18px; }
h1 { font-size: 21px; margin: 0 0 12px; font-weight: 600; }
h1 .target { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
h2 { font-size: 17px; margin: 0 0 10px; font-weight: 600; }
h3 { font-size: 13px; margin: 16px 0 4px; font-weight: 600; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
dl { display: grid; grid-template-columns: repeat(4, auto); justify-content: start; gap: 2px 28px; margin: 0 0 12px; }
dt { color: var(--muted); font-size: 12px; }
dd { margin: 0; font-weight: 600; grid-row: 2; }
.summary { margin: 0; padding: 10px 12px; background: var(--soft); border-radius: 6px; }
.sep { color: var(--muted); margin: 0 10px; }
.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; overflow-wrap: anywhere; }
.muted { color: var(--muted); }
.empty { color: var(--muted); font-style: italic; margin: 4px 0; }
.badge { display: inline-block; padding: 0 7px; border-radius: 9px; font-size: 12px; font-weight: 600; white-space: nowrap; background: #eef2f7; color: #374151; }
.badge.ok { background: #e3f3e8; color: ${PALETTE.passed}; }
.badge.bad { background: #fde8e8; color: ${PALETTE.failed}; }
.badge.warn { background: #fdf0dc; color: #9a5a06; }
.legend { list-style: none; display: flex; flex-wrap: wrap; gap: 4px 18px; padding: 0; margin: 4px 0; font-size: 12px; color: var(--muted); }
.legend i { display: inline-block; width: 12px; height: 12px; margin-right: 6px; vertical-align: -1px; background: var(--c); border-radius: 2px; }
.legend i.dot { border-radius: 50%; }
.legend i.ring { border-radius: 50%; background: #fff; border: 2px solid var(--c); }
.legend i.dash { height: 0; border-top: 2px dashed var(--c); background: none; vertical-align: 3px; width: 18px; }
svg.chart { display: block; width: 100%; height: auto; margin: 0 0 6px; }
svg.chart text { font-size: 11px; fill: ${PALETTE.axis}; }
svg.chart .axis-title { font-size: 11px; fill: var(--muted); }
svg.chart .objective-label { font-size: 11px; fill: ${PALETTE.objective}; font-weight: 600; paint-order: stroke; stroke: #fff; stroke-width: 3px; }
svg.chart .never-label { fill: ${PALETTE.failed}; font-weight: 600; }
svg.chart .point:hover { opacity: .75; }
.scroll { overflow-x: auto; margin-top: 14px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th { text-align: left; font-weight: 600; font-size: 12px; color: var(--muted); border-bottom: 1px solid #d1d5db; padding: 6px 8px; white-space: nowrap; }
td { border-bottom: 1px solid var(--line); padding: 6px 8px; vertical-align: top; white-space: nowrap; }
td.wrap { white-space: normal; min-width: 12em; }
tbody tr:nth-child(even) td { background: #fafbfc; }
.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
footer { color: var(--muted); font-size: 12px; text-align: center; }
@media print { body { background: #fff; } header, section { border: none; padding: 0; } }
`;

/** The whole page. Pure: the same data gives the same page. */
export function renderHtmlReport(data: ReportData): string {
  const byTime = <T>(list: T[], at: (x: T) => string) => [...list].sort((a, b) => at(a).localeCompare(at(b)));
  const backups = byTime(data.backups, (m) => m.createdAt ?? '');
  const drills = byTime(data.drills, (d) => d.startedAt ?? '');
  const audit = byTime(data.audit, (e) => e.at ?? '');
  const period = data.periodDays ? `last ${data.periodDays} days` : 'all recorded';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Backup and recovery report: ${esc(data.target)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
<header>
<h1>Backup and recovery report: <span class="target">${esc(data.target)}</span></h1>
<dl>
<dt>Generated</dt><dd>${esc(when(data.generatedAt))}</dd>
<dt>Period</dt><dd>${esc(period)}: ${backups.length} backups, ${drills.length} drills, ${audit.length} events</dd>
<dt>RPO objective</dt><dd>${esc(formatDuration(data.objectives.rpoMs))}</dd>
<dt>RTO objective</dt><dd>${esc(formatDuration(data.objectives.rtoMs))}</dd>
</dl>
${summary(data, backups, drills)}
</header>
${backupsSection(backups)}
${drillsSection(drills, data.objectives)}
${auditSection(audit)}
<footer>redis-runbooks ${esc(TOOL_VERSION)} · all times UTC</footer>
</main>
</body>
</html>
`;
}
