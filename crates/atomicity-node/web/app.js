// The Atomicity web wallet (docs/wallet.md). Plain JavaScript, no dependencies: every action
// is a call to the node's local API with the same bearer token as the CLI. The token comes
// from this page's URL fragment (#token=…, which the browser never sends to the server) and
// is kept in sessionStorage for this tab only.
'use strict';

const TOKEN_KEY = 'atomicity.token';

const token = (() => {
  const m = location.hash.match(/(?:^#|&)token=([0-9a-fA-F]{16,128})/);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, m[1]);
    // Take the token out of the address bar and the history.
    history.replaceState(null, '', location.pathname + location.search + '#overview');
  }
  return sessionStorage.getItem(TOKEN_KEY);
})();

// ---- Little helpers --------------------------------------------------------------------------

/** Makes an element: h('p', {class: 'x'}, 'text', child…). Strings become text, never HTML. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const view = () => document.getElementById('view');

function short(key) {
  return key && key.length > 16 ? key.slice(0, 8) + '…' + key.slice(-6) : key || '';
}

/** A peer's key, shortened, with its tags from my web of trust. */
function who(key) {
  const tags = (cache.trust && cache.trust.tags && cache.trust.tags[key]) || [];
  return h('span', { class: 'key', title: key }, short(key), tags.length ? ' (' + tags.join(', ') + ')' : '');
}

function when(secs) {
  if (!secs) return '';
  return new Date(secs * 1000).toLocaleString();
}

function status(s) {
  return h('span', { class: 'status ' + s, 'data-status': s }, s);
}

/** A bar filled to `part / whole` (numbers from decimal strings; display only). */
function bar(part, whole, cls) {
  const p = Number(part), w = Number(whole);
  const frac = w > 0 ? Math.max(0, Math.min(1, p / w)) : 0;
  const fill = h('span');
  fill.style.width = (frac * 100).toFixed(1) + '%';
  return h('div', { class: 'bar ' + (cls || '') }, fill);
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function headers(json) {
  const hs = { Authorization: 'Bearer ' + token };
  if (json) hs['Content-Type'] = 'application/json';
  return hs;
}

async function send(method, path, body, signal) {
  if (!token) {
    throw new ApiError(0, 'no_token',
      'This page has no API token, so it shows nothing. Open the address that ' +
      '`atomicity wallet` prints (it ends in #token=…).');
  }
  try {
    return await fetch(path, {
      method,
      headers: headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: 'no-store',
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'unreachable', 'Your node did not answer (' + e.message + '). Is it still running?');
  }
}

async function failure(res) {
  let data = null;
  try { data = JSON.parse(await res.text()); } catch (_) { /* not JSON */ }
  if (res.status === 401) {
    return new ApiError(401, data && data.code || 'bad_token',
      'The node refused this page\'s token (' + (data && data.error || 'unauthorized') +
      '). The node may have restarted with a new token: run `atomicity wallet` again.');
  }
  return new ApiError(res.status, data && data.code || 'http_' + res.status,
    data && data.error || ('the node answered HTTP ' + res.status));
}

/** Calls the local API; answers the JSON, or throws an ApiError with the node's words. */
async function api(method, path, body) {
  const res = await send(method, path, body);
  if (!res.ok) throw await failure(res);
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

/** Fetches an SVG from the API (with the token) and answers an object URL for an <img>. */
async function svgUrl(method, path, body) {
  const res = await send(method, path, body);
  if (!res.ok) throw await failure(res);
  return URL.createObjectURL(await res.blob());
}

function showError(e) {
  const box = document.getElementById('error');
  if (!e) { box.hidden = true; box.textContent = ''; return; }
  if (e.name === 'AbortError') return;
  box.textContent = (e.message || String(e)) + (e.code ? ' [' + e.code + ']' : '');
  box.hidden = false;
}

function notice(text) {
  const box = document.getElementById('notice');
  box.textContent = text || '';
  box.hidden = !text;
}

/** Runs an action from a button or form: clears old messages, shows errors in words. */
async function act(button, fn) {
  showError(null);
  notice(null);
  if (button) button.disabled = true;
  try {
    return await fn();
  } catch (e) {
    showError(e);
  } finally {
    if (button) button.disabled = false;
  }
}

function onSubmit(form, fn) {
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    act(form.querySelector('button[type=submit]'), () => fn(new FormData(form)));
  });
  return form;
}

const cache = { trust: null, me: null };

// ---- Pages -----------------------------------------------------------------------------------

const pages = {};

pages.overview = async (root) => {
  const [me, balance, requests, trust] = await Promise.all([
    api('GET', '/v1/id'), api('GET', '/v1/balance'), api('GET', '/v1/requests'), api('GET', '/v1/trust'),
  ]);
  cache.me = me; cache.trust = trust;
  root.append(h('h2', {}, 'My key'), h('div', { class: 'card key', id: 'my-key' }, me.key));
  root.append(h('h2', {}, 'Credit lines'));
  if (!balance.length) root.append(h('p', { class: 'muted' }, 'No credit lines yet (atomicity line set).'));
  for (const b of balance) {
    const net = Number(b.net);
    const words = net > 0 ? 'owes me ' + b.net.replace('-', '') : net < 0 ? 'I owe ' + b.net.replace('-', '') : 'even';
    const pending = [];
    if (Number(b.pending_in) > 0) pending.push('incoming ' + b.pending_in);
    if (Number(b.pending_out) > 0) pending.push('outgoing ' + b.pending_out);
    root.append(h('div', { class: 'card line', 'data-peer': b.peer, 'data-asset': b.asset },
      h('div', { class: 'row' }, who(b.peer),
        h('span', { class: 'big ' + (net > 0 ? 'pos' : net < 0 ? 'neg' : '') }, b.net + ' ' + b.asset)),
      h('div', { class: 'muted' }, words + ' ' + b.asset),
      h('div', { class: 'barlabel' }, h('span', {}, 'They may owe me'), h('span', {}, Math.max(net, 0).toFixed(2) + ' of ' + b.accept)),
      bar(Math.max(net, 0), b.accept, 'owing'),
      h('div', { class: 'barlabel' }, h('span', {}, 'I may owe them'), h('span', {}, Math.max(-net, 0).toFixed(2) + ' of ' + b.issue)),
      bar(Math.max(-net, 0), b.issue, 'owed'),
      pending.length ? h('div', { class: 'pending' }, 'Pending conditional payments: ' + pending.join(', ')) : null));
  }
  root.append(h('h2', {}, 'My payment requests'));
  if (!requests.length) root.append(h('p', { class: 'muted' }, 'None yet: make one on the Receive page.'));
  for (const r of requests) {
    root.append(h('a', { href: '#request/' + r.id, class: 'card' },
      h('div', { class: 'row' }, h('strong', {}, r.memo || 'request'), status(r.status)),
      h('div', { class: 'barlabel' }, h('span', {}, r.paid + ' / ' + r.amount + ' ' + r.asset), h('span', {}, r.percent + '%')),
      bar(r.paid, r.amount, '')));
  }
};

/** What the Pay box holds: a payment request, an invoice, or a key. */
function classify(text) {
  const t = text.trim();
  if (/^atomicity:/i.test(t)) {
    const q = new URLSearchParams(t.split('?')[1] || '');
    if (q.get('request')) return { kind: 'request', amount: q.get('amount'), asset: q.get('asset'), memo: q.get('memo') };
    return { kind: 'invoice', amount: q.get('amount'), asset: q.get('asset'), memo: q.get('memo') };
  }
  if (t) return { kind: 'key' };
  return { kind: 'empty' };
}

pages.pay = async (root, arg) => {
  const target = h('textarea', { name: 'to', id: 'pay-to', required: true, placeholder: 'atomicity:… or a key', autocomplete: 'off', spellcheck: 'false' });
  const amount = h('input', { name: 'amount', id: 'pay-amount', inputmode: 'decimal', placeholder: '10.00' });
  const asset = h('input', { name: 'asset', id: 'pay-asset', value: 'USD' });
  const memo = h('input', { name: 'memo', id: 'pay-memo', placeholder: 'optional' });
  const hint = h('p', { class: 'muted', id: 'pay-hint' }, 'Paste a key, an invoice or a payment request (the text of its QR code).');
  const result = h('div', { id: 'pay-result' });
  const update = () => {
    const c = classify(target.value);
    if (c.kind === 'request') {
      hint.textContent = 'A payment request for ' + c.amount + ' ' + c.asset + (c.memo ? ' (' + c.memo + ')' : '') +
        '. Pay all or part of what is left; the payee\'s node refuses more.';
      if (c.asset) asset.value = c.asset;
    } else if (c.kind === 'invoice') {
      hint.textContent = 'An invoice for ' + c.amount + ' ' + c.asset + (c.memo ? ' (' + c.memo + ')' : '') + ': paid in full.';
      if (c.amount) amount.value = c.amount;
      if (c.asset) asset.value = c.asset;
    } else if (c.kind === 'key') {
      hint.textContent = 'A direct payment to this key, over your credit line with it.';
    }
  };
  target.addEventListener('input', update);
  if (arg) { target.value = decodeURIComponent(arg); update(); }
  const form = onSubmit(h('form', { id: 'pay-form' },
    h('label', {}, 'Pay to', target), hint,
    h('div', { class: 'two' }, h('label', {}, 'Amount', amount), h('label', {}, 'Asset', asset)),
    h('label', {}, 'Memo', memo),
    h('button', { type: 'submit', id: 'pay-submit' }, 'Pay')), async (fd) => {
    const to = String(fd.get('to')).trim();
    const c = classify(to);
    result.replaceChildren();
    let out;
    if (c.kind === 'request') {
      out = await api('POST', '/v1/requests/pay', { uri: to, amount: String(fd.get('amount')).trim() });
      const ok = out.status === 'paid' || out.status === 'claimed';
      result.append(h('div', { class: ok ? 'notice' : 'error', id: 'pay-outcome', 'data-status': out.status },
        ok ? 'Paid ' + out.amount + ' ' + out.asset + ' toward the request (fill ' + out.fill + ', ' + out.status + ').'
          : 'The fill was not paid: ' + out.status + (out.reason ? ' — ' + out.reason : '')));
    } else if (c.kind === 'invoice') {
      out = await api('POST', '/v1/invoices/pay', { invoice: to });
      result.append(outcome(out, c.amount + ' ' + c.asset));
    } else if (c.kind === 'key') {
      out = await api('POST', '/v1/pay', {
        peer: to, amount: String(fd.get('amount')).trim(), asset: String(fd.get('asset')).trim(), memo: String(fd.get('memo')),
      });
      result.append(outcome(out, fd.get('amount') + ' ' + fd.get('asset')));
    }
  });
  root.append(h('h2', {}, 'Pay'), form, result);
};

function outcome(out, what) {
  const words = {
    completed: 'Paid ' + what + '.',
    failed: 'The payment failed: ' + (out.reason || 'the payee refused it') + '. Nothing moved.',
    pending: 'No answer from the payee yet; your node keeps trying (see History).',
  }[out.status] || out.status;
  return h('div', { class: out.status === 'failed' ? 'error' : 'notice', id: 'pay-outcome', 'data-status': out.status }, words);
}

pages.receive = async (root) => {
  const methods = ['credit', 'lightning', 'onchain'].map((m) =>
    h('label', {}, h('input', { type: 'checkbox', name: 'method', value: m, checked: m === 'credit' }), m));
  const reqForm = onSubmit(h('form', { id: 'request-form' },
    h('div', { class: 'two' },
      h('label', {}, 'Amount', h('input', { name: 'amount', id: 'request-amount', required: true, inputmode: 'decimal', placeholder: '270.00' })),
      h('label', {}, 'Asset', h('input', { name: 'asset', id: 'request-asset', value: 'USD', required: true }))),
    h('label', {}, 'Memo', h('input', { name: 'memo', id: 'request-memo', placeholder: 'dinner' })),
    h('div', { class: 'inline' }, 'Methods:', methods),
    h('div', { class: 'two' },
      h('label', {}, 'Sats per unit (Lightning, on-chain)', h('input', { name: 'sats_per_unit', inputmode: 'numeric' })),
      h('label', {}, 'Expires in (hours)', h('input', { name: 'hours', value: '24', inputmode: 'numeric' }))),
    h('button', { type: 'submit', id: 'request-submit' }, 'Make the request')), async (fd) => {
    const body = {
      amount: String(fd.get('amount')).trim(), asset: String(fd.get('asset')).trim(), memo: String(fd.get('memo')),
      methods: fd.getAll('method').map(String),
    };
    const sats = String(fd.get('sats_per_unit')).trim();
    if (sats) body.sats_per_unit = Number(sats);
    const hours = Number(String(fd.get('hours')).trim() || '24');
    if (!(hours > 0)) throw new ApiError(0, 'bad_expiry', 'Expires in: a number of hours above 0.');
    body.expires_in = Math.round(hours * 3600);
    const row = await api('POST', '/v1/requests', body);
    location.hash = '#request/' + row.id;
  });
  const invResult = h('div', { id: 'invoice-result' });
  const invForm = onSubmit(h('form', { id: 'invoice-form' },
    h('div', { class: 'two' },
      h('label', {}, 'Amount', h('input', { name: 'amount', required: true, inputmode: 'decimal' })),
      h('label', {}, 'Asset', h('input', { name: 'asset', value: 'USD', required: true }))),
    h('label', {}, 'Memo', h('input', { name: 'memo' })),
    h('button', { type: 'submit' }, 'Make the invoice')), async (fd) => {
    const inv = await api('POST', '/v1/invoices', {
      amount: String(fd.get('amount')).trim(), asset: String(fd.get('asset')).trim(), memo: String(fd.get('memo')),
    });
    const img = h('img', { class: 'qr', alt: 'QR code of the invoice' });
    img.src = await svgUrl('POST', '/v1/qr.svg', { text: inv.invoice });
    invResult.replaceChildren(h('div', { class: 'card' },
      h('div', { class: 'row' }, h('strong', {}, inv.amount + ' ' + inv.asset), status(inv.status)),
      img, copyable(inv.invoice), h('div', { class: 'muted' }, 'Expires ' + when(inv.expires_at))));
  });
  root.append(
    h('h2', {}, 'Ask for a payment'),
    h('p', { class: 'muted' }, 'A payment request: many people can pay parts of it, by credit, Lightning or on-chain. You see it fill live.'),
    reqForm,
    h('h2', {}, 'Or an invoice'),
    h('p', { class: 'muted' }, 'One payer pays all of it through the credit network.'),
    invForm, invResult);
};

function copyable(text, id) {
  const input = h('input', { readonly: true, value: text, id, class: 'key' });
  const button = h('button', {
    type: 'button', class: 'secondary', onclick: async () => {
      input.select();
      try { await navigator.clipboard.writeText(text); notice('Copied.'); } catch (_) { notice('Selected: copy it with your keyboard or menu.'); }
    },
  }, 'Copy');
  return h('div', { class: 'row' }, h('div', { class: 'grow' }, input), button);
}

/** The open event stream of the request page, stopped when the page changes. */
let stream = null;

pages.request = async (root, id) => {
  const row = await api('GET', '/v1/requests/' + encodeURIComponent(id));
  const img = h('img', { class: 'qr', id: 'request-qr', alt: 'QR code of the payment request' });
  const paidBar = h('span', { class: 'paid' });
  const pendingBar = h('span', { class: 'pending' });
  const progress = h('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100', id: 'request-bar' }, pendingBar, paidBar);
  const words = h('div', { class: 'row' }, h('span', { id: 'request-paid' }), h('span', { class: 'big', id: 'request-percent' }));
  const state = h('div', { class: 'row' }, h('span', { id: 'request-status' }), h('span', { id: 'request-live', class: 'status' }));
  const fills = h('tbody', { id: 'request-fills' });
  const actions = h('div', { class: 'buttons', id: 'request-actions' });
  const action = h('div', { id: 'request-action', class: 'muted' });
  root.append(h('h2', {}, row.memo || 'Payment request'),
    h('div', { class: 'card progress' }, state, progress, words, action),
    img, copyable(row.uri, 'request-uri'),
    h('p', { class: 'muted' }, 'Share the QR code or the text; payers paste it on their Pay page or run `atomicity request pay`.'),
    h('h3', {}, 'Fills'),
    h('table', {}, h('thead', {}, h('tr', {}, ['#', 'Method', 'Amount', 'Payer', 'Status', ''].map((t) => h('th', {}, t)))), fills),
    actions);
  svgUrl('GET', '/v1/requests/' + encodeURIComponent(id) + '/qr.svg').then((u) => { img.src = u; }, showError);

  const draw = (r) => {
    const total = Number(r.amount);
    paidBar.style.width = (total > 0 ? Math.min(100, 100 * Number(r.paid) / total) : 0).toFixed(1) + '%';
    pendingBar.style.width = (total > 0 ? Math.min(100, 100 * (Number(r.paid) + Number(r.pending)) / total) : 0).toFixed(1) + '%';
    progress.setAttribute('aria-valuenow', String(r.percent));
    document.getElementById('request-paid').textContent = r.paid + ' / ' + r.amount + ' ' + r.asset +
      (Number(r.pending) > 0 ? ' (' + r.pending + ' pending)' : '') + (Number(r.excess) > 0 ? ', ' + r.excess + ' excess owed back' : '');
    document.getElementById('request-percent').textContent = r.percent + '%';
    document.getElementById('request-status').replaceChildren(status(r.status), ' expires ' + when(r.expires_at));
    fills.replaceChildren(...r.fills.map((f) => h('tr', { 'data-fill': f.id },
      h('td', { 'data-label': '#' }, f.id), h('td', { 'data-label': 'Method' }, f.method),
      h('td', { 'data-label': 'Amount' }, f.amount + ' ' + r.asset + (f.sats ? ' (' + f.sats + ' sat)' : '')),
      h('td', { 'data-label': 'Payer' }, f.payer ? who(f.payer) : (f.reference || '')),
      h('td', { 'data-label': 'Status' }, status(f.status)),
      h('td', {}, f.status === 'claimed' ? h('span', { class: 'buttons' },
        h('button', { type: 'button', onclick: (ev) => act(ev.target, async () => draw(await api('POST', '/v1/requests/' + r.id + '/fills/' + f.id + '/confirm'))) }, 'Seen: confirm'),
        h('button', { type: 'button', class: 'danger', onclick: (ev) => act(ev.target, async () => draw(await api('POST', '/v1/requests/' + r.id + '/fills/' + f.id + '/reject'))) }, 'Reject')) : ''))));
    if (!r.fills.length) fills.append(h('tr', {}, h('td', { colspan: '6', class: 'muted' }, 'No fills yet.')));
    actions.replaceChildren(r.status === 'open' ? h('button', {
      type: 'button', class: 'danger', id: 'request-cancel',
      onclick: (ev) => act(ev.target, async () => { if (confirm('Take no more fills?')) draw(await api('POST', '/v1/requests/' + r.id + '/cancel')); }),
    }, 'Cancel the request') : '');
    action.textContent = r.action ? 'Once filled: pay an invoice — ' + r.action.status + (r.action.reason ? ' (' + r.action.reason + ')' : '') : '';
  };
  draw(row);
  follow(id, draw);
};

/** Follows `GET /v1/requests/{id}/events` (fetch, so that the token goes in a header). */
function follow(id, draw) {
  const controller = new AbortController();
  stream = controller;
  const live = () => document.getElementById('request-live');
  const run = async () => {
    let open = true;
    while (open && !controller.signal.aborted) {
      try {
        const res = await send('GET', '/v1/requests/' + encodeURIComponent(id) + '/events', undefined, controller.signal);
        if (!res.ok) throw await failure(res);
        if (live()) { live().textContent = 'live'; live().className = 'status live'; }
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let end;
          while ((end = buf.indexOf('\n\n')) >= 0) {
            const chunk = buf.slice(0, end);
            buf = buf.slice(end + 2);
            const data = chunk.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
            if (!data) continue;
            const r = JSON.parse(data);
            draw(r);
            open = r.status === 'open';
          }
        }
      } catch (e) {
        if (controller.signal.aborted) return;
        showError(e);
        // The node refused (no such request, a token it no longer takes): asking again
        // would not help.
        if (e.status >= 400 && e.status < 500) open = false;
      }
      if (live()) { live().textContent = open ? 'reconnecting…' : 'final'; live().className = 'status'; }
      if (open) await new Promise((r) => setTimeout(r, 2000));
    }
  };
  run();
}

