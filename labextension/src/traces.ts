/** Traces tab: latest first with filters and pages, then one trace's span tree. */
import { api, Feedback, SpanNode, TraceDetail, TraceSummary } from './api';
import { asText, badge, clear, field, h, message, money, ms, pager, thumb, when } from './dom';
import { View } from './view';

/** How long typing pauses before the name filter applies. */
const FILTER_DELAY_MS = 250;

export class TracesView extends View {
  private offset = 0;
  /** Keyset cursors of the pages before this one (the first page has none). */
  private cursors: (string | undefined)[] = [];
  private name = '';
  private status = '';
  private selected: string | null = null;
  private span: string | null = null;
  private readonly filters: HTMLElement;
  /** The list and pager: replaced on each load, while the filters (and their focus) stay. */
  private readonly listBox = h('div', { cls: 'llmops-trace-list' });
  private typing: number | null = null;
  /** "Saved: good" after feedback, kept across the detail's re-render. */
  private notice: string | null = null;

  constructor() {
    super('Traces', 'traces');
    const nameInput = h('input', {
      cls: 'llmops-input',
      attrs: { placeholder: 'filter by name', 'aria-label': 'trace name' }
    });
    // As you type: a substring of the name, applied once typing pauses.
    nameInput.addEventListener('input', () => {
      if (this.typing !== null) {
        window.clearTimeout(this.typing);
      }
      this.typing = window.setTimeout(() => {
        this.typing = null;
        this.name = nameInput.value.trim();
        this.offset = 0;
        this.cursors = [];
        void this.refresh();
      }, FILTER_DELAY_MS);
    });
    const statusSelect = h('select', { cls: 'llmops-input', attrs: { 'aria-label': 'trace status' } }, [
      h('option', { attrs: { value: '' } }, ['all']),
      h('option', { attrs: { value: 'ok' } }, ['ok']),
      h('option', { attrs: { value: 'error' } }, ['error'])
    ]);
    statusSelect.addEventListener('change', () => {
      this.status = statusSelect.value;
      this.offset = 0;
      this.cursors = [];
      void this.refresh();
    });
    this.filters = h('div', { cls: 'llmops-form llmops-filters' }, [nameInput, statusSelect]);
  }

  /** Show one trace (from a link elsewhere in the sidebar). */
  open(traceId: string): void {
    this.selected = traceId;
    this.span = null;
    this.notice = null;
    // The trace shown before must not pass for the linked one while it loads.
    this.render(h('p', { cls: 'llmops-note llmops-loading' }, ['Loading the trace…']));
    void this.refresh();
  }

  protected reset(): void {
    this.offset = 0;
    this.cursors = [];
    this.selected = null;
    this.span = null;
  }

  protected async load(): Promise<void> {
    if (this.selected === null) {
      const page = await api.traces(this.project, {
        offset: this.offset,
        after: this.cursors[this.cursors.length - 1],
        name_contains: this.name,
        status: this.status
      });
      if (this.body.firstChild !== this.filters) {
        this.render(this.filters, this.listBox);
      }
      clear(this.listBox);
      this.listBox.append(
        this.list(page.items),
        pager(page.offset, page.limit, page.total, next => {
          // Next follows the page's cursor; Prev goes back to the cursor before it.
          if (next > this.offset) {
            this.cursors.push(page.next_cursor ?? undefined);
          } else {
            this.cursors.pop();
          }
          this.offset = next;
          void this.refresh();
        })
      );
      return;
    }
    this.render(this.detail(await api.trace(this.selected)));
  }

  private list(traces: TraceSummary[]): HTMLElement {
    if (traces.length === 0 && (this.name || this.status)) {
      const what = [this.name ? `name containing “${this.name}”` : '', this.status ? `status ${this.status}` : '']
        .filter(Boolean)
        .join(' and ');
      return h('p', { cls: 'llmops-empty llmops-no-match' }, [`No traces match ${what}.`]);
    }
    if (traces.length === 0) {
      return h('p', { cls: 'llmops-empty' }, ['No traces yet: call a model, or use @lo.trace.']);
    }
    return h(
      'ul',
      { cls: 'llmops-list' },
      traces.map(t =>
        h(
          'li',
          {
            cls: 'llmops-item',
            attrs: { 'data-id': t.id },
            title: t.error ?? t.id,
            onClick: () => this.open(t.id)
          },
          [
            h('span', { cls: `llmops-dot llmops-dot-${t.status}` }),
            h('span', { cls: 'llmops-item-name' }, [t.name]),
            h('span', { cls: 'llmops-item-meta' }, [
              `${ms(t.duration_ms)} · ${t.n_spans} spans · ${when(t.start_ms)}`
            ])
          ]
        )
      )
    );
  }

