// A socket.io 4.8 server at /ws that loses messages on purpose, so the load test's delivery
// accounting can be checked against a known loss. Production-like otherwise: no acks, rooms are
// chat ids, POST /api/chats/:id/messages broadcasts serverMessage to the room.
// Sockets whose scmarket.sid cookie starts with "deaf-" receive their first serverMessage (which
// proves to a client that its join landed) and lose every later one.
// Prints `listening PORT` once it accepts connections; exits when stdin closes.
"use strict";

const http = require("http");
const { randomUUID } = require("crypto");
const { Server } = require("socket.io");

const server = http.createServer((req, res) => {
  const m = req.method === "POST" && req.url.match(/^\/api\/chats\/([0-9a-f-]{36})\/messages$/);
  if (!m) {
    res.writeHead(404).end();
    return;
  }
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    const chatId = m[1];
    const content = JSON.parse(body).content;
    const message = { message_id: randomUUID(), content, author: "someone", chat_id: chatId, timestamp: new Date().toJSON() };
    for (const socket of io.sockets.sockets.values()) {
      if (!socket.rooms.has(chatId) || (socket.data.deaf && socket.data.heard)) continue;
      socket.data.heard = true;
      socket.emit("serverMessage", message);
    }
    res.writeHead(200, { "content-type": "application/json" }).end('{"data":{"result":"Success"}}');
  });
});

const io = new Server(server, { path: "/ws" });
io.on("connection", (socket) => {
  const cookie = socket.handshake.headers.cookie || "";
  socket.data.deaf = /scmarket\.sid=deaf-/.test(cookie);
  socket.on("clientJoinRoom", (arg) => arg && typeof arg.chat_id === "string" && socket.join(arg.chat_id));
  socket.on("clientLeaveRoom", (arg) => arg && typeof arg.chat_id === "string" && socket.leave(arg.chat_id));
});

server.listen(0, "127.0.0.1", () => process.stdout.write(`listening ${server.address().port}\n`));
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
