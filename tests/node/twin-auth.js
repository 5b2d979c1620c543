// Cookie authentication of the production twin (production-server.js), as SC Market's backend
// does it on the Socket.IO handshake and on REST: the `scmarket.access` HS256 JWT first (what
// production's jsonwebtoken accepts), then the signed `scmarket.sid` express-session cookie
// (cookie-signature's format) looked up in `login_sessions`. Node's crypto only.

"use strict";

const crypto = require("crypto");

const ACCESS_COOKIE = "scmarket.access";
const SESSION_COOKIE = "scmarket.sid";
// Production's jsonwebtoken clockTolerance; it applies to both exp and nbf.
const ACCESS_TOKEN_LEEWAY_S = 30;
const ACCESS_TOKEN_LIFETIME_S = 15 * 60;
// What `serve --dev` signs with (src/server/auth.rs DEV_SECRET), so cookies work on both servers.
const DEV_SECRET = "scmarket-ws-development-secret-do-not-use-in-production";

// The `cookie` package's parse, as express-session and socket.io use it: the first occurrence of
// a name wins, surrounding quotes are dropped, values with '%' are URL-decoded when they can be.
function parseCookies(header) {
  const out = Object.create(null);
  for (const part of String(header || "").split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    if (!name || name in out) continue;
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    if (value.includes("%")) {
      try {
        value = decodeURIComponent(value);
      } catch (e) {
        // Kept as sent: a malformed escape is not a reason to throw on a handshake.
      }
    }
    out[name] = value;
  }
  return out;
}

function hmacSha256(secret, data, encoding) {
  return crypto.createHmac("sha256", secret).update(data).digest(encoding);
}

// Constant-time equality of two strings (false at once when the lengths differ, which leaks
// nothing an attacker does not already know: a signature's length is public).
function sameText(a, b) {
  const x = Buffer.from(a, "utf8");
  const y = Buffer.from(b, "utf8");
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}

function base64urlJson(value) {
  return Buffer.from(JSON.stringify(value), "utf8").toString("base64url");
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;

function decodeJsonObject(segment) {
  if (!BASE64URL.test(segment)) return null;
  try {
    const value = JSON.parse(Buffer.from(segment, "base64url").toString("utf8"));
    return value !== null && typeof value === "object" && !Array.isArray(value) ? value : null;
  } catch (e) {
    return null;
  }
}

function nowSeconds() {
  return Math.floor(Date.now() / 1000);
}

// The access token production issues at login: claims {sub, role, username, iat, exp}.
function signAccessToken(user, secret, now = nowSeconds()) {
  const header = base64urlJson({ alg: "HS256", typ: "JWT" });
  const payload = base64urlJson({
    sub: user.user_id,
    role: user.role,
    username: user.username,
    iat: now,
    exp: now + ACCESS_TOKEN_LIFETIME_S,
  });
  const signature = hmacSha256(secret, `${header}.${payload}`, "base64url");
  return `${header}.${payload}.${signature}`;
}

// {claims} or {refusal}. Only HS256 is accepted, so `alg: none` and tokens of other algorithms
// are refused before any signature is looked at. exp is required (as `serve` requires it: a
// token without one would never expire); nbf, when present, must not be in the future.
function verifyAccessToken(token, secret, now = nowSeconds()) {
  const parts = String(token).split(".");
  if (parts.length !== 3) return { refusal: "token_invalid" };
  const header = decodeJsonObject(parts[0]);
  if (!header || header.alg !== "HS256") return { refusal: "token_invalid" };
  if (!BASE64URL.test(parts[2])) return { refusal: "token_invalid" };
  const expected = hmacSha256(secret, `${parts[0]}.${parts[1]}`, "base64url");
  if (!sameText(expected, parts[2])) return { refusal: "token_invalid" };
  const claims = decodeJsonObject(parts[1]);
  if (!claims || typeof claims.sub !== "string") return { refusal: "token_invalid" };
  if (typeof claims.exp !== "number") return { refusal: "token_invalid" };
  if (now >= claims.exp + ACCESS_TOKEN_LEEWAY_S) return { refusal: "token_expired" };
  if (claims.nbf !== undefined) {
    if (typeof claims.nbf !== "number") return { refusal: "token_invalid" };
    if (claims.nbf > now + ACCESS_TOKEN_LEEWAY_S) return { refusal: "token_not_active" };
  }
  return { claims };
}

// `s:<sid>.<signature>` URL-encoded, as express-session writes the cookie value.
function signSessionCookie(sid, secret) {
  const signature = hmacSha256(secret, sid, "base64").replace(/=+$/, "");
  return encodeURIComponent(`s:${sid}.${signature}`);
}

// The sid inside an already URL-decoded cookie value, or null when it is unsigned or forged.
function unsignSessionCookie(value, secret) {
  if (typeof value !== "string" || !value.startsWith("s:")) return null;
  const signed = value.slice(2);
  const dot = signed.lastIndexOf(".");
  if (dot <= 0) return null;
  const sid = signed.slice(0, dot);
  const expected = `${sid}.${hmacSha256(secret, sid, "base64").replace(/=+$/, "")}`;
  return sameText(expected, signed) ? sid : null;
}

// Who sent this request, by its Cookie header: {user, method} or {refusal}.
// `bannedUsersConnect` is production's defect banned-users-connect: the JWT path refuses a
// banned user, the session path lets them in (passport deserialises any existing account).
function authenticate(cookieHeader, { store, secrets, bannedUsersConnect, now = Date.now() }) {
  const cookies = parseCookies(cookieHeader);
  let tokenRefusal = null;
  const token = cookies[ACCESS_COOKIE];
  if (token !== undefined) {
    const verified = verifyAccessToken(token, secrets.jwt, Math.floor(now / 1000));
    if (verified.claims) {
      const user = store.userById(verified.claims.sub);
      if (!user) tokenRefusal = "user_unknown";
      else if (user.banned) tokenRefusal = "user_disabled";
      else return { user, method: "access_token" };
    } else {
      tokenRefusal = verified.refusal;
    }
  }
  const cookie = cookies[SESSION_COOKIE];
  if (cookie === undefined) return { refusal: tokenRefusal || "no_credentials" };
  const sid = unsignSessionCookie(cookie, secrets.session);
  if (sid === null) return { refusal: "session_bad_signature" };
  const userId = store.sessionUserId(sid, now);
  if (userId === null) return { refusal: "session_unknown" };
  const user = store.userById(userId);
  if (!user) return { refusal: "user_unknown" };
  if (user.banned && !bannedUsersConnect) return { refusal: "user_disabled" };
  return { user, method: "session_cookie" };
}

module.exports = {
  ACCESS_COOKIE,
  SESSION_COOKIE,
  ACCESS_TOKEN_LIFETIME_S,
  DEV_SECRET,
  parseCookies,
  signAccessToken,
  verifyAccessToken,
  signSessionCookie,
  unsignSessionCookie,
  authenticate,
};
