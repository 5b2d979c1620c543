// The in-memory "database" of the production twin (production-server.js): accounts,
// login_sessions, contractors, orders, offer sessions, chats and messages, seeded from the same
// YAML fixtures as `serve` (src/store/demo.yaml, or any `serve --seed` file), and the viewing
// rule `can_view_chat` as production applies it.

"use strict";

const crypto = require("crypto");
const fs = require("fs");
const YAML = require("yaml");

// The contractor permission that lets a member view the chats of the contractor's offers.
const MANAGE_ORDERS = "manage_orders";
// How long a dev-login session lasts (as `serve`: long enough for a soak test).
const DEV_SESSION_TTL_MS = 24 * 60 * 60 * 1000;
// messages.content is varchar(1000).
const MAX_CONTENT_CHARS = 1000;

const CANONICAL_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const HEX = /^[0-9a-f]$/i;

// A chat id as `serve` takes it: the 36-character hyphenated form, in any letter case,
// normalised to lower case. Null when it is not one.
function strictUuid(text) {
  return typeof text === "string" && CANONICAL_UUID.test(text) ? text.toLowerCase() : null;
}

// A uuid as Postgres' uuid input accepts it (what production's queries see): any letter case,
// optionally in braces, with or without a hyphen after any group of four hex digits. Answers
// the canonical lower-case form, or null where Postgres raises "invalid input syntax".
function postgresUuid(text) {
  if (typeof text !== "string" || text.length > 64) return null;
  let i = 0;
  const braces = text[0] === "{";
  if (braces) i++;
  let hex = "";
  for (let byte = 0; byte < 16; byte++) {
    if (!HEX.test(text[i] || "") || !HEX.test(text[i + 1] || "")) return null;
    hex += text.slice(i, i + 2);
    i += 2;
    if (byte % 2 === 1 && byte < 15 && text[i] === "-") i++;
  }
  if (braces) {
    if (text[i] !== "}") return null;
    i++;
  }
  if (i !== text.length) return null;
  hex = hex.toLowerCase();
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

class FixtureError extends Error {}

function checkKeys(value, allowed, where) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new FixtureError(`${where} must be a mapping`);
  }
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      throw new FixtureError(`${where} has unknown field ${JSON.stringify(key)} (expected one of ${allowed.join(", ")})`);
    }
  }
}

function list(value, where) {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new FixtureError(`${where} must be a list`);
  return value;
}

function text(value, where, { optional = false } = {}) {
  if (optional && (value === undefined || value === null)) return null;
  if (typeof value !== "string" || value === "") throw new FixtureError(`${where} must be a non-empty string`);
  return value;
}

function fixtureId(value, where) {
  if (value === undefined || value === null) return crypto.randomUUID();
  const id = strictUuid(String(value));
  if (!id) throw new FixtureError(`${where} is not a UUID: ${JSON.stringify(value)}`);
  return id;
}

class Store {
  constructor() {
    this.users = new Map(); // user_id -> {user_id, username, role, banned}
    this.usersByName = new Map();
    this.contractors = new Map(); // contractor_id -> {contractor_id, name, members: Map user_id -> permissions[]}
    this.contractorsByName = new Map();
    this.orders = new Map(); // order_id -> {customer_id, assigned_id, contractor_id}
    this.offers = new Map(); // offer session id -> {customer_id, assigned_id, contractor_id}
    this.chats = new Map(); // chat_id -> {chat_id, name, icon, order_id, session_id, participants: Set}
    this.messages = new Map(); // chat_id -> [{message_id, content, author (user_id|null), chat_id, timestamp (ms)}]
    this.loginSessions = new Map(); // sid -> {sess, expire (ms)}
  }

  // Read fixtures from a YAML file; throws FixtureError with the file name on any problem.
  static fromFile(path) {
    let source;
    try {
      source = fs.readFileSync(path, "utf8");
    } catch (e) {
      throw new FixtureError(`cannot read fixtures ${path}: ${e.message}`);
    }
    let doc;
    try {
      // YAML 1.2 core schema: a user called `yes` or `n` stays a string, as in `serve`.
      doc = YAML.parse(source, { version: "1.2", prettyErrors: true });
    } catch (e) {
      throw new FixtureError(`${path}: invalid YAML: ${e.message}`);
    }
    const store = new Store();
    try {
      store.load(doc || {});
    } catch (e) {
      if (e instanceof FixtureError) throw new FixtureError(`${path}: ${e.message}`);
      throw e;
    }
    return store;
  }

