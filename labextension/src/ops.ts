/**
 * Ops tab: the server's ops view (`views.ops.ops_view`, what `lo.dashboard` shows) as a
 * list of sections. The dashboard section: per-group totals, a small chart per metric
 * over time and the latest buckets. Sections this tab does not know are listed by title.
 */
import { requestAPI } from './api';
import { h, svg } from './dom';
import { View } from './view';

export interface OpsStats {
  group: string;
  bucket?: string;
  calls: number;
  errors: number;
  error_rate: number | null;
  p50_ms: number | null;
  p95_ms: number | null;
  input_tokens: number;
  output_tokens: number;
  cost: number;
  cache_hit_rate: number | null;
}

export interface OpsMetric {
  key: keyof OpsStats;
  title: string;
  format: string;
}

export interface OpsSection {
  id: string;
  title: string;
  /** A plain section (alerts, the audit log): a table of ROWS by COLUMNS. */
  columns?: { key: string; title: string }[];
  rows?: Record<string, unknown>[];
  empty?: string;
  [field: string]: unknown;
}

export interface DashboardSection extends OpsSection {
  since: string;
  until: string;
  every: string;
  by: string;
  groups: string[];
  metrics: OpsMetric[];
  totals: OpsStats[];
  series: OpsStats[];
}

export interface OpsView {
  kind: 'ops';
  project: string;
  sections: OpsSection[];
}

const COLUMNS: [keyof OpsStats, string, string][] = [
  ['calls', 'calls', 'count'],
  ['errors', 'errors', 'count'],
  ['error_rate', 'error rate', 'percent'],
  ['p50_ms', 'p50', 'ms'],
  ['p95_ms', 'p95', 'ms'],
  ['cost', 'cost', 'usd'],
  ['cache_hit_rate', 'cache hits', 'percent']
];
const LATEST = 12; // bucket rows listed under the charts
const COLOURS = ['#3b6fd8', '#d8703b', '#2f9e5b', '#9b4fd0', '#c9a227', '#d03b6f'];

/** The same rule as format_value in widgets/dashboard.py. */
export function formatValue(value: unknown, kind: string): string {
  if (value === null || value === undefined) {
    return '–';
  }
  const v = Number(value);
  if (kind === 'percent') {
    return `${(v * 100).toFixed(1)}%`;
  }
  if (kind === 'ms') {
    return `${Math.round(v)} ms`;
  }
  if (kind === 'usd') {
    return `$${v.toFixed(4)}`;
  }
  return String(value);
}

export class OpsView extends View {
  since = '7d';
  every = '1h';
  by = 'model';

  constructor() {
    super('Ops', 'ops');
  }

  protected reset(): void {
    // the range and grouping stay as chosen when the project changes
  }

  protected async load(): Promise<void> {
    const query = new URLSearchParams({
      project: this.project,
      since: this.since,
      every: this.every,
      by: this.by
    });
    const view = await requestAPI<OpsView>(`ops?${query.toString()}`);
    this.render(this.controls(), ...view.sections.map(s => this.section(s)));
  }

  private controls(): HTMLElement {
    const choice = (
      label: string,
      options: string[],
      value: string,
      set: (v: string) => void
    ): HTMLElement => {
      const select = h('select', {
        cls: 'llmops-input',
        attrs: { 'aria-label': label, 'data-control': label }
      });
      for (const option of options) {
        const el = h('option', { attrs: { value: option } }, [option]);
        el.selected = option === value;
        select.appendChild(el);
      }
      select.addEventListener('change', () => {
        set(select.value);
        void this.refresh();
      });
      return select;
    };
    return h('div', { cls: 'llmops-ops-controls' }, [
      choice('since', ['1h', '1d', '7d', '30d'], this.since, v => (this.since = v)),
      choice('every', ['1m', '15m', '1h', '1d'], this.every, v => (this.every = v)),
      choice('by', ['model', 'prompt', 'project'], this.by, v => (this.by = v))
    ]);
  }

  private section(section: OpsSection): HTMLElement {
    const box = h('section', {
      cls: 'llmops-ops-section',
      attrs: { 'data-section': section.id }
    });
    box.appendChild(h('h3', { cls: 'llmops-ops-title' }, [section.title]));
    if (section.id === 'dashboard') {
      this.dashboard(box, section as DashboardSection);
    } else {
      box.appendChild(this.plain(section));
    }
    return box;
  }

