/**
 * Panels survive a reload: where a saved notebook's live widget cannot render (its
 * model died with the kernel, or no kernel runs), show the output's static text/html
 * copy instead of "Error displaying widget: model not found".
 *
 * The widget manager (@jupyter-widgets/jupyterlab-manager) replaces the notebook's
 * widget-view renderer with its own once a kernel is ready, so this does not compete
 * for the mime type: it watches the notebook's outputs and swaps in the static
 * rendering only where the widget renderer has given up.
 */
import type { CodeCell } from '@jupyterlab/cells';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import type { IOutputModel } from '@jupyterlab/rendermime';
import { Panel, Widget } from '@lumino/widgets';

import { h } from './dom';

const WIDGET_VIEW = 'application/vnd.jupyter.widget-view+json';
const HTML = 'text/html';
const OUTPUT_CLASS = 'jp-OutputArea-output';
const FALLBACK_CLASS = 'llmops-static-fallback';
/** What the widget renderer writes when the model is gone for good (or the view failed). */
const GAVE_UP = /^Error displaying widget/;
const LOADING = /^Loading widget/;

/** Watch every notebook the tracker knows, now and later. */
export function watchNotebooks(tracker: INotebookTracker): void {
  tracker.forEach(panel => watch(panel));
  tracker.widgetAdded.connect((_, panel) => watch(panel));
}

function watch(panel: NotebookPanel): void {
  const observer = new MutationObserver(records => {
    for (const record of records) {
      const node = record.target;
      if (
        node instanceof HTMLElement &&
        node.classList.contains(OUTPUT_CLASS) &&
        GAVE_UP.test(node.textContent ?? '')
      ) {
        void showStatic(panel, node);
      }
    }
  });
  observer.observe(panel.content.node, { childList: true, subtree: true });
  panel.disposed.connect(() => observer.disconnect());

  // Without a kernel no widget manager comes, and widgets wait at "Loading widget..."
  // for ever: once the session has settled on no kernel, show their static copies.
  void panel.sessionContext.ready.then(() => {
    if (panel.sessionContext.hasNoKernel) {
      for (const node of panel.content.node.querySelectorAll<HTMLElement>(`.${OUTPUT_CLASS}`)) {
        if (LOADING.test(node.textContent ?? '')) {
          void showStatic(panel, node);
        }
      }
    }
  });
}

/** Where NODE (a widget output's renderer) sits: its output child and output model. */
function locate(panel: NotebookPanel, node: HTMLElement): { child: Widget; output: IOutputModel } | null {
  for (const cell of panel.content.widgets) {
    if (cell.model.type !== 'code') {
      continue;
    }
    const area = (cell as CodeCell).outputArea;
    const index = area.widgets.findIndex(child => child.node.contains(node));
    if (index >= 0 && index < area.model.length) {
      return { child: area.widgets[index], output: area.model.get(index) };
    }
  }
  return null;
}

async function showStatic(panel: NotebookPanel, node: HTMLElement): Promise<void> {
  const found = locate(panel, node);
  if (!found || !(found.child instanceof Panel)) {
    return;
  }
  const { child, output } = found;
  const html = output.data[HTML];
  if (!(WIDGET_VIEW in output.data) || (typeof html !== 'string' && !Array.isArray(html))) {
    return;
  }
  if (child.widgets.some(w => w.hasClass(FALLBACK_CLASS))) {
    return;
  }
  const rendermime = panel.content.rendermime;
  const renderer = rendermime.createRenderer(HTML);
  const text = Array.isArray(html) ? html.join('') : html;
  await renderer.renderModel(rendermime.createModel({ data: { [HTML]: text }, trusted: output.trusted }));
  const box = new Panel();
  box.addClass(FALLBACK_CLASS);
  box.addClass(OUTPUT_CLASS);
  box.addWidget(
    new Widget({
      node: h('div', { cls: 'llmops-static-note' }, [
        'Static copy: the live panel is gone with its kernel. Re-run the cell for the live view.'
      ])
    })
  );
  box.addWidget(renderer);
  child.widgets.find(w => w.node === node || w.node.contains(node))?.hide();
  child.addWidget(box);
}
