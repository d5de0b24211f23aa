// The operator console: the page is the orchestrator. The token state lives
// in the WebAssembly TokenStore; this module wires it to the page, keeps the
// bearers minted here, and persists everything to IndexedDB after each change.
// By path, not through an import map: the page's CSP allows no inline script.
import init, { TokenStore } from '/js/web.js';
import { loadState, saveState } from './store-db.js';
import {
  VERBS, rolesFor, h, shortFp, nowSecs, formatRemaining, clockTime, fileStamp,
  fingerprintOfBearer, describeError,
} from './util.js';
import { runDemo } from './demo.js';

const $ = (id) => document.getElementById(id);
const AUDIT_MAX = 1000;
const AUDIT_SHOWN = 300;
const IMPORT_MAX_BYTES = 16 * 1024 * 1024;

const app = {
  store: null,
  secret: null,
  settings: null, // { format, maxSpawnDepth, workerTokenTtlSecs }
  bearers: new Map(), // fingerprint -> { bearer, seq }
  byBearer: new Map(), // bearer -> fingerprint
  taskSeq: new Map(), // taskId -> creation order
  seq: 0,
  refusals: new Map(), // taskId -> { fingerprint, code, message, at }
  audit: [], // newest last
  flash: new Set(),
  actingOperator: '',
  busy: 0,
  demoRunning: false,
  expiredShown: new Set(),
};

// ───────────────────────────── persistence ─────────────────────────────

function serialize() {
  return {
    v: 1,
    secret: app.secret,
    settings: { ...app.settings },
    snapshot: app.store.snapshot(),
    bearers: [...app.bearers].map(([fp, b]) => [fp, b.bearer, b.seq]),
    taskSeq: [...app.taskSeq],
    seq: app.seq,
    refusals: [...app.refusals],
    audit: app.audit,
    actingOperator: app.actingOperator,
    savedAt: Date.now(),
  };
}

let saveChain = Promise.resolve();
function persist() {
  if (!app.store) return saveChain;
  const state = serialize();
  busy(+1);
  setSaveStatus('saving');
  saveChain = saveChain
    .then(() => saveState(state))
    .then(
      () => setSaveStatus('saved'),
      (err) => {
        setSaveStatus('error');
        notify('error', `Could not save to IndexedDB: ${err?.message ?? err}`);
      },
    )
    .finally(() => busy(-1));
  return saveChain;
}

function setSaveStatus(state) {
  const el = $('save-status');
  el.dataset.state = state;
  el.textContent = state === 'saved' ? `✓ ${clockTime(Date.now())}` : state === 'saving' ? 'saving…' : state === 'error' ? '⚠ not saved' : '–';
  el.title = state === 'saved' ? 'Saved to this browser (IndexedDB)' : '';
}

function busy(delta) {
  app.busy += delta;
  document.body.dataset.busy = String(app.busy);
}

function storeOptions(settings, secret) {
  return {
    secret,
    format: settings.format,
    maxSpawnDepth: settings.maxSpawnDepth,
    workerTokenTtlSecs: settings.workerTokenTtlSecs,
  };
}

function resetSide() {
  app.bearers.clear();
  app.byBearer.clear();
  app.taskSeq.clear();
  app.refusals.clear();
  app.seq = 0;
  app.actingOperator = '';
  app.expiredShown.clear();
}

function rememberBearer(minted) {
  app.bearers.set(minted.fingerprint, { bearer: minted.bearer, seq: ++app.seq });
  app.byBearer.set(minted.bearer, minted.fingerprint);
  app.flash.add(`fp:${minted.fingerprint}`);
}

function rememberTask(info) {
  if (!app.taskSeq.has(info.taskId)) app.taskSeq.set(info.taskId, ++app.seq);
  app.flash.add(`task:${info.taskId}`);
}

// ───────────────────────────── audit & notices ─────────────────────────────

function audit(entry) {
  app.audit.push({ at: Date.now(), ...entry });
  if (app.audit.length > AUDIT_MAX) app.audit.splice(0, app.audit.length - AUDIT_MAX);
}

async function fingerprintFor(bearer, err) {
  return err?.fingerprint ?? app.byBearer.get(bearer) ?? (await fingerprintOfBearer(bearer));
}

let noticeTimer;
function notify(kind, text, code) {
  const el = $('notice');
  el.hidden = false;
  el.className = `notice ${kind}`;
  el.dataset.kind = kind;
  // Only the engine's stable codes are shown as codes; the page's own faults are plain text.
  el.dataset.code = typeof code === 'string' && code.startsWith('ERR_') ? code : '';
  el.replaceChildren(...[
    h('span', { class: 'notice-icon', 'aria-hidden': 'true' }, kind === 'error' ? '✖' : kind === 'warn' ? '!' : '✔'),
    el.dataset.code ? h('code', { class: 'code' }, el.dataset.code) : null,
    h('span', { class: 'notice-text' }, text),
    h('button', { type: 'button', class: 'notice-close', 'aria-label': 'Dismiss notice', onclick: () => { el.hidden = true; } }, '×'),
  ].filter(Boolean));
  clearTimeout(noticeTimer);
  if (kind === 'ok') noticeTimer = setTimeout(() => { el.hidden = true; }, 8000);
}

function clearNotice() {
  clearTimeout(noticeTimer);
  $('notice').hidden = true;
}

function notifyError(prefix, err) {
  const { code, message } = describeError(err);
  notify('error', `${prefix}: ${message}`, code);
}

// ───────────────────────────── actions (shared with the demo) ─────────────────────────────

function requireStore() {
  if (!app.store) throw Object.assign(new Error('create a store first'), { code: 'NO_STORE' });
  return app.store;
}

