/**
 * Eval runs tab: runs, one run's view (a heatmap per scorer with the baseline's
 * regression marks, pass rate, latency/tokens/cost), and a cell's rows with links to
 * their traces. The numbers are the server's eval view, the same the notebook shows.
 */
import { api, EvalCell, EvalFlag, EvalResult, EvalRun, EvalView } from './api';
import { asText, badge, field, h, ms, money, pager, when } from './dom';
import { View } from './view';

interface CellRef {
  prompt: string;
  model: string;
  offset: number;
}

/** Marks after a flagged score; the words are in the cell's title and the changes list. */
const MARK: Record<string, string> = { regression: ' ▼', improvement: ' ▲' };

export class EvalsView extends View {
  private offset = 0;
  private selected: number | null = null;
  private cell: CellRef | null = null;

  /** openTrace shows a trace in the Traces tab. */
  constructor(private readonly openTrace: (traceId: string) => void) {
    super('Evals', 'evals');
  }

  /** Show one run (from a link elsewhere in the sidebar). */
  open(runId: number): void {
    this.selected = runId;
    this.cell = null;
    void this.refresh();
  }

  protected reset(): void {
    this.offset = 0;
    this.selected = null;
    this.cell = null;
  }

  protected async load(): Promise<void> {
    if (this.selected === null) {
      const page = await api.evals(this.project, { offset: this.offset });
      this.render(
        this.list(page.items),
        pager(page.offset, page.limit, page.total, next => {
          this.offset = next;
          void this.refresh();
        })
      );
      return;
    }
    const view = await api.evalDetail(this.selected);
    const cell = this.cell;
    const results = cell
      ? await api.evalResults(this.selected, cell.prompt, cell.model, { offset: cell.offset, limit: 20 })
      : null;
    this.render(
      this.detail(view),
      results ? this.rows(results.items, results.offset, results.limit, results.total) : h('div')
    );
  }

  private list(runs: EvalRun[]): HTMLElement {
    if (runs.length === 0) {
      return h('p', { cls: 'llmops-empty' }, ['No eval runs yet: run an %%eval cell.']);
    }
    return h(
      'ul',
      { cls: 'llmops-list' },
      runs.map(r =>
        h(
          'li',
          { cls: 'llmops-item', attrs: { 'data-id': String(r.id) }, onClick: () => this.open(r.id) },
          [
            h('span', { cls: 'llmops-item-name' }, [r.name]),
            badge(r.status),
            h('span', { cls: 'llmops-item-meta' }, [`#${r.id} · ${r.n_cells} cells · ${when(r.created_at)}`])
          ]
        )
      )
    );
  }

  private detail(view: EvalView): HTMLElement {
    const cells = view.cells ?? [];
    const prompts = view.prompts?.length ? view.prompts : unique(cells.map(c => c.prompt));
    const models = view.models?.length ? view.models : unique(cells.map(c => c.model));
    const scorers = view.scorers?.length
      ? view.scorers
      : unique(cells.flatMap(c => Object.keys(c.scores ?? {}))).sort();
    const byKey = new Map(cells.map(c => [key(c.prompt, c.model), c]));
    const heatmaps = scorers.map(scorer =>
      this.heatmap(
        heatTitle(scorer, view.thresholds?.[scorer]),
        scorer,
        prompts,
        models,
        byKey,
        c => c.scores?.[scorer] ?? undefined,
        v => v.toFixed(2),
        c => c.flags?.[scorer]
      )
    );
    const passRate = this.heatmap(
      'pass rate',
      'pass rate',
      prompts,
      models,
      byKey,
      c => c.pass_rate ?? undefined,
      v => `${Math.round(v * 100)}%`,
      () => undefined
    );
    const done = view.done !== undefined ? `${view.done}/${view.n_cells} done` : `${view.n_cells} cells`;
    return h('div', { cls: 'llmops-detail' }, [
      this.back('Eval runs', () => {
        this.selected = null;
        this.cell = null;
        void this.refresh();
      }),
      h('h3', {}, [view.name, ' ', badge(view.status)]),
      h('p', { cls: 'llmops-note' }, [`#${view.id} · ${done} · ${when(view.created)}`]),
      this.baseline(view),
      this.changes(cells, scorers),
      ...heatmaps,
      passRate,
      h('h4', {}, ['Latency, tokens, cost']),
      h('div', { cls: 'llmops-scroll' }, [stats(cells)])
    ]);
  }

  private baseline(view: EvalView): HTMLElement | null {
    if (view.baseline_id === null || view.baseline_id === undefined) {
      return null;
    }
    const baselineId = view.baseline_id;
    const name = view.baseline_name ? ` ${view.baseline_name}` : '';
    return h('p', { cls: 'llmops-baseline' }, [
      'baseline: ',
      h('a', { cls: 'llmops-link', attrs: { href: '#' }, onClick: e => {
        e.preventDefault();
        this.open(baselineId);
      } }, [`#${baselineId}${name}`]),
      view.comparison_error ? h('span', { cls: 'llmops-error-text' }, [` · ${view.comparison_error}`]) : null
    ]);
  }

