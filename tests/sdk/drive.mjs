// Drives the official @trigger.dev/sdk against a live waitpoints server and prints what it
// returned as one JSON line prefixed with "SDK_RESULT ". tests/sdk/test_sdk_compat.py starts the
// server, seeds tokens, runs this script and asserts on the report (it also compares the list
// results with the database). Every step catches its own error, so one failure does not hide
// the others; a step that throws is reported as {ok: false, error: {...}}.
//
// Environment: BASE_URL (the live server), TRIGGER_KEY (a secret key of the test environment),
// RUN_TAG (a tag unique to this run), LIST_QUERIES (JSON: name → listTokens params; a value
// {"$date": <epoch ms>} becomes a Date).

import { readFileSync } from "node:fs";
import { configure, wait, auth } from "@trigger.dev/sdk";

const baseURL = required("BASE_URL");
const secretKey = required("TRIGGER_KEY");
const runTag = required("RUN_TAG");
const listQueries = JSON.parse(process.env.LIST_QUERIES ?? "{}", (_key, value) =>
  value && typeof value === "object" && "$date" in value ? new Date(value.$date) : value,
);

configure({ baseURL, accessToken: secretKey });

const sdkPackage = JSON.parse(
  readFileSync(new URL("./node_modules/@trigger.dev/sdk/package.json", import.meta.url)),
);
const report = { sdkVersion: sdkPackage.version, baseURL, steps: {} };

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`drive.mjs: environment variable ${name} is required`);
    process.exit(2);
  }
  return value;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// JSON-safe copy that keeps the types the SDK produced visible: Date → {"$date": iso},
// Error → {"$error": {...}}, undefined values inside objects are dropped (as JSON does).
function plain(value) {
  if (value instanceof Date) return { $date: Number.isNaN(value.getTime()) ? "Invalid Date" : value.toISOString() };
  if (value instanceof Error) return { $error: describeError(value) };
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => [k, plain(v)]),
    );
  }
  return value;
}

function describeError(error) {
  return {
    name: error.name,
    constructor: error.constructor?.name,
    message: String(error.message).slice(0, 2000),
    status: error.status,
    error: error.error,
  };
}

async function step(name, fn) {
  const started = performance.now();
  try {
    const value = await fn();
    report.steps[name] = { ok: true, ms: Math.round(performance.now() - started), value: plain(value) };
    return value;
  } catch (error) {
    report.steps[name] = {
      ok: false,
      ms: Math.round(performance.now() - started),
      error: describeError(error),
    };
    return undefined;
  }
}

async function postJson(url, body, headers = {}) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = { $text: text.slice(0, 500) };
  }
  return { status: response.status, body: json };
}

// Walks the pages by hand (page sizes and cursors) and, separately, with `for await`.
async function listAll(params) {
  const pages = [];
  let page = await wait.listTokens(params);
  for (;;) {
    pages.push({ ids: page.data.map((t) => t.id), next: page.pagination.next ?? null });
    if (!page.hasNextPage()) break;
    page = await page.getNextPage();
    if (pages.length > 100) throw new Error("more than 100 pages: pagination does not end");
  }
  const ids = [];
  const items = [];
  for await (const token of wait.listTokens(params)) {
    ids.push(token.id);
    items.push(token);
  }
  return { ids, pages, first: items[0] };
}

const idempotencyKey = `idem-${runTag}`;

// 1. Create with every option, then again with the same idempotency key.
const full = await step("createFull", () =>
  wait.createToken({
    timeout: "10m",
    tags: [runTag, "user:1234"],
    idempotencyKey,
    idempotencyKeyTTL: "1h",
  }),
);
await step("createCached", () =>
  wait.createToken({
    timeout: "10m",
    tags: [runTag, "user:1234"],
    idempotencyKey,
    idempotencyKeyTTL: "1h",
  }),
);

// 2. A Date timeout and a single string tag; no options at all.
const dateTimeout = new Date(Date.now() + 2 * 3600 * 1000);
report.dateTimeout = dateTimeout.toISOString();
await step("createDate", () => wait.createToken({ timeout: dateTimeout, tags: `${runTag}-single` }));
await step("createEmpty", () => wait.createToken());

// 3. Retrieve (by id and by object).
if (full) {
  await step("retrieveWaiting", () => wait.retrieveToken(full.id));
  await step("retrieveByObject", () => wait.retrieveToken({ id: full.id }));
}

// 4. Complete with an object, then read it back (super+json decoded by the SDK).
if (full) {
  await step("completeObject", () =>
    wait.completeToken(full.id, { status: "approved", comment: "LGTM" }),
  );
  await step("retrieveCompleted", () => wait.retrieveToken(full.id));
  await step("completeAgain", () => wait.completeToken(full.id, { status: "rejected" }));
  await step("retrieveAfterSecondComplete", () => wait.retrieveToken(full.id));
}

