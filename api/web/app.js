'use strict';
// Fuze web app. Plain DOM, no dependencies; server data only ever goes in through textContent.

const TOKEN_KEY = 'fuze.token';
const TERMINAL = new Set(['succeeded', 'failed']);
const WATCHDOG_MS = 50000; // the server pings every 15 s by default: this much silence is a dead link
const $ = (id) => document.getElementById(id);

const state = {
  token: null,
  session: null, // AbortController of everything the signed-in session runs
  timers: new Map(),
  rows: new Map(), // bookmark id -> { li, b }
  jobOf: new Map(), // bookmark id -> newest job seen for it (drives the row's stage badge)
  refetch: new Set(), // bookmarks to read again, coalesced
  cursor: null, more: false, loading: false, // `more`: another page may exist (false signed out)
  listGen: 0, // bumped on every reset, so late answers for an old list are dropped
  jobRows: new Map(), // job id -> { tr, job }
  jobCursor: null, jobGen: 0, jobsLoaded: false,
  live: { lastId: null, backoff: 1000, loaded: false },
  search: { seq: 0, ctrl: null },
  imp: null, // the import being followed
  savedJob: null, // the job of the last save, whose end the save form announces
};

// ---- helpers ----

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const say = (id, text) => { $(id).textContent = text || ''; };
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const isAbort = (e) => Boolean(e) && e.name === 'AbortError';
const showError = (id, err) => { if (!isAbort(err)) say(id, err && err.message); };

function time(iso) {
  const t = iso ? Date.parse(iso) : 0;
  return Number.isNaN(t) ? 0 : t;
}

function later(name, ms, fn) {
  clearTimer(name);
  state.timers.set(name, setTimeout(() => { state.timers.delete(name); fn(); }, ms));
}

// Unlike later(), leaves a pending timer alone: a flood of calls still runs fn every `ms`.
function once(name, ms, fn) {
  if (!state.timers.has(name)) later(name, ms, fn);
}

function clearTimer(name) {
  clearTimeout(state.timers.get(name));
  state.timers.delete(name);
}

// Storage can be blocked (private mode): the token then lives as long as the page.
function store(fn) {
  try { return fn(localStorage); } catch { return null; }
}

