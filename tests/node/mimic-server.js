// A real socket.io 4.8 server that behaves like SC Market production on the realtime layer,
// for the client interop tests and client measurements. Not a reference implementation: it has
// fixed users and chats so tests can name them.
//
// Usage: node mimic-server.js [--port N] [--allowed-origin URL]... [--ping-interval MS]
//                             [--ping-timeout MS] [--stdin-lifeline]
// Prints `listening PORT` on stdout once it accepts connections.
//
// Cookies it accepts (everything else is refused like production: HTTP 400 on the handshake):
//   scmarket.sid=s%3Asid-<user>.sig      express-session style
//   scmarket.access=jwt-<user>           stands in for the HS256 JWT
// Users: alice, bob, carol. Chats:
//   11111111-1111-4111-8111-111111111111  alice, bob
//   22222222-2222-4222-8222-222222222222  carol
//
// Test-only routes (no auth): POST /test/emit {event, args, binary?} emits to every socket;
// POST /test/ask {event, args} emits with an ack to every socket and answers with the replies;
// POST /test/disconnect-all closes every socket from the server side.

"use strict";

const http = require("http");
const { Server } = require("socket.io");

const args = process.argv.slice(2);
function flag(name, fallback) {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
}
function flags(name) {
  const out = [];
  args.forEach((a, i) => {
    if (a === name && i + 1 < args.length) out.push(args[i + 1]);
  });
  return out;
}

const USERS = ["alice", "bob", "carol"];
const CHATS = {
  "11111111-1111-4111-8111-111111111111": ["alice", "bob"],
  "22222222-2222-4222-8222-222222222222": ["carol"],
};
const allowedOrigins = flags("--allowed-origin");

function parseCookies(header) {
  const out = {};
  for (const part of (header || "").split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    out[part.slice(0, eq).trim()] = decodeURIComponent(part.slice(eq + 1).trim());
  }
  return out;
}

// Production order: the access JWT first, then the session cookie.
function userFor(req) {
  const c = parseCookies(req.headers.cookie);
  const jwt = c["scmarket.access"];
  if (jwt && jwt.startsWith("jwt-") && USERS.includes(jwt.slice(4))) return jwt.slice(4);
  const sid = c["scmarket.sid"];
  const m = sid && /^s:sid-([a-z]+)\.sig$/.exec(sid);
  if (m && USERS.includes(m[1])) return m[1];
  return null;
}

let nextMessage = 1;
function message(chatId, author, content) {
  const n = String(nextMessage++).padStart(12, "0");
  return {
    message_id: `00000000-0000-4000-8000-${n}`,
    content,
    author,
    chat_id: chatId,
    timestamp: new Date().toISOString(),
  };
}

function readBody(req) {
  return new Promise((resolve) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      try {
        resolve(JSON.parse(body || "{}"));
      } catch (e) {
        resolve(null);
      }
    });
  });
}

function send(res, status, value) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(value));
}

const server = http.createServer();
const io = new Server(server, {
  path: "/ws",
  pingInterval: Number(flag("--ping-interval", 25000)),
  pingTimeout: Number(flag("--ping-timeout", 20000)),
  // Origin check as the reference server does it (production never enforces one): engine.io
  // answers a refused allowRequest with HTTP 403.
  allowRequest: (req, cb) => {
    const origin = req.headers.origin;
    cb(null, !origin || allowedOrigins.length === 0 || allowedOrigins.includes(origin));
  },
});

// Production authenticates in an engine middleware; a failing middleware is what makes engine.io
// answer HTTP 400 {"code":3,"message":"Bad request"} (plain 400 on a websocket upgrade). Only the
// first request of a session (no sid) is checked.
io.engine.use((req, res, next) => {
  const isHandshake = req._query && req._query.sid === undefined;
  if (!isHandshake) return next();
  const user = userFor(req);
  if (!user) return next(new Error("unauthorized"));
  req.user = user;
  next();
});

// Not in production (it ignores the auth payload): a namespace middleware that refuses when the
// Socket.IO auth payload asks for it, so tests can see a CONNECT_ERROR and prove the payload arrives.
io.use((socket, next) => {
  if (socket.handshake.auth && socket.handshake.auth.refuse) return next(new Error("refused by auth middleware"));
  next();
});

io.on("connection", (socket) => {
  const user = socket.request.user;
  for (const [chatId, members] of Object.entries(CHATS)) {
    if (members.includes(user)) socket.join(chatId);
  }
  // Production never acknowledges, and ignores bad or refused requests silently.
  socket.on("clientJoinRoom", (data) => {
    const chatId = data && typeof data.chat_id === "string" ? data.chat_id : null;
    if (chatId && CHATS[chatId] && CHATS[chatId].includes(user)) socket.join(chatId);
  });
  socket.on("clientLeaveRoom", (data) => {
    const chatId = data && typeof data.chat_id === "string" ? data.chat_id : null;
    if (chatId) socket.leave(chatId);
  });
  // Not in production: an echo with acknowledgement, for client measurements.
  socket.on("echo", (...a) => {
    const ack = typeof a[a.length - 1] === "function" ? a.pop() : null;
    if (ack) ack(...a);
  });
});

server.on("request", async (req, res) => {
  if (req.url.startsWith("/ws/")) return; // engine.io answers these
  const url = new URL(req.url, "http://localhost");
  const post = url.pathname.match(/^\/api\/chats\/([^/]+)\/messages$/);
  if (req.method === "POST" && post) {
    const user = userFor(req);
    const body = await readBody(req);
    if (!user) return send(res, 401, { error: { code: "unauthorized", message: "Not logged in" } });
    const chatId = post[1];
    if (!CHATS[chatId]) return send(res, 404, { error: { code: "not_found", message: "Chat not found" } });
    if (!CHATS[chatId].includes(user))
      return send(res, 403, { error: { code: "forbidden", message: "Not authorized" } });
    if (!body || typeof body.content !== "string")
      return send(res, 400, { error: { code: "validation", message: "content is required" } });
    io.to(chatId).emit("serverMessage", message(chatId, user, body.content));
    return send(res, 200, { data: { result: "Success" } });
  }
  if (req.method === "POST" && url.pathname === "/test/emit") {
    const body = (await readBody(req)) || {};
    const a = Array.isArray(body.args) ? body.args : [];
    if (body.binary) a.push(Buffer.from([1, 2, 3, 4]));
    io.emit(body.event || "testEvent", ...a);
    return send(res, 200, { ok: true });
  }
  if (req.method === "POST" && url.pathname === "/test/ask") {
    const body = (await readBody(req)) || {};
    const a = Array.isArray(body.args) ? body.args : [];
    try {
      const replies = await io.timeout(2000).emitWithAck(body.event || "question", ...a);
      return send(res, 200, { replies });
    } catch (e) {
      return send(res, 504, { error: String(e) });
    }
  }
  if (req.method === "POST" && url.pathname === "/test/disconnect-all") {
    io.disconnectSockets(true);
    return send(res, 200, { ok: true });
  }
  send(res, 404, { error: { code: "not_found", message: "no such route" } });
});

server.listen(Number(flag("--port", 0)), "127.0.0.1", () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
process.on("SIGTERM", () => process.exit(0));
// Tests pass --stdin-lifeline so the server ends with the test process even if it is killed.
if (args.includes("--stdin-lifeline")) {
  process.stdin.on("end", () => process.exit(0));
  process.stdin.resume();
}
