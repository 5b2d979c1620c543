// The `--system-message-command` of the check tests (tests/check.rs): stores one message in the
// chat SCMARKET_WS_CHECK_CHAT of the server at SCMARKET_WS_CHECK_URL by another way than a
// client's post, as production's automatic order and offer messages are stored.
//   node check-system-message.js twin    the twin's test route: a system message (author null),
//                                        emitted only with unemitted-messages fixed
//   node check-system-message.js serve   serve stores only what REST posts: bob posts it
// Prints the server's answer; exits 1 on any failure.

"use strict";

const base = process.env.SCMARKET_WS_CHECK_URL;
const chat = process.env.SCMARKET_WS_CHECK_CHAT;
const json = { "content-type": "application/json" };

async function call(path, body, headers = {}) {
  const response = await fetch(`${base}${path}`, { method: "POST", headers: { ...json, ...headers }, body: JSON.stringify(body) });
  const text = await response.text();
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status} ${text}`);
  return JSON.parse(text);
}

async function main() {
  if (!base || !chat) throw new Error("SCMARKET_WS_CHECK_URL and SCMARKET_WS_CHECK_CHAT must be set");
  const mode = process.argv[2];
  if (mode === "twin") {
    console.log(JSON.stringify(await call("/test/insert-message", { chat_id: chat, content: "order status changed" })));
  } else if (mode === "serve") {
    const login = await call("/api/dev/login", { username: "bob" });
    const cookie = login.data.session_cookie;
    console.log(JSON.stringify(await call(`/api/chats/${chat}/messages`, { content: "status changed, said bob" }, { cookie })));
  } else {
    throw new Error(`usage: node check-system-message.js twin|serve (got ${JSON.stringify(mode)})`);
  }
}

main().catch((e) => {
  process.stderr.write(`check-system-message: ${e.message}\n`);
  process.exit(1);
});