// Only web links become hrefs, whatever a stored URL holds.
function setHref(link, url) {
  if (/^https?:\/\//i.test(url || '')) link.href = url;
  else link.removeAttribute('href');
}

function newLink(url) {
  const link = el('a', 'url', url);
  Object.assign(link, { rel: 'noopener noreferrer', target: '_blank' });
  setHref(link, url);
  return link;
}

async function busy(button, fn) {
  button.disabled = true;
  try { return await fn(); } finally { button.disabled = false; }
}

// ---- API ----

const apiError = (status, code, message) => Object.assign(new Error(message), { status, code });

async function errorOf(res) {
  let { code, message } = { code: `http_${res.status}`, message: `The server answered ${res.status}.` };
  try {
    const body = await res.json();
    if (body?.error?.message) ({ code, message } = body.error);
  } catch { /* not JSON: keep the status */ }
  const wait = res.headers.get('Retry-After');
  if (res.status === 429 && wait) message += ` (try again in ${wait} s)`;
  return apiError(res.status, code, message);
}

async function request(path, { method = 'GET', json, body, headers = {}, signal } = {}) {
  const h = { Authorization: `Bearer ${state.token}`, ...headers };
  if (json !== undefined) [h['Content-Type'], body] = ['application/json', JSON.stringify(json)];
  let res;
  try {
    // no-cache: pages the API caches come back revalidated by their ETag, never stale.
    signal = signal || state.session?.signal;
    res = await fetch(path, { method, headers: h, body, signal, cache: 'no-cache' });
  } catch (e) {
    if (isAbort(e)) throw e;
    throw apiError(0, 'network', 'Could not reach the server. Check your connection and try again.');
  }
  if (res.ok) return res;
  const err = await errorOf(res);
  if (res.status === 401 && state.session) signOut('Your token is no longer accepted. Sign in again.');
  throw err;
}

async function api(path, options) {
  const res = await request(path, options);
  return res.status === 204 ? null : res.json();
}

// ---- sign in / out ----

async function signIn(token) {
  state.token = token;
  say('signin-error');
  say('signin-status', 'Signing in…');
  try {
    await request('/api/v1/session', { method: 'POST' });
  } catch (e) {
    state.token = null;
    if (e.status === 401) store((s) => s.removeItem(TOKEN_KEY));
    say('signin-status');
    return say('signin-error', e.status === 401 ? `Sign-in failed: ${e.message}` : e.message);
  }
  store((s) => s.setItem(TOKEN_KEY, token));
  say('signin-status');
  enterApp();
}

function enterApp() {
  state.session = new AbortController();
  $('token').value = '';
  $('signin-section').hidden = true;
  $('app').hidden = false;
  setLive('connecting…');
  connectLive(state.session);
  // The list is read after the stream's first frame, so no event falls between the two; but a
  // stream that cannot open must not keep the list from showing.
  later('load', 2500, loadState);
  $('save-url').focus();
}

function signOut(message) {
  state.session?.abort();
  state.search.ctrl?.abort();
  Object.assign(state, { session: null, token: null, imp: null });
  state.live = { lastId: null, backoff: 1000, loaded: false };
  state.search.seq += 1;
  store((s) => s.removeItem(TOKEN_KEY));
  [...state.timers.keys()].forEach(clearTimer);
  resetList(false);
  resetJobs();
  clearFailed();
  ['search-results', 'search-status', 'save-status', 'save-error', 'search-error', 'bookmarks-error',
    'import-error', 'import-status', 'jobs-error'].forEach((id) => say(id));
  $('search-q').value = '';
  $('import-box').hidden = true;
  $('app').hidden = true;
  $('signin-section').hidden = false;
  say('signin-error', message);
  $('token').focus();
}

function loadState() {
  clearTimer('load');
  state.live.loaded = true;
  resetList();
  loadMore();
  resetJobs();
  loadJobs();
}

// ---- live events: text/event-stream read by hand (EventSource cannot send Authorization) ----

function setLive(text) {
  say('live-status', text);
  document.body.dataset.live = text === 'live' ? 'up' : 'down';
}

async function connectLive(session) {
  while (state.session === session) {
    const ctrl = new AbortController();
    const stop = () => ctrl.abort();
    session.signal.addEventListener('abort', stop);
    const headers = { Accept: 'text/event-stream' };
    if (state.live.lastId) headers['Last-Event-ID'] = state.live.lastId; // replays what we missed
    try {
      const res = await request('/api/v1/events', { headers, signal: ctrl.signal });
      await readEvents(res.body, ctrl);
    } catch (e) {
      if (e.status === 401) return; // signed out already
    } finally {
      session.signal.removeEventListener('abort', stop);
    }
    if (state.session !== session) return;
    setLive('reconnecting…');
    await sleep(state.live.backoff);
    state.live.backoff = Math.min(state.live.backoff * 2, 30000);
  }
}

async function readEvents(body, ctrl) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  let ev = { type: '', data: [] };
  try {
    for (;;) {
      later('watchdog', WATCHDOG_MS, () => ctrl.abort());
      const { value, done } = await reader.read();
      if (done) return;
      buf += decoder.decode(value, { stream: true });
      // A trailing CR may be the first half of a CRLF: it waits for the next chunk.
      const cut = buf.endsWith('\r') ? buf.length - 1 : buf.length;
      const lines = buf.slice(0, cut).split(/\r\n|\r|\n/);
      buf = lines.pop() + buf.slice(cut);
      for (const line of lines) ev = sseLine(line, ev);
    }
  } finally {
    clearTimer('watchdog');
  }
}

function sseLine(line, ev) {
  if (line === '') {
    if (ev.data.length) onLiveEvent(ev.type || 'message', ev.data.join('\n'));
    return { type: '', data: [] };
  }
  if (line.startsWith(':')) return ev; // a comment: the server's heartbeat
  const i = line.indexOf(':');
  const field = i < 0 ? line : line.slice(0, i);
  const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
  if (field === 'event') ev.type = value;
  else if (field === 'data') ev.data.push(value);
  else if (field === 'id' && !value.includes('\0')) state.live.lastId = value;
  return ev;
}

function onLiveEvent(name, data) {
  let msg;
  try { msg = JSON.parse(data); } catch { return; }
  if (name === 'ready' || name === 'resync') {
    setLive('live');
    state.live.backoff = 1000;
    // resync: what we missed is no longer kept. A fresh stream: what precedes it is read now.
    if (name === 'resync' || !msg.resumed || !state.live.loaded) loadState();
  } else if (name === 'job') onJob(jobOf(msg), true);
  else if (name === 'bookmark') onBookmarkEvent(msg);
  else if (name === 'import') onImportProgress(msg, false);
}

