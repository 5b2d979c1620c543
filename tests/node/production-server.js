// The production twin: a real socket.io 4.8 server that behaves like SC Market's production
// backend on the realtime layer wherever a client can tell, defects included, so our client
// commands, the load test and `check` can be proven against something that is not our own
// Rust `serve`. The wire contract is SCMARKET_PROTOCOL.md; the defects are named as in
// ARCHITECTURE.md's table, and `--fix NAME` turns one off. With every defect fixed it answers
// like `serve --dev` on the wire.
//
// Usage: node production-server.js [--port N] [--allowed-origin URL]... [--ping-interval MS]
//          [--ping-timeout MS] [--listener-delay MIN-MAX] [--demo FILE] [--session-secret S]
//          [--jwt-secret S] [--fix NAME]... [--stdin-lifeline]
// Prints `listening PORT` on stdout once it accepts connections (127.0.0.1 only).
// Secrets: --session-secret or SESSION_SECRET, else serve's development secret; --jwt-secret or
// JWT_SECRET, else the session secret (as production).
//
// Routes that production does not have, for tests only (no authentication):
//   POST /api/dev/login {"username"}          as `serve --dev`: a session row, a JWT, both cookies
//   POST /api/dev/chats {"participants","name"} as `serve --dev`: a group chat, answers its id
//   POST /api/dev/ban {"username","banned"}   marks the account; open sockets stay open
//   POST /test/insert-message {"chat_id","content"}  a system message, stored, not emitted
//   GET  /test/state                           {crashes, sockets, rooms: {room: members}}

"use strict";

const http = require("http");
const path = require("path");

const auth = require("./twin-auth");

// Production's defects, by their names in ARCHITECTURE.md.
const DEFECTS = [
  "crash-on-null-join",
  "no-origin-check",
  "post-after-403",
  "case-sensitive-rooms",
  "banned-users-connect",
  "open-direct-chats",
  "swallowed-errors",
  "unemitted-messages",
  "late-listeners",
];

const CLIENT_JOIN_ROOM = "clientJoinRoom";
const CLIENT_LEAVE_ROOM = "clientLeaveRoom";
const SERVER_MESSAGE = "serverMessage";
// Request bodies larger than this are refused (413) without being kept in memory.
const MAX_BODY_BYTES = 1_000_000;
const MAX_DEV_PARTICIPANTS = 50_000;

function log(line) {
  process.stderr.write(`production-server: ${line}\n`);
}

function usageError(message) {
  log(`${message}\n  usage: node production-server.js [--port N] [--allowed-origin URL]... [--ping-interval MS] [--ping-timeout MS] [--listener-delay MIN-MAX] [--demo FILE] [--session-secret S] [--jwt-secret S] [--fix NAME]... [--stdin-lifeline]`);
  process.exit(2);
}

// ---------------------------------------------------------------- command line

function parseArgs(argv) {
  const withValue = new Set([
    "--port",
    "--allowed-origin",
    "--ping-interval",
    "--ping-timeout",
    "--listener-delay",
    "--demo",
    "--session-secret",
    "--jwt-secret",
    "--fix",
  ]);
  const repeatable = new Set(["--allowed-origin", "--fix"]);
  const values = { "--allowed-origin": [], "--fix": [] };
  const switches = new Set();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--stdin-lifeline") {
      switches.add(arg);
    } else if (withValue.has(arg)) {
      if (i + 1 >= argv.length) usageError(`${arg} needs a value`);
      const value = argv[++i];
      if (repeatable.has(arg)) values[arg].push(value);
      else values[arg] = value;
    } else {
      usageError(`unknown argument ${JSON.stringify(arg)}`);
    }
  }
  const number = (flag, fallback, min) => {
    if (values[flag] === undefined) return fallback;
    const n = Number(values[flag]);
    if (!Number.isInteger(n) || n < min) usageError(`${flag} ${JSON.stringify(values[flag])} must be a whole number >= ${min}`);
    return n;
  };
  const delay = String(values["--listener-delay"] ?? "5-50");
  const m = /^(\d+)(?:-(\d+))?$/.exec(delay);
  if (!m || Number(m[2] ?? m[1]) < Number(m[1])) usageError(`--listener-delay ${JSON.stringify(delay)} must be MS or MIN-MAX in milliseconds`);
  for (const name of values["--fix"]) {
    if (!DEFECTS.includes(name)) usageError(`--fix ${JSON.stringify(name)} is not a defect; known: ${DEFECTS.join(", ")}`);
  }
  const session = values["--session-secret"] || process.env.SESSION_SECRET || auth.DEV_SECRET;
  return {
    port: number("--port", 0, 0),
    allowedOrigins: values["--allowed-origin"],
    pingInterval: number("--ping-interval", 25000, 1),
    pingTimeout: number("--ping-timeout", 20000, 1),
    listenerDelay: { min: Number(m[1]), max: Number(m[2] ?? m[1]) },
    demo: values["--demo"] || path.join(__dirname, "..", "..", "src", "store", "demo.yaml"),
    secrets: { session, jwt: values["--jwt-secret"] || process.env.JWT_SECRET || session },
    fixes: new Set(values["--fix"]),
    stdinLifeline: switches.has("--stdin-lifeline"),
  };
}

