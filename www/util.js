// Small helpers for the console: the default gate (for labelling verbs),
// formatting, DOM building, and the fingerprint of a pasted bearer.

/** The default gate of the spec: which role may call which verb. */
export const GATE = {
  operator: ['start_task', 'dispatch_attempt', 'mint_worker_token', 'read_task_state', 'cancel_task',
    'query_senior', 'mark_pass', 'mark_blocked', 'attach_session', 'detach_session', 'heartbeat', 'poll_task'],
  worker: ['fetch_prompt', 'fetch_data', 'post_result', 'verify_token', 'emit_output', 'start_task',
    'dispatch_attempt', 'read_task_state', 'poll_task', 'cancel_task'],
  observer: ['subscribe_events', 'read_trace', 'read_task_state'],
  senior: ['answer_query', 'override_verdict', 'pause_loop', 'resume_loop', 'inject_directive'],
};

/** Every verb once, workers' first (the ones a person checks most). */
export const VERBS = [...new Set([...GATE.worker, ...GATE.operator, ...GATE.observer, ...GATE.senior])];

export function rolesFor(verb) {
  return Object.keys(GATE).filter((role) => GATE[role].includes(verb));
}

/** Build an element: h('td', { class: 'x', dataset: { a: 1 } }, child, 'text'). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'text') el.textContent = value;
    // Through the CSSOM: the CSP refuses inline style attributes.
    else if (key === 'style') el.style.cssText = value;
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export const shortFp = (fp) => (fp ? fp.slice(0, 12) : '—');

export function nowSecs() {
  return Date.now() / 1000;
}

/** "29m 58s", "2h 05m", "4s", "expired 12s ago". */
export function formatRemaining(expireAt, now = nowSecs()) {
  const left = Math.floor(expireAt - now);
  if (expireAt <= now) return `expired ${formatDuration(Math.floor(now - expireAt))} ago`;
  return formatDuration(left);
}

export function formatDuration(secs) {
  secs = Math.max(0, Math.floor(secs));
  const d = Math.floor(secs / 86400);
  const hh = Math.floor((secs % 86400) / 3600);
  const mm = Math.floor((secs % 3600) / 60);
  const ss = secs % 60;
  if (d) return `${d}d ${String(hh).padStart(2, '0')}h`;
  if (hh) return `${hh}h ${String(mm).padStart(2, '0')}m`;
  if (mm) return `${mm}m ${String(ss).padStart(2, '0')}s`;
  return `${ss}s`;
}

export function clockTime(ms) {
  const d = new Date(ms);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
}

export function fileStamp(ms = Date.now()) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

/**
 * The public fingerprint of a bearer (SHA-256 of its nonce), for the
 * audit log of a bearer pasted from elsewhere; null when it cannot be read.
 * The nonce itself never leaves this function.
 */
export async function fingerprintOfBearer(bearer) {
  try {
    if (typeof bearer !== 'string' || bearer.length > 16384 || !/^[A-Za-z0-9_-]+$/.test(bearer)) return null;
    const b64 = bearer.replace(/-/g, '+').replace(/_/g, '/');
    const json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(
      Uint8Array.from(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)), (c) => c.charCodeAt(0)),
    ));
    const nonce = json?.nonce;
    if (typeof nonce !== 'string' || !/^[0-9a-f]{32}$/.test(nonce)) return null;
    // The spec's test vector: SHA-256 of the nonce's 32 hex characters as text.
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(nonce)));
    return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
  } catch {
    return null;
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A CapTokenError (or anything thrown) as { code, message, details }. */
export function describeError(err) {
  const code = typeof err?.code === 'string' ? err.code : 'ERROR';
  const message = err?.message ? String(err.message) : String(err);
  return { code, message, fingerprint: err?.fingerprint };
}