// ---- jobs as the page keeps them ----

// One shape for a JobView (GET /jobs, save, refresh, retry) and a `job` event.
const jobOf = (j) => ({
  id: j.job_id || j.id, kind: j.kind, stage: j.stage, state: j.state, attempts: j.attempts,
  bookmarkId: j.bookmark_id, errorCode: j.error_code || j.error?.code || null,
  errorMessage: j.error?.message || null, updatedAt: j.updated_at,
});

function onJob(job, fromEvent) {
  noteJob(job);
  upsertJobRow(job, 'live');
  if (job.id === state.savedJob && TERMINAL.has(job.state)) {
    state.savedJob = null;
    say('save-status', job.state === 'succeeded' ? 'Saved and ready.' : 'Saved, but the page could not be fetched.');
  }
  // Safety net: the final status and title come from the bookmark itself.
  if (fromEvent && job.bookmarkId && TERMINAL.has(job.state)) refetchSoon(job.bookmarkId);
}

function noteJob(job) {
  if (!job.bookmarkId) return;
  const prev = state.jobOf.get(job.bookmarkId);
  if (prev && time(prev.updatedAt) > time(job.updatedAt)) return; // older news
  state.jobOf.set(job.bookmarkId, job);
  const row = state.rows.get(job.bookmarkId);
  if (row) renderRow(row);
}

// ---- bookmark list ----

function stageLabel(b, job) {
  if (job && !TERMINAL.has(job.state)) {
    if (job.state === 'queued' && job.stage === 'scrape' && !job.attempts) return 'queued';
    return job.state === 'retrying' ? `${job.stage} (retrying)` : job.stage || job.state;
  }
  if (b.status === 'failed') return `failed: ${b.error || job?.errorCode || 'unknown error'}`;
  if (job?.state === 'failed') {
    // A failed refresh keeps the page's last good content: the bookmark itself is fine.
    const why = job.errorMessage || job.errorCode || 'unknown error';
    return job.kind === 'refresh' ? `refresh failed: ${why}` : `failed: ${why}`;
  }
  if (job?.state === 'succeeded' && (b.status === 'pending' || b.status === 'scraped')) return 'ready';
  return b.status === 'not_crawled' ? 'not crawled' : b.status;
}

// Newest first, as the API pages them: saved_at, then id.
function newer(a, b) {
  const [ta, tb] = [time(a.saved_at), time(b.saved_at)];
  return ta !== tb ? ta > tb : a.id > b.id;
}

function buildRow(b) {
  const li = el('li', 'bookmark');
  li.dataset.bookmarkId = b.id;
  const title = el('p', 'title');
  title.id = `bm-title-${b.id}`;
  const meta = el('p', 'meta');
  meta.append(el('span', 'stage'), el('span', 'tags'));
  const actions = el('div', 'actions');
  for (const [action, text] of [['refresh', 'Refresh'], ['delete', 'Delete']]) {
    const button = el('button', action === 'delete' ? 'secondary danger' : 'secondary', text);
    button.type = 'button';
    button.dataset.action = action;
    button.setAttribute('aria-describedby', title.id); // named "Refresh", described by the title
    actions.append(button);
  }
  li.append(title, newLink(b.url), meta, actions);
  return li;
}

function renderRow({ li, b }) {
  const job = state.jobOf.get(b.id);
  const [title, link, meta] = li.children;
  const [stage, tags] = meta.children;
  li.dataset.status = b.status;
  title.textContent = b.title || b.url;
  link.textContent = b.url;
  setHref(link, b.url);
  stage.textContent = stageLabel(b, job);
  stage.dataset.stage = job && !TERMINAL.has(job.state) ? 'working' : b.status;
  tags.textContent = (b.tags || []).map((t) => `#${t}`).join(' ');
}

