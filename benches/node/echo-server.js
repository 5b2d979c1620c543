// Node socket.io 4.8 echo server for the "ack-echo" benchmark (docs/BENCHMARKS.md).
// Path /ws, any cookie (or none) accepted, `echo` acknowledged with its argument.
// Uses the socket.io pinned in tests/node (run `npm ci` there first).
// Prints `listening PORT` once it accepts connections; PORT from argv[2] (default 0: any).
"use strict";

const http = require("http");
const { Server } = require("../../tests/node/node_modules/socket.io");

const server = http.createServer((req, res) => res.writeHead(404).end());
// The defaults (pingInterval 25 s) keep 15,000 idle sessions cheap for the hold benchmark.
const io = new Server(server, { path: "/ws" });
io.on("connection", (socket) => {
  socket.on("echo", (arg, ack) => {
    if (typeof ack === "function") ack(arg);
  });
});

const port = Number(process.argv[2] || 0);
server.listen(port, "127.0.0.1", () => process.stdout.write(`listening ${server.address().port}\n`));
