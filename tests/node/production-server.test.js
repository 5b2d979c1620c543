// The production twin (production-server.js) proven against real clients: each test starts the
// twin as a child process on an ephemeral port and talks to it with socket.io-client 4.8 and
// raw HTTP. Run with `node --test tests/node/`.
//
// Every defect is shown on, then turned off by its own `--fix NAME`. Assertions about lost
// events never race: a control socket in the same room receives the same broadcast first.

"use strict";

const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { spawn } = require("node:child_process");
const crypto = require("node:crypto");
const http = require("node:http");
const path = require("node:path");
const { io: ioClient } = require("socket.io-client");

const SERVER = path.join(__dirname, "production-server.js");
// The test's own copy of serve's development secret: a drift in the twin's constant fails here.
const DEV_SECRET = "scmarket-ws-development-secret-do-not-use-in-production";
// Ids of src/store/demo.yaml.
const USER_ID = {
  alice: "5c000000-0000-4000-8000-000000000001",
  dave: "5c000000-0000-4000-8000-000000000004",
};
const CHAT = {
  order: "5c0000c4-0000-4000-8000-000000000001", // alice, bob; order of alice, assigned bob, contractor acme
  offer: "5c0000c4-0000-4000-8000-000000000002", // carol; offer of carol, contractor acme
  direct: "5c0000c4-0000-4000-8000-000000000003", // alice, bob; no order, no offer
  group: "5c0000c4-0000-4000-8000-000000000004", // alice, bob, carol
};
const LISTED_ORIGIN = "http://localhost:5173";
const HOSTILE_ORIGIN = "https://evil.example";
const REFUSAL = '{"code":3,"message":"Bad request"}';
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const WIRE_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

// The "database query" delay before production's listeners exist, for suites that do not
// measure it: short, so a test waits little for the listeners.
const QUICK_LISTENERS = ["--listener-delay", "0-10"];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(what, predicate, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

// ------------------------------------------------------------------ the twin as a process

async function startTwin(args = [], env = {}) {
  const child = spawn(process.execPath, [SERVER, "--port", "0", "--stdin-lifeline", ...args], {
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, SESSION_SECRET: "", JWT_SECRET: "", ...env },
  });
  child.stdin.on("error", () => {}); // the twin may be gone already (crash tests)
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  // "close", not "exit": by then everything the twin wrote to stderr has been read.
  const exited = new Promise((resolve) => child.on("close", (code, signal) => resolve({ code, signal })));
  const port = await new Promise((resolve, reject) => {
    let out = "";
    // Generous: the machine is shared, and a dozen twins start at once.
    const timer = setTimeout(() => reject(new Error(`twin did not listen within 30 s: ${stderr}`)), 30000);
    child.stdout.on("data", (d) => {
      out += d;
      const m = /listening (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`twin exited (${code}) before listening: ${stderr}`));
    });
  });
  const sockets = [];
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    child,
    exited,
    sockets,
    stderr: () => stderr,
    stop() {
      for (const s of sockets) s.disconnect();
      child.stdin.end();
      child.kill();
    },
  };
}

// One HTTP exchange without keep-alive: {status, headers, text, json}.
function request(twin, method, pathname, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
    const req = http.request(
      { host: "127.0.0.1", port: twin.port, method, path: pathname, headers, agent: false },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d) => (text += d));
        res.on("end", () => {
          let json;
          try {
            json = JSON.parse(text);
          } catch (e) {
            json = undefined;
          }
          resolve({ status: res.statusCode, headers: res.headers, text, json });
        });
      },
    );
    req.on("error", reject);
    const typed = Object.keys(headers).some((k) => k.toLowerCase() === "content-type");
    if (payload !== undefined && !typed) req.setHeader("content-type", "application/json");
    req.end(payload);
  });
}

const post = (twin, pathname, body, headers = {}) => request(twin, "POST", pathname, { body, headers });
const cookieHeader = (cookie) => (cookie ? { cookie } : {});

// A polling handshake as a browser's first request: {status, text, headers}.
const pollingHandshake = (twin, headers = {}) => request(twin, "GET", "/ws/?EIO=4&transport=polling", { headers });

// A raw websocket upgrade on the handshake URL: {status, text} (101 when accepted).
function websocketHandshake(twin, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: "127.0.0.1",
      port: twin.port,
      path: "/ws/?EIO=4&transport=websocket",
      agent: false,
      headers: {
        Connection: "Upgrade",
        Upgrade: "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": crypto.randomBytes(16).toString("base64"),
        ...headers,
      },
    });
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve({ status: 101, text: "" });
    });
    req.on("response", (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode, text, headers: res.headers }));
    });
    req.on("error", reject);
    req.end();
  });
}

// Logs in through the test-only route: {session, access, both, user_id}.
async function login(twin, username) {
  const res = await post(twin, "/api/dev/login", { username });
  assert.equal(res.status, 200, res.text);
  const d = res.json.data;
  return { session: d.session_cookie, access: d.access_cookie, both: `${d.session_cookie}; ${d.access_cookie}`, user_id: d.user_id };
}

// An HS256 JWT made here, independently of the twin's signer.
function jwt(claims, { secret = DEV_SECRET, header = { alg: "HS256", typ: "JWT" }, signature } = {}) {
  const enc = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const signingInput = `${enc(header)}.${enc(claims)}`;
  const sig = signature ?? crypto.createHmac("sha256", secret).update(signingInput).digest("base64url");
  return `scmarket.access=${signingInput}.${sig}`;
}

function aliceClaims(overrides = {}) {
  const now = Math.floor(Date.now() / 1000);
  return { sub: USER_ID.alice, role: "user", username: "alice", iat: now, exp: now + 900, ...overrides };
}

