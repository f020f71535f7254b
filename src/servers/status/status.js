// The status page: live figures from /metrics, a purchase sent over the WebSocket
// protocol (docs/protocol.md), a balance read through the ingest's /api/balance.
import { parseMetricsText, summarize } from './metricsText.js';

const POLL_MS = 1_000;
const HISTORY = 60;
const RECENT = 8;
const RETRYABLE = new Set(['unavailable', 'overloaded']);

const byId = (id) => document.getElementById(id);
const count = new Intl.NumberFormat('en-US');
const rate = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });

/** Creates an element with text or child nodes; never parses markup. */
const h = (tag, className, ...children) => {
  const element = document.createElement(tag);
  if (className) element.className = className;
  element.append(...children.filter((child) => child !== undefined && child !== ''));
  return element;
};

const setText = (id, text) => {
  const element = byId(id);
  if (element.textContent !== text) element.textContent = text;
};

const formatCount = (value) => (value === undefined ? '—' : count.format(value));

const formatSeconds = (seconds, largestBound) => {
  if (seconds === undefined) return '—';
  if (seconds === Infinity) return `> ${formatSeconds(largestBound ?? 0)}`;
  if (seconds < 0.001) return `${(seconds * 1_000).toFixed(2)} ms`;
  if (seconds < 1) return `${(seconds * 1_000).toPrecision(3)} ms`;
  return `${seconds.toPrecision(3)} s`;
};

// --- live figures -------------------------------------------------------------------

const state = byId('service-state');
/** Only a change is written, so screen readers hear the state once, not every second. */
const setState = (name, text) => {
  if (state.dataset.state === name) return;
  state.dataset.state = name;
  state.textContent = text;
};

const history = [];
const drawSparkline = (value) => {
  history.push(value ?? 0);
  if (history.length > HISTORY) history.shift();
  const peak = Math.max(1, ...history);
  const points = history.map(
    (v, i) => `${HISTORY - history.length + i},${(20 - (v / peak) * 18 - 1).toFixed(2)}`,
  );
  byId('sparkline-line').setAttribute('points', points.join(' '));
};

const render = (figures) => {
  setText(
    'rate',
    figures.purchasesPerSecond === undefined ? '—' : rate.format(figures.purchasesPerSecond),
  );
  setText(
    'rate-detail',
    figures.received === undefined ? '' : `${formatCount(figures.received)} received in total`,
  );
  drawSparkline(figures.purchasesPerSecond);
  setText('acked', formatCount(figures.acked));
  setText(
    'acked-detail',
    figures.duplicates === undefined ? '' : `${formatCount(figures.duplicates)} duplicates`,
  );
  const latencyDetail =
    figures.acksInInterval > 0
      ? `over ${formatCount(figures.acksInInterval)} acks in the last second`
      : 'no acks in the last second';
  setText('p50', formatSeconds(figures.p50, figures.largestBound));
  setText('p99', formatSeconds(figures.p99, figures.largestBound));
  setText('p50-detail', latencyDetail);
  setText('p99-detail', latencyDetail);
  setText('connections', formatCount(figures.connections));
  setText('unacked', formatCount(figures.unacked));
  setText('rejected', formatCount(figures.rejected));
  const codes = Object.entries(figures.rejectedByCode)
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1])
    .map(([code, n]) => `${code} ${formatCount(n)}`);
  setText('rejected-detail', codes.length > 0 ? codes.join(' · ') : 'no errors answered');
};

let previous;
let previousAt = 0;
let timer;
let polling = false;

const poll = async () => {
  polling = true;
  const started = performance.now();
  try {
    const [metrics, ready] = await Promise.all([
      fetch('metrics', { cache: 'no-store' }),
      fetch('readyz', { cache: 'no-store' }),
    ]);
    if (!metrics.ok) throw new Error(`/metrics answered ${metrics.status}`);
    const current = parseMetricsText(await metrics.text());
    const now = performance.now();
    render(summarize(previous, current, (now - previousAt) / 1_000));
    previous = current;
    previousAt = now;
    setText('updated', `Updated ${new Date().toLocaleTimeString('en-GB')} · every second`);
    if (ready.ok) setState('ready', 'Ready');
    else setState('not-ready', 'Not ready');
  } catch {
    // The next good scrape starts a fresh interval rather than spanning the outage.
    previous = undefined;
    setState('unreachable', 'Unreachable');
  }
  polling = false;
  if (document.visibilityState === 'visible') {
    timer = setTimeout(poll, Math.max(0, POLL_MS - (performance.now() - started)));
  }
};

document.addEventListener('visibilitychange', () => {
  clearTimeout(timer);
  // A scrape in flight schedules the next itself.
  if (document.visibilityState === 'visible' && !polling) {
    previous = undefined;
    void poll();
  }
});

// --- sending a purchase -------------------------------------------------------------

