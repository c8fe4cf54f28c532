// Small DOM helpers: build elements without innerHTML (no markup from data, ever).

// h('button', {type: 'button', onclick: fn, 'aria-label': '...'}, 'text', child, ...)
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else if (name === 'class') el.className = value;
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else if (name in el && typeof value !== 'string') el[name] = value;
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) { el.replaceChildren(); return el; }

// A <progress> with a label a screen reader reads.
export function progressBar(label, value = 0, max = 1) {
  const bar = h('progress', { max: String(max), value: String(value), 'aria-label': label });
  return bar;
}

export function formatBytes(n) {
  if (n == null) return '–';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function formatTime(epochSeconds, language) {
  if (!epochSeconds) return '–';
  return new Date(epochSeconds * 1000).toLocaleString(language === 'zh' ? 'zh-CN' : 'en');
}