// 5. Complete with a string, and with no data.
const stringToken = await step("createForString", () => wait.createToken({ tags: [runTag] }));
if (stringToken) {
  await step("completeString", () => wait.completeToken({ id: stringToken.id }, "plain text"));
  await step("retrieveString", () => wait.retrieveToken(stringToken.id));
}
const emptyToken = await step("createForNoData", () => wait.createToken({ tags: [runTag] }));
if (emptyToken) {
  await step("completeNoData", () => wait.completeToken(emptyToken.id));
  await step("retrieveNoData", () => wait.retrieveToken(emptyToken.id));
}

// 6. Complete with the public access token returned by createToken.
const patToken = await step("createForPat", () => wait.createToken({ tags: [runTag] }));
if (patToken) {
  await step("completeWithPat", () =>
    auth.withAuth({ accessToken: patToken.publicAccessToken, baseURL }, () =>
      wait.completeToken(patToken.id, { via: "publicAccessToken" }),
    ),
  );
  await step("retrievePat", () => wait.retrieveToken(patToken.id));
}

// 7. auth.createPublicToken (signed locally with the secret key after POST /auth/jwt/claims).
const scopedToken = await step("createForPublicToken", () => wait.createToken({ tags: [runTag] }));
const otherToken = await step("createOther", () => wait.createToken({ tags: [runTag] }));
if (scopedToken && otherToken) {
  const publicToken = await step("createPublicToken", () =>
    auth.createPublicToken({ scopes: { write: { waitpoints: [scopedToken.id] } } }),
  );
  if (publicToken) {
    await step("completeWithPublicToken", () =>
      auth.withAuth({ accessToken: publicToken, baseURL }, () =>
        wait.completeToken(scopedToken.id, { via: "createPublicToken" }),
      ),
    );
    await step("retrievePublicToken", () => wait.retrieveToken(scopedToken.id));
    // Scoped to another token: must be refused at once (4xx, no retries).
    await step("completeOtherWithPublicToken", () =>
      auth.withAuth({ accessToken: publicToken, baseURL }, () =>
        wait.completeToken(otherToken.id, { via: "wrong scope" }),
      ),
    );
    await step("retrieveOther", () => wait.retrieveToken(otherToken.id));
  }
}

// 8. The callback URL: a plain POST with a JSON body, no API key.
const callbackToken = await step("createForCallback", () => wait.createToken({ tags: [runTag] }));
if (callbackToken) {
  await step("callbackPost", () =>
    postJson(callbackToken.url, { approved: true, by: "webhook", items: [1, 2, 3] }),
  );
  await step("retrieveCallback", () => wait.retrieveToken(callbackToken.id));
}

// 9. An unknown id: a 404 at once, not 5 retried 500s over ~9 s.
await step("retrieveUnknown", () => wait.retrieveToken("waitpoint_doesnotexist0000000000"));

// 10. Timeout after 1 s: read back after 1.5 s without any worker having run.
const shortToken = await step("createShort", () =>
  wait.createToken({ timeout: "1s", tags: [runTag, `${runTag}-short`] }),
);
// 10b. Our onTimeout (passed through as an unknown option): the deadline rule rejects it, and
// the SDK reads a completion whose output is a decision, as a person's would be.
const ruledToken = await step("createDeadlineRejects", () =>
  wait.createToken({ timeout: "1s", onTimeout: "reject", tags: [runTag, `${runTag}-ruled`] }),
);
if (shortToken) {
  await sleep(1500);
  if (ruledToken) await step("retrieveDecidedByDeadline", () => wait.retrieveToken(ruledToken.id));
  await step("retrieveTimedOut", () => wait.retrieveToken(shortToken.id));
  await step("completeTimedOut", () => wait.completeToken(shortToken.id, { late: true }));
  await step("retrieveTimedOutAfterComplete", () => wait.retrieveToken(shortToken.id));
}

// 11. Cancel (our extension) with plain fetch, then read it with the SDK.
const cancelToken = await step("createForCancel", () =>
  wait.createToken({ tags: [runTag, `${runTag}-cancel`] }),
);
if (cancelToken) {
  await step("cancelPost", () =>
    postJson(
      `${baseURL}/api/v1/waitpoints/tokens/${cancelToken.id}/cancel`,
      { reason: "x" },
      { authorization: `Bearer ${secretKey}` },
    ),
  );
  await step("retrieveCancelled", () => wait.retrieveToken(cancelToken.id));
  await step("completeCancelled", () => wait.completeToken(cancelToken.id, { late: true }));
}

// 12. Lists, last, so that nothing changes between them and the test's database comparison.
report.lists = {};
for (const [name, params] of Object.entries(listQueries)) {
  const started = performance.now();
  try {
    const result = await listAll(params);
    report.lists[name] = { ok: true, ms: Math.round(performance.now() - started), ...plain(result) };
  } catch (error) {
    report.lists[name] = { ok: false, error: describeError(error) };
  }
}

console.log(`SDK_RESULT ${JSON.stringify(report)}`);