function bearerOf(fp) {
  const entry = app.bearers.get(fp);
  if (!entry) throw Object.assign(new Error(`no bearer of ${shortFp(fp)} is kept in this browser`), { code: 'NO_BEARER' });
  return entry.bearer;
}

/** Every action returns its result, records it in the audit log, re-renders and persists. */
export const api = {
  get store() {
    return app.store;
  },
  get settings() {
    return app.settings;
  },
  bearerOf,

  createStore(settings) {
    const secret = crypto.getRandomValues(new Uint8Array(32));
    const store = new TokenStore(storeOptions(settings, secret));
    app.store?.free();
    app.store = store;
    app.secret = secret;
    app.settings = { ...settings };
    resetSide();
    audit({ call: 'store', verb: '', fingerprint: null, taskId: null, allowed: true, message: `new ${settings.format} store, max spawn depth ${settings.maxSpawnDepth}` });
    changed();
    return store;
  },

  attachOperator(agentId) {
    const minted = requireStore().attachOperator(agentId);
    rememberBearer(minted);
    app.actingOperator = minted.fingerprint;
    // Attaching mints a session token; nothing is verified, so no verb.
    audit({ call: 'attach', verb: '', fingerprint: minted.fingerprint, taskId: null, allowed: true, message: `operator ${agentId} attached: session token minted` });
    changed();
    return minted;
  },

  mint(agentId, role, options) {
    const minted = requireStore().mint(agentId, role, options);
    rememberBearer(minted);
    audit({ call: 'mint', verb: '', fingerprint: minted.fingerprint, taskId: options?.taskId ?? null, allowed: true, message: `${role} token for ${agentId}` });
    changed();
    return minted;
  },

  /** start_task with any bearer (an operator's: a root; a worker's: a child). */
  startTask(fp, taskId) {
    const store = requireStore();
    const bearer = bearerOf(fp);
    const record = store.record(fp);
    const parent = record?.taskId ?? null;
    record?.free();
    try {
      const info = store.startTask(bearer, taskId ? { taskId } : undefined);
      rememberTask(info);
      app.flash.add(`fp:${fp}`);
      if (parent) app.refusals.delete(parent);
      audit({ call: 'start', verb: 'start_task', fingerprint: fp, taskId: info.taskId, allowed: true, message: `task ${info.taskId} at depth ${info.spawnDepth}` });
      return info;
    } catch (err) {
      const { code, message } = describeError(err);
      if (parent) {
        app.refusals.set(parent, { fingerprint: fp, code, message, at: Date.now() });
        app.flash.add(`refusal:${parent}`);
      }
      audit({ call: 'start', verb: 'start_task', fingerprint: fp, taskId: parent, allowed: false, code, message });
      throw err;
    } finally {
      changed();
    }
  },

  dispatch(fp, taskId, options) {
    const store = requireStore();
    try {
      const minted = store.dispatchAttempt(bearerOf(fp), taskId, options);
      rememberBearer(minted);
      app.flash.add(`fp:${fp}`);
      audit({ call: 'dispatch', verb: 'dispatch_attempt', fingerprint: fp, taskId, allowed: true, message: `worker token ${shortFp(minted.fingerprint)} minted` });
      return minted;
    } catch (err) {
      const { code, message } = describeError(err);
      audit({ call: 'dispatch', verb: 'dispatch_attempt', fingerprint: fp, taskId, allowed: false, code, message });
      throw err;
    } finally {
      changed();
    }
  },

  /** check or verify a call; never throws; shows the decision. */
  async decide(mode, bearer, verb, taskId) {
    const store = requireStore();
    const task = taskId || undefined;
    let decision;
    if (mode === 'check') {
      decision = store.check(bearer, verb, task);
    } else {
      try {
        decision = { allowed: true, ...store.verify(bearer, verb, task) };
      } catch (err) {
        const { code, message, fingerprint } = describeError(err);
        decision = { allowed: false, code, message, fingerprint };
      }
    }
    const fingerprint = decision.fingerprint ?? (await fingerprintFor(bearer));
    if (fingerprint) app.flash.add(`fp:${fingerprint}`);
    audit({
      call: mode, verb, fingerprint: fingerprint ?? null, taskId: task ?? null, allowed: decision.allowed,
      code: decision.allowed ? undefined : decision.code,
      message: decision.allowed ? `uses left ${decision.usesLeft ?? '∞'}` : decision.message,
    });
    showDecision(mode, verb, task, decision, fingerprint);
    if (mode === 'verify') changed();
    else renderAudit();
    return decision;
  },

  revoke(fp) {
    const done = requireStore().revoke(fp);
    app.flash.add(`fp:${fp}`);
    audit({ call: 'revoke', verb: '', fingerprint: fp, taskId: null, allowed: done, code: done ? undefined : 'ERR_TOKEN_NOT_FOUND', message: done ? 'token revoked' : 'no such token' });
    changed();
    return done;
  },

  revokeTask(taskId) {
    const store = requireStore();
    const count = store.revokeTask(taskId);
    for (const r of store.records()) if (r.revoked && r.task_id) app.flash.add(`fp:${r.fingerprint}`);
    audit({ call: 'revoke', verb: '', fingerprint: null, taskId, allowed: true, message: `${count} token(s) revoked in the tree of ${taskId}` });
    changed();
    return count;
  },

  remint(fp) {
    const store = requireStore();
    try {
      const minted = store.remint(bearerOf(fp));
      rememberBearer(minted);
      app.flash.add(`fp:${fp}`);
      const rec = store.record(minted.fingerprint);
      const taskId = rec?.taskId ?? null;
      rec?.free();
      audit({ call: 'remint', verb: '', fingerprint: fp, taskId, allowed: true, message: `reminted as ${shortFp(minted.fingerprint)}` });
      return minted;
    } catch (err) {
      const { code, message } = describeError(err);
      audit({ call: 'remint', verb: '', fingerprint: fp, taskId: null, allowed: false, code, message });
      throw err;
    } finally {
      changed();
    }
  },

  purgeExpired() {
    const store = requireStore();
    const count = store.purgeExpired();
    const live = new Set(store.records().map((r) => r.fingerprint));
    for (const [fp, entry] of app.bearers) {
      if (!live.has(fp)) {
        app.bearers.delete(fp);
        app.byBearer.delete(entry.bearer);
      }
    }
    audit({ call: 'purge', verb: '', fingerprint: null, taskId: null, allowed: true, message: `${count} expired token(s) purged` });
    changed();
    return count;
  },

  importSnapshot(text) {
    let format = app.settings?.format ?? 'v2';
    try {
      const parsed = JSON.parse(text);
      if (parsed && (parsed.format === 'v2' || parsed.format === 'mlua-swarm')) format = parsed.format;
    } catch {
      // the engine reports the fault below
    }
    const settings = { ...(app.settings ?? { maxSpawnDepth: 4, workerTokenTtlSecs: 1800 }), format };
    const fresh = !app.secret;
    const secret = app.secret ?? crypto.getRandomValues(new Uint8Array(32));
    let store;
    try {
      store = TokenStore.restore(text, storeOptions(settings, secret));
    } catch (err) {
      const { code, message } = describeError(err);
      audit({ call: 'import', verb: '', fingerprint: null, taskId: null, allowed: false, code, message });
      renderAudit();
      persist();
      throw err;
    }
    app.store?.free();
    app.store = store;
    app.secret = secret;
    app.settings = settings;
    const live = new Set(store.records().map((r) => r.fingerprint));
    for (const [fp, entry] of app.bearers) {
      if (!live.has(fp)) {
        app.bearers.delete(fp);
        app.byBearer.delete(entry.bearer);
      }
    }
    const tasks = new Set(store.tasks().map((t) => t.taskId));
    for (const id of app.refusals.keys()) if (!tasks.has(id)) app.refusals.delete(id);
    for (const id of app.taskSeq.keys()) if (!tasks.has(id)) app.taskSeq.delete(id);
    if (!live.has(app.actingOperator)) app.actingOperator = '';
    audit({ call: 'import', verb: '', fingerprint: null, taskId: null, allowed: true, message: `${store.size} token(s), ${tasks.size} task(s) restored` });
    changed();
    return { tokens: store.size, tasks: tasks.size, fresh };
  },

};