  /** Any other section: its rows as a table of text, or its empty-state line. */
  private plain(section: OpsSection): HTMLElement {
    const rows = section.rows ?? [];
    const columns = section.columns ?? [];
    if (rows.length === 0) {
      return h('p', { cls: 'llmops-empty' }, [section.empty ?? 'Nothing yet.']);
    }
    const text = (v: unknown): string => (v === null || v === undefined ? '–' : String(v));
    return h('table', { cls: `llmops-table llmops-ops-${section.id}` }, [
      h('tr', {}, columns.map(c => h('th', {}, [c.title]))),
      ...rows.map(row =>
        h(
          'tr',
          {},
          columns.map(c => h('td', { attrs: { 'data-key': c.key } }, [text(row[c.key])]))
        )
      )
    ]);
  }

  private dashboard(box: HTMLElement, d: DashboardSection): void {
    box.appendChild(
      h('div', { cls: 'llmops-item-meta' }, [
        `${d.since} → ${d.until} · every ${d.every} · by ${d.by}`
      ])
    );
    if (d.totals.length === 0) {
      box.appendChild(h('p', { cls: 'llmops-empty' }, ['No LLM calls in this range.']));
      return;
    }
    box.appendChild(this.table('llmops-ops-totals', d.by, d.totals, false));
    for (const metric of d.metrics) {
      box.appendChild(this.chart(metric, d));
    }
    box.appendChild(h('h4', {}, ['Latest buckets']));
    box.appendChild(this.table('llmops-ops-buckets', d.by, d.series.slice(-LATEST).reverse(), true));
  }

  private table(cls: string, by: string, rows: OpsStats[], buckets: boolean): HTMLElement {
    const head = h('tr', {}, [
      buckets ? h('th', {}, ['bucket']) : null,
      h('th', {}, [by]),
      ...COLUMNS.map(([, title]) => h('th', {}, [title]))
    ]);
    const body = rows.map(row =>
      h('tr', { attrs: { 'data-group': row.group, 'data-bucket': row.bucket ?? '' } }, [
        buckets ? h('td', {}, [(row.bucket ?? '').replace('T', ' ').replace(':00Z', '')]) : null,
        h('td', {}, [row.group]),
        ...COLUMNS.map(([key, , kind]) =>
          h('td', { attrs: { 'data-key': String(key) } }, [formatValue(row[key], kind)])
        )
      ])
    );
    return h('table', { cls: `llmops-table ${cls}` }, [head, ...body]);
  }

  /** One small line chart of METRIC over time, a line per group. */
  private chart(metric: OpsMetric, d: DashboardSection): HTMLElement {
    const W = 260;
    const H = 70;
    const times = d.series.map(r => Date.parse(r.bucket ?? ''));
    const values = d.series.map(r => Number(r[metric.key] ?? 0));
    const t0 = Math.min(...times);
    const t1 = Math.max(...times);
    const top = Math.max(...values, 1e-12);
    const chart = svg('svg', {
      class: 'llmops-ops-chart',
      width: W,
      height: H,
      viewBox: `0 0 ${W} ${H}`,
      role: 'img',
      'aria-label': metric.title
    });
    d.groups.forEach((group, i) => {
      const points = d.series
        .map((r, j) => [times[j], values[j], r.group === group] as const)
        .filter(p => p[2])
        .map(
          ([t, v]) =>
            `${(((t - t0) / Math.max(1, t1 - t0)) * (W - 8) + 4).toFixed(1)},` +
            `${(H - 4 - (v / top) * (H - 8)).toFixed(1)}`
        );
      const colour = COLOURS[i % COLOURS.length];
      chart.appendChild(
        svg('polyline', {
          points: points.join(' '),
          fill: 'none',
          stroke: colour,
          'stroke-width': 1.5
        })
      );
      for (const point of points) {
        const [cx, cy] = point.split(',');
        chart.appendChild(svg('circle', { cx, cy, r: 2.5, fill: colour }));
      }
    });
    return h('figure', { cls: 'llmops-ops-figure', attrs: { 'data-metric': String(metric.key) } }, [
      h('figcaption', {}, [`${metric.title} (max ${formatValue(top, metric.format)})`]),
      chart
    ]);
  }
}