// Adds or updates one bookmark's row. `where`: 'top' (a save), 'page' (a page being appended),
// 'sorted' (anything else: placed by date; skipped if it belongs to a page not loaded yet).
function upsertBookmark(data, where = 'sorted') {
  const { text, embedding, embedding_model: model, ...b } = data; // a detail's extras stay out
  const list = $('bookmarks');
  const known = state.rows.get(b.id);
  if (known) {
    if (time(b.updated_at) < time(known.b.updated_at)) return known; // an older read
    known.b = { ...known.b, ...b };
    renderRow(known);
    return known;
  }
  let before = list.firstElementChild;
  if (where !== 'top') {
    before = [...list.children].find((li) => newer(b, state.rows.get(li.dataset.bookmarkId).b)) || null;
    if (!before && where === 'sorted' && state.more) return null;
  }
  const row = { li: buildRow(b), b };
  state.rows.set(b.id, row);
  renderRow(row);
  list.insertBefore(row.li, before);
  updateMore();
  return row;
}

function removeRow(id, moveFocus) {
  const row = state.rows.get(id);
  if (!row) return;
  const next = row.li.nextElementSibling || row.li.previousElementSibling;
  row.li.remove();
  state.rows.delete(id);
  if (moveFocus) (next ? next.querySelector('button') : $('bookmarks-heading')).focus();
  updateMore();
}

// `more`: whether a first page is to be read (not while signed out).
function resetList(more = true) {
  state.listGen += 1;
  state.rows.clear();
  state.refetch.clear();
  Object.assign(state, { cursor: null, more, loading: false });
  say('bookmarks');
  updateMore();
}

function updateMore() {
  const settled = !state.more && state.live.loaded;
  $('bookmarks-load-more').hidden = !state.more;
  $('bookmarks-load-more').disabled = state.loading;
  $('bookmarks-end').hidden = !settled || state.rows.size === 0;
  $('bookmarks-empty').hidden = !settled || state.rows.size > 0;
}

async function loadMore() {
  if (state.loading || !state.more || !state.session) return;
  const gen = state.listGen;
  const fromButton = document.activeElement === $('bookmarks-load-more');
  const last = $('bookmarks').lastElementChild;
  state.loading = true;
  updateMore();
  try {
    const query = state.cursor ? `?${new URLSearchParams({ cursor: state.cursor })}` : '';
    const page = await api(`/api/v1/bookmarks${query}`);
    if (gen !== state.listGen) return;
    page.items.forEach((b) => upsertBookmark(b, 'page'));
    Object.assign(state, { cursor: page.next_cursor, more: Boolean(page.next_cursor) });
    say('bookmarks-error');
    // Keyboard users who pressed "Load more" go on from the first new row.
    const first = last ? last.nextElementSibling : $('bookmarks').firstElementChild;
    if (fromButton && first) first.querySelector('button').focus();
  } catch (e) {
    if (gen === state.listGen) showError('bookmarks-error', e);
  } finally {
    if (gen === state.listGen) {
      state.loading = false;
      updateMore();
      requestAnimationFrame(sentinelCheck);
    }
  }
}

// The observer fires on changes only: a short page can leave the sentinel in view.
function sentinelCheck() {
  if ($('app').hidden || !state.more || $('bookmarks-error').textContent) return;
  if ($('bookmarks-more').getBoundingClientRect().top < window.innerHeight + 400) loadMore();
}

// Reads the first page again: new bookmarks appear in place, shown ones are updated.
async function mergeFirstPage() {
  if (!state.live.loaded || !state.session) return;
  const gen = state.listGen;
  try {
    const page = await api('/api/v1/bookmarks');
    if (gen === state.listGen) page.items.forEach((b) => upsertBookmark(b, 'sorted'));
  } catch (e) { showError('bookmarks-error', e); }
}

function onBookmarkEvent({ bookmark_id: id, change }) {
  if (change === 'deleted') return removeRow(id, false);
  // An import's crawls send no job events: a job known only from a page read must not pin the badge.
  const job = state.jobOf.get(id);
  if (job?.fromList && !TERMINAL.has(job.state)) state.jobOf.delete(id);
  if (state.rows.has(id)) refetchSoon(id);
  else once('merge', 2000, mergeFirstPage); // perhaps new (another tab, an import): every 2 s at most
}

function refetchSoon(id) {
  state.refetch.add(id);
  once('refetch', 300, flushRefetch);
}

// Coalesced: a burst of events about one bookmark costs one read; six reads at a time at most.
async function flushRefetch() {
  const [ids, gen] = [[...state.refetch], state.listGen];
  state.refetch.clear();
  const one = async (id) => {
    try {
      const b = await api(`/api/v1/bookmarks/${encodeURIComponent(id)}`);
      if (gen === state.listGen) upsertBookmark(b, 'sorted');
    } catch (e) {
      if (e.status === 404) removeRow(id, false);
    }
  };
  for (let i = 0; i < ids.length; i += 6) await Promise.all(ids.slice(i, i + 6).map(one));
}

