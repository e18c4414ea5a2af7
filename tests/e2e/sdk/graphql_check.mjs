// Drives the official @directus/sdk graphql() composable against a tokenguard server's
// /graphql/system (TOKENGUARD_GRAPHQL_ENABLED): login, an authenticated query, refresh,
// logout, and the errors the SDK raises.
//
//   node graphql_check.mjs <base url>
//
// Credentials come from TG_EMAIL and TG_PASSWORD. Prints one JSON line per step
// {"step","pass",...facts} and exits 1 if a step failed. Tokens are never printed.

import { createDirectus, graphql, staticToken } from '@directus/sdk';

const [baseUrl] = process.argv.slice(2);
if (!baseUrl) {
  console.error('usage: node graphql_check.mjs <base url>');
  process.exit(2);
}
const email = process.env.TG_EMAIL ?? '';
const password = process.env.TG_PASSWORD ?? '';

let failed = false;
function report(step, pass, details = {}) {
  if (!pass) failed = true;
  console.log(JSON.stringify({ step, pass, ...details }));
}

async function attempt(fn) {
  try {
    return { ok: true, value: await fn() };
  } catch (error) {
    return { ok: false, code: error?.errors?.[0]?.extensions?.code ?? null, data: error?.data ?? null };
  }
}

const LOGIN = 'mutation L($e: String!, $p: String!) { auth_login(email: $e, password: $p) { access_token expires refresh_token } }';
const REFRESH = 'mutation R($t: String) { auth_refresh(refresh_token: $t) { access_token expires refresh_token } }';
const LOGOUT = 'mutation O($t: String) { auth_logout(refresh_token: $t) }';

const client = createDirectus(baseUrl).with(graphql());

const wrong = await attempt(() => client.query(LOGIN, { e: email, p: `${password}-wrong` }, 'system'));
report('login_wrong_password', !wrong.ok && wrong.code === 'INVALID_CREDENTIALS', {
  ok: wrong.ok,
  code: wrong.code ?? null,
  data: wrong.data,
});

const login = await attempt(() => client.query(LOGIN, { e: email, p: password }, 'system'));
const tokens = login.ok ? login.value.auth_login : null;
report('login', login.ok && typeof tokens?.access_token === 'string' && tokens.expires === '900000', {
  ok: login.ok,
  expires: tokens?.expires ?? null,
  refresh_token: typeof tokens?.refresh_token === 'string',
});
if (!tokens) process.exit(1);

const authed = createDirectus(baseUrl).with(staticToken(tokens.access_token)).with(graphql());
const ping = await attempt(() => authed.query('{ server_ping }', {}, 'system'));
report('authenticated_query', ping.ok && ping.value.server_ping === 'pong', { ok: ping.ok });

const refreshed = await attempt(() => client.query(REFRESH, { t: tokens.refresh_token }, 'system'));
const next = refreshed.ok ? refreshed.value.auth_refresh : null;
report('refresh', refreshed.ok && next?.refresh_token !== tokens.refresh_token, {
  ok: refreshed.ok,
  expires: next?.expires ?? null,
  rotated: Boolean(next && next.refresh_token !== tokens.refresh_token),
});

const reused = await attempt(() => client.query(REFRESH, { t: tokens.refresh_token }, 'system'));
report('refresh_with_rotated_token', !reused.ok && reused.code === 'INVALID_CREDENTIALS', {
  ok: reused.ok,
  code: reused.code ?? null,
});

const out = await attempt(() => client.query(LOGOUT, { t: next?.refresh_token }, 'system'));
report('logout', out.ok && out.value.auth_logout === true, { ok: out.ok });

const after = await attempt(() => client.query(REFRESH, { t: next?.refresh_token }, 'system'));
report('refresh_after_logout', !after.ok && after.code === 'INVALID_CREDENTIALS', {
  ok: after.ok,
  code: after.code ?? null,
});

const invalid = await attempt(() => client.query('mutation { auth_login(email: "x@y.z") { expires } }', {}, 'system'));
report('validation_error', !invalid.ok && invalid.code === 'GRAPHQL_VALIDATION', {
  ok: invalid.ok,
  code: invalid.code ?? null,
});

process.exit(failed ? 1 : 0);
