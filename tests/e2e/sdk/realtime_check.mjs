// Drives the official @directus/sdk realtime() client against a tokenguard server.
//
//   node realtime_check.mjs <handshake|strict|public|expiry> <base url>
//
// Credentials come from the environment: TG_EMAIL, TG_PASSWORD. The server's /websocket
// endpoint (the Starlette example) echoes each frame it is handed as
// {"type":"echo","message":…,"user":…,"via":…}. Prints one JSON line per step
// {"scenario","step","pass",...facts} and exits 1 if a step failed. Tokens are never printed.

import { auth, authentication, createDirectus, realtime } from '@directus/sdk';
import { WebSocket } from 'ws'; // Node 20 has no global WebSocket; the SDK takes one in globals

const [scenario, baseUrl] = process.argv.slice(2);
const SCENARIOS = ['handshake', 'strict', 'public', 'expiry'];
if (!SCENARIOS.includes(scenario) || !baseUrl) {
  console.error(`usage: node realtime_check.mjs <${SCENARIOS.join('|')}> <base url>`);
  process.exit(2);
}
const email = process.env.TG_EMAIL ?? '';
const password = process.env.TG_PASSWORD ?? '';
const globals = { WebSocket };
const NO_RECONNECT = { reconnect: false, connect: { timeout: 5000 } };

let failed = false;
function report(step, pass, details = {}) {
  if (!pass) failed = true;
  console.log(JSON.stringify({ scenario, step, pass, ...details }));
}

// Every message the SDK hands to listeners, and a way to wait for one.
function inbox(client) {
  const messages = [];
  const waiters = [];
  client.onWebSocket('message', (message) => {
    const w = waiters.find((candidate) => candidate.match(message));
    if (w) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(message); // taken: a later wait must not see it again
    } else {
      messages.push(message);
    }
  });
  const closed = new Promise((resolve) => client.onWebSocket('close', (event) => resolve(event.code)));
  return {
    messages,
    closed,
    next(match, ms = 5000) {
      const found = messages.find(match);
      if (found) {
        messages.splice(messages.indexOf(found), 1);
        return Promise.resolve(found);
      }
      return new Promise((resolve) => {
        const w = { match, resolve };
        waiters.push(w);
        setTimeout(() => {
          const i = waiters.indexOf(w);
          if (i >= 0) {
            waiters.splice(i, 1);
            resolve(null);
          }
        }, ms);
      });
    },
  };
}

const isEcho = (m) => m?.type === 'echo';
const facts = (m) => (m ? { type: m.type, via: m.via ?? null, user: Boolean(m.user) } : { type: null });
const withTimeout = (promise, ms) =>
  Promise.race([promise, new Promise((resolve) => setTimeout(() => resolve('timeout'), ms))]);

async function echoStep(step, client, box, expectVia) {
  client.sendMessage({ type: 'hello' });
  const echo = await box.next(isEcho);
  report(step, echo?.via === expectVia && Boolean(echo.user) === (expectVia !== 'public'), facts(echo));
}

