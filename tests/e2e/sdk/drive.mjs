// Drives the official @directus/sdk against a tokenguard server, the way an app would.
//
//   node drive.mjs <json|cookie|session|static> <base url>
//
// Credentials come from the environment, never the command line: TG_EMAIL, TG_PASSWORD
// (login modes) and TG_STATIC_TOKEN (static mode). Prints one JSON line per step:
//   {"mode", "step", "pass", ...details}
// and exits 1 if any step did not behave as a Directus server makes it behave. Token and
// cookie values are never printed, only facts about them.

import { authentication, createDirectus, readMe, rest, staticToken } from '@directus/sdk';

const [mode, baseUrl] = process.argv.slice(2);
const MODES = ['json', 'cookie', 'session', 'static'];
if (!MODES.includes(mode) || !baseUrl) {
  console.error(`usage: node drive.mjs <${MODES.join('|')}> <base url>`);
  process.exit(2);
}
const email = process.env.TG_EMAIL ?? '';
const password = process.env.TG_PASSWORD ?? '';

let failed = false;
function report(step, pass, details = {}) {
  if (!pass) failed = true;
  console.log(JSON.stringify({ mode, step, pass, ...details }));
}

// --- a tiny cookie jar: what a browser does for `credentials: 'include'` -----------------

function parseSetCookie(line) {
  const [pair, ...attrs] = line.split(';');
  const eq = pair.indexOf('=');
  const cookie = { name: pair.slice(0, eq).trim(), value: pair.slice(eq + 1).trim() };
  for (const attr of attrs) {
    const [key, ...rest] = attr.trim().split('=');
    cookie[key.toLowerCase()] = rest.length ? rest.join('=') : true;
  }
  return cookie;
}

function cookieJar(initial = {}) {
  const jar = new Map(Object.entries(initial));
  const events = []; // Set-Cookie facts seen since the last take()
  const fetchWithJar = async (input, init = {}) => {
    const headers = new Headers(init.headers ?? {});
    // Like a browser on a cross-origin call: cookies go only with credentials: 'include'.
    if (init.credentials === 'include' && jar.size) {
      headers.set('cookie', [...jar].map(([k, v]) => `${k}=${v}`).join('; '));
    }
    const response = await fetch(input, { ...init, headers });
    // getSetCookie() keeps each Set-Cookie apart; very old Node lacks it, so fall back on
    // splitting the joined header before each `name=` that follows a comma.
    const setCookies = response.headers.getSetCookie?.()
      ?? (response.headers.get('set-cookie')?.split(/,(?=\s*[^;=,\s]+=)/) ?? []);
    for (const line of setCookies) {
      const c = parseSetCookie(line);
      const expired =
        c['max-age'] !== undefined ? Number(c['max-age']) <= 0
          : c.expires !== undefined ? Date.parse(c.expires) <= Date.now() : false;
      // An empty value clears too: Directus "clears" with an empty cookie that has not expired.
      const cleared = expired || c.value === '';
      if (cleared) jar.delete(c.name);
      else jar.set(c.name, c.value);
      events.push({
        name: c.name,
        cleared,
        http_only: c.httponly === true,
        same_site: typeof c.samesite === 'string' ? c.samesite.toLowerCase() : null,
        path: c.path ?? null,
      });
    }
    return response;
  };
  return {
    fetch: fetchWithJar,
    get: (name) => jar.get(name),
    names: () => [...jar.keys()].sort(),
    take: () => events.splice(0, events.length),
  };
}

// The SDK rejects with {message, errors, response}; keep what a test can assert on.
function failure(error) {
  return {
    status: error?.response?.status ?? null,
    code: error?.errors?.[0]?.extensions?.code ?? null,
    message: error?.errors?.[0]?.message ?? String(error?.message ?? error),
  };
}

async function attempt(fn) {
  try {
    return { ok: true, value: await fn() };
  } catch (error) {
    return { ok: false, error: failure(error) };
  }
}

// A step that must succeed; `check(value)` returns [pass, details].
async function expectOk(step, fn, check = () => [true, {}]) {
  const r = await attempt(fn);
  if (!r.ok) {
    report(step, false, { ok: false, ...r.error });
    return undefined;
  }
  const [pass, details] = check(r.value);
  report(step, pass, { ok: true, ...details });
  return r.value;
}

// A step that must fail with this HTTP status and Directus error code.
async function expectError(step, fn, status, code, extra = () => ({})) {
  const r = await attempt(fn);
  if (r.ok) {
    report(step, false, { ok: true });
    return;
  }
  const more = extra();
  report(step, r.error.status === status && r.error.code === code && more.pass !== false, {
    ok: false,
    ...r.error,
    ...more,
  });
}

const meCheck = (me) => [me?.email?.toLowerCase() === email.toLowerCase(), { email: me?.email ?? null }];

// --- the flows -----------------------------------------------------------------------------

async function staticFlow() {
  const client = createDirectus(baseUrl).with(staticToken(process.env.TG_STATIC_TOKEN ?? '')).with(rest());
  await expectOk('read_me', () => client.request(readMe()), meCheck);
  const wrong = createDirectus(baseUrl).with(staticToken('not-the-right-static-token-0123456789')).with(rest());
  await expectError('read_me_wrong_token', () => wrong.request(readMe()), 401, 'INVALID_CREDENTIALS');
}

