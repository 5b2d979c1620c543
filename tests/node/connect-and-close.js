// Sessions that close right after the engine opens, with the real socket.io-client 4.8: the
// client writes its namespace CONNECT on open and the engine is closed just after it.
// usage: node connect-and-close.js URL COOKIE COUNT CONCURRENCY TRANSPORT
// Prints {"opened": N} when every session has closed.
const { Manager } = require("socket.io-client");

const [url, cookie, countArg, concurrencyArg, transport] = process.argv.slice(2);
const count = Number(countArg);
const concurrency = Number(concurrencyArg);
let started = 0;
let opened = 0;

const once = () =>
  new Promise((resolve) => {
    const manager = new Manager(url, {
      path: "/ws",
      transports: [transport || "websocket"],
      reconnection: false,
      extraHeaders: { cookie },
    });
    const socket = manager.socket("/");
    // Registered after the socket's own "open" listener, which sends CONNECT first.
    manager.on("open", () => {
      opened += 1;
      manager.engine.close();
    });
    let finished = false;
    const done = () => {
      if (finished) return;
      finished = true;
      socket.close();
      resolve();
    };
    manager.on("close", done);
    manager.on("error", done);
    setTimeout(done, 5000);
  });

const worker = async () => {
  while (started < count) {
    started += 1;
    await once();
  }
};

Promise.all(Array.from({ length: concurrency }, worker)).then(() => {
  process.stdout.write(JSON.stringify({ opened }) + "\n");
  process.exit(0);
});
