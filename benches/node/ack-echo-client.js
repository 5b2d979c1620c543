// The "ack-echo" workload as a plain socket.io-client 4.8 script, the side-by-side baseline for
// `scmarket-ws load-test benches/ack-echo.yaml` (docs/BENCHMARKS.md).
// 2000 sessions arriving at 200/s (one every 5 ms), each: connect (websocket transport, like
// load-test), 10 times { emit `echo` with ack, think 1 s }, disconnect. Records ack round trips
// in a plain array (no histogram library) and prints a one-line summary.
//
//   node benches/node/ack-echo-client.js URL [SESSIONS] [RATE]
"use strict";

const { io } = require("../../tests/node/node_modules/socket.io-client");

const url = process.argv[2] || "http://127.0.0.1:7100";
const sessions = Number(process.argv[3] || 2000);
const rate = Number(process.argv[4] || 200);
const ITERATIONS = 10;
const THINK_MS = 1000;

const acks = [];
let connected = 0, failed = 0, done = 0, ackTimeouts = 0;
const started = Date.now();

function session(vu) {
  const socket = io(url, {
    path: "/ws",
    transports: ["websocket"],
    reconnection: false,
    forceNew: true,
    extraHeaders: { cookie: "scmarket.sid=bench" },
  });
  let i = 0;
  const finish = () => {
    socket.disconnect();
    if (++done === sessions) report();
  };
  const step = () => {
    if (i++ === ITERATIONS) return finish();
    const t0 = process.hrtime.bigint();
    socket.timeout(5000).emit("echo", { vu, i }, (err) => {
      if (err) ackTimeouts++;
      else acks.push(Number(process.hrtime.bigint() - t0) / 1e6);
      setTimeout(step, THINK_MS);
    });
  };
  socket.on("connect", () => {
    connected++;
    step();
  });
  socket.on("connect_error", () => {
    failed++;
    socket.close();
    if (++done === sessions) report();
  });
}

function report() {
  acks.sort((a, b) => a - b);
  const q = (p) => (acks.length ? acks[Math.min(acks.length - 1, Math.floor(p * acks.length))].toFixed(2) : "-");
  console.log(
    `sessions ${sessions} connected ${connected} failed ${failed} acks ${acks.length} ack_timeouts ${ackTimeouts} ` +
      `ack_ms p50 ${q(0.5)} p99 ${q(0.99)} max ${q(1)} wall_s ${((Date.now() - started) / 1000).toFixed(1)}`
  );
  process.exit(0);
}

for (let vu = 0; vu < sessions; vu++) setTimeout(() => session(vu), (vu * 1000) / rate);