// Storage the SDK reads its tokens from; exposed so that a stale token can be replayed.
function memoryStorage(initial = null) {
  let data = initial;
  return { get: async () => data, set: async (value) => { data = value; } };
}

function loginClient(jar, storage = memoryStorage()) {
  // `credentials: 'include'` on both, as the SDK docs say for cookie and session modes.
  return createDirectus(baseUrl, { globals: { fetch: jar.fetch } })
    .with(authentication(mode, { credentials: 'include', storage }))
    .with(rest({ credentials: 'include' }));
}

const COOKIE = { cookie: 'directus_refresh_token', session: 'directus_session_token' };

async function loginFlow() {
  const jar = cookieJar();
  const storage = memoryStorage();
  const client = loginClient(jar, storage);
  const cookieName = COOKIE[mode];

  await expectError(
    'login_wrong_password',
    () => client.login({ email, password: `${password}-wrong` }),
    401,
    'INVALID_CREDENTIALS',
  );
  jar.take();

  const login = await expectOk('login', () => client.login({ email, password }), (data) => {
    const cookies = jar.take();
    const details = {
      expires: data?.expires ?? null,
      access_token: typeof data?.access_token === 'string',
      refresh_token: typeof data?.refresh_token === 'string',
      cookies,
      jar: jar.names(),
    };
    const wanted = {
      json: details.access_token && details.refresh_token && cookies.length === 0,
      cookie: details.access_token && !details.refresh_token && jar.get(cookieName)?.length === 64,
      session: !details.access_token && !details.refresh_token && Boolean(jar.get(cookieName)),
    }[mode];
    return [Boolean(wanted) && typeof details.expires === 'number', details];
  });
  if (login === undefined) return;

  await expectOk('read_me', () => client.request(readMe()), meCheck);

  const before = { stored: (await storage.get())?.refresh_token, cookie: jar.get(cookieName) };
  await expectOk('refresh', () => client.refresh(), (data) => {
    const cookies = jar.take();
    const after = { stored: data?.refresh_token, cookie: jar.get(cookieName) };
    const details = {
      expires: data?.expires ?? null,
      access_token: typeof data?.access_token === 'string',
      refresh_token_rotated: mode === 'json' ? Boolean(after.stored) && after.stored !== before.stored : null,
      cookie_rotated: cookieName ? Boolean(after.cookie) && after.cookie !== before.cookie : null,
      cookies,
    };
    const pass = mode === 'json' ? details.refresh_token_rotated : details.cookie_rotated;
    return [Boolean(pass), details];
  });

  await expectOk('read_me_after_refresh', () => client.request(readMe()), meCheck);

  // json and cookie modes rotate with no grace: the refresh token used above is dead now.
  if (mode === 'json') {
    const stale = loginClient(cookieJar(), memoryStorage({ refresh_token: before.stored }));
    await expectError('refresh_with_rotated_token', () => stale.refresh(), 401, 'INVALID_CREDENTIALS');
  } else if (mode === 'cookie') {
    const stale = loginClient(cookieJar({ [cookieName]: before.cookie }));
    await expectError('refresh_with_rotated_token', () => stale.refresh(), 401, 'INVALID_CREDENTIALS');
  }

  const last = { stored: (await storage.get())?.refresh_token, cookie: jar.get(cookieName) };
  await expectOk('logout', () => client.logout(), () => {
    const cookies = jar.take();
    const cleared = cookieName ? cookies.some((c) => c.name === cookieName && c.cleared) : cookies.length === 0;
    return [cleared && !jar.get(cookieName ?? ''), { cookies, jar: jar.names() }];
  });

  await expectError('read_me_after_logout', () => client.request(readMe()), 401, 'INVALID_CREDENTIALS');

  // Logout is server-side: replaying what the client held before it must fail too.
  if (mode === 'session') {
    const replay = cookieJar({ [cookieName]: last.cookie });
    const stale = loginClient(replay);
    await expectError(
      'read_me_with_logged_out_session',
      () => stale.request(readMe()),
      401,
      'INVALID_CREDENTIALS',
      () => {
        const cookies = replay.take();
        return { cookies, pass: cookies.some((c) => c.name === cookieName && c.cleared) };
      },
    );
  } else if (mode === 'json') {
    const stale = loginClient(cookieJar(), memoryStorage({ refresh_token: last.stored }));
    await expectError('refresh_after_logout', () => stale.refresh(), 401, 'INVALID_CREDENTIALS');
  } else {
    const stale = loginClient(cookieJar({ [cookieName]: last.cookie }));
    await expectError('refresh_after_logout', () => stale.refresh(), 401, 'INVALID_CREDENTIALS');
  }
}

try {
  await (mode === 'static' ? staticFlow() : loginFlow());
} catch (error) {
  report('unexpected', false, { message: String(error?.stack ?? error) });
}
// The SDK arms an auto-refresh timer after login; do not wait for it.
process.exit(failed ? 1 : 0);