async function onBookmarkAction(event) {
  const button = event.target.closest('button[data-action]');
  const id = button?.closest('li').dataset.bookmarkId;
  const row = state.rows.get(id);
  if (!row) return;
  say('bookmarks-error');
  if (button.dataset.action === 'refresh') {
    await busy(button, async () => {
      try {
        onJob(jobOf(await api(`/api/v1/bookmarks/${id}/refresh`, { method: 'POST' })), false);
      } catch (e) { showError('bookmarks-error', e); }
    });
  } else if (window.confirm(`Delete “${row.b.title || row.b.url}”?`)) {
    await busy(button, async () => {
      try {
        await request(`/api/v1/bookmarks/${id}`, { method: 'DELETE' });
        removeRow(id, true);
      } catch (e) {
        if (e.status === 404) removeRow(id, true);
        else showError('bookmarks-error', e);
      }
    });
  }
}

// ---- save ----

async function onSave(event) {
  event.preventDefault();
  const input = $('save-url');
  const url = input.value.trim();
  say('save-error');
  if (!url) return say('save-error', 'Enter a link to save.');
  await busy(event.submitter || $('save-form').querySelector('button'), async () => {
    say('save-status', 'Saving…');
    try {
      const res = await request('/api/v1/bookmarks', { method: 'POST', json: { url } });
      const { bookmark, job } = await res.json();
      if (job) noteJob(jobOf(job)); // first, so the new row shows its stage at once
      state.savedJob = res.status === 202 && job ? jobOf(job).id : null;
      upsertBookmark(bookmark, 'top');
      if (job) onJob(jobOf(job), false);
      input.value = '';
      say('save-status', res.status === 202 ? 'Saved. Fetching the page…' : 'You had already saved this link.');
    } catch (e) {
      say('save-status');
      showError('save-error', e);
    }
  });
}

// ---- search ----

async function runSearch() {
  clearTimer('search');
  const [q, mode] = [$('search-q').value.trim(), $('search-mode').value];
  const seq = ++state.search.seq; // only the newest search may write the results
  state.search.ctrl?.abort();
  say('search-error');
  if (!q) return ['search-results', 'search-status'].forEach((id) => say(id));
  const ctrl = new AbortController();
  state.search.ctrl = ctrl;
  say('search-status', 'Searching…');
  try {
    const res = await api(`/api/v1/search?${new URLSearchParams({ q, mode })}`, { signal: ctrl.signal });
    if (seq === state.search.seq) renderResults(res, mode);
  } catch (e) {
    if (seq !== state.search.seq || isAbort(e)) return;
    say('search-status');
    showError('search-error', e);
  }
}

function renderResults(res, asked) {
  const list = $('search-results');
  list.textContent = '';
  for (const { bookmark: b, score } of res.items) {
    const li = el('li', 'result');
    li.dataset.bookmarkId = b.id;
    const scored = el('p', 'meta', `score ${Number(score).toFixed(3)}`);
    li.append(el('p', 'title', b.title || b.url), newLink(b.url), scored);
    list.append(li);
  }
  const n = res.items.length;
  // No worker embedded the query in time: the API answers with keyword results and says so.
  const fell = res.mode !== asked ? `; ${asked} search was unavailable` : '';
  say('search-status', `${n} result${n === 1 ? '' : 's'} (${res.mode}${fell})`);
}

// ---- import ----

async function onImport(event) {
  event.preventDefault();
  const file = $('import-file').files[0];
  say('import-error');
  if (!file) return say('import-error', 'Choose a bookmarks file first.');
  const params = new URLSearchParams({ crawl: String($('import-crawl').checked) });
  if ($('import-format').value) params.set('format', $('import-format').value);
  await busy(event.submitter || $('import-form').querySelector('button'), async () => {
    $('import-box').hidden = false;
    $('import-progress').value = 0;
    say('import-status', `Uploading ${file.name}…`);
    clearFailed();
    try {
      // The API takes the file as the raw request body, its options in the query string.
      const view = await api(`/api/v1/imports?${params}`, {
        method: 'POST', body: file, headers: { 'Content-Type': file.type || 'application/octet-stream' },
      });
      followImport(view.id);
      onImportProgress(progressOfView(view), true, view.poll_after_ms);
      $('import-form').reset();
      mergeFirstPage(); // its entries are in the list from the 202 on
    } catch (e) {
      say('import-status', 'Nothing was imported.');
      showError('import-error', e);
    }
  });
}

