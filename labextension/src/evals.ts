/** Eval runs tab: runs, one run's heatmap (mean per prompt x model per scorer), a cell's rows. */
import { api, EvalCell, EvalDetail, EvalResult, EvalRun } from './api';
import { asText, badge, field, h, ms, money, pager, when } from './dom';
import { View } from './view';

interface CellRef {
  prompt: string;
  model: string;
  offset: number;
}

export class EvalsView extends View {
  private offset = 0;
  private selected: number | null = null;
  private cell: CellRef | null = null;

  constructor() {
    super('Evals', 'evals');
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
    const detail = await api.evalDetail(this.selected);
    const cell = this.cell;
    const results = cell
      ? await api.evalResults(this.selected, cell.prompt, cell.model, { offset: cell.offset, limit: 20 })
      : null;
    this.render(this.detail(detail), results ? this.rows(results.items, results.offset, results.limit, results.total) : h('div'));
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
          {
            cls: 'llmops-item',
            attrs: { 'data-id': String(r.id) },
            onClick: () => {
              this.selected = r.id;
              this.cell = null;
              void this.refresh();
            }
          },
          [
            h('span', { cls: 'llmops-item-name' }, [r.name]),
            badge(r.status),
            h('span', { cls: 'llmops-item-meta' }, [`#${r.id} · ${r.n_cells} cells · ${when(r.created_at)}`])
          ]
        )
      )
    );
  }

  private detail({ run, summary }: EvalDetail): HTMLElement {
    const prompts = [...new Set(summary.map(c => c.prompt))];
    const models = [...new Set(summary.map(c => c.model))];
    const scorers = [...new Set(summary.flatMap(c => Object.keys(c.scores)))].sort();
    const byKey = new Map(summary.map(c => [`${c.prompt}\u0000${c.model}`, c]));
    const heatmaps = scorers.map(scorer =>
      this.heatmap(scorer, prompts, models, byKey, c => c.scores[scorer], v => v.toFixed(2))
    );
    const passRate = this.heatmap('pass rate', prompts, models, byKey, c => c.pass_rate ?? undefined, v => `${Math.round(v * 100)}%`);
    const stats = h('table', { cls: 'llmops-table' }, [
      h('tr', {}, ['prompt', 'model', 'rows', 'errors', 'p50', 'p95', 'tokens', 'cost'].map(t => h('th', {}, [t]))),
      ...summary.map(c =>
        h('tr', {}, [
          c.prompt, c.model, String(c.rows), String(c.errors),
          ms(c.latency_p50_ms), ms(c.latency_p95_ms), String(c.tokens), money(c.cost)
        ].map(t => h('td', {}, [t])))
      )
    ]);
    return h('div', { cls: 'llmops-detail' }, [
      this.back('Eval runs', () => {
        this.selected = null;
        this.cell = null;
        void this.refresh();
      }),
      h('h3', {}, [run.name, ' ', badge(run.status)]),
      h('p', { cls: 'llmops-note' }, [`#${run.id} · ${run.author} · ${when(run.created_at)}`]),
      ...heatmaps,
      passRate,
      h('h4', {}, ['Latency, tokens, cost']),
      stats
    ]);
  }

  private heatmap(
    title: string,
    prompts: string[],
    models: string[],
    byKey: Map<string, EvalCell>,
    value: (cell: EvalCell) => number | undefined,
    format: (v: number) => string
  ): HTMLElement {
    const table = h('table', { cls: 'llmops-heatmap', attrs: { 'data-scorer': title } }, [
      h('tr', {}, [h('th', {}, ['prompt \\ model']), ...models.map(m => h('th', {}, [m]))])
    ]);
    for (const prompt of prompts) {
      const row = h('tr', {}, [h('th', {}, [prompt])]);
      for (const model of models) {
        const cell = byKey.get(`${prompt}\u0000${model}`);
        const v = cell ? value(cell) : undefined;
        const td = h(
          'td',
          {
            cls: 'llmops-heat',
            title: cell ? `${cell.rows} rows, ${cell.errors} errors` : '',
            onClick: () => {
              this.cell = { prompt, model, offset: 0 };
              void this.refresh();
            }
          },
          [v === undefined ? '–' : format(v)]
        );
        if (v !== undefined) {
          const clamped = Math.max(0, Math.min(1, v));
          td.style.backgroundColor = `hsl(${Math.round(120 * clamped)}, 65%, 42%)`;
          td.style.color = 'white';
        }
        if (this.cell && this.cell.prompt === prompt && this.cell.model === model) {
          td.classList.add('llmops-selected');
        }
        row.appendChild(td);
      }
      table.appendChild(row);
    }
    return h('div', { cls: 'llmops-heatmap-block' }, [h('h4', {}, [title]), table]);
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
            r.error ? badge('error') : null
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
}