async function handshake() {
  // 1. The SDK's own handshake: authentication('json') + realtime(): connect() sends the
  //    access token as the first frame and waits for {"type":"auth","status":"ok"}.
  const client = createDirectus(baseUrl, { globals })
    .with(authentication('json'))
    .with(realtime({ authMode: 'handshake', ...NO_RECONNECT }));
  const box = inbox(client);
  await client.login({ email, password });
  let connected = true;
  try {
    await client.connect();
  } catch {
    connected = false;
  }
  report('connect_with_token', connected);
  if (connected) await echoStep('echo_after_handshake', client, box, 'jwt');
  client.sendMessage({ type: 'ping' });
  const pong = await box.next((m) => m?.type === 'pong');
  report('ping', pong?.type === 'pong', { type: pong?.type ?? null, uid: pong?.uid !== undefined });
  client.disconnect();

  // 2. No authentication composable: the app sends the SDK's auth() message itself.
  const bare = createDirectus(baseUrl, { globals }).with(realtime({ authMode: 'handshake', ...NO_RECONNECT }));
  const bareBox = inbox(bare);
  await bare.connect();
  bare.sendMessage(auth({ email, password }));
  const ok = await bareBox.next((m) => m?.type === 'auth');
  report('auth_message_login', ok?.status === 'ok' && typeof ok.refresh_token === 'string', {
    status: ok?.status ?? null,
    refresh_token: typeof ok?.refresh_token === 'string',
  });
  await echoStep('echo_after_auth_message', bare, bareBox, 'jwt');
  bare.disconnect();

  // 3. A wrong password: the SDK is told AUTH_FAILED (it logs it) and the server closes.
  const wrong = createDirectus(baseUrl, { globals }).with(realtime({ authMode: 'handshake', ...NO_RECONNECT }));
  const wrongBox = inbox(wrong);
  await wrong.connect();
  wrong.sendMessage(auth({ email, password: `${password}-wrong` }));
  const code = await withTimeout(wrongBox.closed, 5000);
  report('wrong_password_closes', code !== 'timeout', {
    closed: code !== 'timeout',
    delivered: wrongBox.messages.filter(isEcho).length,
  });
}

async function strict() {
  const client = createDirectus(baseUrl, { globals })
    .with(authentication('json'))
    .with(realtime({ authMode: 'strict', ...NO_RECONNECT }));
  const box = inbox(client);
  await client.login({ email, password });
  let connected = true;
  try {
    await client.connect(); // the token rides in ?access_token=
  } catch {
    connected = false;
  }
  report('connect_strict', connected);
  if (connected) await echoStep('echo_strict', client, box, 'jwt');
  client.disconnect();

  const anonymous = createDirectus(baseUrl, { globals }).with(realtime({ authMode: 'strict', ...NO_RECONNECT }));
  let refused = false;
  try {
    await anonymous.connect();
  } catch {
    refused = true;
  }
  report('strict_without_token_refused', refused);
}

async function publicMode() {
  const client = createDirectus(baseUrl, { globals }).with(realtime({ authMode: 'public', ...NO_RECONNECT }));
  const box = inbox(client);
  await client.connect();
  await echoStep('echo_public', client, box, 'public');
  client.sendMessage(auth({ email, password }));
  const ok = await box.next((m) => m?.type === 'auth');
  report('upgrade_by_auth_message', ok?.status === 'ok', { status: ok?.status ?? null });
  await echoStep('echo_after_upgrade', client, box, 'jwt');
  client.disconnect();
}

async function expiry() {
  // The access token lives a few seconds. When the server pushes TOKEN_EXPIRED, the SDK asks
  // its authentication composable for a token (which refreshes it) and re-authenticates on
  // the same socket; the server answers ok and keeps the socket.
  const client = createDirectus(baseUrl, { globals })
    .with(authentication('json', { autoRefresh: false, msRefreshBeforeExpires: 1000 }))
    .with(realtime({ authMode: 'handshake', ...NO_RECONNECT }));
  const box = inbox(client);
  await client.login({ email, password });
  await client.connect();
  await echoStep('echo_before_expiry', client, box, 'jwt');
  const reauth = await box.next((m) => m?.type === 'auth' && m.status === 'ok', 10000);
  report('reauthenticated_after_expiry', reauth !== null);
  await echoStep('echo_after_reauth', client, box, 'jwt');
  const code = await withTimeout(box.closed, 4000); // past AUTH_TIMEOUT: still open
  report('still_open', code === 'timeout');
  client.disconnect();
}

const run = { handshake, strict, public: publicMode, expiry }[scenario];
try {
  await run();
} catch (error) {
  report('unexpected_error', false, { error: String(error?.message ?? error).slice(0, 200) });
}
process.exit(failed ? 1 : 0);
