/**
 * Small helpers every view uses to build DOM.
 *
 * Invariants, both forced by the server's Content-Security-Policy (`script-src 'self';
 * style-src 'self'`) and by safety:
 * - Text is always set as text (`textContent` / text nodes), never parsed as HTML, so names
 *   coming from the server or other peers cannot inject markup.
 * - No `style` attributes and no `on*` attributes: looks come from classes in app.css,
 *   behaviour from `addEventListener`.
 */

export type AttrValue = string | number | boolean | null | undefined;
export type Child = Node | string | null | undefined | false;

/**
 * Creates an element. `true` sets a boolean attribute, `false`/`null`/`undefined` leave it out.
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Readonly<Record<string, AttrValue>> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === 'style' || name.startsWith('on')) {
      throw new Error(`dom.h: attribute "${name}" is refused by the page's CSP; use a class or addEventListener`);
    }
    if (value === false || value === null || value === undefined) continue;
    element.setAttribute(name, value === true ? '' : String(value));
  }
  append(element, ...children);
  return element;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
  }
}

/** Ids unique within the page, for `for`/`aria-describedby` links between elements. */
let nextId = 0;
export function uniqueId(prefix: string): string {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

/**
 * A labelled text input with an optional hint under it, linked for assistive technology.
 */
export function field(options: {
  label: string;
  type: 'text' | 'password';
  name: string;
  autocomplete: string;
  testId: string;
  hint?: string;
  minLength?: number;
}): { wrapper: HTMLDivElement; input: HTMLInputElement } {
  const id = uniqueId(options.name);
  const hintId = options.hint === undefined ? undefined : `${id}-hint`;
  const input = h('input', {
    id,
    class: 'field-input',
    type: options.type,
    name: options.name,
    autocomplete: options.autocomplete,
    'data-testid': options.testId,
    'aria-describedby': hintId,
    minlength: options.minLength,
    required: true,
    autocapitalize: options.type === 'text' ? 'none' : undefined,
    spellcheck: options.type === 'text' ? 'false' : undefined,
  });
  const wrapper = h(
    'div',
    { class: 'field' },
    h('label', { class: 'field-label', for: id }, options.label),
    input,
    hintId === undefined ? null : h('p', { class: 'field-hint', id: hintId }, options.hint ?? ''),
  );
  return { wrapper, input };
}

/**
 * A message line for a form. Errors use `role="alert"` (announced at once); notices use
 * `role="status"` (announced politely). The element stays in the page while empty so that
 * screen readers, which watch live regions that already exist, announce each new message.
 */
export function messageLine(kind: 'error' | 'notice', testId: string): {
  element: HTMLParagraphElement;
  show(text: string, tone?: 'info' | 'success' | 'warning'): void;
  clear(): void;
} {
  const element = h('p', {
    class: kind === 'error' ? 'message message-error' : 'message',
    role: kind === 'error' ? 'alert' : 'status',
    'aria-live': kind === 'error' ? 'assertive' : 'polite',
    'data-testid': testId,
  });
  return {
    element,
    show(text, tone = 'info') {
      if (kind === 'notice') element.className = `message message-${tone}`;
      element.textContent = text;
    },
    clear() {
      element.textContent = '';
    },
  };
}

/**
 * Runs `action` with `button` disabled and the form marked busy, so a double click or a second
 * Enter cannot send the request twice.
 */
export async function whileBusy<T>(
  form: HTMLFormElement,
  button: HTMLButtonElement,
  busyLabel: string,
  action: () => Promise<T>,
): Promise<T> {
  const idleLabel = button.textContent ?? '';
  button.disabled = true;
  button.textContent = busyLabel;
  form.setAttribute('aria-busy', 'true');
  try {
    return await action();
  } finally {
    button.disabled = false;
    button.textContent = idleLabel;
    form.removeAttribute('aria-busy');
  }
}

/**
 * `fn` run at most once per `ms`: `request()` asks for it (many requests in one period make
 * one call, at the period's end), `cancel()` drops a call not made yet. For redraws that many
 * events ask for, such as progress.
 */
export function coalesced(fn: () => void, ms: number): { request(): void; cancel(): void } {
  let timer: ReturnType<typeof setTimeout> | null = null;
  return {
    request() {
      timer ??= setTimeout(() => {
        timer = null;
        fn();
      }, ms);
    },
    cancel() {
      if (timer !== null) clearTimeout(timer);
      timer = null;
    },
  };
}
