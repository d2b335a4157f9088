/** Fine-tunes tab: jobs and registered models, then one job's status and loss curve. */
import { api, FinetuneJob, FinetuneView, RegisteredModel } from './api';
import { asText, badge, field, h, pager, svg, when } from './dom';
import { View } from './view';

export class FinetunesView extends View {
  private offset = 0;
  private selected: number | null = null;

  constructor() {
    super('Fine-tunes', 'finetunes');
  }

  protected reset(): void {
    this.offset = 0;
    this.selected = null;
  }

  protected async load(): Promise<void> {
    if (this.selected === null) {
      const [jobs, models] = await Promise.all([
        api.finetunes(this.project, { offset: this.offset }),
        api.models(this.project, { limit: 100 })
      ]);
      this.render(
        this.list(jobs.items),
        pager(jobs.offset, jobs.limit, jobs.total, next => {
          this.offset = next;
          void this.refresh();
        }),
        this.models(models.items)
      );
      return;
    }
    this.render(this.detail(await api.finetune(this.selected)));
  }

  private list(jobs: FinetuneJob[]): HTMLElement {
    if (jobs.length === 0) {
      return h('p', { cls: 'llmops-empty' }, ['No fine-tunes yet: lo.finetune(...) or %finetune.']);
    }
    return h(
      'ul',
      { cls: 'llmops-list' },
      jobs.map(j =>
        h(
          'li',
          {
            cls: 'llmops-item',
            attrs: { 'data-id': String(j.id) },
            onClick: () => {
              this.selected = j.id;
              void this.refresh();
            }
          },
          [
            h('span', { cls: 'llmops-item-name' }, [j.name]),
            badge(j.status),
            h('span', { cls: 'llmops-item-meta' }, [`${j.base} · ${j.method} · ${when(j.created_at)}`])
          ]
        )
      )
    );
  }

  private models(models: RegisteredModel[]): HTMLElement {
    return h('div', {}, [
      h('h4', {}, ['Models']),
      models.length
        ? h(
            'ul',
            { cls: 'llmops-list' },
            models.map(m =>
              h('li', { cls: 'llmops-item' }, [
                h('span', { cls: 'llmops-item-name' }, [`local/${m.name}`]),
                badge(`v${m.version}`, 'version'),
                h('span', { cls: 'llmops-item-meta' }, [`${m.base} · ${when(m.created_at)}`])
              ])
            )
          )
        : h('p', { cls: 'llmops-empty' }, ['No registered models.'])
    ]);
  }

  private detail(job: FinetuneView): HTMLElement {
    const step = job.step === null ? 'no step yet' : `step ${job.step}` + (job.total_steps ? `/${job.total_steps}` : '');
    return h('div', { cls: 'llmops-detail' }, [
      this.back('Fine-tunes', () => {
        this.selected = null;
        void this.refresh();
      }),
      h('h3', {}, [job.name, ' ', badge(job.status)]),
      h('p', { cls: 'llmops-note' }, [
        `${job.base} · ${job.method} · ${job.backend} · ${step}` +
          (job.loss !== null ? ` · loss ${job.loss.toFixed(4)}` : '')
      ]),
      job.error ? field('error', job.error) : h('div'),
      h('h4', {}, ['Loss']),
      lossCurve(job.train),
      field('parameters', asText(job.params))
    ]);
  }
}

/** An SVG line of loss by step (the view's thinned [step, loss] points), with min/max labels. */
function lossCurve(train: [number, number][]): Element {
  const points = train.map(([step, loss]) => ({ step, loss })).filter(p => isFinite(p.loss));
  if (points.length === 0) {
    return h('p', { cls: 'llmops-empty' }, ['No loss reported yet.']);
  }
  const width = 260;
  const height = 120;
  const pad = 28;
  const steps = points.map(p => p.step);
  const losses = points.map(p => p.loss);
  const [x0, x1] = [Math.min(...steps), Math.max(...steps)];
  const [y0, y1] = [Math.min(...losses), Math.max(...losses)];
  const sx = (x: number) => pad + ((x - x0) / Math.max(1e-9, x1 - x0)) * (width - pad - 6);
  const sy = (y: number) => 6 + (1 - (y - y0) / Math.max(1e-9, y1 - y0)) * (height - 24);
  const chart = svg('svg', {
    class: 'llmops-loss',
    viewBox: `0 0 ${width} ${height}`,
    width: '100%',
    role: 'img',
    'aria-label': 'loss curve'
  });
  chart.appendChild(svg('line', { x1: pad, y1: height - 18, x2: width - 6, y2: height - 18, class: 'llmops-axis' }));
  chart.appendChild(svg('line', { x1: pad, y1: 6, x2: pad, y2: height - 18, class: 'llmops-axis' }));
  chart.appendChild(
    svg('polyline', {
      points: points.map(p => `${sx(p.step).toFixed(1)},${sy(p.loss).toFixed(1)}`).join(' '),
      class: 'llmops-loss-line',
      fill: 'none'
    })
  );
  const label = (x: number, y: number, text: string, anchor = 'start') => {
    const t = svg('text', { x, y, 'text-anchor': anchor, class: 'llmops-axis-label' });
    t.textContent = text;
    chart.appendChild(t);
  };
  label(pad - 3, 12, y1.toPrecision(3), 'end');
  label(pad - 3, height - 18, y0.toPrecision(3), 'end');
  label(pad, height - 4, `step ${x0}`);
  label(width - 6, height - 4, `${x1}`, 'end');
  return chart;
}
