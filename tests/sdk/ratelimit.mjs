// Issue 9 #5: does the official SDK back off on our 429 until x-ratelimit-reset?
// Calls wait.retrieveToken COUNT times in a row against a server whose per-key limit is small,
// and records every HTTP exchange the SDK makes (global fetch is wrapped): status, when it was
// sent and answered (epoch ms), and the x-ratelimit-reset header. Prints one "SDK_RESULT " line.
//
// Environment: BASE_URL, TRIGGER_KEY, TOKEN_ID, COUNT.

import { configure, wait } from "@trigger.dev/sdk";

const exchanges = [];
const realFetch = globalThis.fetch;
globalThis.fetch = async (input, init) => {
  const sentAt = Date.now();
  const response = await realFetch(input, init);
  exchanges.push({
    sentAt,
    answeredAt: Date.now(),
    status: response.status,
    reset: response.headers.get("x-ratelimit-reset"),
    retryAfter: response.headers.get("retry-after"),
  });
  return response;
};

configure({ baseURL: process.env.BASE_URL, accessToken: process.env.TRIGGER_KEY });

const results = [];
for (let i = 0; i < Number(process.env.COUNT); i++) {
  try {
    const token = await wait.retrieveToken(process.env.TOKEN_ID);
    results.push({ ok: true, status: token.status });
  } catch (error) {
    results.push({ ok: false, name: error.name, status: error.status, message: String(error.message) });
  }
}
console.log("SDK_RESULT " + JSON.stringify({ results, exchanges }));