// ───────────────────────────── rendering ─────────────────────────────

function changed() {
  render();
  persist();
}

function render() {
  renderSummary();
  renderOperators();
  renderPicker();
  renderTree();
  renderTokens();
  renderAudit();
  renderControls();
  app.flash.clear();
}

function records() {
  if (!app.store) return [];
  const list = app.store.records();
  const seq = (r) => app.bearers.get(r.fingerprint)?.seq ?? Number.MAX_SAFE_INTEGER;
  return list.sort((a, b) => a.token.issued_at - b.token.issued_at || seq(a) - seq(b) || a.fingerprint.localeCompare(b.fingerprint));
}

function tasks() {
  if (!app.store) return [];
  const seq = (t) => app.taskSeq.get(t.taskId) ?? Number.MAX_SAFE_INTEGER;
  return app.store.tasks().sort((a, b) => a.spawnDepth - b.spawnDepth || seq(a) - seq(b) || a.taskId.localeCompare(b.taskId));
}

function renderSummary() {
  const s = app.store;
  $('sum-state').textContent = s ? 'live' : 'none';
  $('sum-state').dataset.state = s ? 'live' : 'none';
  $('sum-format').textContent = app.settings?.format ?? '–';
  $('sum-depth').textContent = app.settings ? String(app.settings.maxSpawnDepth) : '–';
  $('sum-tokens').textContent = s ? String(s.size) : '0';
  $('sum-tasks').textContent = s ? String(s.tasks().length) : '0';
}

function renderControls() {
  const has = !!app.store;
  const hasOp = has && !!app.actingOperator && app.bearers.has(app.actingOperator);
  for (const id of ['operator-attach', 'mint-submit', 'check-btn', 'verify-btn', 'purge-btn', 'export-btn']) $(id).disabled = !has;
  $('acting-operator').disabled = !has || $('acting-operator').options.length <= 1;
  $('root-start').disabled = !hasOp;
  $('demo-run').disabled = app.demoRunning;
  $('store-create').disabled = app.demoRunning;
  $('import-btn').disabled = app.demoRunning;
  $('store-create').textContent = has ? 'Create a new store…' : 'Create store';
  document.body.classList.toggle('no-store', !has);
}