const options = parseArgs(process.argv.slice(2));

// Loaded after the arguments are checked, so a usage error answers at once.
const { Server } = require("socket.io");
const { Store, FixtureError, strictUuid, postgresUuid, MAX_CONTENT_CHARS, DEV_SESSION_TTL_MS } = require("./twin-store");
// True while production's defect of that name is on (no --fix for it).
const defect = (name) => !options.fixes.has(name);

let store;
try {
  store = Store.fromFile(options.demo);
} catch (e) {
  if (!(e instanceof FixtureError)) throw e;
  log(e.message);
  process.exit(2);
}

// What /test/state reports: payloads that crash production (counted when crash-on-null-join
// is fixed; with the defect the first one ends the process).
const state = { crashes: 0 };

// Every crash is one line on stderr and a non-zero exit, as the uncaught TypeError of
// crash-on-null-join ends production's process.
process.on("uncaughtException", (err) => {
  log(`crash: uncaught ${(err && err.name) || "error"}: ${(err && err.message) || String(err)}`);
  process.exit(1);
});
process.on("unhandledRejection", (err) => {
  log(`crash: unhandled rejection: ${(err && err.message) || String(err)}`);
  process.exit(1);
});

// ---------------------------------------------------------------- origins and CORS

function normaliseOrigin(origin) {
  return String(origin).trim().replace(/\/+$/, "").toLowerCase();
}
const listedOrigins = options.allowedOrigins.map(normaliseOrigin);

function isListedOrigin(origin) {
  return origin !== undefined && listedOrigins.includes(normaliseOrigin(origin));
}

// The Origin check `serve` enforces (production never does: no-origin-check). No Origin (a
// non-browser client), a listed one, or the server's own host passes.
function originPasses(req) {
  const origin = req.headers.origin;
  if (origin === undefined || isListedOrigin(origin)) return true;
  const host = req.headers.host;
  const at = normaliseOrigin(origin).indexOf("://");
  return host !== undefined && at >= 0 && normaliseOrigin(origin).slice(at + 3) === String(host).toLowerCase();
}

// Production's CORS as observed: a listed Origin gets itself back with credentials allowed; any
// other Origin gets no CORS headers (and is served all the same).
function applyCors(req, res) {
  res.setHeader("Vary", "Origin");
  const origin = req.headers.origin;
  if (isListedOrigin(origin)) {
    res.setHeader("Access-Control-Allow-Origin", origin);
    res.setHeader("Access-Control-Allow-Credentials", "true");
  }
}

// A preflight is answered 204, with the permissions only for a listed Origin.
function answerPreflight(req, res) {
  if (isListedOrigin(req.headers.origin)) {
    res.setHeader("Access-Control-Allow-Methods", "GET,HEAD,PUT,PATCH,POST,DELETE");
    const asked = req.headers["access-control-request-headers"];
    if (asked) res.setHeader("Access-Control-Allow-Headers", asked);
    res.setHeader("Vary", "Origin, Access-Control-Request-Headers");
  }
  res.setHeader("Content-Length", "0");
  res.writeHead(204);
  res.end();
}

// ---------------------------------------------------------------- Socket.IO

const server = http.createServer((req, res) => {
  handleRest(req, res).catch((e) => {
    log(`REST handler failed: ${e && e.stack ? e.stack.split("\n")[0] : e}`);
    if (!res.headersSent) send(res, 500, errorBody("INTERNAL_SERVER_ERROR", "Internal server error"));
    else res.end();
  });
});

const io = new Server(server, {
  path: "/ws",
  pingInterval: options.pingInterval,
  pingTimeout: options.pingTimeout,
  maxHttpBufferSize: 1e6,
  connectTimeout: 45000,
  transports: ["polling", "websocket"],
  allowUpgrades: true,
});

