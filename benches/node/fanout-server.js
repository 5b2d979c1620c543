// Node socket.io 4.8 server for the three-way benchmark (benches/three-way.sh): the routes the
// load test uses against `serve --dev` (dev login, dev chats, posting) and the room events,
// nothing else: any cookie is a user, rooms live only in socket.io's in-memory adapter.
// Uses the socket.io pinned in tests/node (package.json and lock there; `npm ci` first).
// Prints `listening PORT` once it accepts connections; PORT from argv[2] (default 0: any).
"use strict";

const http = require("http");
const crypto = require("crypto");
const { Server } = require("../../tests/node/node_modules/socket.io");

const MAX_BODY = 1_000_000;

function readJson(req, res, then) {
  let size = 0;
  const chunks = [];
  req.on("data", (chunk) => {
    size += chunk.length;
    if (size > MAX_BODY) {
      res.writeHead(413).end();
      req.destroy();
      return;
    }
    chunks.push(chunk);
  });
  req.on("end", () => {
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
    } catch {
      return send(res, 400, { error: { code: "INVALID_BODY" } });
    }
    then(body);
  });
}

function send(res, status, body) {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

let io;
const server = http.createServer((req, res) => {
  // socket.io answers its own path before this handler sees it.
  const url = req.url.split("?")[0];
  if (req.method === "GET" && url === "/healthz") return res.writeHead(200).end("ok");
  if (req.method !== "POST") return res.writeHead(404).end();
  if (url === "/api/dev/login") {
    return readJson(req, res, (body) => {
      const username = typeof body.username === "string" ? body.username : "anyone";
      send(res, 200, { data: {
        user_id: crypto.randomUUID(),
        username,
        role: "user",
        session_cookie: `scmarket.sid=${username}`,
        access_cookie: `scmarket.access=${username}`,
      } });
    });
  }
  if (url === "/api/dev/chats") {
    return readJson(req, res, () => send(res, 200, { data: { chat_id: crypto.randomUUID() } }));
  }
  const post = /^\/api\/chats\/([^/]+)\/messages$/.exec(url);
  if (post) {
    return readJson(req, res, (body) => {
      if (typeof body.content !== "string") return send(res, 400, { error: { code: "INVALID_BODY" } });
      const chatId = decodeURIComponent(post[1]).toLowerCase();
      io.to(chatId).emit("serverMessage", {
        message_id: crypto.randomUUID(),
        content: body.content,
        author: "bench",
        chat_id: chatId,
        timestamp: new Date().toISOString(),
      });
      send(res, 200, { result: "Success" });
    });
  }
  res.writeHead(404).end();
});

io = new Server(server, { path: "/ws" });
io.on("connection", (socket) => {
  socket.on("clientJoinRoom", (arg, ack) => {
    const ok = arg && typeof arg.chat_id === "string";
    if (ok) socket.join(arg.chat_id.toLowerCase());
    if (typeof ack === "function") ack(ok ? { ok: true } : { ok: false, error: "invalid_payload" });
  });
  socket.on("clientLeaveRoom", (arg, ack) => {
    if (arg && typeof arg.chat_id === "string") socket.leave(arg.chat_id.toLowerCase());
    if (typeof ack === "function") ack({ ok: true });
  });
});

const port = Number(process.argv[2] || 0);
server.listen(port, "127.0.0.1", () => process.stdout.write(`listening ${server.address().port}\n`));
