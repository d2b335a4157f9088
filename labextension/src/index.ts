/** llmops_nb: a left-sidebar panel over the shared experiment store, and panels that survive a reload. */
import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';

import { watchNotebooks } from './fallback';
import { llmopsIcon } from './icon';
import { Sidebar } from './sidebar';

const COMMAND = 'llmops-nb:open-sidebar';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'llmops_nb:sidebar',
  description: 'Prompts, eval runs, traces and fine-tunes from the llmops_nb experiment store.',
  autoStart: true,
  requires: [ILabShell],
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    shell: ILabShell,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const sidebar = new Sidebar();
    sidebar.title.icon = llmopsIcon;
    shell.add(sidebar, 'left', { rank: 850 });
    restorer?.add(sidebar, 'llmops-nb-sidebar');
    void sidebar.start();

    app.commands.addCommand(COMMAND, {
      label: 'Show LLMOps Sidebar',
      icon: llmopsIcon,
      execute: () => shell.activateById(sidebar.id)
    });
    palette?.addItem({ command: COMMAND, category: 'LLMOps' });
  }
};

/** Saved panels whose live widget cannot render show their static copy. */
const staticFallback: JupyterFrontEndPlugin<void> = {
  id: 'llmops_nb:static-fallback',
  description: "Shows a widget output's static HTML where its live widget cannot render.",
  autoStart: true,
  requires: [INotebookTracker],
  activate: (_app: JupyterFrontEnd, tracker: INotebookTracker) => watchNotebooks(tracker)
};

export default [plugin, staticFallback];