  private detail(trace: TraceDetail): HTMLElement {
    const total = Math.max(trace.duration_ms ?? 0, ...flatten(trace.spans).map(s => s.offset_ms + s.duration_ms), 1);
    const tree = h('div', { cls: 'llmops-tree' });
    const walk = (nodes: SpanNode[], depth: number) => {
      for (const node of nodes) {
        tree.appendChild(this.spanRow(node, depth, total));
        walk(node.children, depth + 1);
      }
    };
    walk(trace.spans, 0);
    const chosen = flatten(trace.spans).find(s => s.id === this.span) ?? trace.spans[0];
    return h('div', { cls: 'llmops-detail' }, [
      this.back('Traces', () => {
        this.selected = null;
        void this.refresh();
      }),
      h('h3', {}, [trace.name, ' ', badge(trace.status)]),
      h('p', { cls: 'llmops-note' }, [
        `${ms(trace.duration_ms)} · ${trace.input_tokens + trace.output_tokens} tokens · ${money(trace.cost)} · ${when(trace.start_ms)}`
      ]),
      trace.error ? field('error', trace.error) : null,
      this.feedbackForm(trace.id),
      trace.feedback ? feedbackList(trace.feedback) : null,
      h('h4', {}, ['Spans']),
      tree,
      chosen ? this.spanDetail(chosen) : null
    ].filter((x): x is HTMLElement => x !== null));
  }

  private spanRow(node: SpanNode, depth: number, total: number): HTMLElement {
    const bar = h('div', { cls: `llmops-bar llmops-bar-${node.status}` });
    bar.style.left = `${(100 * node.offset_ms) / total}%`;
    bar.style.width = `${Math.max(0.5, (100 * node.duration_ms) / total)}%`;
    return h(
      'div',
      {
        cls: `llmops-span${node.id === this.span ? ' llmops-selected' : ''}`,
        attrs: { 'data-span': node.id },
        onClick: () => {
          this.span = node.id;
          void this.refresh();
        }
      },
      [
        h('span', { cls: 'llmops-span-name', style: { paddingLeft: `${depth * 14}px` } }, [
          node.children.length ? '▾ ' : '• ',
          node.name
        ]),
        badge(node.kind, 'kind'),
        h('span', { cls: 'llmops-span-time' }, [ms(node.duration_ms)]),
        h('div', { cls: 'llmops-waterfall' }, [bar])
      ]
    );
  }

  private spanDetail(span: SpanNode): HTMLElement {
    return h('div', { cls: 'llmops-span-detail' }, [
      h('h4', {}, [span.name, ' ', badge(span.kind, 'kind'), ' ', badge(span.status)]),
      span.error ? field('error', span.error) : null,
      field('inputs', asText(span.inputs)),
      field('outputs', asText(span.outputs)),
      Object.keys(span.attributes).length ? field('attributes', asText(span.attributes)) : null
    ]);
  }

  private feedbackForm(traceId: string): HTMLElement {
    const note = h('span', { cls: 'llmops-note' }, [this.notice ?? '']);
    const comment = h('input', { cls: 'llmops-input', attrs: { placeholder: 'comment (optional)' } });
    const send = (score: 1 | -1) => {
      api
        .feedback(traceId, score, comment.value)
        .then(() => {
          this.notice = score > 0 ? 'Saved: good' : 'Saved: bad';
          return this.refresh();
        })
        .catch(error => {
          note.textContent = message(error);
        });
    };
    return h('div', { cls: 'llmops-form llmops-feedback' }, [
      h('button', { cls: 'llmops-button', title: 'Thumbs up', onClick: () => send(1) }, [thumb(true), 'Good']),
      h('button', { cls: 'llmops-button', title: 'Thumbs down', onClick: () => send(-1) }, [thumb(false), 'Bad']),
      comment,
      note
    ]);
  }
}

/** The trace's feedback so far, oldest first. */
function feedbackList(items: Feedback[]): HTMLElement {
  if (items.length === 0) {
    return h('p', { cls: 'llmops-note llmops-feedback-none' }, ['No feedback yet.']);
  }
  return h(
    'ul',
    { cls: 'llmops-feedback-list' },
    items.map(f =>
      h('li', { cls: `llmops-feedback-item llmops-feedback-${f.score > 0 ? 'good' : 'bad'}` }, [
        thumb(f.score > 0),
        f.score > 0 ? 'Good' : 'Bad',
        f.comment ? `: ${f.comment}` : '',
        f.created_at ? h('span', { cls: 'llmops-item-meta' }, [` · ${when(f.created_at)}`]) : null
      ])
    )
  );
}

function flatten(nodes: SpanNode[]): SpanNode[] {
  return nodes.flatMap(n => [n, ...flatten(n.children)]);
}