// Engine middlewares run on every engine request before engine.io's own checks.

// 1. CORS and preflights, as production's cors middleware.
io.engine.use((req, res, next) => {
  const polling = res instanceof http.ServerResponse;
  // As socket.io's `cors` option: on polling and on the upgrade (engine.io writes the headers a
  // middleware sets on an upgrade into its 101 answer).
  applyCors(req, res);
  if (!defect("no-origin-check") && !originPasses(req)) {
    // `serve`'s refusal: 403 on both transports (engine.io's own allowRequest refusal would be a
    // 400 on a websocket upgrade, and would come after authentication).
    if (polling) {
      res.writeHead(403, { "Content-Type": "application/json" });
      res.end('{"code":4,"message":"Forbidden"}');
    } else {
      // As engine.io's abortUpgrade writes a refusal, with serve's 403.
      res.socket.end("HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-type: text/html\r\nContent-Length: 9\r\n\r\nForbidden");
    }
    return;
  }
  if (polling && req.method === "OPTIONS") return answerPreflight(req, res);
  next();
});

// 2. Authentication, on the first request of an engine session only (no sid): later polling
// requests and the upgrade are not re-checked. A failing middleware is what makes engine.io
// answer 400 {"code":3,"message":"Bad request"} on polling and a bare 400 on a websocket.
io.engine.use((req, res, next) => {
  if (req._query && req._query.sid !== undefined) return next();
  const result = auth.authenticate(req.headers.cookie, {
    store,
    secrets: options.secrets,
    bannedUsersConnect: defect("banned-users-connect"),
  });
  if (!result.user) return next(new Error(result.refusal));
  req.twinAuth = result;
  next();
});

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// The "database query" of the user's chats that production awaits on every connection.
async function queryParticipantChats(userId) {
  const { min, max } = options.listenerDelay;
  await sleep(min + Math.floor(Math.random() * (max - min + 1)));
  return store.participantChatIds(userId);
}

if (defect("late-listeners")) {
  // Production: the connection handler awaits the query, joins the user's chats, and only then
  // registers its listeners. socket.io drops events that arrive before, without a trace.
  io.on("connection", async (socket) => {
    socket.data.userId = socket.request.twinAuth.user.user_id;
    const chats = await queryParticipantChats(socket.data.userId);
    if (!socket.connected) return;
    socket.join(chats);
    registerRoomListeners(socket);
  });
} else {
  // As `serve`: the chats are joined before CONNECT is sent, and the listeners registered as
  // the socket connects, so nothing the client sends after CONNECT is lost.
  io.use(async (socket, next) => {
    socket.data.userId = socket.request.twinAuth.user.user_id;
    socket.join(await queryParticipantChats(socket.data.userId));
    next();
  });
  io.on("connection", registerRoomListeners);
}

function registerRoomListeners(socket) {
  socket.on(CLIENT_JOIN_ROOM, (...args) => onRoomEvent(socket, CLIENT_JOIN_ROOM, args));
  socket.on(CLIENT_LEAVE_ROOM, (...args) => onRoomEvent(socket, CLIENT_LEAVE_ROOM, args));
  if (!defect("swallowed-errors")) {
    // As `serve`: an unknown event that asks for an acknowledgement is told so.
    socket.onAny((event, ...args) => {
      if (event !== CLIENT_JOIN_ROOM && event !== CLIENT_LEAVE_ROOM && typeof args[args.length - 1] === "function") {
        args[args.length - 1]({ ok: false, error: "unknown_event" });
      }
    });
  }
}

function onRoomEvent(socket, event, args) {
  // Production's handlers take one argument and never answer (swallowed-errors); socket.io's
  // ack callback, when the client asks for one, is simply ignored there.
  const ack = !defect("swallowed-errors") && typeof args[args.length - 1] === "function" ? args.pop() : null;
  const answer = (reason) => {
    if (ack) ack(reason ? { ok: false, error: reason } : { ok: true });
  };
  const data = args[0];
  if ((data === null || data === undefined) && !defect("crash-on-null-join")) {
    state.crashes++;
    log(`survived a ${event} without an argument, which crashes production (crash-on-null-join fixed)`);
    return answer("invalid_payload");
  }
  // Production reads the argument's chat_id first thing: on a null or missing argument this
  // throws a TypeError from a socket.io listener, uncaught, and the process exits
  // (crash-on-null-join).
  const requested = data.chat_id;
  const handled = event === CLIENT_JOIN_ROOM ? joinRoom(socket, requested) : Promise.resolve(leaveRoom(socket, requested));
  handled.then(
    (reason) => {
      answer(reason);
      if (reason === "account_disabled") socket.disconnect(true);
    },
    (e) => {
      // Production swallows whatever the join's queries throw (swallowed-errors).
      log(`${event} failed: ${e && e.message}`);
      answer("internal");
    },
  );
}