pages.trust = async (root) => {
  const [trust, policy] = await Promise.all([api('GET', '/v1/trust'), api('GET', '/v1/witnesses/policy')]);
  cache.trust = trust;
  const redraw = () => render();
  const call = (path, body) => async () => { await api('POST', path, body); notice('Saved.'); redraw(); };

  root.append(h('h2', {}, 'Tags'));
  const tagList = h('ul', { class: 'plain', id: 'trust-tags' });
  for (const [key, tags] of Object.entries(trust.tags)) {
    for (const tag of tags) {
      tagList.append(h('li', { 'data-key': key, 'data-tag': tag }, h('span', {}, h('span', { class: 'key', title: key }, short(key)), ' ', h('strong', {}, tag)),
        h('button', { type: 'button', class: 'secondary', onclick: (ev) => act(ev.target, call('/v1/trust/untag', { key, tags: [tag] })) }, 'Remove')));
    }
  }
  if (!tagList.children.length) tagList.append(h('li', { class: 'muted' }, 'No tags.'));
  root.append(tagList, onSubmit(h('form', { id: 'tag-form' },
    h('div', { class: 'two' }, h('label', {}, 'Key', h('input', { name: 'key', id: 'tag-key', required: true })),
      h('label', {}, 'Tags (comma separated)', h('input', { name: 'tags', id: 'tag-tags', required: true, placeholder: 'friend' }))),
    h('button', { type: 'submit', id: 'tag-submit' }, 'Tag')), (fd) => call('/v1/trust/tag', {
    key: String(fd.get('key')).trim(), tags: String(fd.get('tags')).split(',').map((t) => t.trim()).filter(Boolean),
  })()));

  root.append(h('h2', {}, 'Degrees of separation'));
  const degrees = h('ul', { class: 'plain', id: 'trust-degrees' });
  for (const d of trust.degrees) {
    degrees.append(h('li', {}, h('span', {}, 'Accept up to ' + d.accept + ' ' + d.asset + ' from keys ' + d.depth + ' steps away through ', who(d.via), d.tag ? ' tagged ' + d.tag : ''),
      h('button', { type: 'button', class: 'secondary', onclick: (ev) => act(ev.target, call('/v1/trust/degrees/remove', { asset: d.asset, via: d.via })) }, 'Remove')));
  }
  if (!trust.degrees.length) degrees.append(h('li', { class: 'muted' }, 'No rules.'));
  root.append(degrees, onSubmit(h('form', { id: 'degree-form' },
    h('div', { class: 'two' },
      h('label', {}, 'Through (key)', h('input', { name: 'via', required: true })),
      h('label', {}, 'Tag (optional)', h('input', { name: 'tag' }))),
    h('div', { class: 'two' },
      h('label', {}, 'Depth (2 to 4)', h('input', { name: 'depth', value: '2', inputmode: 'numeric' })),
      h('label', {}, 'Accept up to', h('input', { name: 'accept', required: true, inputmode: 'decimal' }))),
    h('label', {}, 'Asset', h('input', { name: 'asset', value: 'USD' })),
    h('button', { type: 'submit' }, 'Set the rule')), (fd) => {
    const tag = String(fd.get('tag')).trim();
    return call('/v1/trust/degrees', {
      asset: String(fd.get('asset')).trim(), depth: Number(fd.get('depth')), accept: String(fd.get('accept')).trim(),
      via: String(fd.get('via')).trim(), tag: tag || null,
    })();
  }));
  if (trust.auto.length) {
    root.append(h('h3', {}, 'Limits the rules set now'), h('ul', { class: 'plain' },
      trust.auto.map((a) => h('li', {}, who(a.key), a.accept + ' ' + a.asset))));
  }

  root.append(h('h2', {}, 'Blocked keys'));
  const blocked = h('ul', { class: 'plain', id: 'trust-blocked' });
  for (const key of trust.blocked) {
    blocked.append(h('li', {}, who(key), h('button', { type: 'button', class: 'secondary', onclick: (ev) => act(ev.target, call('/v1/trust/unblock', { key })) }, 'Unblock')));
  }
  if (!trust.blocked.length) blocked.append(h('li', { class: 'muted' }, 'None.'));
  root.append(blocked, onSubmit(h('form', { id: 'block-form' },
    h('label', {}, 'Key', h('input', { name: 'key', required: true })),
    h('button', { type: 'submit', class: 'danger' }, 'Block')), (fd) => call('/v1/trust/block', { key: String(fd.get('key')).trim() })()));

  root.append(h('h2', {}, 'Witness logs'),
    h('p', { class: 'muted' }, policy.allow.length ? 'Only the allowed logs are accepted in payment conditions.' : 'Every log not blocked is accepted.'));
  const witnesses = h('ul', { class: 'plain', id: 'trust-witnesses' });
  for (const [list, undo, label] of [[policy.allow, 'disallow', 'allowed'], [policy.block, 'unblock', 'blocked']]) {
    for (const w of list) {
      witnesses.append(h('li', {}, h('span', {}, h('span', { class: 'key' }, w), ' ', status(label)),
        h('button', { type: 'button', class: 'secondary', onclick: (ev) => act(ev.target, call('/v1/witnesses/' + undo, { witness: w })) }, undo)));
    }
  }
  root.append(witnesses, onSubmit(h('form', { id: 'witness-form' },
    h('label', {}, 'Witness (verifier key or origin)', h('input', { name: 'witness', required: true })),
    h('select', { name: 'change' }, h('option', { value: 'allow' }, 'Allow'), h('option', { value: 'block' }, 'Block')),
    h('button', { type: 'submit' }, 'Save')), (fd) => call('/v1/witnesses/' + fd.get('change'), { witness: String(fd.get('witness')).trim() })()));
};

