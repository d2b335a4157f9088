/** A sidebar tab: a list, or one item's detail; reloads itself when the store changes. */
import { Widget } from '@lumino/widgets';

import { clear, h, message } from './dom';

export abstract class View extends Widget {
  project = 'default';
  protected readonly body: HTMLElement;
  private readonly errorBox: HTMLElement;
  private loading: Promise<void> | null = null;
  private stale = false;

  constructor(label: string, name: string) {
    super();
    this.id = `llmops-nb-tab-${name}`;
    this.title.label = label;
    this.addClass('llmops-view');
    this.addClass(`llmops-view-${name}`);
    this.errorBox = h('div', { cls: 'llmops-error' });
    this.errorBox.hidden = true;
    this.body = h('div', { cls: 'llmops-view-body' });
    this.node.append(this.errorBox, this.body);
  }

  /** Switch project: forget the selection and reload. */
  setProject(project: string): void {
    this.project = project;
    this.reset();
    void this.refresh();
  }

  /**
   * Fetch and re-render. A call during a load shares it and queues one more load, so
   * what changed meanwhile (a filter, a selection) is not lost.
   */
  refresh(): Promise<void> {
    if (this.loading) {
      this.stale = true;
      return this.loading;
    }
    this.loading = this.load()
      .then(() => this.showError(null))
      .catch(error => this.showError(message(error)))
      .finally(() => {
        this.loading = null;
        if (this.stale) {
          this.stale = false;
          void this.refresh();
        }
      });
    return this.loading;
  }

  /** Replace the body in one step, so a refresh does not flicker. */
  protected render(...children: HTMLElement[]): void {
    const scroll = this.node.scrollTop;
    clear(this.body);
    this.body.append(...children);
    this.node.scrollTop = scroll;
  }

  protected showError(text: string | null): void {
    this.errorBox.textContent = text ?? '';
    this.errorBox.hidden = text === null;
  }

  protected back(label: string, go: () => void): HTMLElement {
    return h('button', { cls: 'llmops-button llmops-back', onClick: go }, [`← ${label}`]);
  }

  protected abstract reset(): void;
  protected abstract load(): Promise<void>;
}