// The chat id as production's queries take it: Postgres' uuid input accepts any letter case
// (case-sensitive-rooms); `serve` takes the canonical form only and lower-cases it.
function parseChatId(text) {
  return defect("case-sensitive-rooms") ? postgresUuid(text) : strictUuid(text);
}

// Resolves to null when joined, or the reason (RoomError of src/protocol.rs) it was not.
async function joinRoom(socket, requested) {
  const user = store.userById(socket.data.userId);
  // Production never re-checks the account after the handshake (banned-users-connect).
  if (!user || (user.banned && !defect("banned-users-connect"))) return "account_disabled";
  if (typeof requested !== "string") return "invalid_payload";
  const chatId = parseChatId(requested);
  if (!chatId) return "invalid_chat_id";
  await new Promise((resolve) => setImmediate(resolve)); // the chat lookup is a database round trip
  const chat = store.chats.get(chatId);
  if (!chat) return "chat_not_found";
  if (!store.canViewChat(user, chat, { openDirectChats: defect("open-direct-chats") })) return "not_authorized";
  if (!socket.connected) return null;
  // Production joins the room named by the id AS SENT, so `ABC…` joins a room that no
  // serverMessage is ever sent to (case-sensitive-rooms).
  socket.join(defect("case-sensitive-rooms") ? requested : chatId);
  return null;
}

function leaveRoom(socket, requested) {
  if (typeof requested !== "string") return "invalid_payload";
  if (defect("case-sensitive-rooms")) {
    socket.leave(requested);
    return null;
  }
  const chatId = strictUuid(requested);
  if (!chatId) return "invalid_chat_id";
  socket.leave(chatId);
  return null;
}

function broadcast(row) {
  // Sent to the room named by the stored (lower-case) chat_id.
  io.to(row.chat_id).emit(SERVER_MESSAGE, store.wireMessage(row));
}

// ---------------------------------------------------------------- REST

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}
const validation = (message) => new ApiError(400, "VALIDATION_ERROR", message);
const notFound = (message) => new ApiError(404, "NOT_FOUND", message);
const forbidden = () => new ApiError(403, "FORBIDDEN", "Not authorized");

function errorBody(code, message) {
  return { error: { code, message } };
}

function send(res, status, value, headers = {}) {
  res.writeHead(status, { "Content-Type": "application/json", ...headers });
  res.end(JSON.stringify(value));
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on("end", () => {
      if (size > MAX_BODY_BYTES) reject(new ApiError(413, "PAYLOAD_TOO_LARGE", `Request body is larger than ${MAX_BODY_BYTES} bytes`));
      else resolve(Buffer.concat(chunks).toString("utf8"));
    });
    req.on("error", reject);
  });
}