function renderOperators() {
  const select = $('acting-operator');
  const ops = records().filter((r) => r.token.role === 'operator' && app.bearers.has(r.fingerprint));
  if (app.actingOperator && !ops.some((r) => r.fingerprint === app.actingOperator)) app.actingOperator = '';
  if (!app.actingOperator) app.actingOperator = ops.find((r) => !r.revoked)?.fingerprint ?? '';
  select.replaceChildren(
    h('option', { value: '' }, ops.length ? '— choose an operator —' : '— attach an operator first —'),
    ...ops.map((r) => h('option', { value: r.fingerprint, selected: r.fingerprint === app.actingOperator },
      `${r.token.agent_id} · ${shortFp(r.fingerprint)}${r.revoked ? ' (revoked)' : ''}`)),
  );
  select.value = app.actingOperator;

  const list = $('operator-list');
  if (!ops.length) {
    list.replaceChildren(h('li', { class: 'muted' }, app.store ? 'No operator attached yet.' : 'Create a store first.'));
    return;
  }
  const tasksBy = new Map();
  for (const e of app.audit) {
    if (e.verb === 'start_task' && e.allowed && e.fingerprint) tasksBy.set(e.fingerprint, (tasksBy.get(e.fingerprint) ?? 0) + 1);
  }
  list.replaceChildren(...ops.map((r) => {
    const acting = r.fingerprint === app.actingOperator;
    return h('li', { class: `op${acting ? ' acting' : ''}${app.flash.has(`fp:${r.fingerprint}`) ? ' flash' : ''}`, dataset: { fingerprint: r.fingerprint } },
      h('span', { class: 'op-name' }, r.token.agent_id),
      fpCode(r.fingerprint),
      h('span', { class: 'muted small' }, `${tasksBy.get(r.fingerprint) ?? 0} root task(s)`),
      r.revoked ? h('span', { class: 'badge danger' }, 'revoked') : null,
      acting
        ? h('span', { class: 'badge ok' }, 'acting')
        : h('button', {
          type: 'button', class: 'btn tiny', 'aria-label': `Act as ${r.token.agent_id}`,
          onclick: () => {
            app.actingOperator = r.fingerprint;
            renderOperators();
            renderTree();
            renderControls();
            persist();
          },
        }, 'Act as'));
  }));
}

function renderPicker() {
  const select = $('bearer-pick');
  const current = select.value;
  const options = records().filter((r) => app.bearers.has(r.fingerprint)).map((r) =>
    h('option', { value: r.fingerprint },
      `${shortFp(r.fingerprint)} · ${r.token.role} · ${r.token.agent_id}${r.task_id ? ` · ${r.task_id}` : ''}${r.revoked ? ' · revoked' : ''}`));
  select.replaceChildren(h('option', { value: '' }, options.length ? '— choose a token —' : '— no bearers kept here yet —'), ...options);
  if (app.bearers.has(current)) select.value = current;
  const ids = tasks().map((t) => h('option', { value: t.taskId }));
  $('task-ids').replaceChildren(...ids);
}

function statusBadges(r, now = nowSecs()) {
  const badges = [];
  if (r.revoked) badges.push(h('span', { class: 'badge danger', dataset: { status: 'revoked' } }, 'revoked'));
  if (r.uses_left === 0) badges.push(h('span', { class: 'badge warn', dataset: { status: 'exhausted' } }, 'exhausted'));
  if (r.token.role !== 'operator' && r.token.expire_at <= now) badges.push(h('span', { class: 'badge muted', dataset: { status: 'expired' } }, 'expired'));
  if (!badges.length) badges.push(h('span', { class: 'badge ok', dataset: { status: 'live' } }, 'live'));
  return badges;
}

function usesCell(r) {
  if (r.uses_left === null) return [h('span', { class: 'uses-num', title: 'unlimited uses' }, '∞')];
  const max = r.token.max_uses ?? r.uses_left;
  const pct = max ? Math.round((r.uses_left / max) * 100) : 0;
  return [
    h('span', { class: 'uses-num' }, `${r.uses_left} / ${max}`),
    h('span', { class: 'meter', 'aria-hidden': 'true' }, h('span', { style: `width:${pct}%`, class: pct === 0 ? 'empty' : pct <= 34 ? 'low' : '' })),
  ];
}

/** Messages name whole fingerprints; show them short (the full text stays in the title). */
function shortenFps(text) {
  return String(text ?? '').replace(/\b[0-9a-f]{64}\b/g, (fp) => `${fp.slice(0, 12)}…`);
}

function fpCode(fp) {
  return fp ? h('code', { class: 'fp', title: fp, dataset: { full: fp } }, shortFp(fp), h('span', { class: 'ell', 'aria-hidden': 'true' }, '…')) : h('span', { class: 'muted' }, '—');
}

function roleBadge(role) {
  return h('span', { class: `role role-${role}` }, role);
}

function expiryCell(r) {
  if (r.token.role === 'operator') return h('td', { 'data-col': 'expiry', 'data-label': 'Expires in', title: 'Operator tokens are exempt from expiry' }, h('span', { class: 'muted' }, 'exempt'));
  const now = nowSecs();
  const expired = r.token.expire_at <= now;
  return h('td', {
    'data-col': 'expiry', 'data-label': 'Expires in',
    dataset: { expire: r.token.expire_at },
    class: expired ? 'expired' : r.token.expire_at - now < 60 ? 'soon' : '',
    title: new Date(r.token.expire_at * 1000).toLocaleString(),
  }, formatRemaining(r.token.expire_at, now));
}