pages.history = async (root) => {
  const rows = await api('GET', '/v1/history?limit=200');
  root.append(h('h2', {}, 'History'));
  if (!rows.length) { root.append(h('p', { class: 'muted' }, 'No payments yet.')); return; }
  root.append(h('table', { id: 'history' },
    h('thead', {}, h('tr', {}, ['When', '', 'Peer', 'Amount', 'Status', 'Memo'].map((t) => h('th', {}, t)))),
    h('tbody', {}, rows.map((r) => h('tr', {},
      h('td', { 'data-label': 'When' }, when(r.created_at)),
      h('td', {}, r.direction === 'sent' ? 'sent to' : 'received from'),
      h('td', { 'data-label': 'Peer' }, who(r.peer)),
      h('td', { 'data-label': 'Amount', class: r.direction === 'sent' ? 'neg' : 'pos' }, (r.direction === 'sent' ? '−' : '+') + r.amount + ' ' + r.asset),
      h('td', { 'data-label': 'Status' }, status(r.status), r.reason ? ' ' + r.reason : ''),
      h('td', { 'data-label': 'Memo' }, r.memo || ''))))));
};

pages.settlements = async (root) => {
  const rows = await api('GET', '/v1/settlements');
  root.append(h('h2', {}, 'Settlements'),
    h('p', { class: 'muted' }, 'Requests to pay out credit: the ones you were asked wait here for your answer.'));
  if (!rows.length) { root.append(h('p', { class: 'muted' }, 'None.')); return; }
  for (const s of rows) {
    const buttons = h('div', { class: 'buttons' });
    const reason = h('input', { placeholder: 'why (to refuse)' });
    const redo = () => render();
    if (s.role === 'payer' && s.status === 'requested') {
      buttons.append(
        h('button', { type: 'button', onclick: (ev) => act(ev.target, async () => { await api('POST', '/v1/settlements/' + s.id + '/pay', {}); notice('Paying.'); redo(); }) }, 'Pay'),
        reason,
        h('button', { type: 'button', class: 'danger', onclick: (ev) => act(ev.target, async () => { await api('POST', '/v1/settlements/' + s.id + '/refuse', { reason: reason.value }); redo(); }) }, 'Refuse'));
    }
    if (s.role === 'requester' && s.status === 'paid') {
      buttons.append(h('button', { type: 'button', onclick: (ev) => act(ev.target, async () => { await api('POST', '/v1/settlements/' + s.id + '/confirm'); redo(); }) }, 'Confirm I was paid'));
    }
    root.append(h('div', { class: 'card', 'data-settlement': s.id },
      h('div', { class: 'row' }, h('strong', {}, (s.role === 'payer' ? 'Asked of me by ' : 'I asked ')), who(s.peer), status(s.status)),
      h('div', { class: 'big' }, s.amount + ' ' + s.asset),
      h('div', { class: 'muted' }, (s.kind === 'swap' ? 'Lightning swap' : 'through ' + (s.method || s.methods.join(', '))) + (s.memo ? ' — ' + s.memo : '')),
      s.note ? h('div', {}, s.note) : null,
      buttons));
  }
};

// ---- The router ------------------------------------------------------------------------------

async function render() {
  if (stream) { stream.abort(); stream = null; }
  const [page, ...rest] = (location.hash.replace(/^#/, '') || 'overview').split('/');
  const name = pages[page] ? page : 'overview';
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('active', a.dataset.page === name || (name === 'request' && a.dataset.page === 'receive'));
  }
  const root = h('div', { 'data-page': name });
  view().replaceChildren(root);
  document.body.dataset.page = name;
  try {
    if (!token) throw new ApiError(0, 'no_token',
      'This page has no API token, so it shows nothing. Open the address that `atomicity wallet` prints (it ends in #token=…).');
    await pages[name](root, rest.join('/'));
  } catch (e) {
    showError(e);
  }
}

window.addEventListener('hashchange', () => { showError(null); notice(null); render(); });
render();
