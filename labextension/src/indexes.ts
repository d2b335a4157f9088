/** Indexes tab: the project's vector indexes, each one's latest version, size and model. */
import { api, VectorIndex } from './api';
import { badge, h, pager, when } from './dom';
import { View } from './view';

export class IndexesView extends View {
  private offset = 0;

  constructor() {
    super('Indexes', 'indexes');
  }

  protected reset(): void {
    this.offset = 0;
  }

  protected async load(): Promise<void> {
    const page = await api.indexes(this.project, { offset: this.offset });
    this.render(
      this.list(page.items),
      pager(page.offset, page.limit, page.total, next => {
        this.offset = next;
        void this.refresh();
      })
    );
  }

  private list(indexes: VectorIndex[]): HTMLElement {
    if (indexes.length === 0) {
      return h('p', { cls: 'llmops-empty' }, ['No indexes yet: lo.index(NAME, texts).']);
    }
    return h(
      'ul',
      { cls: 'llmops-list' },
      indexes.map(i =>
        h('li', { cls: 'llmops-item', attrs: { 'data-name': i.name } }, [
          h('span', { cls: 'llmops-item-name' }, [i.name]),
          badge(`v${i.version}`, 'version'),
          h('span', { cls: 'llmops-item-meta' }, [
            `${i.n_items} items · ${i.embed_model} · ${i.dim} dims · ` +
              `${i.versions} version${i.versions === 1 ? '' : 's'} · ${when(i.created_at)}`
          ])
        ])
      )
    );
  }
}
