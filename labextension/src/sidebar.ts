/** The sidebar: a project switcher and status line over four tabs. No business logic. */
import { BoxPanel, TabPanel, Widget } from '@lumino/widgets';

import { api, Changes } from './api';
import { clear, h, message } from './dom';
import { EvalsView } from './evals';
import { FinetunesView } from './finetunes';
import { IndexesView } from './indexes';
import { OpsView } from './ops';
import { ChangePoller } from './poller';
import { PromptsView } from './prompts';
import { TracesView } from './traces';
import { View } from './view';

export class Sidebar extends BoxPanel {
  readonly tabs = new TabPanel();
  private readonly traces = new TracesView();
  readonly views: View[] = [
    new PromptsView(),
    new EvalsView(traceId => this.openTrace(traceId)),
    this.traces,
    new FinetunesView(),
    new IndexesView(),
    new OpsView()
  ];
  private project = 'default';
  private marker: string | null = null;
  /** When a notebook last chose a project; undefined until the first answer. */
  private followedAt: number | null | undefined = undefined;
  private readonly projectSelect: HTMLSelectElement;
  private readonly statusLine: HTMLElement;
  private readonly poller: ChangePoller;

  constructor() {
    super({ direction: 'top-to-bottom', spacing: 0 });
    this.id = 'llmops-nb-sidebar';
    this.addClass('llmops-sidebar');
    this.title.caption = 'LLMOps: prompts, evals, traces, fine-tunes';

    this.projectSelect = h('select', {
      cls: 'llmops-input llmops-project',
      attrs: { 'aria-label': 'project' }
    });
    this.projectSelect.addEventListener('change', () => this.setProject(this.projectSelect.value));
    this.statusLine = h('span', { cls: 'llmops-status' });
    const refresh = h('button', { cls: 'llmops-button', title: 'Refresh now' }, ['⟳']);
    refresh.addEventListener('click', () => {
      void this.loadProjects();
      this.poller.wake();
    });
    const header = new Widget({
      node: h('div', { cls: 'llmops-header' }, [
        h('span', { cls: 'llmops-title' }, ['LLMOps']),
        this.projectSelect,
        refresh,
        this.statusLine
      ])
    });
    BoxPanel.setStretch(header, 0);
    BoxPanel.setStretch(this.tabs, 1);
    this.addWidget(header);
    this.addWidget(this.tabs);
    this.tabs.addClass('llmops-tabs');
    for (const view of this.views) {
      this.tabs.addWidget(view);
    }
    this.tabs.currentChanged.connect(() => void this.current?.refresh());

    this.poller = new ChangePoller(
      () => this.checkChanges(),
      () => this.isVisible && !document.hidden
    );
  }

  get current(): View | null {
    return this.tabs.currentWidget as View | null;
  }

  /** Load the projects, then poll for changes. */
  async start(): Promise<void> {
    await this.loadProjects();
    this.poller.start();
  }

  dispose(): void {
    this.poller.stop();
    super.dispose();
  }

  protected onAfterShow(): void {
    this.poller.wake();
  }

  /** Open a trace in the Traces tab (eval rows link here). */
  openTrace(traceId: string): void {
    this.tabs.currentWidget = this.traces;
    this.traces.open(traceId);
  }

  private async loadProjects(): Promise<void> {
    try {
      const page = await api.projects();
      const names = new Set(page.items.map(p => p.name));
      const first = this.followedAt === undefined;
      if (first) {
        this.project = page.current;
        this.followedAt = page.current_updated ?? null;
      }
      names.add(this.project);
      clear(this.projectSelect);
      for (const name of [...names].sort()) {
        const option = h('option', { attrs: { value: name } }, [name]);
        option.selected = name === this.project;
        this.projectSelect.appendChild(option);
      }
      if (first) {
        this.views.forEach(v => (v.project = this.project));
      }
    } catch (error) {
      this.statusLine.textContent = message(error);
    }
  }

  private setProject(project: string): void {
    this.project = project;
    this.marker = null;
    this.views.forEach(v => v.setProject(project));
    this.poller.wake();
  }

  private async checkChanges(): Promise<boolean> {
    let changes: Changes;
    try {
      changes = await api.changes(this.project);
    } catch (error) {
      this.statusLine.textContent = `cannot reach the store: ${message(error)}`;
      throw error;
    }
    if (this.follow(changes)) {
      return true;
    }
    const marker = changes.marker;
    if (marker === this.marker) {
      return false;
    }
    const firstLoad = this.marker === null;
    this.marker = marker;
    if (!firstLoad) {
      void this.loadProjects();
    }
    await this.current?.refresh();
    this.statusLine.textContent = `updated ${new Date().toLocaleTimeString()}`;
    return true;
  }

  /**
   * Follow `%llmops project`: switch when a notebook has chosen a project since the
   * last look. Picking another project here holds until a notebook chooses again.
   */
  private follow({ current, current_updated }: Changes): boolean {
    const stamp = current_updated ?? null;
    if (this.followedAt === undefined || stamp === this.followedAt) {
      return false;
    }
    this.followedAt = stamp;
    if (current === this.project) {
      return false;
    }
    this.setProject(current);
    void this.loadProjects();
    this.statusLine.textContent = `following the notebook: project ${current}`;
    return true;
  }
}