  load(doc) {
    checkKeys(doc, ["users", "contractors", "orders", "offers", "chats"], "the fixtures");
    list(doc.users, "users").forEach((u, i) => {
      const where = `users[${i}]`;
      checkKeys(u, ["username", "id", "role", "banned"], where);
      const user = this.addUser(text(u.username, `${where}.username`), {
        id: fixtureId(u.id, `${where}.id`),
        role: u.role === undefined ? "user" : text(u.role, `${where}.role`),
      });
      if (u.banned !== undefined && typeof u.banned !== "boolean") throw new FixtureError(`${where}.banned must be true or false`);
      user.banned = u.banned === true;
    });
    list(doc.contractors, "contractors").forEach((c, i) => {
      const where = `contractors[${i}]`;
      checkKeys(c, ["name", "id", "members"], where);
      const name = text(c.name, `${where}.name`);
      const contractor = { contractor_id: fixtureId(c.id, `${where}.id`), name, members: new Map() };
      list(c.members, `${where}.members`).forEach((m, j) => {
        const mw = `${where}.members[${j}]`;
        checkKeys(m, ["user", "permissions"], mw);
        const permissions = list(m.permissions, `${mw}.permissions`).map((p, k) => text(p, `${mw}.permissions[${k}]`));
        contractor.members.set(this.userNamed(m.user, mw).user_id, permissions);
      });
      this.contractors.set(contractor.contractor_id, contractor);
      this.contractorsByName.set(name, contractor);
    });
    for (const [key, table] of [["orders", this.orders], ["offers", this.offers]]) {
      list(doc[key], key).forEach((p, i) => {
        const where = `${key}[${i}]`;
        checkKeys(p, ["id", "customer", "assigned", "contractor", "title"], where);
        let contractorId = null;
        if (p.contractor !== undefined && p.contractor !== null) {
          const contractor = this.contractorsByName.get(p.contractor);
          if (!contractor) throw new FixtureError(`${where} names contractor ${JSON.stringify(p.contractor)}, which is not in the fixtures`);
          contractorId = contractor.contractor_id;
        }
        table.set(fixtureId(p.id, `${where}.id`), {
          customer_id: this.userNamed(p.customer, where).user_id,
          assigned_id: p.assigned === undefined || p.assigned === null ? null : this.userNamed(p.assigned, where).user_id,
          contractor_id: contractorId,
        });
      });
    }
    list(doc.chats, "chats").forEach((c, i) => {
      const where = `chats[${i}]`;
      checkKeys(c, ["id", "name", "icon", "order", "offer", "participants", "messages"], where);
      const orderId = c.order === undefined || c.order === null ? null : fixtureId(c.order, `${where}.order`);
      const sessionId = c.offer === undefined || c.offer === null ? null : fixtureId(c.offer, `${where}.offer`);
      if (orderId && !this.orders.has(orderId)) throw new FixtureError(`${where}.order ${orderId} is not an order of the fixtures`);
      if (sessionId && !this.offers.has(sessionId)) throw new FixtureError(`${where}.offer ${sessionId} is not an offer of the fixtures`);
      const participants = list(c.participants, `${where}.participants`).map((p) => this.userNamed(p, where).user_id);
      const chat = this.addChat({
        chatId: fixtureId(c.id, `${where}.id`),
        name: text(c.name, `${where}.name`, { optional: true }),
        icon: text(c.icon, `${where}.icon`, { optional: true }),
        orderId,
        sessionId,
        participants,
      });
      // Seeded messages one second apart, oldest first, ending now (as `serve` seeds them).
      const seeded = list(c.messages, `${where}.messages`);
      const now = Date.now();
      seeded.forEach((m, j) => {
        const mw = `${where}.messages[${j}]`;
        checkKeys(m, ["author", "content"], mw);
        const author = m.author === undefined || m.author === null ? null : this.userNamed(m.author, mw);
        this.insertMessage(chat.chat_id, author, text(m.content, `${mw}.content`), now - (seeded.length - j) * 1000);
      });
    });
  }

  userNamed(name, where) {
    const user = typeof name === "string" ? this.usersByName.get(name) : undefined;
    if (!user) throw new FixtureError(`${where} names user ${JSON.stringify(name)}, which is not in the fixtures`);
    return user;
  }

  addUser(username, { id = crypto.randomUUID(), role = "user" } = {}) {
    const existing = this.usersByName.get(username);
    if (existing) return existing;
    const user = { user_id: id, username, role, banned: false };
    this.users.set(id, user);
    this.usersByName.set(username, user);
    return user;
  }

  userById(id) {
    const canonical = postgresUuid(id);
    return (canonical && this.users.get(canonical)) || null;
  }

  userByName(username) {
    return this.usersByName.get(username) || null;
  }

