// The production web client's connection, with the real socket.io-client 4.8 from npm:
// path /ws, withCredentials, the given transports, auth in the cookie only.
// Prints one JSON line per step on stdout; the Rust test reads them.
// usage: node web-client.js URL COOKIE CHAT_ID TRANSPORTS_JSON
const { io } = require("socket.io-client");

const [url, cookie, chatId, transportsJson] = process.argv.slice(2);
const transports = JSON.parse(transportsJson || '["websocket","polling"]');
const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const expectUpgrade = transports[0] === "polling" && transports.includes("websocket");

const socket = io(url, {
  path: "/ws",
  withCredentials: true,
  transports,
  reconnection: false,
  reconnectionDelay: 4000,
  // Lower-case on purpose: in Node, engine.io-client merges its withCredentials cookie jar into
  // `headers.cookie` for the websocket transport, which would shadow a `Cookie` key.
  extraHeaders: cookie ? { cookie } : {},
});

const deadline = setTimeout(() => {
  say({ event: "timeout" });
  process.exit(1);
}, 10000);

let joined = false;
let upgraded = !expectUpgrade;
const maybeReady = () => {
  if (joined && upgraded) say({ event: "ready", transport: socket.io.engine.transport.name });
};

socket.on("connect", async () => {
  say({ event: "connect", transport: socket.io.engine.transport.name });
  // Production's client never asks for an ack; the reference server answers when asked.
  socket.emit("clientJoinRoom", { chat_id: chatId });
  const ack = await socket.timeout(5000).emitWithAck("clientJoinRoom", { chat_id: chatId });
  say({ event: "join_ack", ack });
  const refused = await socket.timeout(5000).emitWithAck("clientJoinRoom", { chat_id: "not-a-uuid" });
  say({ event: "bad_join_ack", ack: refused });
  joined = true;
  maybeReady();
});
socket.io.engine.on("upgrade", (transport) => {
  say({ event: "upgrade", transport: transport.name });
  upgraded = true;
  maybeReady();
});
socket.on("connect_error", (err) => {
  say({ event: "connect_error", message: err.message, description: String(err.description && (err.description.message || err.description)) });
  clearTimeout(deadline);
  socket.close();
  process.exit(0);
});
// A clean disconnect: the DISCONNECT packet and the transport's close reach the server before
// the process ends (exiting at once could cut them off).
const closeAndExit = () => {
  socket.io.engine.once("close", () => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
  socket.close();
};
socket.on("serverMessage", (message) => {
  say({ event: "serverMessage", message });
  clearTimeout(deadline);
  closeAndExit();
});