// The figures of an `import` event, from a polled import, computed as the server computes them.
function progressOfView(v) {
  const c = v.counts;
  const ended = v.state === 'completed' || v.state === 'cancelled';
  const total = c.staged + c.saved + c.duplicate + c.crawled + c.failed + c.skipped;
  const settled = c.crawled + c.failed + c.skipped + c.duplicate + (v.crawl ? 0 : c.saved);
  const finished = ended ? total : settled;
  return { import_id: v.id, state: v.state, entries: v.entries, finished, failed: c.failed };
}

function followImport(id) {
  if (state.imp?.id === id) return state.imp;
  state.imp = { id, state: 'running', done: false, lastEventAt: Date.now(), pollMs: 1000 };
  $('import-box').hidden = false;
  clearFailed();
  schedulePoll();
  return state.imp;
}

function onImportProgress(p, polled, pollMs) {
  let imp = state.imp;
  if (imp?.id !== p.import_id) {
    if (imp && !imp.done) return; // another import's news while ours runs
    imp = followImport(p.import_id);
  }
  if (!polled) imp.lastEventAt = Date.now();
  if (pollMs) imp.pollMs = pollMs;
  imp.state = p.state;
  const done = p.state === 'completed' || p.state === 'cancelled';
  const share = p.entries > 0 ? Math.floor((100 * p.finished) / p.entries) : 0;
  $('import-progress').value = done ? 100 : Math.min(99, share);
  const prefix = { completed: 'Import done: ', cancelled: 'Import cancelled, done: ', paused: 'Paused: ' };
  say('import-status', `${prefix[p.state] || ''}${p.finished} / ${p.entries} done, ${p.failed} failed`);
  if (done && !imp.done) {
    imp.done = true;
    clearTimer('import-poll');
    if (p.failed > 0) loadFailedItems(imp.id);
    mergeFirstPage();
  } else if (!done && imp.done) {
    imp.done = false; // resumed, or its failed entries retried
    clearFailed();
    schedulePoll();
  }
}

// The fallback for a stream that is down: poll while no event came for 3 s.
function schedulePoll() {
  const imp = state.imp;
  later('import-poll', Math.max(imp.pollMs, 250), async () => {
    if (state.imp !== imp || imp.done) return;
    if (imp.state !== 'paused' && Date.now() - imp.lastEventAt >= 3000) {
      try {
        const v = await api(`/api/v1/imports/${imp.id}`);
        if (state.imp === imp) onImportProgress(progressOfView(v), true, v.poll_after_ms);
      } catch (e) { showError('import-error', e); }
    }
    if (state.imp === imp && !imp.done && state.session) schedulePoll();
  });
}

function clearFailed() {
  say('import-failed');
  $('import-failed-heading').hidden = true;
}

// The failed entries, page after page (ten pages at most).
async function loadFailedItems(id) {
  clearFailed();
  const list = $('import-failed');
  let [cursor, pages] = [null, 0];
  try {
    do {
      const params = new URLSearchParams({ state: 'failed' });
      if (cursor) params.set('cursor', cursor);
      const page = await api(`/api/v1/imports/${id}/items?${params}`);
      if (state.imp?.id !== id) return;
      for (const item of page.items) {
        const li = list.appendChild(el('li'));
        li.append(el('span', 'url', item.url), el('span', 'why', item.error || item.error_code || 'failed'));
        if (item.line) li.append(el('span', 'muted', `line ${item.line}`));
      }
      [cursor, pages] = [page.next_cursor, pages + 1];
    } while (cursor && pages < 10);
    if (cursor) list.append(el('li', 'muted', 'And more not shown.'));
    $('import-failed-heading').hidden = list.children.length === 0;
  } catch (e) { showError('import-error', e); }
}

// ---- jobs table ----

function resetJobs() {
  state.jobGen += 1;
  state.jobRows.clear();
  Object.assign(state, { jobCursor: null, jobsLoaded: false });
  $('jobs').tBodies[0].textContent = '';
  $('jobs-more').hidden = true;
  $('jobs-empty').hidden = true;
}