  createLoginSession(userId, ttlMs = DEV_SESSION_TTL_MS) {
    // express-session ids are 32 url-safe characters; a simple-form UUID is as unguessable.
    const sid = crypto.randomUUID().replace(/-/g, "");
    this.loginSessions.set(sid, {
      sess: { cookie: { originalMaxAge: ttlMs, httpOnly: true, path: "/" }, passport: { user: userId } },
      expire: Date.now() + ttlMs,
    });
    return sid;
  }

  // passport.user of an unexpired session, or null (no row, expired, or not logged in).
  sessionUserId(sid, now = Date.now()) {
    const row = this.loginSessions.get(sid);
    if (!row || row.expire <= now) return null;
    const user = row.sess && row.sess.passport && row.sess.passport.user;
    return typeof user === "string" ? user : null;
  }

  addChat({ chatId = crypto.randomUUID(), name = null, icon = null, orderId = null, sessionId = null, participants = [] }) {
    const existing = this.chats.get(chatId);
    if (existing) {
      for (const p of participants) existing.participants.add(p);
      return existing;
    }
    const chat = { chat_id: chatId, name, icon, order_id: orderId, session_id: sessionId, participants: new Set(participants) };
    this.chats.set(chatId, chat);
    this.messages.set(chatId, []);
    return chat;
  }

  // Ids of the chats the user takes part in, in id order.
  participantChatIds(userId) {
    const ids = [];
    for (const chat of this.chats.values()) if (chat.participants.has(userId)) ids.push(chat.chat_id);
    return ids.sort();
  }

  // Production's POST /api/chats: among the caller's chats, the one with exactly these
  // participants (whatever its kind), or null.
  chatWithParticipants(callerId, userIds) {
    const wanted = new Set(userIds);
    for (const id of this.participantChatIds(callerId)) {
      const chat = this.chats.get(id);
      if (chat.participants.size === wanted.size && [...wanted].every((u) => chat.participants.has(u))) return chat;
    }
    return null;
  }

  insertMessage(chatId, author, content, timestamp = Date.now()) {
    const row = { message_id: crypto.randomUUID(), content, author: author ? author.user_id : null, chat_id: chatId, timestamp };
    this.messages.get(chatId).push(row);
    return row;
  }

  // A message row as clients receive it (serverMessage and GET /api/chats/:id), in
  // production's key order: message_id, content, author (username), chat_id, timestamp.
  wireMessage(row) {
    const author = row.author === null ? null : this.users.get(row.author);
    return {
      message_id: row.message_id,
      content: row.content,
      author: author ? author.username : null,
      chat_id: row.chat_id,
      timestamp: new Date(row.timestamp).toISOString(),
    };
  }

  chatSummary(chat) {
    const participants = [...chat.participants].map((id) => this.users.get(id)).filter(Boolean).map((u) => u.username);
    return {
      chat_id: chat.chat_id,
      name: chat.name,
      icon: chat.icon,
      order_id: chat.order_id,
      session_id: chat.session_id,
      participants: participants.sort(),
    };
  }

  chatDetail(chat) {
    const messages = [...this.messages.get(chat.chat_id)].sort((a, b) => a.timestamp - b.timestamp);
    return { ...this.chatSummary(chat), messages: messages.map((m) => this.wireMessage(m)) };
  }

  // can_view_chat. `openDirectChats` is production's defect open-direct-chats: a chat with
  // neither order nor offer is viewable by any logged-in user.
  canViewChat(user, chat, { openDirectChats }) {
    if (chat.participants.has(user.user_id)) return true;
    const isAdmin = user.role === "admin";
    const isParty = (p) => p.customer_id === user.user_id || p.assigned_id === user.user_id;
    const memberPermissions = (p) => {
      const contractor = p.contractor_id && this.contractors.get(p.contractor_id);
      return (contractor && contractor.members.get(user.user_id)) || null;
    };
    if (chat.order_id) {
      const order = this.orders.get(chat.order_id);
      // Order chats: customer, assignee, any member of the contractor, or an admin.
      return isAdmin || (!!order && (isParty(order) || memberPermissions(order) !== null));
    }
    if (chat.session_id) {
      const offer = this.offers.get(chat.session_id);
      if (!offer) return false;
      // Offer chats: customer, assignee, or a contractor member with manage_orders; admins
      // pass that permission check (so only for offers that have a contractor).
      const permissions = memberPermissions(offer);
      return (
        isParty(offer) ||
        (offer.contractor_id !== null && isAdmin) ||
        (permissions !== null && permissions.includes(MANAGE_ORDERS))
      );
    }
    return openDirectChats;
  }
}

module.exports = { Store, FixtureError, strictUuid, postgresUuid, MAX_CONTENT_CHARS, DEV_SESSION_TTL_MS };
