// The timeline picture of a nemesis run, an SVG drawn from its history file alone, in the manner of
// Jepsen's plots: time runs left to right; one row per client with a mark per operation from its
// call to its return, coloured by outcome (writes full height, reads half); faults as shaded bands
// across everything, labelled; below, every operation's latency (log scale) at its call time, and
// successful writes per second. `node dist/test/nemesis/timeline-svg.js history.json out.svg` redraws it.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { HistoryFile, OperationEntry } from './history-file.js';

const WIDTH = 1600;
const LEFT = 120;
const RIGHT = 20;
const ROW = 16;
const LATENCY_HEIGHT = 220;
const RATE_HEIGHT = 110;
const COLOURS = { ok: '#2e9e4f', fail: '#d63a3a', unknown: '#f0a020' } as const;
const FAULT_COLOURS = ['#5b8def', '#a25bef', '#ef5ba8', '#5bcfef', '#8d8d8d', '#efb45b', '#6bd16b', '#ef7a5b', '#5befb4'];

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function isWrite(operation: OperationEntry): boolean {
  return operation.op === 'put' || operation.op === 'cas' || operation.op === 'delete';
}

export function timelineSvg(history: HistoryFile): string {
  // A loop, not Math.max(...): a long run has more operations than the stack has room for arguments.
  let end = Math.max(history.end, 1);
  for (const operation of history.operations) end = Math.max(end, operation.ret ?? operation.call);
  const plotWidth = WIDTH - LEFT - RIGHT;
  const x = (time: number): number => LEFT + (Math.max(0, time) / end) * plotWidth;
  const clients = history.clients.map((client) => client.id);
  const titleHeight = 44;
  const labelHeight = 16 * Math.min(4, Math.max(1, history.faults.length));
  const rowsTop = titleHeight + labelHeight + 8;
  const rowsHeight = clients.length * ROW;
  const latencyTop = rowsTop + rowsHeight + 30;
  const rateTop = latencyTop + LATENCY_HEIGHT + 30;
  const height = rateTop + RATE_HEIGHT + 40;
  const parts: string[] = [];
  const add = (text: string): void => {
    parts.push(text);
  };
  add(`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" ` +
    `font-family="sans-serif" font-size="11">`);
  add(`<rect width="${WIDTH}" height="${height}" fill="white"/>`);
  const counts = { ok: 0, fail: 0, unknown: 0 };
  for (const operation of history.operations) counts[operation.outcome]++;
  add(`<text x="${LEFT}" y="18" font-size="14" font-weight="bold">nemesis run, seed ${history.seed}: ` +
    `${history.operations.length} operations (${counts.ok} ok, ${counts.fail} failed, ${counts.unknown} unknown), ` +
    `${history.faults.length} faults, lease ${history.leaseMs} ms</text>`);
  const rates = Object.entries(history.clockRates).map(([node, rate]) => `${node}: ×${rate}`).join(', ');
  add(`<text x="${LEFT}" y="34" fill="#444">nodes ${history.nodes.join(', ')}; clock rates ${escape(rates || 'real')}; ` +
    `marks: <tspan fill="${COLOURS.ok}">■</tspan> ok, <tspan fill="${COLOURS.fail}">■</tspan> failed, ` +
    `<tspan fill="${COLOURS.unknown}">■</tspan> unknown; writes full height, reads half</text>`);

  // Fault bands behind everything, labels above the rows.
  history.faults.forEach((fault, index) => {
    const colour = FAULT_COLOURS[index % FAULT_COLOURS.length] as string;
    const left = x(fault.start);
    const width = Math.max(1, x(fault.end) - left);
    add(`<rect x="${left.toFixed(1)}" y="${titleHeight}" width="${width.toFixed(1)}" height="${height - titleHeight - 30}" ` +
      `fill="${colour}" fill-opacity="0.13"><title>${escape(fault.label)} (${Math.round(fault.start)}–` +
      `${Math.round(fault.end)} ms)</title></rect>`);
    const labelY = titleHeight + 12 + 16 * (index % 4);
    add(`<text x="${(left + 2).toFixed(1)}" y="${labelY}" fill="${colour}" font-weight="bold">${escape(fault.label)}</text>`);
  });

  // One row per client.
  clients.forEach((client, row) => {
    const top = rowsTop + row * ROW;
    const kind = history.clients[row]?.kind === 'plain-http' ? 'HTTP' : 'KvClient';
    add(`<text x="${LEFT - 6}" y="${top + ROW - 4}" text-anchor="end">${escape(client)} (${kind})</text>`);
    add(`<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${top + ROW}" y2="${top + ROW}" stroke="#eee"/>`);
  });
  // Marks that touch on screen (same client, outcome and height) are drawn as one, which keeps the
  // picture of a long run to a size a browser opens, and changes nothing that can be seen.
  const rowOf = new Map(clients.map((client, row) => [client, row]));
  const open = new Map<string, { left: number; right: number; top: number; height: number; colour: string }>();
  const flush = (mark: { left: number; right: number; top: number; height: number; colour: string }): void => {
    add(`<rect x="${mark.left.toFixed(1)}" y="${mark.top}" width="${Math.max(0.8, mark.right - mark.left).toFixed(1)}" ` +
      `height="${mark.height}" fill="${mark.colour}" fill-opacity="0.8"/>`);
  };
  for (const operation of history.operations) {
    const row = rowOf.get(operation.client);
    if (row === undefined) continue;
    const left = x(operation.call);
    const right = Math.max(left + 0.8, x(operation.ret ?? end));
    const write = isWrite(operation);
    const slot = `${row}/${write}/${operation.outcome}`;
    const current = open.get(slot);
    if (current !== undefined && left <= current.right + 0.5) {
      current.right = Math.max(current.right, right);
      continue;
    }
    if (current !== undefined) flush(current);
    open.set(slot, {
      left, right, top: rowsTop + row * ROW + (write ? 2 : ROW / 2), height: write ? ROW - 4 : ROW / 2 - 2,
      colour: COLOURS[operation.outcome],
    });
  }
  for (const mark of open.values()) flush(mark);

  // Latency, log scale from 1 ms to 10 s.
  const logMin = 0;
  const logMax = 4;
  const latencyY = (ms: number): number => {
    const log = Math.min(logMax, Math.max(logMin, Math.log10(Math.max(1, ms))));
    return latencyTop + LATENCY_HEIGHT - ((log - logMin) / (logMax - logMin)) * LATENCY_HEIGHT;
  };
  add(`<text x="${LEFT}" y="${latencyTop - 8}" font-weight="bold">latency of each operation at its call (log scale)</text>`);
  for (const [ms, label] of [[1, '1 ms'], [10, '10 ms'], [100, '100 ms'], [1000, '1 s'], [10_000, '10 s']] as const) {
    const y = latencyY(ms).toFixed(1);
    add(`<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${y}" y2="${y}" stroke="#ddd"/>`);
    add(`<text x="${LEFT - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${label}</text>`);
  }
  // One dot per outcome and on-screen spot: more would be drawn over each other.
  const dots = new Set<string>();
  for (const operation of history.operations) {
    if (operation.ret === null) continue;
    const cx = x(operation.call).toFixed(0);
    const cy = latencyY(operation.ret - operation.call).toFixed(0);
    const spot = `${cx}/${cy}/${operation.outcome}`;
    if (dots.has(spot)) continue;
    dots.add(spot);
    add(`<circle cx="${cx}" cy="${cy}" r="1.6" fill="${COLOURS[operation.outcome]}" fill-opacity="0.6"/>`);
  }

  // Successful writes per second, in 250 ms bins.
  const bin = 250;
  const bins = new Array<number>(Math.ceil(end / bin) + 1).fill(0);
  for (const operation of history.operations) {
    const output = operation.output;
    if (!isWrite(operation) || operation.outcome !== 'ok' || operation.ret === null || output === undefined) continue;
    if (!('ok' in output) || !output.ok) continue;
    bins[Math.floor(operation.ret / bin)]! += 1000 / bin;
  }
  const peak = bins.reduce((most, rate) => Math.max(most, rate), 1);
  add(`<text x="${LEFT}" y="${rateTop - 8}" font-weight="bold">successful writes per second (peak ${Math.round(peak)})</text>`);
  add(`<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${rateTop + RATE_HEIGHT}" y2="${rateTop + RATE_HEIGHT}" stroke="#999"/>`);
  bins.forEach((rate, index) => {
    if (rate === 0) return;
    const barHeight = (rate / peak) * RATE_HEIGHT;
    add(`<rect x="${x(index * bin).toFixed(1)}" y="${(rateTop + RATE_HEIGHT - barHeight).toFixed(1)}" ` +
      `width="${Math.max(1, x(bin) - x(0) - 0.5).toFixed(1)}" height="${barHeight.toFixed(1)}" fill="#444"/>`);
  });

  // The time axis.
  const axisY = height - 24;
  const step = end > 600_000 ? 60_000 : end > 120_000 ? 10_000 : end > 30_000 ? 5_000 : 1_000;
  for (let time = 0; time <= end; time += step) {
    add(`<line x1="${x(time).toFixed(1)}" x2="${x(time).toFixed(1)}" y1="${axisY - 4}" y2="${axisY}" stroke="#333"/>`);
    add(`<text x="${x(time).toFixed(1)}" y="${axisY + 12}" text-anchor="middle">${time / 1000} s</text>`);
  }
  add(`<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${axisY - 4}" y2="${axisY - 4}" stroke="#333"/>`);
  add('</svg>');
  return parts.join('\n');
}

// Run as a script: redraw a history file.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [input, output] = process.argv.slice(2);
  if (input === undefined || output === undefined) {
    console.error('usage: node dist/test/nemesis/timeline-svg.js HISTORY.json OUT.svg');
    process.exit(2);
  }
  writeFileSync(output, timelineSvg(JSON.parse(readFileSync(input, 'utf8')) as HistoryFile));
}