const newId = () => {
  // randomUUID needs a secure context; a page reached by a LAN address is not one.
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `page-${[...bytes].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
};

const purchaseForm = byId('purchase-form');
const purchaseId = byId('purchase-id');
const purchaseResult = byId('purchase-result');
const purchaseLog = byId('purchase-log');
purchaseId.value = newId();

/** The result of one purchase as a line: a chip with the status or code, then details. */
const describe = (sent, reply) => {
  const id = reply.id ?? sent.id;
  if (reply.status === 'ack') {
    return h(
      'p',
      'outcome ok',
      h('span', 'chip', reply.duplicate ? 'ack · duplicate' : 'ack'),
      ` ${sent.amount} for ${sent.user_id} · id `,
      h('code', '', id),
      reply.duplicate ? ' (already stored; nothing new written)' : '',
    );
  }
  const code = String(reply.code ?? reply.status);
  return h(
    'p',
    'outcome error',
    h('span', 'chip', code),
    ` ${reply.message ?? ''}`,
    reply.field ? ` (field ${reply.field})` : '',
    ' · id ',
    h('code', '', id),
    RETRYABLE.has(code) ? ' — send again to retry with the same id' : '',
  );
};

const show = (sent, reply) => {
  const line = describe(sent, reply);
  purchaseResult.dataset.status = reply.status === 'ack' ? 'ack' : String(reply.code);
  purchaseResult.replaceChildren(line);
  purchaseLog.prepend(h('li', '', line.cloneNode(true)));
  while (purchaseLog.children.length > RECENT) purchaseLog.lastElementChild.remove();
  // A stored purchase needs a new key; anything else may be resent under the same one.
  if (reply.status === 'ack' && purchaseId.value === sent.id) purchaseId.value = newId();
};

let wsUrl;
let connection;
/** Purchases sent and not yet answered, in send order: replies come in that order. */
const pending = [];

const connect = () =>
  (connection ??= new Promise((resolve, reject) => {
    const socket = new WebSocket(wsUrl);
    socket.addEventListener('open', () => resolve(socket), { once: true });
    socket.addEventListener('message', (event) => {
      const sent = pending.shift();
      if (sent === undefined) return;
      let reply;
      try {
        reply = JSON.parse(event.data);
      } catch {
        reply = { status: 'error', code: 'bad_reply', message: 'the reply is not JSON' };
      }
      show(sent, reply);
    });
    socket.addEventListener('close', (event) => {
      connection = undefined;
      reject(new Error('the WebSocket could not be opened'));
      for (const sent of pending.splice(0)) {
        show(sent, {
          status: 'error',
          code: 'connection_closed',
          message: `the connection closed (${event.code}) before a reply; send again with the same id`,
        });
      }
    });
  }));

purchaseForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  if (purchaseId.value.trim() === '') purchaseId.value = newId();
  const sent = {
    id: purchaseId.value.trim(),
    user_id: byId('purchase-user').value,
    // A decimal string keeps the amount exact; the service parses and validates it.
    amount: byId('purchase-amount').value.trim(),
  };
  try {
    const socket = await connect();
    pending.push(sent);
    socket.send(JSON.stringify(sent));
  } catch {
    show(sent, {
      status: 'error',
      code: 'connection_failed',
      message: `could not open ${wsUrl}`,
    });
  }
});

// --- balance lookup -----------------------------------------------------------------

const balanceForm = byId('balance-form');
const balanceResult = byId('balance-result');

balanceForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const userId = byId('balance-user').value;
  balanceForm.setAttribute('aria-busy', 'true');
  let line;
  try {
    const response = await fetch(`api/balance?user_id=${encodeURIComponent(userId)}`, {
      cache: 'no-store',
    });
    const body = await response.json();
    if (response.ok) {
      const total = Number(body.balances?.total ?? 0);
      line = h(
        'p',
        'outcome ok',
        'Total for ',
        h('strong', '', body.user_id),
        ': ',
        h('span', 'amount', total.toFixed(2)),
      );
      balanceResult.dataset.status = 'ok';
    } else {
      line = h('p', 'outcome error', h('span', 'chip', body.code), ` ${body.message ?? ''}`);
      balanceResult.dataset.status = String(body.code);
    }
  } catch {
    line = h('p', 'outcome error', h('span', 'chip', 'unreachable'), ' the service did not answer');
    balanceResult.dataset.status = 'unreachable';
  }
  balanceForm.removeAttribute('aria-busy');
  balanceResult.replaceChildren(line);
});

// --- start --------------------------------------------------------------------------

const start = async () => {
  let path = '/ws';
  try {
    const response = await fetch('api/config', { cache: 'no-store' });
    if (response.ok) path = (await response.json()).ws_path ?? path;
  } catch {
    // The default path is right unless WS_PATH was changed; sending will say if not.
  }
  wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}`;
  byId('ws-url').textContent = wsUrl;
  await poll();
};

void start();