function renderTokens() {
  const tbody = $('tokens').tBodies[0];
  const list = records();
  const now = nowSecs();
  app.expiredShown = new Set(list.filter((r) => r.token.role !== 'operator' && r.token.expire_at <= now).map((r) => r.fingerprint));
  if (!list.length) {
    tbody.replaceChildren(h('tr', { class: 'empty-row' }, h('td', { colspan: 9 }, app.store ? 'No tokens yet.' : 'No store yet: create one, or run the demo swarm.')));
    return;
  }
  tbody.replaceChildren(...list.map((r) => {
    const fp = r.fingerprint;
    const known = app.bearers.has(fp);
    const small = (label, text, onclick, opts = {}) => h('button', {
      type: 'button', class: `btn tiny ${opts.cls ?? ''}`, 'aria-label': `${label} ${shortFp(fp)}`, title: opts.title ?? label,
      disabled: opts.disabled, dataset: { action: opts.action }, onclick,
    }, text);
    return h('tr', {
      class: app.flash.has(`fp:${fp}`) ? 'flash' : '',
      dataset: { fingerprint: fp, role: r.token.role, revoked: String(r.revoked) },
    },
    h('td', { 'data-col': 'fingerprint', 'data-label': 'Fingerprint' }, fpCode(fp)),
    h('td', { 'data-col': 'role', 'data-label': 'Role' }, roleBadge(r.token.role)),
    h('td', { 'data-col': 'agent', 'data-label': 'Agent' }, h('span', { class: 'agent' }, r.token.agent_id)),
    h('td', { 'data-col': 'scopes', 'data-label': 'Scopes' }, r.token.scopes.map((s) => h('span', { class: 'scope' }, s))),
    h('td', { 'data-col': 'uses', 'data-label': 'Uses left', class: 'num-col' }, usesCell(r)),
    h('td', { 'data-col': 'status', 'data-label': 'Status' }, statusBadges(r, now)),
    h('td', { 'data-col': 'task', 'data-label': 'Bound task' }, r.task_id ? h('code', { class: 'task-ref' }, r.task_id) : h('span', { class: 'muted' }, '—')),
    expiryCell(r),
    h('td', { 'data-col': 'actions', 'data-label': 'Actions', class: 'actions-col' },
      h('div', { class: 'row-actions' },
        small('Use in verifier', 'Use', () => pickBearer(fp, true), { disabled: !known, action: 'use', title: known ? 'Put this bearer in the verifier' : 'No bearer kept in this browser' }),
        small('Copy bearer of', 'Copy', () => copyBearer(fp), { disabled: !known, action: 'copy', title: known ? 'Copy the bearer to the clipboard' : 'No bearer kept in this browser' }),
        r.token.role === 'worker'
          ? small('Remint', 'Remint', () => guarded('Remint', () => {
            const minted = api.remint(fp);
            const lifetime = minted.token.expire_at - minted.token.issued_at;
            notify('ok', `Reminted ${shortFp(fp)} as ${shortFp(minted.fingerprint)} (uses ${minted.token.max_uses ?? '∞'}, the same ${lifetime}s lifetime from now); the old token is revoked.`);
          }), { disabled: !known || r.revoked, action: 'remint', title: 'Remint a late worker token (at most one lifetime late): same agent, scopes, task and lifetime, counted from now' })
          : null,
        small('Revoke', 'Revoke', () => guarded('Revoke', () => {
          api.revoke(fp);
          notify('ok', `Token ${shortFp(fp)} revoked.`);
        }), { disabled: r.revoked, action: 'revoke', cls: 'danger-ghost' }),
      )),
    );
  }));
}

function renderTree() {
  const root = $('tree');
  const list = tasks();
  if (!list.length) {
    root.replaceChildren(h('p', { class: 'empty' }, app.store ? 'No tasks yet. Attach an operator and start a root task.' : 'No store yet. Create one above, or press “▶ Run demo swarm” to watch a swarm unfold step by step.'));
    return;
  }
  const recs = records();
  const byTask = new Map();
  for (const r of recs) {
    if (!r.task_id) continue;
    if (!byTask.has(r.task_id)) byTask.set(r.task_id, []);
    byTask.get(r.task_id).push(r);
  }
  const children = new Map();
  const known = new Set(list.map((t) => t.taskId));
  const roots = [];
  for (const t of list) {
    if (t.parentId && known.has(t.parentId)) {
      if (!children.has(t.parentId)) children.set(t.parentId, []);
      children.get(t.parentId).push(t);
    } else roots.push(t);
  }
  const max = app.settings?.maxSpawnDepth ?? 4;
  const hasOp = !!app.actingOperator && app.bearers.has(app.actingOperator);
  const now = nowSecs();

  const node = (t) => {
    const workers = byTask.get(t.taskId) ?? [];
    const refusal = app.refusals.get(t.taskId);
    const kids = children.get(t.taskId) ?? [];
    const pips = Array.from({ length: max }, (_, i) => h('span', { class: i <= t.spawnDepth ? 'on' : '' }));
    return h('li', {
      class: `task${app.flash.has(`task:${t.taskId}`) ? ' flash' : ''}`,
      dataset: { taskId: t.taskId, depth: t.spawnDepth },
      'aria-label': `task ${t.taskId}, depth ${t.spawnDepth}`,
    },
    h('div', { class: 'task-row' },
      h('span', { class: `depth d${Math.min(t.spawnDepth, 5)}`, dataset: { testid: 'depth' }, title: `spawn depth ${t.spawnDepth}; depths 0 to ${max - 1} exist` }, `depth ${t.spawnDepth}`),
      h('code', { class: 'task-id' }, t.taskId),
      h('span', { class: 'pips', title: `depth ${t.spawnDepth} of max ${max}`, 'aria-hidden': 'true' }, pips),
      h('span', { class: 'task-actions' },
        h('button', {
          type: 'button', class: 'btn tiny', dataset: { action: 'dispatch' }, disabled: !hasOp,
          'aria-label': `Dispatch a worker to ${t.taskId}`, title: hasOp ? 'The acting operator dispatches an attempt: a worker token bound to this task' : 'Attach an operator first',
          onclick: () => guarded('Dispatch', () => {
            const minted = api.dispatch(app.actingOperator, t.taskId, dispatchOptions());
            notify('ok', `Worker ${shortFp(minted.fingerprint)} dispatched to ${t.taskId}. Copy its bearer from the token table to hand it over.`);
          }),
        }, '+ Dispatch worker'),
        h('button', {
          type: 'button', class: 'btn tiny danger-ghost', dataset: { action: 'revoke-tree' },
          'aria-label': `Revoke the tree of ${t.taskId}`, title: 'Revoke every token bound to this task and its descendants',
          onclick: () => guarded('Revoke tree', () => {
            const n = api.revokeTask(t.taskId);
            notify('ok', `Revoked ${n} token(s) in the tree of ${t.taskId}.`);
          }),
        }, 'Revoke tree'),
      ),
    ),
    workers.length
      ? h('ul', { class: 'workers' }, workers.map((r) => {
        const knownBearer = app.bearers.has(r.fingerprint);
        return h('li', { class: `worker${app.flash.has(`fp:${r.fingerprint}`) ? ' flash' : ''}`, dataset: { fingerprint: r.fingerprint } },
          roleBadge(r.token.role),
          fpCode(r.fingerprint),
          h('span', { class: 'uses' }, r.uses_left === null ? '∞ uses' : `${r.uses_left}/${r.token.max_uses ?? r.uses_left} uses`),
          statusBadges(r, now),
          r.token.role === 'worker'
            ? h('button', {
              type: 'button', class: 'btn tiny', dataset: { action: 'spawn' }, disabled: !knownBearer,
              'aria-label': `Worker ${shortFp(r.fingerprint)} starts a child task`,
              title: 'This worker calls start_task: a child task one level deeper',
              onclick: () => guarded('Spawn', () => {
                const info = api.startTask(r.fingerprint);
                notify('ok', `Worker ${shortFp(r.fingerprint)} started child task ${info.taskId} at depth ${info.spawnDepth}.`);
              }, { refusal: true }),
            }, '↳ Start child task')
            : null);
      }))
      : h('p', { class: 'no-workers' }, 'No worker dispatched yet.'),
    refusal
      ? h('div', { class: `refusal${app.flash.has(`refusal:${t.taskId}`) ? ' flash' : ''}`, role: 'note', dataset: { testid: 'refusal', code: refusal.code } },
        h('strong', {}, '✖ Spawn refused '), h('code', { class: 'code' }, refusal.code), ' ',
        h('span', { title: refusal.message }, shortenFps(refusal.message)), ' ',
        h('span', { class: 'muted' }, `(worker ${shortFp(refusal.fingerprint)}, ${clockTime(refusal.at)})`))
      : null,
    kids.length ? h('ul', { class: 'children' }, kids.map(node)) : null,
    );
  };
  root.replaceChildren(h('ul', { class: 'tree-root' }, roots.map(node)));
}

