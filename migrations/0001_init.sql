-- The tables of production's schema that the realtime layer reads, in SQLite form.
-- UUIDs are stored as lowercase hyphenated text; timestamps as Unix milliseconds.

CREATE TABLE accounts (
    user_id   TEXT PRIMARY KEY NOT NULL,
    username  TEXT NOT NULL UNIQUE,
    role      TEXT NOT NULL DEFAULT 'user',
    banned    INTEGER NOT NULL DEFAULT 0,
    -- production deletes rows; a soft delete lets tests prove a deleted user is refused
    deleted   INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE contractors (
    contractor_id TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL UNIQUE
);

CREATE TABLE contractor_members (
    contractor_id TEXT NOT NULL REFERENCES contractors(contractor_id),
    user_id       TEXT NOT NULL REFERENCES accounts(user_id),
    -- comma-separated permission names, e.g. 'manage_orders'
    permissions   TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (contractor_id, user_id)
);

CREATE TABLE orders (
    order_id      TEXT PRIMARY KEY NOT NULL,
    customer_id   TEXT NOT NULL REFERENCES accounts(user_id),
    assigned_id   TEXT REFERENCES accounts(user_id),
    contractor_id TEXT REFERENCES contractors(contractor_id),
    title         TEXT NOT NULL DEFAULT ''
);

CREATE TABLE offer_sessions (
    id            TEXT PRIMARY KEY NOT NULL,
    customer_id   TEXT NOT NULL REFERENCES accounts(user_id),
    assigned_id   TEXT REFERENCES accounts(user_id),
    contractor_id TEXT REFERENCES contractors(contractor_id)
);

CREATE TABLE chats (
    chat_id    TEXT PRIMARY KEY NOT NULL,
    name       TEXT,
    icon       TEXT,
    order_id   TEXT UNIQUE REFERENCES orders(order_id),
    session_id TEXT UNIQUE REFERENCES offer_sessions(id)
);

CREATE TABLE chat_participants (
    chat_id TEXT NOT NULL REFERENCES chats(chat_id),
    user_id TEXT NOT NULL REFERENCES accounts(user_id),
    UNIQUE (chat_id, user_id)
);
CREATE INDEX chat_participants_by_user ON chat_participants(user_id);

CREATE TABLE messages (
    message_id TEXT PRIMARY KEY NOT NULL,
    content    TEXT NOT NULL,
    author     TEXT REFERENCES accounts(user_id),
    chat_id    TEXT NOT NULL REFERENCES chats(chat_id),
    timestamp  INTEGER NOT NULL
);
CREATE INDEX messages_by_chat ON messages(chat_id, timestamp);

-- connect-pg-simple's table: sess is the express-session JSON, passport.user the user id.
CREATE TABLE login_sessions (
    sid    TEXT PRIMARY KEY NOT NULL,
    sess   TEXT NOT NULL,
    expire INTEGER NOT NULL
);
CREATE INDEX login_sessions_expire ON login_sessions(expire);
