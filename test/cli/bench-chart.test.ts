/** The bench's charts from a known document: the text rows and the SVG's bars and labels. */
import { describe, expect, it } from 'vitest';
import { svgChart, terminalChart } from '../../src/cli/bench-chart.js';
import type { BenchDocument, JsonInterval } from '../../src/cli/bench-report.js';

function doc(intervals: JsonInterval[]): BenchDocument {
  return {
    version: 1,
    mode: 'throughput',
    reverse: false,
    server: { address: '127.0.0.1', port: 12345, family: 'IPv4' },
    params: {},
    summary: {
      sent: 4000,
      lost: 100,
      lost_percent: 2.5,
      bits_per_second: 7.8e6,
      offered_bits_per_second: 8e6,
      jitter_ms: 0.1,
    } as BenchDocument['summary'],
    intervals,
  };
}

/** Four 1-second intervals: 1000 sent each, the third losing 100. */
const four = [0, 1, 2, 3].map(
  (k): JsonInterval => ({
    start: k,
    end: k + 1,
    sent: 1000,
    received: k === 2 ? 900 : 1000,
    lost: k === 2 ? 100 : 0,
    lost_percent: k === 2 ? 10 : 0,
    duplicates: 0,
    reordered: 0,
    bytes: (k === 2 ? 900 : 1000) * 1000,
    pps: k === 2 ? 900 : 1000,
    bits_per_second: (k === 2 ? 900 : 1000) * 8000,
    jitter_ms: 0.1,
    delay_ms: null,
  }),
);

describe('bench charts', () => {
  it('text: a block per interval, as tall as its share of the largest; loss only where lost', () => {
    const [throughput, loss, axis] = terminalChart(doc(four));
    expect(throughput).toBe('throughput ██▇█ max 8.0 Mbit/s');
    expect(loss).toBe('loss         █  max 10 %');
    expect(axis).toMatch(/^ {11}0 s +4 s$/);
  });

  it('text: more intervals than columns are merged, counts summed', () => {
    const many = Array.from({ length: 120 }, (_, k) => ({
      ...(four[k % 4] as JsonInterval),
      start: k,
      end: k + 1,
    }));
    const [throughput, loss] = terminalChart(doc(many), 60);
    // Pairs of (1000 + 1000) and (1000 + 900): 8.0 and 7.6 Mbit/s, both the top block (7.6 / 8 rounds to 8 eighths).
    expect(throughput).toBe(`throughput ${'█'.repeat(60)} max 8.0 Mbit/s`);
    // Merged in twos: (1000 + 900) or (1000 + 1000) per pair; every other pair has the loss.
    expect(loss?.slice(11, 71)).toBe(' █'.repeat(30));
  });

  it('SVG: a bar per interval in each panel (none for no loss), the title, the summary, the axes', () => {
    const svg = svgChart(doc(four));
    expect(svg.startsWith('<?xml')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg.match(/fill="#2b6cb0"/g)).toHaveLength(4);
    expect(svg.match(/fill="#c53030"/g)).toHaveLength(1);
    expect(svg).toContain('<title>udpkit bench: throughput to 127.0.0.1:12345</title>');
    expect(svg).toContain('sent 4000, lost 100 (2.5 %), 7.8 Mbit/s achieved of 8.0 Mbit/s offered');
    expect(svg).toContain('>10.0 Mbit/s<');
    expect(svg).toContain('>seconds<');
    // The rate offered, dashed across the throughput panel: 8 of its 10 Mbit/s, 150 px high from 80.
    expect(svg).toMatch(/<line x1="90" x2="780" y1="110.0" y2="110.0" stroke="#222" stroke-dasharray/);
    expect(svg).toContain('>offered 8.0 Mbit/s<');
  });
});
