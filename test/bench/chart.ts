/*
 * A grouped horizontal bar chart as a standalone SVG: one group per tool, one bar per series, min–max whiskers.
 * Hand-written (a few dozen lines) rather than a charting dependency for one image.
 */

export interface Group {
  label: string;
  bars: { series: string; value: number; min: number; max: number }[];
}

const COLORS = ['#2f6fdf', '#e0892b', '#3a9d5d', '#b04fc0', '#888'];

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A "nice" axis end: 1, 2 or 5 times a power of ten at or above x. */
function niceMax(x: number): number {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  return ([1, 2, 5, 10].find((m) => m * p >= x) ?? 10) * p;
}

export function barChart(groups: Group[], opts: { title: string; unit: string }): string {
  const series = [...new Set(groups.flatMap((g) => g.bars.map((b) => b.series)))];
  const barH = 14;
  const gap = 10;
  const left = 160;
  const width = 760;
  const plotW = width - left - 40;
  const top = 56;
  const groupH = series.length * barH + gap;
  const height = top + groups.length * groupH + 40;
  const finite = groups.flatMap((g) => g.bars.flatMap((b) => [b.value, b.max])).filter(Number.isFinite);
  const xMax = niceMax(Math.max(0, ...finite));
  const x = (v: number): number => left + (Math.max(0, v) / xMax) * plotW;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="10" y="20" font-size="13" font-weight="bold">${esc(opts.title)}</text>`,
  ];
  series.forEach((s, i) => {
    parts.push(`<rect x="${left + i * 130}" y="32" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/>`, `<text x="${left + i * 130 + 16}" y="42">${esc(s)}</text>`);
  });
  for (let t = 0; t <= 5; t++) {
    const v = (xMax * t) / 5;
    const px = x(v);
    parts.push(`<line x1="${px}" y1="${top - 4}" x2="${px}" y2="${height - 34}" stroke="#ddd"/>`, `<text x="${px}" y="${height - 20}" text-anchor="middle">${+v.toFixed(2)} ${esc(opts.unit)}</text>`);
  }
  groups.forEach((g, gi) => {
    const y0 = top + gi * groupH;
    parts.push(`<text x="${left - 8}" y="${y0 + (series.length * barH) / 2 + 4}" text-anchor="end">${esc(g.label)}</text>`);
    series.forEach((s, si) => {
      const b = g.bars.find((bar) => bar.series === s);
      const y = y0 + si * barH;
      if (!b) return;
      if (!Number.isFinite(b.value)) {
        parts.push(`<text x="${left + 4}" y="${y + barH - 3}" font-size="10" fill="#a00">${esc(s)}: failed</text>`);
        return;
      }
      parts.push(`<rect x="${left}" y="${y + 1}" width="${x(b.value) - left}" height="${barH - 3}" fill="${COLORS[si % COLORS.length]}"/>`);
      if (Number.isFinite(b.min) && Number.isFinite(b.max) && b.max > b.min) {
        const cy = y + barH / 2;
        parts.push(`<path d="M${x(b.min)} ${cy}H${x(b.max)}M${x(b.min)} ${cy - 4}V${cy + 4}M${x(b.max)} ${cy - 4}V${cy + 4}" stroke="#222" fill="none"/>`);
      }
      parts.push(`<text x="${Math.max(x(b.value), Number.isFinite(b.max) ? x(b.max) : 0) + 4}" y="${y + barH - 3}" font-size="10">${b.value.toFixed(1)}</text>`);
    });
  });
  parts.push('</svg>\n');
  return parts.join('\n');
}