async function jsonBody(req) {
  const text = await readBody(req);
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw validation(`Invalid request body: ${e.message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw validation("Invalid request body: expected a JSON object");
  return value;
}

function stringField(body, name) {
  if (typeof body[name] !== "string") throw validation(`Invalid request body: ${name} must be a string`);
  return body[name];
}

function contentField(body) {
  const content = stringField(body, "content");
  const length = [...content].length;
  if (length === 0 || length > MAX_CONTENT_CHARS) {
    throw validation(`content must be 1 to ${MAX_CONTENT_CHARS} characters long (got ${length})`);
  }
  return content;
}

function usernameList(body, name) {
  const value = body[name];
  if (!Array.isArray(value) || !value.every((u) => typeof u === "string")) throw validation(`Invalid request body: ${name} must be a list of usernames`);
  return value;
}

function validUsername(name) {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) {
    throw validation(`username ${JSON.stringify(name.slice(0, 80))} must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '-', '.'`);
  }
  return name;
}

// The logged-in caller. REST refuses banned accounts in every mode: production's REST
// middleware checks `banned` itself (banned-users-connect is the socket's defect).
function caller(req) {
  const result = auth.authenticate(req.headers.cookie, { store, secrets: options.secrets, bannedUsersConnect: false });
  if (!result.user) throw new ApiError(401, "UNAUTHORIZED", "Authentication required");
  return result.user;
}

function pathChatId(raw) {
  let text;
  try {
    text = decodeURIComponent(raw);
  } catch (e) {
    throw validation("chat_id is not a UUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)");
  }
  const chatId = parseChatId(text);
  if (!chatId) throw validation("chat_id is not a UUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)");
  return chatId;
}

function existingChat(chatId) {
  const chat = store.chats.get(chatId);
  if (!chat) throw notFound("Chat not found");
  return chat;
}

const viewable = (user, chat) => store.canViewChat(user, chat, { openDirectChats: defect("open-direct-chats") });

// POST /api/chats/:chat_id/messages
async function postMessage(req, res, rawChatId) {
  const user = caller(req);
  const chatId = pathChatId(rawChatId);
  const content = contentField(await jsonBody(req));
  const chat = existingChat(chatId);
  const allowed = viewable(user, chat);
  if (!allowed) {
    const e = forbidden();
    send(res, e.status, errorBody(e.code, e.message));
    // Production's access middleware answers 403 and still lets the handler run
    // (post-after-403): the message is stored and broadcast anyway.
    if (!defect("post-after-403")) return;
  }
  broadcast(store.insertMessage(chat.chat_id, user, content));
  if (allowed) send(res, 200, { data: { result: "Success" } });
}

// GET /api/chats/:chat_id
function getChat(req, res, rawChatId) {
  const user = caller(req);
  const chat = existingChat(pathChatId(rawChatId));
  if (!viewable(user, chat)) throw forbidden();
  send(res, 200, { data: store.chatDetail(chat) });
}

// GET /api/chats
function listChats(req, res) {
  const user = caller(req);
  send(res, 200, { data: store.participantChatIds(user.user_id).map((id) => store.chatSummary(store.chats.get(id))) });
}

// POST /api/chats: finds or creates the chat of the caller and these users. Production answers
// Success without the chat's id (a client must list its chats to find it).
async function createChat(req, res) {
  const user = caller(req);
  const names = usernameList(await jsonBody(req), "users");
  if (names.length === 0) throw validation("users must name at least one other user");
  const others = names.map((name) => store.userByName(name));
  if (!others.every(Boolean)) throw validation("Invalid user");
  const ids = [...new Set([user.user_id, ...others.map((u) => u.user_id)])];
  if (!store.chatWithParticipants(user.user_id, ids)) store.addChat({ participants: ids });
  send(res, 200, { data: { result: "Success" } });
}

// Test only, as `serve --dev`'s dev_login.
async function devLogin(req, res) {
  const username = validUsername(stringField(await jsonBody(req), "username"));
  const user = store.addUser(username);
  if (user.banned) throw new ApiError(403, "FORBIDDEN", "User is banned");
  const sid = store.createLoginSession(user.user_id);
  const sessionValue = auth.signSessionCookie(sid, options.secrets.session);
  const token = auth.signAccessToken(user, options.secrets.jwt);
  send(
    res,
    200,
    {
      data: {
        user_id: user.user_id,
        username: user.username,
        role: user.role,
        session_cookie: `${auth.SESSION_COOKIE}=${sessionValue}`,
        access_cookie: `${auth.ACCESS_COOKIE}=${token}`,
      },
    },
    {
      "Set-Cookie": [
        `${auth.SESSION_COOKIE}=${sessionValue}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${DEV_SESSION_TTL_MS / 1000}`,
        `${auth.ACCESS_COOKIE}=${token}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${auth.ACCESS_TOKEN_LIFETIME_S}`,
      ],
    },
  );
}

// Test only, as `serve --dev`'s dev_create_chat.
async function devCreateChat(req, res) {
  const body = await jsonBody(req);
  const names = usernameList(body, "participants");
  if (names.length > MAX_DEV_PARTICIPANTS) throw validation(`at most ${MAX_DEV_PARTICIPANTS} participants per chat`);
  let name = null;
  if (body.name !== undefined && body.name !== null) name = stringField(body, "name");
  const ids = names.map((n) => store.addUser(validUsername(n)).user_id);
  send(res, 200, { data: { chat_id: store.addChat({ name, participants: ids }).chat_id } });
}

// Test only. Production has no way to close a banned user's sockets; with
// banned-users-connect fixed this does what `serve --dev`'s dev_ban does and closes them.
async function devBan(req, res) {
  const body = await jsonBody(req);
  const username = stringField(body, "username");
  if (body.banned !== undefined && typeof body.banned !== "boolean") throw validation("Invalid request body: banned must be true or false");
  const user = store.userByName(username);
  if (!user) throw notFound(`User ${username} not found`);
  user.banned = body.banned !== false;
  if (user.banned && !defect("banned-users-connect")) {
    for (const socket of io.of("/").sockets.values()) {
      if (socket.data.userId === user.user_id) socket.disconnect(true);
    }
  }
  send(res, 200, { data: { result: "Success" } });
}

// Test only: a system message (author null) such as production's automatic order and offer
// messages, inserted and never emitted (unemitted-messages) unless that defect is fixed.
async function insertMessage(req, res) {
  const body = await jsonBody(req);
  const chatId = postgresUuid(stringField(body, "chat_id"));
  if (!chatId) throw validation("chat_id is not a UUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)");
  const chat = existingChat(chatId);
  const row = store.insertMessage(chat.chat_id, null, contentField(body));
  if (!defect("unemitted-messages")) broadcast(row);
  send(res, 200, { data: store.wireMessage(row) });
}

// Test only: what the server holds. Rooms are listed with their member counts, without the
// private room socket.io gives every socket.
function testState(req, res) {
  const namespace = io.of("/");
  const rooms = {};
  for (const [room, members] of namespace.adapter.rooms) {
    if (members.size === 1 && members.has(room)) continue;
    rooms[room] = members.size;
  }
  send(res, 200, { crashes: state.crashes, sockets: namespace.sockets.size, rooms });
}

const ROUTES = [
  [/^\/api\/chats\/([^/]+)\/messages$/, { POST: postMessage }],
  [/^\/api\/chats$/, { GET: listChats, POST: createChat }],
  [/^\/api\/chats\/([^/]+)$/, { GET: getChat }],
  [/^\/api\/dev\/login$/, { POST: devLogin }],
  [/^\/api\/dev\/chats$/, { POST: devCreateChat }],
  [/^\/api\/dev\/ban$/, { POST: devBan }],
  [/^\/test\/insert-message$/, { POST: insertMessage }],
  [/^\/test\/state$/, { GET: testState }],
  [/^\/healthz$/, { GET: (req, res) => res.writeHead(200, { "Content-Type": "text/plain" }).end("ok") }],
];

// With no-origin-check fixed, as `serve`: what changes state must come from an allowed page
// and carry a body declared application/json, which a cross-site HTML form can do neither of.
const changesState = (method) => !["GET", "HEAD", "OPTIONS", "TRACE"].includes(method);
const originRefused = () => new ApiError(403, "FORBIDDEN", "Origin not allowed");

function guardStateChange(req) {
  if (defect("no-origin-check") || !changesState(req.method)) return;
  if (!originPasses(req)) throw originRefused();
  const type = String(req.headers["content-type"] || "").split(";")[0].trim().toLowerCase();
  if (type !== "application/json") throw new ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json");
}

async function handleRest(req, res) {
  applyCors(req, res);
  if (req.method === "OPTIONS") {
    if (!defect("no-origin-check") && !originPasses(req)) {
      const e = originRefused();
      return send(res, e.status, errorBody(e.code, e.message));
    }
    return answerPreflight(req, res);
  }
  const pathname = new URL(req.url, "http://twin.invalid").pathname;
  try {
    for (const [pattern, methods] of ROUTES) {
      const match = pattern.exec(pathname);
      if (!match) continue;
      const handler = methods[req.method];
      if (!handler) throw new ApiError(405, "METHOD_NOT_ALLOWED", `${req.method} is not allowed on ${pathname}`);
      guardStateChange(req);
      return await handler(req, res, ...match.slice(1));
    }
    throw notFound("No such route");
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
    if (res.headersSent) return res.end();
    send(res, e.status, errorBody(e.code, e.message));
  }
}

// ---------------------------------------------------------------- start

server.listen(options.port, "127.0.0.1", () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
server.on("error", (e) => {
  log(`cannot listen on 127.0.0.1:${options.port}: ${e.message}`);
  process.exit(2);
});
process.on("SIGTERM", () => process.exit(0));
// Tests pass --stdin-lifeline so the server ends with the test process even if it is killed.
if (options.stdinLifeline) {
  process.stdin.on("end", () => process.exit(0));
  process.stdin.resume();
}