// A socket.io-client socket (websocket transport unless told) that records serverMessage.
function connect(twin, cookie, { onConnect, transports = ["websocket"], headers = {} } = {}) {
  const socket = ioClient(twin.url, {
    path: "/ws",
    transports,
    forceNew: true,
    reconnection: false,
    extraHeaders: { ...cookieHeader(cookie), ...headers },
  });
  socket.received = [];
  socket.on("serverMessage", (m) => socket.received.push(m));
  if (onConnect) socket.on("connect", () => onConnect(socket));
  twin.sockets.push(socket);
  return socket;
}

function connected(socket) {
  if (socket.connected) return Promise.resolve(socket);
  return new Promise((resolve, reject) => {
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (e) => reject(e));
  });
}

// Connects and waits until the twin's (late) listeners and auto-joins are surely in place: well
// past the --listener-delay the suite gives its twin (QUICK_LISTENERS unless it says otherwise).
async function ready(twin, cookie, settleMs = 150) {
  const socket = await connected(connect(twin, cookie));
  await sleep(settleMs);
  return socket;
}

const received = (socket, content) => socket.received.some((m) => m.content === content);

// Posts `content` as `poster`, waits until `control` has it, then a little longer, so any other
// socket that was going to receive it has.
async function postAndSettle(twin, poster, chatId, content, control) {
  const res = await post(twin, `/api/chats/${chatId}/messages`, { content }, cookieHeader(poster));
  await waitFor(`${content} at the control socket`, () => received(control, content));
  await sleep(150);
  return res;
}

const unique = (label) => `${label} ${crypto.randomUUID()}`;

// A suite with a twin of its own; its tests run one after the other.
function twinSuite(name, args, body) {
  describe(name, { concurrency: 1 }, () => {
    const ctx = {};
    before(async () => {
      ctx.twin = await startTwin(args.includes("--listener-delay") ? args : [...QUICK_LISTENERS, ...args]);
    });
    after(() => ctx.twin && ctx.twin.stop());
    body(ctx);
  });
}

// ------------------------------------------------------------------ the tests

