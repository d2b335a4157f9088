/**
 * Tiny DOM builders. Everything from the store (model output above all) goes in
 * as text nodes or textContent, never as HTML.
 */

export type Child = Node | string | number | null | undefined | false;

export interface Opts {
  cls?: string;
  title?: string;
  onClick?: (event: MouseEvent) => void;
  attrs?: Record<string, string>;
  style?: Partial<CSSStyleDeclaration>;
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  opts: Opts = {},
  children: Child[] = []
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (opts.cls) {
    el.className = opts.cls;
  }
  if (opts.title) {
    el.title = opts.title;
  }
  if (opts.onClick) {
    el.addEventListener('click', opts.onClick as EventListener);
  }
  for (const [key, value] of Object.entries(opts.attrs ?? {})) {
    el.setAttribute(key, value);
  }
  Object.assign(el.style, opts.style ?? {});
  append(el, children);
  return el;
}

export function append(el: Element, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    el.appendChild(
      typeof child === 'string' || typeof child === 'number'
        ? document.createTextNode(String(child))
        : child
    );
  }
}

export function clear(el: Element): void {
  while (el.firstChild) {
    el.removeChild(el.firstChild);
  }
}

const SVG_NS = 'http://www.w3.org/2000/svg';

export function svg(tag: string, attrs: Record<string, string | number> = {}): SVGElement {
  const el = document.createElementNS(SVG_NS, tag) as SVGElement;
  for (const [key, value] of Object.entries(attrs)) {
    el.setAttribute(key, String(value));
  }
  return el;
}

/** A thumbs-up (or, turned over, thumbs-down) icon: drawn, so no emoji font is needed. */
export function thumb(up: boolean): SVGElement {
  const icon = svg('svg', {
    class: `llmops-thumb llmops-thumb-${up ? 'up' : 'down'}`,
    viewBox: '0 0 16 16',
    width: 14,
    height: 14,
    'aria-hidden': 'true'
  });
  const hand = svg('g', up ? {} : { transform: 'rotate(180 8 8)' });
  hand.append(
    svg('rect', { x: 1, y: 7, width: 3, height: 8, rx: 0.5 }),
    svg('path', {
      d: 'M5 7.5 8.2 1.6c.9-.6 2 .1 1.8 1.3L9.4 6h4.1c1 0 1.7 1 1.4 2l-1.6 5.9c-.2.7-.8 1.1-1.5 1.1H5z'
    })
  );
  icon.appendChild(hand);
  return icon;
}

/** Any stored value as display text: strings verbatim, the rest as indented JSON. */
export function asText(value: unknown): string {
  if (value === null || value === undefined) {
    return '';
  }
  if (typeof value === 'string') {
    return value;
  }
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

export function ms(value: number | null | undefined): string {
  if (value === null || value === undefined) {
    return '–';
  }
  if (value >= 1000) {
    return `${(value / 1000).toFixed(2)} s`;
  }
  return value >= 10 ? `${value.toFixed(0)} ms` : `${value.toFixed(value >= 1 ? 1 : 2)} ms`;
}

export function when(iso: string | number | null | undefined): string {
  if (iso === null || iso === undefined) {
    return '';
  }
  const date = new Date(iso);
  return isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

export function money(value: number | null | undefined): string {
  return value ? `$${value.toFixed(4)}` : '$0';
}

export function badge(text: string, kind?: string): HTMLElement {
  return h('span', { cls: `llmops-badge llmops-badge-${kind ?? text}` }, [text]);
}

/** "1–50 of 120" with Prev/Next buttons; calls go(offset) on a click. */
export function pager(
  offset: number,
  limit: number,
  total: number,
  go: (offset: number) => void
): HTMLElement {
  const first = total === 0 ? 0 : offset + 1;
  const last = Math.min(total, offset + limit);
  const prev = h('button', { cls: 'llmops-button', onClick: () => go(Math.max(0, offset - limit)) }, [
    'Prev'
  ]);
  const next = h('button', { cls: 'llmops-button', onClick: () => go(offset + limit) }, ['Next']);
  prev.disabled = offset === 0;
  next.disabled = last >= total;
  return h('div', { cls: 'llmops-pager' }, [prev, h('span', {}, [`${first}–${last} of ${total}`]), next]);
}

export function message(error: unknown): string {
  if (error instanceof Error) {
    return error.message;
  }
  return String(error);
}

/** A labelled block of stored text (inputs, outputs, errors), shown verbatim. */
export function field(label: string, text: string): HTMLElement {
  return h('div', { cls: 'llmops-field' }, [
    h('span', { cls: 'llmops-field-label' }, [label]),
    h('pre', { cls: 'llmops-text' }, [text])
  ]);
}