// What the audit log calls each action, in words an operator uses; the Verb
// column names the verb the acting token was verified for (none for attach
// and mint, which verify nothing).
const CALL_LABELS = { attach: 'attach operator', start: 'start task', dispatch: 'dispatch' };
const CALL_TITLES = {
  attach: 'an operator session token was minted',
  start: "the acting token was verified for start_task (one use spent), then the task was created",
  dispatch: 'the acting token was verified for dispatch_attempt (one use spent), then a worker token was minted',
  check: 'decided without spending a use',
  verify: 'decided, spending one use when allowed',
};

function renderAudit() {
  const tbody = $('audit').tBodies[0];
  const deniedOnly = $('audit-denied-only').checked;
  const entries = app.audit.filter((e) => !deniedOnly || !e.allowed).slice(-AUDIT_SHOWN).reverse();
  if (!entries.length) {
    tbody.replaceChildren(h('tr', { class: 'empty-row' }, h('td', { colspan: 6 }, deniedOnly ? 'No denials.' : 'No decisions yet.')));
    return;
  }
  tbody.replaceChildren(...entries.map((e) => h('tr', { dataset: { allowed: String(e.allowed), code: e.code ?? '', call: e.call } },
    h('td', { 'data-label': 'Time', title: new Date(e.at).toISOString() }, clockTime(e.at)),
    h('td', { 'data-label': 'Call' }, h('span', { class: `call call-${e.call}`, title: CALL_TITLES[e.call] ?? '' }, CALL_LABELS[e.call] ?? e.call)),
    h('td', { 'data-label': 'Fingerprint' }, fpCode(e.fingerprint)),
    h('td', { 'data-label': 'Verb' }, e.verb ? h('code', {}, e.verb) : h('span', { class: 'muted' }, '—')),
    h('td', { 'data-label': 'Task' }, e.taskId ? h('code', { class: 'task-ref' }, e.taskId) : h('span', { class: 'muted' }, '—')),
    h('td', { 'data-label': 'Decision', title: e.message ?? '' },
      e.allowed ? h('span', { class: 'badge ok' }, 'allowed') : h('span', { class: 'badge danger' }, e.code ?? 'denied'),
      e.message ? h('span', { class: 'audit-msg' }, shortenFps(e.message)) : null),
  )));
}

function showDecision(mode, verb, taskId, d, fingerprint) {
  const el = $('decision');
  el.dataset.state = d.allowed ? 'allowed' : 'denied';
  el.dataset.code = d.allowed ? '' : d.code;
  el.dataset.mode = mode;
  const where = `${mode === 'check' ? 'check' : 'verify'} · ${verb}${taskId ? ` on ${taskId}` : ''}`;
  if (d.allowed) {
    el.replaceChildren(
      h('p', { class: 'verdict' }, h('span', { class: 'big' }, '✔ Allowed'), h('span', { class: 'where' }, where)),
      h('dl', { class: 'kv' },
        h('dt', {}, 'Agent'), h('dd', {}, d.agentId),
        h('dt', {}, 'Role'), h('dd', {}, roleBadge(d.role)),
        h('dt', {}, 'Task'), h('dd', {}, d.taskId ?? '—'),
        h('dt', {}, mode === 'check' ? 'Uses left' : 'Uses left now'), h('dd', { dataset: { testid: 'decision-uses' } }, d.usesLeft === null ? '∞' : String(d.usesLeft)),
        h('dt', {}, 'Fingerprint'), h('dd', {}, fpCode(d.fingerprint)),
      ),
      h('p', { class: 'muted small' }, mode === 'check' ? 'Check spends nothing.' : 'One use was spent.'),
    );
  } else {
    el.replaceChildren(
      h('p', { class: 'verdict' }, h('span', { class: 'big' }, '✖ Denied'), h('span', { class: 'where' }, where)),
      h('p', {}, h('code', { class: 'code', dataset: { testid: 'decision-code' } }, d.code)),
      h('p', { class: 'reason', title: d.message, dataset: { testid: 'decision-message' } }, shortenFps(d.message)),
      h('p', { class: 'muted small' }, fingerprint ? `Token ${shortFp(fingerprint)}. Nothing was spent.` : 'Nothing was spent.'),
    );
  }
}