// Suites run side by side (most of their time is spent waiting), each with its own twin.
describe("production twin", { concurrency: true }, () => {
  twinSuite("engine and handshake, as production", ["--allowed-origin", LISTED_ORIGIN], (ctx) => {
    it("answers at /ws with production's engine settings", async () => {
      const alice = await login(ctx.twin, "alice");
      const res = await pollingHandshake(ctx.twin, { cookie: alice.session });
      assert.equal(res.status, 200);
      assert.ok(res.text.startsWith("0{"), res.text);
      const open = JSON.parse(res.text.slice(1));
      assert.deepEqual(open.upgrades, ["websocket"]);
      assert.equal(open.pingInterval, 25000);
      assert.equal(open.pingTimeout, 20000);
      assert.equal(open.maxPayload, 1000000);
      assert.equal(open.sid.length, 20);
      const elsewhere = await request(ctx.twin, "GET", "/socket.io/?EIO=4&transport=polling", { headers: { cookie: alice.session } });
      assert.equal(elsewhere.status, 404);
    });

    it("refuses a handshake without valid credentials with engine.io's 400", async () => {
      const alice = await login(ctx.twin, "alice");
      const now = Math.floor(Date.now() / 1000);
      const forgedSid = alice.session.replace(/\.[^.]+$/, ".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
      const unknownSid = `scmarket.sid=${encodeURIComponent(
        `s:nosuchsession.${crypto.createHmac("sha256", DEV_SECRET).update("nosuchsession").digest("base64").replace(/=+$/, "")}`,
      )}`;
      const refused = {
        "no cookie": undefined,
        "forged sid signature": forgedSid,
        "signed sid without a session row": unknownSid,
        "expired JWT": jwt(aliceClaims({ iat: now - 7200, exp: now - 3600 })),
        "alg none": jwt(aliceClaims(), { header: { alg: "none", typ: "JWT" }, signature: "" }),
        "alg none with an HS256 signature": jwt(aliceClaims(), { header: { alg: "none" } }),
        "HS512": jwt(aliceClaims(), { header: { alg: "HS512", typ: "JWT" } }),
        "future nbf": jwt(aliceClaims({ nbf: now + 3600 })),
        "wrong secret": jwt(aliceClaims(), { secret: "not the secret" }),
        "unknown user": jwt(aliceClaims({ sub: crypto.randomUUID() })),
        "no exp": jwt({ sub: USER_ID.alice, role: "user", username: "alice", iat: now }),
      };
      for (const [why, cookie] of Object.entries(refused)) {
        const res = await pollingHandshake(ctx.twin, cookieHeader(cookie));
        assert.equal(res.status, 400, `${why}: ${res.text}`);
        assert.equal(res.text, REFUSAL, why);
      }
      const accepted = {
        "session cookie": alice.session,
        "access cookie": alice.access,
        "JWT signed here": jwt(aliceClaims()),
        "JWT expired 10 s ago, within the 30 s leeway": jwt(aliceClaims({ exp: now - 10 })),
        "nbf 10 s ahead, within the leeway": jwt(aliceClaims({ nbf: now + 10 })),
        "invalid JWT, valid session cookie": `${jwt(aliceClaims(), { secret: "x" })}; ${alice.session}`,
      };
      for (const [why, cookie] of Object.entries(accepted)) {
        const res = await pollingHandshake(ctx.twin, { cookie });
        assert.equal(res.status, 200, `${why}: ${res.text}`);
      }
    });

    it("answers a refused websocket handshake with a plain 400", async () => {
      const refused = await websocketHandshake(ctx.twin);
      assert.equal(refused.status, 400);
      assert.equal(refused.text, "Bad request");
      const alice = await login(ctx.twin, "alice");
      assert.equal((await websocketHandshake(ctx.twin, { cookie: alice.session })).status, 101);
      const socket = connect(ctx.twin, undefined);
      await assert.rejects(connected(socket), /websocket error/);
    });

    it("does not re-check requests that carry the engine sid", async () => {
      const alice = await login(ctx.twin, "alice");
      const open = await pollingHandshake(ctx.twin, { cookie: alice.session });
      const sid = JSON.parse(open.text.slice(1)).sid;
      const res = await request(ctx.twin, "POST", `/ws/?EIO=4&transport=polling&sid=${sid}`, { body: "40" });
      assert.equal(res.status, 200);
      assert.equal(res.text, "ok");
    });

    it("sends CORS headers to a listed Origin only, and serves every Origin (no-origin-check)", async () => {
      const alice = await login(ctx.twin, "alice");
      const listed = await pollingHandshake(ctx.twin, { cookie: alice.session, origin: LISTED_ORIGIN });
      assert.equal(listed.status, 200);
      assert.equal(listed.headers["access-control-allow-origin"], LISTED_ORIGIN);
      assert.equal(listed.headers["access-control-allow-credentials"], "true");
      assert.match(listed.headers.vary, /Origin/);

      const hostile = await pollingHandshake(ctx.twin, { cookie: alice.session, origin: HOSTILE_ORIGIN });
      assert.equal(hostile.status, 200, "a disallowed Origin is served all the same");
      assert.equal(hostile.headers["access-control-allow-origin"], undefined);
      assert.equal(hostile.headers["access-control-allow-credentials"], undefined);

      const refusedListed = await pollingHandshake(ctx.twin, { origin: LISTED_ORIGIN });
      assert.equal(refusedListed.status, 400);
      assert.equal(refusedListed.headers["access-control-allow-origin"], LISTED_ORIGIN, "refusals carry CORS too");

      const preflight = await request(ctx.twin, "OPTIONS", "/ws/?EIO=4&transport=polling", {
        headers: { origin: LISTED_ORIGIN, "access-control-request-method": "POST", "access-control-request-headers": "content-type" },
      });
      assert.equal(preflight.status, 204);
      assert.equal(preflight.headers["access-control-allow-origin"], LISTED_ORIGIN);
      assert.equal(preflight.headers["access-control-allow-credentials"], "true");
      assert.equal(preflight.headers["access-control-allow-headers"], "content-type");
      const hostilePreflight = await request(ctx.twin, "OPTIONS", "/ws/?EIO=4&transport=polling", { headers: { origin: HOSTILE_ORIGIN } });
      assert.equal(hostilePreflight.status, 204);
      assert.equal(hostilePreflight.headers["access-control-allow-origin"], undefined);

      const rest = await request(ctx.twin, "GET", "/api/chats", { headers: { cookie: alice.session, origin: LISTED_ORIGIN } });
      assert.equal(rest.status, 200);
      assert.equal(rest.headers["access-control-allow-origin"], LISTED_ORIGIN);
      assert.equal(rest.headers["access-control-allow-credentials"], "true");
      const restPreflight = await request(ctx.twin, "OPTIONS", "/api/chats/x/messages", { headers: { origin: LISTED_ORIGIN } });
      assert.equal(restPreflight.status, 204);
      assert.equal(restPreflight.headers["access-control-allow-origin"], LISTED_ORIGIN);

      // Cross-site websocket hijacking: a hostile page's socket opens with the visitor's cookie.
      assert.equal((await websocketHandshake(ctx.twin, { cookie: alice.session, origin: HOSTILE_ORIGIN })).status, 101);
      await connected(connect(ctx.twin, alice.session, { headers: { origin: HOSTILE_ORIGIN } }));
    });
  });

  describe("secrets and flags", () => {
    it("signs JWTs with JWT_SECRET when set, sessions with the session secret", async () => {
      const twin = await startTwin([], { JWT_SECRET: "jwt only" });
      try {
        const alice = await login(twin, "alice");
        assert.equal((await pollingHandshake(twin, { cookie: alice.access })).status, 200);
        assert.equal((await pollingHandshake(twin, { cookie: alice.session })).status, 200);
        assert.equal((await pollingHandshake(twin, { cookie: jwt(aliceClaims(), { secret: "jwt only" }) })).status, 200);
        assert.equal((await pollingHandshake(twin, { cookie: jwt(aliceClaims()) })).status, 400);
      } finally {
        twin.stop();
      }
      const flagged = await startTwin(["--session-secret", "sessions"]);
      try {
        // Without JWT_SECRET the JWT secret falls back to the session secret, as production.
        assert.equal((await pollingHandshake(flagged, { cookie: jwt(aliceClaims(), { secret: "sessions" }) })).status, 200);
        assert.equal((await pollingHandshake(flagged, { cookie: jwt(aliceClaims()) })).status, 400);
      } finally {
        flagged.stop();
      }
    });

    it("takes its ping settings from flags", async () => {
      const twin = await startTwin(["--ping-interval", "1500", "--ping-timeout", "700"]);
      try {
        const alice = await login(twin, "alice");
        const open = JSON.parse((await pollingHandshake(twin, { cookie: alice.session })).text.slice(1));
        assert.equal(open.pingInterval, 1500);
        assert.equal(open.pingTimeout, 700);
      } finally {
        twin.stop();
      }
    });

    it("refuses unknown flags and fixes with a usage error", async () => {
      for (const args of [["--fix", "everything"], ["--bogus"], ["--listener-delay", "50-20"], ["--demo", "/nonexistent.yaml"]]) {
        await assert.rejects(startTwin(args), /exited \(2\)/, args.join(" "));
      }
    });
  });

  // Production's query takes milliseconds; here it takes 300-400 ms so that neither side of the
  // race depends on how busy the machine is: a join sent at CONNECT arrives long before the
  // listeners exist, one sent 700 ms later long after.
  twinSuite("late listeners, as production", ["--listener-delay", "300-400"], (ctx) => {
    it("loses a join sent right after CONNECT, keeps one sent once the listeners exist (late-listeners)", async () => {
      const alice = await login(ctx.twin, "alice");
      const erin = await login(ctx.twin, "erin"); // a contractor member: may view the order chat, not a participant
      const control = await ready(ctx.twin, alice.session, 700);
      const join = (s) => s.emit("clientJoinRoom", { chat_id: CHAT.order });
      const hasty = await Promise.all(Array.from({ length: 10 }, () => connected(connect(ctx.twin, erin.session, { onConnect: join }))));
      await sleep(700);
      const first = unique("first");
      await postAndSettle(ctx.twin, alice.session, CHAT.order, first, control);
      const lost = hasty.filter((s) => !received(s, first)).length;
      assert.ok(lost >= 1, `at least 1 of 10 immediate joins is lost (lost ${lost})`);

      const patient = await Promise.all(Array.from({ length: 10 }, () => ready(ctx.twin, erin.session, 700)));
      patient.forEach(join);
      await sleep(100);
      const second = unique("second");
      await postAndSettle(ctx.twin, alice.session, CHAT.order, second, control);
      assert.equal(patient.filter((s) => received(s, second)).length, 10, "all 10 delayed joins land");
    });

    it("joins the user's chats only after the query, so a message posted at once is missed", async () => {
      const alice = await login(ctx.twin, "alice");
      const bob = await login(ctx.twin, "bob");
      const control = await ready(ctx.twin, bob.session, 700);
      const early = await connected(connect(ctx.twin, alice.session));
      const missed = unique("posted at CONNECT");
      await postAndSettle(ctx.twin, bob.session, CHAT.group, missed, control);
      assert.ok(!received(early, missed));
      await sleep(500);
      const heard = unique("posted later");
      await postAndSettle(ctx.twin, bob.session, CHAT.group, heard, control);
      assert.ok(received(early, heard), "the auto-join happened after the query");
    });
  });

  twinSuite("rooms, every defect on", [], (ctx) => {
    it("broadcasts serverMessage with production's payload", async () => {
      const alice = await login(ctx.twin, "alice");
      const control = await ready(ctx.twin, alice.session);
      const content = unique("payload ✓");
      const res = await postAndSettle(ctx.twin, alice.session, CHAT.order.toUpperCase(), content, control);
      assert.equal(res.status, 200);
      assert.deepEqual(res.json, { data: { result: "Success" } });
      const message = control.received.find((m) => m.content === content);
      assert.deepEqual(Object.keys(message), ["message_id", "content", "author", "chat_id", "timestamp"]);
      assert.match(message.message_id, UUID_V4);
      assert.equal(message.author, "alice");
      assert.equal(message.chat_id, CHAT.order);
      assert.match(message.timestamp, WIRE_TIME);
      assert.ok(Math.abs(Date.parse(message.timestamp) - Date.now()) < 5000);
      const detail = await request(ctx.twin, "GET", `/api/chats/${CHAT.order}`, { headers: { cookie: alice.session } });
      assert.deepEqual(detail.json.data.messages.find((m) => m.content === content), message);
    });

    it("serves a client that starts on polling and upgrades, as the web client may", async () => {
      const alice = await login(ctx.twin, "alice");
      const socket = await connected(connect(ctx.twin, alice.session, { transports: ["polling", "websocket"] }));
      await waitFor("the upgrade to websocket", () => socket.io.engine.transport.name === "websocket");
      await sleep(150);
      const polling = await connected(connect(ctx.twin, alice.session, { transports: ["polling"] }));
      await sleep(150);
      const content = unique("to both transports");
      await postAndSettle(ctx.twin, alice.session, CHAT.group, content, socket);
      await waitFor("the message over polling", () => received(polling, content));
    });

    it("never acknowledges a join, whatever its outcome (swallowed-errors)", async () => {
      const carol = await login(ctx.twin, "carol");
      const socket = await ready(ctx.twin, carol.session);
      const asks = [{ chat_id: CHAT.group }, { chat_id: CHAT.order }, { chat_id: crypto.randomUUID() }, { chat_id: "nope" }, { chat_id: 5 }].map((payload) =>
        assert.rejects(socket.timeout(500).emitWithAck("clientJoinRoom", payload), /timed out/, JSON.stringify(payload)),
      );
      asks.push(assert.rejects(socket.timeout(500).emitWithAck("clientLeaveRoom", { chat_id: CHAT.group }), /timed out/));
      await Promise.all(asks);
      assert.ok(socket.connected);
    });

    it("joins an upper-case id to a room that never receives (case-sensitive-rooms)", async () => {
      const alice = await login(ctx.twin, "alice");
      const erin = await login(ctx.twin, "erin");
      const control = await ready(ctx.twin, alice.session);
      const socket = await ready(ctx.twin, erin.session);
      const upper = CHAT.order.toUpperCase();
      socket.emit("clientJoinRoom", { chat_id: upper });
      await sleep(100);
      const state = (await request(ctx.twin, "GET", "/test/state")).json;
      assert.ok(state.rooms[upper] >= 1, JSON.stringify(state.rooms));
      const lost = unique("to the lower-case room");
      await postAndSettle(ctx.twin, alice.session, CHAT.order, lost, control);
      assert.ok(!received(socket, lost));
      socket.emit("clientJoinRoom", { chat_id: CHAT.order });
      await sleep(100);
      const heard = unique("after a lower-case join");
      await postAndSettle(ctx.twin, alice.session, CHAT.order, heard, control);
      assert.ok(received(socket, heard));
    });


    it("leaves a room on clientLeaveRoom", async () => {
      const alice = await login(ctx.twin, "alice");
      const bob = await login(ctx.twin, "bob");
      const control = await ready(ctx.twin, alice.session);
      const socket = await ready(ctx.twin, bob.session); // auto-joined to the group chat
      socket.emit("clientLeaveRoom", { chat_id: CHAT.group });
      await sleep(50);
      const content = unique("after leaving");
      await postAndSettle(ctx.twin, alice.session, CHAT.group, content, control);
      assert.ok(!received(socket, content));
    });
  });

  twinSuite("REST and accounts, every defect on", [], (ctx) => {
    it("answers REST errors as production", async () => {
      const alice = await login(ctx.twin, "alice");
      const cookie = { cookie: alice.session };
      const cases = [
        [undefined, `/api/chats/${CHAT.order}/messages`, { content: "x" }, 401, "UNAUTHORIZED", "Authentication required"],
        [cookie, `/api/chats/${crypto.randomUUID()}/messages`, { content: "x" }, 404, "NOT_FOUND", "Chat not found"],
        [cookie, `/api/chats/${CHAT.order}/messages`, { content: "" }, 400, "VALIDATION_ERROR"],
        [cookie, `/api/chats/${CHAT.order}/messages`, { content: "x".repeat(1001) }, 400, "VALIDATION_ERROR"],
        [cookie, `/api/chats/${CHAT.order}/messages`, { text: "x" }, 400, "VALIDATION_ERROR"],
        [cookie, `/api/chats/${CHAT.order}/messages`, "{not json", 400, "VALIDATION_ERROR"],
        [cookie, `/api/chats/not-a-uuid/messages`, { content: "x" }, 400, "VALIDATION_ERROR"],
      ];
      for (const [headers, route, body, status, code, message] of cases) {
        const res = await post(ctx.twin, route, body, headers);
        assert.equal(res.status, status, `${route} ${JSON.stringify(body).slice(0, 40)}: ${res.text}`);
        assert.equal(res.json.error.code, code);
        if (message) assert.equal(res.json.error.message, message);
      }
      const longest = await post(ctx.twin, `/api/chats/${CHAT.order}/messages`, { content: "é".repeat(1000) }, cookie);
      assert.equal(longest.status, 200, "1000 characters are allowed, counted as characters");
      const huge = await post(ctx.twin, `/api/chats/${CHAT.order}/messages`, { content: "x".repeat(2_000_000) }, cookie);
      assert.equal(huge.status, 413);
      assert.equal((await request(ctx.twin, "GET", "/api/chats")).status, 401);
      assert.equal((await request(ctx.twin, "GET", "/nowhere")).status, 404);
    });

    it("stores and broadcasts a message after answering 403 (post-after-403)", async () => {
      const alice = await login(ctx.twin, "alice");
      const carol = await login(ctx.twin, "carol"); // no part of the order
      const control = await ready(ctx.twin, alice.session);
      const content = unique("forbidden");
      const res = await postAndSettle(ctx.twin, carol.session, CHAT.order, content, control);
      assert.equal(res.status, 403);
      assert.deepEqual(res.json, { error: { code: "FORBIDDEN", message: "Not authorized" } });
      assert.equal(control.received.find((m) => m.content === content).author, "carol");
      const detail = await request(ctx.twin, "GET", `/api/chats/${CHAT.order}`, { headers: { cookie: alice.session } });
      assert.ok(detail.json.data.messages.some((m) => m.content === content && m.author === "carol"));
    });

    it("applies production's viewing rule, with direct chats open to anyone (open-direct-chats)", async () => {
      const who = {};
      for (const name of ["alice", "bob", "carol", "erin", "frank", "admin"]) who[name] = await login(ctx.twin, name);
      const status = async (name, chat) => (await request(ctx.twin, "GET", `/api/chats/${chat}`, { headers: { cookie: who[name].session } })).status;
      const expected = [
        ["alice", CHAT.order, 200], // participant
        ["carol", CHAT.order, 403],
        ["frank", CHAT.order, 200], // any contractor member
        ["admin", CHAT.order, 200],
        ["carol", CHAT.offer, 200],
        ["erin", CHAT.offer, 200], // member with manage_orders
        ["frank", CHAT.offer, 403], // member without it
        ["admin", CHAT.offer, 200],
        ["alice", CHAT.offer, 403],
        ["carol", CHAT.direct, 200], // the defect
        ["frank", CHAT.group, 200], // the defect
      ];
      for (const [name, chat, want] of expected) assert.equal(await status(name, chat), want, `${name} viewing ${chat}`);

      const detail = (await request(ctx.twin, "GET", `/api/chats/${CHAT.direct}`, { headers: { cookie: who.carol.session } })).json.data;
      assert.deepEqual(Object.keys(detail), ["chat_id", "name", "icon", "order_id", "session_id", "participants", "messages"]);
      assert.deepEqual(detail.participants, ["alice", "bob"]);
      assert.equal(detail.messages[0].content, "hey alice");
      assert.equal(detail.messages[0].author, "bob");

      const control = await ready(ctx.twin, who.alice.session);
      const eavesdropper = await ready(ctx.twin, who.carol.session);
      eavesdropper.emit("clientJoinRoom", { chat_id: CHAT.direct });
      await sleep(100);
      const secret = unique("between alice and bob");
      await postAndSettle(ctx.twin, who.bob.session, CHAT.direct, secret, control);
      assert.ok(received(eavesdropper, secret), "carol joined a direct chat she is no part of");
      const intrusion = await post(ctx.twin, `/api/chats/${CHAT.direct}/messages`, { content: "hi" }, { cookie: who.carol.session });
      assert.equal(intrusion.status, 200);
    });

    it("stores inserted system messages without emitting them (unemitted-messages)", async () => {
      const alice = await login(ctx.twin, "alice");
      const control = await ready(ctx.twin, alice.session);
      const silent = unique("system");
      const res = await post(ctx.twin, "/test/insert-message", { chat_id: CHAT.group, content: silent });
      assert.equal(res.status, 200);
      assert.equal(res.json.data.author, null);
      await postAndSettle(ctx.twin, alice.session, CHAT.group, unique("after it"), control);
      assert.ok(!received(control, silent));
      const detail = await request(ctx.twin, "GET", `/api/chats/${CHAT.group}`, { headers: { cookie: alice.session } });
      assert.ok(detail.json.data.messages.some((m) => m.content === silent && m.author === null));
    });

    it("creates or finds a direct chat and answers without its id", async () => {
      const alice = await login(ctx.twin, "alice");
      await login(ctx.twin, "grace");
      const count = async () => (await request(ctx.twin, "GET", "/api/chats", { headers: { cookie: alice.session } })).json.data.length;
      const before = await count();
      for (let i = 0; i < 2; i++) {
        const res = await post(ctx.twin, "/api/chats", { users: ["grace"] }, { cookie: alice.session });
        assert.equal(res.status, 200);
        assert.deepEqual(res.json, { data: { result: "Success" } });
      }
      assert.equal(await count(), before + 1, "the second call found the first chat");
      const list = (await request(ctx.twin, "GET", "/api/chats", { headers: { cookie: alice.session } })).json.data;
      assert.ok(list.some((c) => c.participants.join() === "alice,grace" && c.order_id === null));
      const unknown = await post(ctx.twin, "/api/chats", { users: ["nobody-at-all"] }, { cookie: alice.session });
      assert.equal(unknown.status, 400);
      assert.equal(unknown.json.error.message, "Invalid user");
    });

    it("lets a banned user in by session cookie, not by JWT, and never re-checks (banned-users-connect)", async () => {
      const mallory = await login(ctx.twin, "mallory");
      const bob = await login(ctx.twin, "bob");
      const early = await ready(ctx.twin, mallory.session);
      const chat = (await post(ctx.twin, "/api/dev/chats", { participants: ["mallory", "bob"], name: "later" })).json.data.chat_id;
      assert.equal((await post(ctx.twin, "/api/dev/ban", { username: "mallory" })).status, 200);

      assert.equal((await pollingHandshake(ctx.twin, { cookie: mallory.session })).status, 200);
      await connected(connect(ctx.twin, mallory.session));
      const byToken = await pollingHandshake(ctx.twin, { cookie: mallory.access });
      assert.equal(byToken.status, 400);
      assert.equal(byToken.text, REFUSAL);
      await assert.rejects(connected(connect(ctx.twin, mallory.access)), /websocket error/);
      // The demo's banned dave, by a JWT signed here.
      const now = Math.floor(Date.now() / 1000);
      const dave = jwt({ sub: USER_ID.dave, role: "user", username: "dave", iat: now, exp: now + 900 });
      assert.equal((await pollingHandshake(ctx.twin, { cookie: dave })).status, 400);

      // The socket opened before the ban stays open and still joins rooms.
      assert.ok(early.connected);
      early.emit("clientJoinRoom", { chat_id: chat });
      await sleep(100);
      const control = await ready(ctx.twin, bob.session);
      const content = unique("to a banned user");
      await postAndSettle(ctx.twin, bob.session, chat, content, control);
      assert.ok(received(early, content));
      // REST refuses banned accounts (production's REST middleware checks the ban itself).
      assert.equal((await post(ctx.twin, `/api/chats/${chat}/messages`, { content: "x" }, { cookie: mallory.session })).status, 401);
    });

    it("offers the test-only routes with serve's shapes", async () => {
      const res = await post(ctx.twin, "/api/dev/login", { username: "newcomer" });
      assert.equal(res.status, 200);
      assert.deepEqual(Object.keys(res.json.data), ["user_id", "username", "role", "session_cookie", "access_cookie"]);
      assert.match(res.json.data.user_id, UUID_V4);
      assert.equal(res.json.data.role, "user");
      assert.match(res.json.data.session_cookie, /^scmarket\.sid=s%3A[0-9a-f]{32}\.[A-Za-z0-9%]+$/);
      assert.match(res.json.data.access_cookie, /^scmarket\.access=[\w-]+\.[\w-]+\.[\w-]+$/);
      const setCookie = res.headers["set-cookie"];
      assert.equal(setCookie.length, 2);
      assert.ok(setCookie[0].startsWith(`${res.json.data.session_cookie}; Path=/; HttpOnly`));
      assert.ok(setCookie[1].startsWith(`${res.json.data.access_cookie}; Path=/; HttpOnly`));
      const [, payload] = res.json.data.access_cookie.split("=")[1].split(".");
      const claims = JSON.parse(Buffer.from(payload, "base64url").toString());
      assert.deepEqual(Object.keys(claims), ["sub", "role", "username", "iat", "exp"]);
      assert.equal(claims.exp - claims.iat, 900);

      assert.equal((await post(ctx.twin, "/api/dev/login", { username: "dave" })).status, 403, "the demo's dave is banned");
      assert.equal((await post(ctx.twin, "/api/dev/login", { username: "no spaces" })).status, 400);
      assert.equal((await post(ctx.twin, "/api/dev/ban", { username: "nobody-here" })).status, 404);

      const chat = await post(ctx.twin, "/api/dev/chats", { participants: ["newcomer", "someone-new"] });
      assert.equal(chat.status, 200);
      assert.match(chat.json.data.chat_id, UUID_V4);
      const state = (await request(ctx.twin, "GET", "/test/state")).json;
      assert.deepEqual(Object.keys(state), ["crashes", "sockets", "rooms"]);
      assert.equal(state.crashes, 0);
    });
  });

  for (const [event, args] of [
    ["clientJoinRoom", [null]],
    ["clientLeaveRoom", []],
  ]) {
    it(`exits on a ${event} with a ${args.length ? "null" : "missing"} argument (crash-on-null-join)`, async () => {
      const twin = await startTwin(QUICK_LISTENERS);
      try {
        const alice = await login(twin, "alice");
        const socket = await ready(twin, alice.session);
        socket.emit(event, ...args);
        const { code } = await twin.exited;
        assert.notEqual(code, 0);
        assert.match(twin.stderr(), /crash: uncaught TypeError: Cannot read properties of (null|undefined) \(reading 'chat_id'\)/);
        assert.equal(twin.stderr().trim().split("\n").length, 1, twin.stderr());
      } finally {
        twin.stop();
      }
    });
  }

  // ---------------------------------------------------------------- each --fix

  twinSuite("--fix crash-on-null-join", ["--fix", "crash-on-null-join"], (ctx) => {
    it("survives null and missing arguments", async () => {
      const alice = await login(ctx.twin, "alice");
      const socket = await ready(ctx.twin, alice.session);
      socket.emit("clientJoinRoom", null);
      socket.emit("clientLeaveRoom");
      socket.emit("clientJoinRoom");
      await sleep(100);
      const state = (await request(ctx.twin, "GET", "/test/state")).json;
      assert.equal(state.crashes, 3);
      assert.equal(state.sockets, 1);
      assert.ok(socket.connected);
      assert.equal(ctx.twin.child.exitCode, null);
      assert.match(ctx.twin.stderr(), /survived a clientJoinRoom without an argument/);
    });
  });

  twinSuite("--fix no-origin-check", ["--fix", "no-origin-check", "--allowed-origin", LISTED_ORIGIN], (ctx) => {
    it("refuses a disallowed Origin with 403 on both transports, before authentication", async () => {
      const alice = await login(ctx.twin, "alice");
      for (const cookie of [alice.session, undefined]) {
        const polling = await pollingHandshake(ctx.twin, { ...cookieHeader(cookie), origin: HOSTILE_ORIGIN });
        assert.equal(polling.status, 403);
        assert.equal(polling.text, '{"code":4,"message":"Forbidden"}');
        assert.equal((await websocketHandshake(ctx.twin, { ...cookieHeader(cookie), origin: HOSTILE_ORIGIN })).status, 403);
      }
      await assert.rejects(connected(connect(ctx.twin, alice.session, { headers: { origin: HOSTILE_ORIGIN } })));
      assert.equal((await pollingHandshake(ctx.twin, { cookie: alice.session, origin: LISTED_ORIGIN })).status, 200);
      assert.equal((await pollingHandshake(ctx.twin, { cookie: alice.session })).status, 200);
      assert.equal((await pollingHandshake(ctx.twin, { cookie: alice.session, origin: ctx.twin.url })).status, 200, "same origin");
      assert.equal((await websocketHandshake(ctx.twin, { cookie: alice.session, origin: LISTED_ORIGIN })).status, 101);
    });

    it("refuses state-changing REST requests from a disallowed Origin, and bodies not declared JSON", async () => {
      const alice = await login(ctx.twin, "alice");
      const messages = `/api/chats/${CHAT.direct}/messages`;
      const hostile = await post(ctx.twin, messages, { content: "from a hostile page" }, { cookie: alice.session, origin: HOSTILE_ORIGIN });
      assert.equal(hostile.status, 403);
      assert.deepEqual(hostile.json, { error: { code: "FORBIDDEN", message: "Origin not allowed" } });
      const hostilePreflight = await request(ctx.twin, "OPTIONS", messages, { headers: { origin: HOSTILE_ORIGIN } });
      assert.equal(hostilePreflight.status, 403);
      for (const type of ["text/plain", "application/x-www-form-urlencoded"]) {
        const typed = await post(ctx.twin, messages, JSON.stringify({ content: "typed otherwise" }), { cookie: alice.session, "content-type": type });
        assert.equal(typed.status, 415, type);
        assert.equal(typed.json.error.code, "UNSUPPORTED_MEDIA_TYPE");
      }
      const detail = await request(ctx.twin, "GET", `/api/chats/${CHAT.direct}`, { headers: { cookie: alice.session } });
      const contents = detail.json.data.messages.map((m) => m.content);
      assert.ok(!contents.includes("from a hostile page") && !contents.includes("typed otherwise"), contents.join(", "));
      const listed = await post(ctx.twin, messages, { content: "from the app" }, { cookie: alice.session, origin: LISTED_ORIGIN });
      assert.equal(listed.status, 200);
      assert.equal(listed.headers["access-control-allow-origin"], LISTED_ORIGIN);
    });
  });

  twinSuite("--fix post-after-403", ["--fix", "post-after-403"], (ctx) => {
    it("neither stores nor broadcasts a refused message", async () => {
      const alice = await login(ctx.twin, "alice");
      const carol = await login(ctx.twin, "carol");
      const control = await ready(ctx.twin, alice.session);
      const refused = unique("forbidden");
      const res = await post(ctx.twin, `/api/chats/${CHAT.order}/messages`, { content: refused }, { cookie: carol.session });
      assert.equal(res.status, 403);
      assert.deepEqual(res.json, { error: { code: "FORBIDDEN", message: "Not authorized" } });
      await postAndSettle(ctx.twin, alice.session, CHAT.order, unique("allowed"), control);
      assert.ok(!received(control, refused));
      const detail = await request(ctx.twin, "GET", `/api/chats/${CHAT.order}`, { headers: { cookie: alice.session } });
      assert.ok(!detail.json.data.messages.some((m) => m.content === refused));
    });
  });

  twinSuite("--fix case-sensitive-rooms", ["--fix", "case-sensitive-rooms"], (ctx) => {
    it("joins the lower-case room for an upper-case id", async () => {
      const alice = await login(ctx.twin, "alice");
      const erin = await login(ctx.twin, "erin");
      const control = await ready(ctx.twin, alice.session);
      const socket = await ready(ctx.twin, erin.session);
      socket.emit("clientJoinRoom", { chat_id: CHAT.order.toUpperCase() });
      await sleep(100);
      const rooms = (await request(ctx.twin, "GET", "/test/state")).json.rooms;
      assert.equal(rooms[CHAT.order.toUpperCase()], undefined);
      const content = unique("upper-case join");
      await postAndSettle(ctx.twin, alice.session, CHAT.order, content, control);
      assert.ok(received(socket, content));
    });
  });

  twinSuite("--fix banned-users-connect", ["--fix", "banned-users-connect"], (ctx) => {
    it("refuses a banned user's session cookie and closes their open sockets", async () => {
      const mallory = await login(ctx.twin, "mallory");
      const open = await ready(ctx.twin, mallory.session);
      const closed = new Promise((resolve) => open.once("disconnect", resolve));
      assert.equal((await post(ctx.twin, "/api/dev/ban", { username: "mallory" })).status, 200);
      await closed;
      const res = await pollingHandshake(ctx.twin, { cookie: mallory.session });
      assert.equal(res.status, 400);
      assert.equal(res.text, REFUSAL);
      assert.equal((await post(ctx.twin, "/api/dev/ban", { username: "mallory", banned: false })).status, 200);
      assert.equal((await pollingHandshake(ctx.twin, { cookie: mallory.session })).status, 200);
    });
  });

  twinSuite("--fix open-direct-chats", ["--fix", "open-direct-chats"], (ctx) => {
    it("keeps direct and group chats to their participants", async () => {
      const alice = await login(ctx.twin, "alice");
      const carol = await login(ctx.twin, "carol");
      assert.equal((await request(ctx.twin, "GET", `/api/chats/${CHAT.direct}`, { headers: { cookie: carol.session } })).status, 403);
      assert.equal((await request(ctx.twin, "GET", `/api/chats/${CHAT.group}`, { headers: { cookie: carol.session } })).status, 200);
      const control = await ready(ctx.twin, alice.session);
      const eavesdropper = await ready(ctx.twin, carol.session);
      eavesdropper.emit("clientJoinRoom", { chat_id: CHAT.direct });
      await sleep(100);
      const secret = unique("private");
      await postAndSettle(ctx.twin, alice.session, CHAT.direct, secret, control);
      assert.ok(!received(eavesdropper, secret));
      assert.equal((await post(ctx.twin, `/api/chats/${CHAT.direct}/messages`, { content: "hi" }, { cookie: carol.session })).status, 403);
    });
  });

  twinSuite("--fix swallowed-errors", ["--fix", "swallowed-errors"], (ctx) => {
    it("acknowledges joins and leaves with a reason when asked", async () => {
      const carol = await login(ctx.twin, "carol");
      const socket = await ready(ctx.twin, carol.session);
      const ask = (event, ...args) => socket.timeout(2000).emitWithAck(event, ...args);
      assert.deepEqual(await ask("clientJoinRoom", { chat_id: CHAT.group }), { ok: true });
      assert.deepEqual(await ask("clientJoinRoom", { chat_id: CHAT.order }), { ok: false, error: "not_authorized" });
      assert.deepEqual(await ask("clientJoinRoom", { chat_id: crypto.randomUUID() }), { ok: false, error: "chat_not_found" });
      assert.deepEqual(await ask("clientJoinRoom", { chat_id: "nope" }), { ok: false, error: "invalid_chat_id" });
      assert.deepEqual(await ask("clientJoinRoom", { chat_id: 5 }), { ok: false, error: "invalid_payload" });
      assert.deepEqual(await ask("clientJoinRoom", "a string"), { ok: false, error: "invalid_payload" });
      assert.deepEqual(await ask("clientLeaveRoom", { chat_id: CHAT.group }), { ok: true });
      assert.deepEqual(await ask("somethingElse", {}), { ok: false, error: "unknown_event" });
    });
  });

  twinSuite("--fix unemitted-messages", ["--fix", "unemitted-messages"], (ctx) => {
    it("emits inserted system messages", async () => {
      const alice = await login(ctx.twin, "alice");
      const control = await ready(ctx.twin, alice.session);
      const content = unique("system");
      assert.equal((await post(ctx.twin, "/test/insert-message", { chat_id: CHAT.group, content })).status, 200);
      await waitFor("the system message", () => received(control, content));
      assert.equal(control.received.find((m) => m.content === content).author, null);
    });
  });

  twinSuite("--fix late-listeners", ["--fix", "late-listeners", "--listener-delay", "300-400"], (ctx) => {
    it("keeps every join sent right after CONNECT, and is in the user's rooms by then", async () => {
      const alice = await login(ctx.twin, "alice");
      const erin = await login(ctx.twin, "erin");
      const join = (s) => s.emit("clientJoinRoom", { chat_id: CHAT.order });
      const hasty = await Promise.all(Array.from({ length: 10 }, () => connected(connect(ctx.twin, erin.session, { onConnect: join }))));
      // No wait at all: the query and the auto-join happened before CONNECT.
      const control = await connected(connect(ctx.twin, alice.session));
      const content = unique("right after connect");
      await postAndSettle(ctx.twin, alice.session, CHAT.order, content, control);
      assert.equal(hasty.filter((s) => received(s, content)).length, 10);
    });
  });

  twinSuite("every --fix at once", ["--allowed-origin", LISTED_ORIGIN, ...["crash-on-null-join", "no-origin-check", "post-after-403", "case-sensitive-rooms", "banned-users-connect", "open-direct-chats", "swallowed-errors", "unemitted-messages", "late-listeners"].flatMap((d) => ["--fix", d])], (ctx) => {
    it("behaves like serve on the wire", async () => {
      const alice = await login(ctx.twin, "alice");
      const erin = await login(ctx.twin, "erin");
      assert.equal((await pollingHandshake(ctx.twin, { cookie: alice.session, origin: HOSTILE_ORIGIN })).status, 403);
      const socket = await connected(connect(ctx.twin, erin.session));
      const ask = (event, ...args) => socket.timeout(2000).emitWithAck(event, ...args);
      assert.deepEqual(await ask("clientJoinRoom", null), { ok: false, error: "invalid_payload" });
      assert.deepEqual(await ask("clientJoinRoom", { chat_id: CHAT.order.toUpperCase() }), { ok: true });
      assert.deepEqual(await ask("clientJoinRoom", { chat_id: CHAT.direct }), { ok: false, error: "not_authorized" });
      const control = await connected(connect(ctx.twin, alice.session));
      const content = unique("fixed");
      await postAndSettle(ctx.twin, alice.session, CHAT.order, content, control);
      assert.ok(received(socket, content));
      assert.equal(ctx.twin.child.exitCode, null);
    });
  });
});
