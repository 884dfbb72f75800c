/**
 * The bench's charts of throughput and loss over time: two rows of block characters for a
 * terminal, and an SVG with both panels, axes and labels for a file. Pure: from the JSON
 * document's intervals.
 */
import type { BenchDocument, JsonInterval } from './bench-report.js';
import { formatBits } from './bench-report.js';

const BLOCKS = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/** Intervals merged into at most `width` columns (sums of counts over each column's span). */
function columns(intervals: readonly JsonInterval[], width: number): { bits: number; lossPercent: number }[] {
  const n = intervals.length;
  const per = Math.max(1, Math.ceil(n / width));
  const out: { bits: number; lossPercent: number }[] = [];
  for (let i = 0; i < n; i += per) {
    const group = intervals.slice(i, i + per);
    const seconds = group.reduce((a, g) => a + (g.end - g.start), 0);
    const bytes = group.reduce((a, g) => a + g.bytes, 0);
    const sent = group.reduce((a, g) => a + g.sent, 0);
    const lost = group.reduce((a, g) => a + g.lost, 0);
    out.push({
      bits: seconds > 0 ? (bytes * 8) / seconds : 0,
      lossPercent: sent > 0 ? (100 * lost) / sent : 0,
    });
  }
  return out;
}

/** A row of blocks, each as tall as its value against the largest (a space for none). */
function sparkline(values: readonly number[]): string {
  const max = Math.max(0, ...values);
  return values
    .map((v) => (max <= 0 || v <= 0 ? ' ' : BLOCKS[Math.max(0, Math.min(7, Math.round((v / max) * 8) - 1))]))
    .join('');
}

/** Two labelled rows: throughput and loss per interval, at most `width` columns. */
export function terminalChart(doc: BenchDocument, width = 60): string[] {
  if (doc.intervals.length === 0) return [];
  const cols = columns(doc.intervals, width);
  const maxBits = Math.max(...cols.map((c) => c.bits));
  const maxLoss = Math.max(...cols.map((c) => c.lossPercent));
  const span = doc.intervals.at(-1)?.end ?? 0;
  return [
    `throughput ${sparkline(cols.map((c) => c.bits))} max ${formatBits(maxBits)}`,
    `loss       ${sparkline(cols.map((c) => c.lossPercent))} max ${round(maxLoss)} %`,
    `           0 s${' '.repeat(Math.max(1, cols.length - 3 - `${round(span)} s`.length + 2))}${round(span)} s`,
  ];
}

const round = (v: number) => Math.round(v * 100) / 100;
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A round maximum for an axis: 1, 2 or 5 times a power of ten, at least `v`. */
function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/** The chart as an SVG document: throughput above, loss below, time along the bottom. */
export function svgChart(doc: BenchDocument): string {
  const W = 800;
  const H = 450;
  const left = 90;
  const right = 20;
  const plotW = W - left - right;
  const panels = [
    { top: 80, height: 150, title: 'throughput (bit/s)', key: 'bits' as const, color: '#2b6cb0' },
    { top: 275, height: 120, title: 'loss (% of sent)', key: 'loss' as const, color: '#c53030' },
  ];
  const intervals = doc.intervals;
  const end = intervals.at(-1)?.end ?? 1;
  const x = (t: number) => left + (t / end) * plotW;
  const parts: string[] = [];
  const s = doc.summary;
  const title = `udpkit bench: ${doc.mode}${doc.reverse ? ' (reversed)' : ''} to ${doc.server.address}:${doc.server.port}`;
  const sub = `sent ${s.sent}, lost ${s.lost} (${round(s.lost_percent)} %), ${formatBits(s.bits_per_second)} achieved of ${formatBits(s.offered_bits_per_second)} offered, jitter ${s.jitter_ms} ms`;
  parts.push(`<text x="${left}" y="22" font-size="16" font-weight="bold">${esc(title)}</text>`);
  parts.push(`<text x="${left}" y="42" font-size="12" fill="#444">${esc(sub)}</text>`);
  for (const p of panels) {
    const values = intervals.map((i) => (p.key === 'bits' ? i.bits_per_second : i.lost_percent));
    // The throughput panel has room for the rate offered, drawn dashed across it.
    const offered = p.key === 'bits' ? s.offered_bits_per_second : 0;
    const max = niceMax(Math.max(0, offered, ...values));
    const y = (v: number) => p.top + p.height - (v / max) * p.height;
    parts.push(`<text x="${left}" y="${p.top - 6}" font-size="12" font-weight="bold">${esc(p.title)}</text>`);
    parts.push(
      `<rect x="${left}" y="${p.top}" width="${plotW}" height="${p.height}" fill="none" stroke="#999"/>`,
    );
    for (const f of [0, 0.5, 1]) {
      const v = max * f;
      const label = p.key === 'bits' ? formatBits(v) : `${round(v)} %`;
      parts.push(`<line x1="${left}" x2="${left + plotW}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`);
      parts.push(
        `<text x="${left - 6}" y="${y(v) + 4}" font-size="11" text-anchor="end">${esc(label)}</text>`,
      );
    }
    // One bar per interval: its width the interval's, its height the value.
    intervals.forEach((i, k) => {
      const v = values[k] as number;
      if (!(v > 0)) return;
      const x0 = x(i.start);
      const w = Math.max(1, x(i.end) - x0 - 1);
      parts.push(
        `<rect x="${x0.toFixed(1)}" y="${y(v).toFixed(1)}" width="${w.toFixed(1)}" height="${(p.top + p.height - y(v)).toFixed(1)}" fill="${p.color}"/>`,
      );
    });
    if (offered > 0)
      parts.push(
        `<line x1="${left}" x2="${left + plotW}" y1="${y(offered).toFixed(1)}" y2="${y(offered).toFixed(1)}" stroke="#222" stroke-dasharray="6 4"/>`,
        `<text x="${left + plotW - 4}" y="${(y(offered) - 4).toFixed(1)}" font-size="11" text-anchor="end">offered ${esc(formatBits(offered))}</text>`,
      );
  }
  const bottom = panels[1] as (typeof panels)[number];
  const axisY = bottom.top + bottom.height;
  // Ticks at round seconds: 1, 2 or 5 times a power of ten apart, about eight of them.
  const step = niceMax(end / 8);
  for (let t = 0; t <= end + 1e-9; t += step) {
    parts.push(`<line x1="${x(t)}" x2="${x(t)}" y1="${axisY}" y2="${axisY + 4}" stroke="#999"/>`);
    parts.push(`<text x="${x(t)}" y="${axisY + 16}" font-size="11" text-anchor="middle">${round(t)}</text>`);
  }
  parts.push(
    `<text x="${left + plotW / 2}" y="${axisY + 34}" font-size="12" text-anchor="middle">seconds</text>`,
  );
  return `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">
<title>${esc(title)}</title>
<rect width="${W}" height="${H}" fill="white"/>
${parts.join('\n')}
</svg>
`;
}