  /** The flagged cells in words: "regression: p × m exact 0.80 → 0.40 (Δ -0.40, p 0.002)". */
  private changes(cells: EvalCell[], scorers: string[]): HTMLElement | null {
    const items: HTMLElement[] = [];
    for (const c of cells) {
      for (const scorer of scorers) {
        const f = c.flags?.[scorer];
        if (!f?.flag || !(f.flag in MARK)) {
          continue;
        }
        const stat = [
          f.delta !== null && f.delta !== undefined ? `Δ ${signed(f.delta)}` : null,
          f.p_value !== null && f.p_value !== undefined ? `p ${f.p_value.toPrecision(2)}` : null
        ].filter(Boolean);
        items.push(
          h('li', { cls: `llmops-flag llmops-${f.flag}` }, [
            `${f.flag}: ${c.prompt} × ${c.model} ${scorer} ${num(f.baseline)} → ${num(f.current)}`,
            stat.length ? ` (${stat.join(', ')})` : ''
          ])
        );
      }
    }
    return items.length ? h('ul', { cls: 'llmops-flags' }, items) : null;
  }

  private heatmap(
    title: string,
    name: string,
    prompts: string[],
    models: string[],
    byKey: Map<string, EvalCell>,
    value: (cell: EvalCell) => number | undefined,
    format: (v: number) => string,
    flag: (cell: EvalCell) => EvalFlag | undefined
  ): HTMLElement {
    const table = h('table', { cls: 'llmops-heatmap', attrs: { 'data-scorer': name } }, [
      h('tr', {}, [h('th', {}, ['prompt \\ model']), ...models.map(m => h('th', {}, [m]))])
    ]);
    for (const prompt of prompts) {
      const row = h('tr', {}, [h('th', {}, [prompt])]);
      for (const model of models) {
        const cell = byKey.get(key(prompt, model));
        const v = cell ? value(cell) : undefined;
        const mark = cell ? flag(cell)?.flag : undefined;
        const td = h(
          'td',
          {
            cls: `llmops-heat${mark && mark in MARK ? ` llmops-${mark}` : ''}`,
            title: cell
              ? `${cell.n} rows, ${cell.errors} errors${mark ? ` · ${mark} vs baseline` : ''}`
              : '',
            onClick: () => {
              this.cell = { prompt, model, offset: 0 };
              void this.refresh();
            }
          },
          [v === undefined ? '–' : format(v), mark ? MARK[mark] ?? '' : '']
        );
        if (v !== undefined) {
          const clamped = Math.max(0, Math.min(1, v));
          td.style.backgroundColor = `hsl(${Math.round(120 * clamped)}, 65%, 42%)`;
          td.style.color = 'white';
        }
        if (this.cell && this.cell.prompt === prompt && this.cell.model === model) {
          td.classList.add('llmops-heat-selected');
        }
        row.appendChild(td);
      }
      table.appendChild(row);
    }
    return h('div', { cls: 'llmops-heatmap-block' }, [
      h('h4', {}, [title]),
      h('div', { cls: 'llmops-scroll' }, [table])
    ]);
  }

  private rows(results: EvalResult[], offset: number, limit: number, total: number): HTMLElement {
    const cell = this.cell!;
    return h('div', { cls: 'llmops-results' }, [
      h('h4', {}, [`${cell.prompt} × ${cell.model}`]),
      ...results.map(r =>
        h('div', { cls: 'llmops-result' }, [
          h('div', { cls: 'llmops-result-head' }, [
            `row ${r.row_index}`,
            r.latency_ms !== null ? ` · ${ms(r.latency_ms)}` : '',
            r.error ? ' · ' : '',
            r.error ? badge('error') : null,
            r.trace_id ? ' · ' : '',
            r.trace_id ? this.traceLink(r.trace_id) : null
          ]),
          field('input', asText(r.inputs)),
          field('expected', r.expected ?? ''),
          field('output', r.error ? r.error : r.output ?? ''),
          field('scores', asText(r.scores))
        ])
      ),
      pager(offset, limit, total, next => {
        cell.offset = next;
        void this.refresh();
      })
    ]);
  }

  private traceLink(traceId: string): HTMLElement {
    return h(
      'a',
      {
        cls: 'llmops-link llmops-trace-link',
        title: `open trace ${traceId} in the Traces tab`,
        attrs: { href: '#', 'data-trace': traceId },
        onClick: e => {
          e.preventDefault();
          this.openTrace(traceId);
        }
      },
      [`trace ${traceId.slice(0, 8)}`]
    );
  }
}

function stats(cells: EvalCell[]): HTMLElement {
  // Cache hits' latency says nothing of the model: p50/p95 are real calls, hits apart.
  const head = ['prompt', 'model', 'rows', 'errors', 'p50', 'p95', 'cached', 'cached p50', 'tokens in', 'tokens out', 'cost'];
  return h('table', { cls: 'llmops-table llmops-stats' }, [
    h('tr', {}, head.map(t => h('th', {}, [t]))),
    ...cells.map(c =>
      h(
        'tr',
        {},
        [
          c.prompt,
          c.model,
          String(c.n),
          String(c.errors),
          ms(c.latency_p50_ms),
          ms(c.latency_p95_ms),
          count(c.cached),
          ms(c.cached_latency_p50_ms),
          count(c.input_tokens),
          count(c.output_tokens),
          money(c.cost)
        ].map(t => h('td', {}, [t]))
      )
    )
  ]);
}

function heatTitle(scorer: string, threshold: unknown): string {
  return typeof threshold === 'number' ? `${scorer} (pass ≥ ${threshold})` : scorer;
}

function key(prompt: string, model: string): string {
  return `${prompt}\u0000${model}`;
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}

function count(value: number | null | undefined): string {
  return value === null || value === undefined ? '–' : String(value);
}

function num(value: number | null | undefined): string {
  return value === null || value === undefined ? '–' : value.toFixed(3);
}

function signed(value: number): string {
  return `${value >= 0 ? '+' : ''}${value.toFixed(3)}`;
}
