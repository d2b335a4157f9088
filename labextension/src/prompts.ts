/** Prompts tab: every prompt, then one prompt's versions, diff and aliases. */
import { Aliases, api, PromptDiff, PromptSummary, PromptVersion } from './api';
import { badge, h, message, pager, when } from './dom';
import { View } from './view';

export class PromptsView extends View {
  private offset = 0;
  private selected: string | null = null;
  private diffTo: number | null = null;

  constructor() {
    super('Prompts', 'prompts');
  }

  protected reset(): void {
    this.offset = 0;
    this.selected = null;
    this.diffTo = null;
  }

  protected async load(): Promise<void> {
    if (this.selected === null) {
      const page = await api.prompts(this.project, { offset: this.offset });
      this.render(this.list(page.items), this.pagerFor(page.offset, page.limit, page.total));
      return;
    }
    const name = this.selected;
    const [versions, diff, aliases] = await Promise.all([
      api.promptVersions(this.project, name, { limit: 100 }),
      api.promptDiff(this.project, name, undefined, this.diffTo ?? undefined),
      api.promptAliases(this.project, name)
    ]);
    this.render(this.detail(name, versions.items, diff, aliases));
  }

  private pagerFor(offset: number, limit: number, total: number): HTMLElement {
    return pager(offset, limit, total, next => {
      this.offset = next;
      void this.refresh();
    });
  }

  private list(prompts: PromptSummary[]): HTMLElement {
    if (prompts.length === 0) {
      return h('p', { cls: 'llmops-empty' }, [
        'No prompts yet: run a %%prompt cell or lo.register_prompt(...).'
      ]);
    }
    return h(
      'ul',
      { cls: 'llmops-list' },
      prompts.map(p =>
        h(
          'li',
          {
            cls: 'llmops-item',
            attrs: { 'data-name': p.name },
            onClick: () => {
              this.selected = p.name;
              this.diffTo = null;
              void this.refresh();
            }
          },
          [
            h('span', { cls: 'llmops-item-name' }, [p.name]),
            h('span', { cls: 'llmops-item-meta' }, [
              `v${p.latest ?? '?'}`,
              p.aliases ? ` · ${p.aliases}` : ''
            ])
          ]
        )
      )
    );
  }

  private detail(
    name: string,
    versions: PromptVersion[],
    diff: PromptDiff,
    aliases: Aliases
  ): HTMLElement {
    const versionList = h(
      'ul',
      { cls: 'llmops-list llmops-versions' },
      versions.map(v =>
        h(
          'li',
          {
            cls: `llmops-item${v.version === diff.to ? ' llmops-selected' : ''}`,
            title: v.hash,
            onClick: () => {
              this.diffTo = v.version;
              void this.refresh();
            }
          },
          [
            h('span', { cls: 'llmops-item-name' }, [`v${v.version}`]),
            h('span', { cls: 'llmops-item-meta' }, [
              [v.author, when(v.created_at), v.model, v.message].filter(Boolean).join(' · ')
            ])
          ]
        )
      )
    );
    return h('div', { cls: 'llmops-detail' }, [
      this.back('Prompts', () => {
        this.selected = null;
        void this.refresh();
      }),
      h('h3', {}, [name]),
      h('h4', {}, ['Versions']),
      versionList,
      h('h4', {}, [diff.from ? `Diff v${diff.from} → v${diff.to}` : `v${diff.to} (first version)`]),
      diffBlock(diff.diff, versions.find(v => v.version === diff.to)?.template ?? ''),
      h('h4', {}, ['Aliases']),
      this.aliasEditor(name, aliases, versions)
    ]);
  }

  private aliasEditor(name: string, aliases: Aliases, versions: PromptVersion[]): HTMLElement {
    const status = h('div', { cls: 'llmops-note' });
    const act = (alias: string, version: number | null) => {
      api
        .moveAlias(this.project, name, alias, version)
        .then(moved => {
          status.textContent = `${alias}: v${moved.from ?? '–'} → v${moved.to}`;
          return this.refresh();
        })
        .catch(error => {
          status.textContent = message(error);
        });
    };
    const rows = Object.entries(aliases.aliases).map(([alias, version]) =>
      h('li', { cls: 'llmops-item' }, [
        h('span', { cls: 'llmops-item-name' }, [alias]),
        badge(`v${version}`, 'version'),
        h('button', { cls: 'llmops-button', onClick: () => act(alias, null) }, ['Roll back'])
      ])
    );
    const aliasInput = h('input', { cls: 'llmops-input', attrs: { placeholder: 'alias' } });
    const versionSelect = h(
      'select',
      { cls: 'llmops-input' },
      versions.map(v => h('option', { attrs: { value: String(v.version) } }, [`v${v.version}`]))
    );
    const point = h('button', { cls: 'llmops-button' }, ['Point alias']);
    point.addEventListener('click', () => {
      if (aliasInput.value.trim()) {
        act(aliasInput.value.trim(), Number(versionSelect.value));
      }
    });
    const log = aliases.log.items.map(e =>
      h('li', { cls: 'llmops-log' }, [
        `${when(e.time)} ${e.author}: ${e.alias} ${e.action} v${e.from_version ?? '–'} → v${e.to_version}`
      ])
    );
    return h('div', {}, [
      rows.length ? h('ul', { cls: 'llmops-list' }, rows) : h('p', { cls: 'llmops-empty' }, ['No aliases.']),
      h('div', { cls: 'llmops-form' }, [aliasInput, versionSelect, point]),
      status,
      log.length ? h('ul', { cls: 'llmops-list llmops-audit' }, log) : null
    ]);
  }
}

/** A unified diff, one line per element, coloured by its first character. */
function diffBlock(diff: string, template: string): HTMLElement {
  const pre = h('pre', { cls: 'llmops-diff' });
  const lines = diff ? diff.split('\n') : template.split('\n');
  for (const line of lines) {
    let cls = 'llmops-diff-line';
    if (diff && line.startsWith('+') && !line.startsWith('+++')) {
      cls += ' llmops-diff-add';
    } else if (diff && line.startsWith('-') && !line.startsWith('---')) {
      cls += ' llmops-diff-del';
    } else if (diff && line.startsWith('@@')) {
      cls += ' llmops-diff-hunk';
    }
    pre.appendChild(h('div', { cls }, [line || ' ']));
  }
  return pre;
}