// ───────────────────────────── UI handlers ─────────────────────────────

function dispatchOptions() {
  const uses = $('dispatch-uses').value.trim();
  const ttl = $('dispatch-ttl').value.trim();
  const opts = {};
  if (uses !== '') opts.maxUses = Number(uses);
  if (ttl !== '') opts.ttlSecs = Number(ttl);
  return opts;
}

/** Run a UI action: count it as busy, show its error, never let it escape. */
async function guarded(label, fn, { refusal = false } = {}) {
  // A notice speaks of the last action only: the next one takes it down.
  clearNotice();
  busy(+1);
  try {
    await fn();
  } catch (err) {
    if (refusal && err?.code === 'ERR_SPAWN_DEPTH_EXCEEDED') {
      notify('error', `Spawn refused by the depth cap: ${err.message}`, err.code);
    } else {
      notifyError(label, err);
    }
  } finally {
    busy(-1);
  }
}

function pickBearer(fp, focus) {
  const entry = app.bearers.get(fp);
  if (!entry) return;
  $('bearer-pick').value = fp;
  $('bearer-input').value = entry.bearer;
  const r = app.store?.record(fp);
  if (r) {
    $('verify-task').value = r.taskId ?? '';
    r.free();
  }
  if (focus) {
    $('panel-verify').scrollIntoView({ behavior: 'smooth', block: 'nearest' });
    $('verb').focus({ preventScroll: true });
  }
}

async function copyBearer(fp) {
  await guarded('Copy', async () => {
    const bearer = bearerOf(fp);
    try {
      await navigator.clipboard.writeText(bearer);
    } catch (err) {
      pickBearer(fp, true);
      $('bearer-input').select();
      throw Object.assign(new Error(`the clipboard refused (${err?.message ?? err}); the bearer is selected in the verifier, copy it by hand`), { code: 'CLIPBOARD' });
    }
    notify('ok', `Bearer of ${shortFp(fp)} copied to the clipboard: hand it to the worker.`);
  });
}

let pendingStore = null;
function wireStoreForm() {
  $('store-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const settings = {
      format: $('store-format').value,
      maxSpawnDepth: Number($('store-depth').value),
      workerTokenTtlSecs: Number($('store-ttl').value),
    };
    if (app.store && (app.store.size || app.store.tasks().length)) {
      pendingStore = settings;
      $('store-confirm-what').textContent = `${app.store.size} token(s) and ${app.store.tasks().length} task(s)`;
      $('store-confirm').hidden = false;
      $('store-confirm-yes').focus();
      return;
    }
    guarded('Create store', () => {
      api.createStore(settings);
      notify('ok', `Store created (${settings.format}, max spawn depth ${settings.maxSpawnDepth}); a fresh secret is kept in this browser.`);
    });
  });
  $('store-confirm-yes').addEventListener('click', () => {
    const settings = pendingStore;
    $('store-confirm').hidden = true;
    pendingStore = null;
    if (settings) guarded('Create store', () => {
      api.createStore(settings);
      notify('ok', `New store created (${settings.format}, max spawn depth ${settings.maxSpawnDepth}); the previous one is gone.`);
    });
  });
  $('store-confirm-no').addEventListener('click', () => {
    $('store-confirm').hidden = true;
    pendingStore = null;
  });
}