async function loadJobs() {
  const gen = state.jobGen;
  const params = new URLSearchParams();
  if ($('jobs-state').value) params.set('state', $('jobs-state').value);
  if (state.jobCursor) params.set('cursor', state.jobCursor);
  try {
    const page = await api(`/api/v1/jobs?${params}`);
    if (gen !== state.jobGen) return;
    for (const j of page.items) {
      const job = { ...jobOf(j), fromList: true };
      noteJob(job);
      upsertJobRow(job, 'append');
    }
    Object.assign(state, { jobCursor: page.next_cursor, jobsLoaded: true });
    $('jobs-more').hidden = !page.next_cursor;
    $('jobs-empty').hidden = state.jobRows.size > 0;
    say('jobs-error');
  } catch (e) {
    if (gen === state.jobGen) showError('jobs-error', e);
  }
}

// `where`: 'append' (a page read) or 'live' (news: a new job goes on top if the filter shows it).
function upsertJobRow(job, where) {
  let row = state.jobRows.get(job.id);
  if (row) {
    if (time(job.updatedAt) < time(row.job.updatedAt)) return;
    // An event names the error's code only: keep the message a page read gave for that code.
    const keep = row.job.errorCode === job.errorCode ? row.job.errorMessage : null;
    row.job = { ...row.job, ...job, errorMessage: job.errorMessage || keep };
  } else {
    const filter = $('jobs-state').value;
    if (where === 'live' && (!state.jobsLoaded || (filter && filter !== job.state))) return;
    const tr = el('tr');
    tr.tabIndex = -1;
    for (const label of ['Kind', 'Stage', 'State', 'Error', 'Updated', 'Action']) {
      tr.appendChild(el('td')).dataset.label = label; // the cell's caption on narrow screens
    }
    row = { tr, job };
    state.jobRows.set(job.id, row);
    const body = $('jobs').tBodies[0];
    body.insertBefore(tr, where === 'live' ? body.firstElementChild : null);
    $('jobs-empty').hidden = true;
  }
  renderJobRow(row);
}

function renderJobRow({ tr, job }) {
  const [kind, stage, st, error, updated, action] = tr.children;
  tr.dataset.state = job.state;
  kind.textContent = job.kind;
  stage.textContent = job.stage || '—';
  st.textContent = job.state;
  error.textContent = job.errorMessage || job.errorCode || '';
  const when = el('time', '', job.updatedAt ? new Date(job.updatedAt).toLocaleString() : '');
  when.dateTime = job.updatedAt || '';
  updated.replaceChildren(when);
  action.textContent = '';
  if (job.state !== 'failed') return;
  const button = action.appendChild(el('button', 'retry secondary', 'Retry'));
  button.type = 'button';
  button.dataset.jobId = job.id;
}

async function onRetry(event) {
  const button = event.target.closest('button.retry');
  if (!button) return;
  say('jobs-error');
  await busy(button, async () => {
    try {
      const path = `/api/v1/jobs/${encodeURIComponent(button.dataset.jobId)}/retry`;
      const job = jobOf(await api(path, { method: 'POST' }));
      onJob(job, false);
      state.jobRows.get(job.id)?.tr.focus(); // its Retry button is gone
    } catch (e) { showError('jobs-error', e); }
  });
}

// ---- wiring ----

function start() {
  $('signin').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = $('token').value.trim();
    if (!token) return say('signin-error', 'Enter your API token.');
    busy(event.submitter || $('signin').querySelector('button'), () => signIn(token));
  });
  $('signout').addEventListener('click', () => signOut(''));
  $('save-form').addEventListener('submit', onSave);
  $('bookmarks').addEventListener('click', onBookmarkAction);
  $('bookmarks-load-more').addEventListener('click', loadMore);
  $('search-form').addEventListener('submit', (event) => { event.preventDefault(); runSearch(); });
  $('search-q').addEventListener('input', () => later('search', 300, runSearch));
  $('search-mode').addEventListener('change', runSearch);
  $('import-form').addEventListener('submit', onImport);
  $('jobs').addEventListener('click', onRetry);
  $('jobs-state').addEventListener('change', () => { resetJobs(); loadJobs(); });
  $('jobs-more').addEventListener('click', (event) => busy(event.currentTarget, loadJobs));
  const observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadMore();
  }, { rootMargin: '400px 0px' });
  observer.observe($('bookmarks-more'));
  const saved = store((s) => s.getItem(TOKEN_KEY));
  if (saved) signIn(saved);
  else $('token').focus();
}

start();