function wire() {
  $('verb').replaceChildren(...VERBS.map((v) => h('option', { value: v }, `${v}  (${rolesFor(v).join(', ')})`)));
  $('verb').value = 'fetch_prompt';

  wireStoreForm();

  $('operator-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    guarded('Attach operator', () => {
      const agent = $('operator-agent').value.trim();
      const minted = api.attachOperator(agent);
      notify('ok', `Operator ${agent} attached (${shortFp(minted.fingerprint)}); it is now the acting operator.`);
      const m = /^(.*?)(\d+)$/.exec(agent);
      $('operator-agent').value = m ? `${m[1]}${Number(m[2]) + 1}` : `${agent}-2`;
    });
  });

  $('acting-operator').addEventListener('change', () => {
    app.actingOperator = $('acting-operator').value;
    renderTree();
    renderControls();
    persist();
  });

  $('root-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    guarded('Start task', () => {
      const id = $('root-task-id').value.trim();
      const info = api.startTask(app.actingOperator, id || undefined);
      $('root-task-id').value = '';
      notify('ok', `Root task ${info.taskId} started at depth ${info.spawnDepth}.`);
    });
  });

  $('mint-role').addEventListener('change', () => {
    const role = $('mint-role').value;
    $('mint-agent').value = `${role}-1`;
  });
  $('mint-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    guarded('Mint', () => {
      const role = $('mint-role').value;
      const agent = $('mint-agent').value.trim();
      const minted = api.mint(agent, role);
      notify('ok', `Minted a ${role} token for ${agent} (${shortFp(minted.fingerprint)}).`);
    });
  });

  $('bearer-pick').addEventListener('change', () => {
    const fp = $('bearer-pick').value;
    if (fp) pickBearer(fp, false);
  });
  $('bearer-input').addEventListener('input', () => {
    const fp = app.byBearer.get($('bearer-input').value.trim());
    $('bearer-pick').value = fp ?? '';
  });

  const decideFrom = (mode) => guarded(mode === 'check' ? 'Check' : 'Verify', async () => {
    await api.decide(mode, $('bearer-input').value.trim(), $('verb').value, $('verify-task').value.trim());
  });
  $('check-btn').addEventListener('click', () => decideFrom('check'));
  $('verify-btn').addEventListener('click', () => decideFrom('verify'));

  $('purge-btn').addEventListener('click', () => guarded('Purge', () => {
    const n = api.purgeExpired();
    notify('ok', n ? `Purged ${n} expired token(s).` : 'Nothing to purge: no token has expired.');
  }));

  $('export-btn').addEventListener('click', () => guarded('Export', () => {
    const text = requireStore().snapshot();
    const blob = new Blob([text], { type: 'application/json' });
    const a = h('a', { href: URL.createObjectURL(blob), download: `captoken-snapshot-${fileStamp()}.json` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    notify('ok', `Snapshot exported: ${app.store.size} token(s), ${app.store.tasks().length} task(s); no nonce, no secret.`);
  }));

  $('import-btn').addEventListener('click', () => $('import-file').click());
  $('import-file').addEventListener('change', () => {
    const file = $('import-file').files?.[0];
    $('import-file').value = '';
    if (!file) return;
    guarded('Import', async () => {
      if (file.size > IMPORT_MAX_BYTES) {
        throw Object.assign(new Error(`${file.name} is too large to be a snapshot`), { code: 'ERR_SNAPSHOT_INVALID' });
      }
      const text = await file.text();
      try {
        const { tokens, tasks: nTasks, fresh } = api.importSnapshot(text);
        notify(fresh ? 'warn' : 'ok', `Imported ${file.name}: ${tokens} token(s), ${nTasks} task(s).${fresh
          ? ' This browser had no secret yet: a new one was generated, so tokens signed elsewhere will fail as bad signatures.'
          : ' Bearers not kept in this browser cannot be picked.'}`);
      } catch (err) {
        const { code, message } = describeError(err);
        throw Object.assign(new Error(`${file.name} was not imported, nothing changed: ${message}`), { code });
      }
    });
  });

  $('audit-denied-only').addEventListener('change', renderAudit);
  $('audit-clear').addEventListener('click', () => {
    app.audit = [];
    renderAudit();
    persist();
  });

  $('demo-run').addEventListener('click', () => guarded('Demo', async () => {
    if (app.demoRunning) return;
    app.demoRunning = true;
    renderControls();
    try {
      await runDemo(api, { pace: Number($('demo-pace').value), narrate, ensureStore });
    } finally {
      app.demoRunning = false;
      renderControls();
    }
  }));

  setInterval(tick, 1000);
}

function ensureStore() {
  if (!app.store) {
    api.createStore({ format: $('store-format').value, maxSpawnDepth: Number($('store-depth').value) || 4, workerTokenTtlSecs: Number($('store-ttl').value) || 1800 });
  }
}

function narrate(step, total, text, state = 'running') {
  const banner = $('demo-banner');
  banner.hidden = false;
  banner.dataset.state = state;
  $('demo-step').textContent = state === 'done' ? 'Demo finished' : `Demo step ${step} of ${total}`;
  $('demo-text').textContent = text;
  $('demo-bar').style.width = `${Math.round((step / total) * 100)}%`;
}

/** Refresh every "expires in" cell; re-render when a token crosses its expiry. */
function tick() {
  if (!app.store) return;
  const now = nowSecs();
  let crossed = false;
  for (const td of document.querySelectorAll('#tokens td[data-expire]')) {
    const at = Number(td.dataset.expire);
    td.textContent = formatRemaining(at, now);
    const expired = at <= now;
    td.classList.toggle('expired', expired);
    td.classList.toggle('soon', !expired && at - now < 60);
    const fp = td.parentElement?.dataset.fingerprint;
    if (expired && fp && !app.expiredShown.has(fp)) crossed = true;
  }
  if (crossed) {
    renderTokens();
    renderTree();
  }
}

// ───────────────────────────── start ─────────────────────────────

async function start() {
  wire();
  busy(+1);
  try {
    await init();
    let saved;
    try {
      saved = await loadState();
    } catch (err) {
      notify('warn', `IndexedDB is unavailable (${err?.message ?? err}); the state will not survive a reload.`);
    }
    if (saved?.snapshot && saved.secret && saved.settings) {
      try {
        app.store = TokenStore.restore(saved.snapshot, storeOptions(saved.settings, saved.secret));
        app.secret = saved.secret;
        app.settings = saved.settings;
        for (const [fp, bearer, seq] of saved.bearers ?? []) {
          app.bearers.set(fp, { bearer, seq });
          app.byBearer.set(bearer, fp);
        }
        app.taskSeq = new Map(saved.taskSeq ?? []);
        app.seq = saved.seq ?? 0;
        app.refusals = new Map(saved.refusals ?? []);
        app.audit = saved.audit ?? [];
        app.actingOperator = saved.actingOperator ?? '';
        $('store-format').value = app.settings.format;
        $('store-depth').value = String(app.settings.maxSpawnDepth);
        $('store-ttl').value = String(app.settings.workerTokenTtlSecs);
        setSaveStatus('saved');
        notify('ok', `Restored the saved store from this browser: ${app.store.size} token(s), ${app.store.tasks().length} task(s).`);
      } catch (err) {
        notifyError('The saved state could not be restored; create a new store', err);
      }
    }
    render();
    document.body.dataset.ready = 'true';
  } catch (err) {
    notifyError('The WebAssembly module failed to load', err);
    document.body.dataset.ready = 'error';
  } finally {
    busy(-1);
  }
}

start();
