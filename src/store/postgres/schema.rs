//! The production tables as this store reads them: which columns must exist with which types
//! (`db check`, and `serve` before it starts), and the development DDL of `serve --init`,
//! written from the schema facts with production's types and constraints.

use tokio_postgres::GenericClient;

use crate::store::StoreResult;

/// The permission columns of `contractor_roles`, in production's order.
pub const PERMISSIONS: [&str; 10] = [
    "manage_roles",
    "manage_orders",
    "kick_members",
    "manage_invites",
    "manage_org_details",
    "manage_stock",
    "manage_market",
    "manage_recruiting",
    "manage_webhooks",
    "manage_blocklist",
];

const UUID: &[&str] = &["uuid"];
const TEXT: &[&str] = &["character varying", "text", "citext"];
const BOOL: &[&str] = &["boolean"];
/// Timestamps are UTC wall-clock values without a zone, as production keeps them.
const TIMESTAMP: &[&str] = &["timestamp without time zone"];
const JSON: &[&str] = &["json", "jsonb"];

/// A column's name and the types this store can use for it.
pub type Column = (&'static str, &'static [&'static str]);

/// Every column this store reads or writes, with the types it can work with (the first is
/// production's). Columns it never names are left alone, whatever they are.
pub const REQUIRED: &[(&str, &[Column])] = &[
    (
        "accounts",
        &[
            ("user_id", UUID),
            ("username", TEXT),
            ("display_name", TEXT),
            ("discord_id", &["bigint"]),
            ("role", TEXT),
            ("banned", BOOL),
        ],
    ),
    (
        "login_sessions",
        &[("sid", TEXT), ("sess", JSON), ("expire", TIMESTAMP)],
    ),
    (
        "chats",
        &[
            ("chat_id", UUID),
            ("icon", UUID),
            ("name", TEXT),
            ("order_id", UUID),
            ("session_id", UUID),
        ],
    ),
    ("chat_participants", &[("chat_id", UUID), ("user_id", UUID)]),
    (
        "messages",
        &[
            ("message_id", UUID),
            ("content", TEXT),
            ("author", UUID),
            ("chat_id", UUID),
            ("timestamp", TIMESTAMP),
        ],
    ),
    (
        "orders",
        &[
            ("order_id", UUID),
            ("customer_id", UUID),
            ("assigned_id", UUID),
            ("contractor_id", UUID),
        ],
    ),
    (
        "offer_sessions",
        &[
            ("id", UUID),
            ("customer_id", UUID),
            ("assigned_id", UUID),
            ("contractor_id", UUID),
        ],
    ),
    ("contractors", &[("contractor_id", UUID), ("name", TEXT)]),
    (
        "contractor_members",
        &[("contractor_id", UUID), ("user_id", UUID), ("role", TEXT)],
    ),
    (
        "contractor_roles",
        &[
            ("role_id", UUID),
            ("contractor_id", UUID),
            ("manage_roles", BOOL),
            ("manage_orders", BOOL),
            ("kick_members", BOOL),
            ("manage_invites", BOOL),
            ("manage_org_details", BOOL),
            ("manage_stock", BOOL),
            ("manage_market", BOOL),
            ("manage_recruiting", BOOL),
            ("manage_webhooks", BOOL),
            ("manage_blocklist", BOOL),
        ],
    ),
    (
        "contractor_member_roles",
        &[("user_id", UUID), ("role_id", UUID)],
    ),
];

/// One thing wrong with the database, as `db check` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    MissingTable(&'static str),
    MissingColumn {
        table: &'static str,
        column: &'static str,
        wanted: &'static str,
    },
    WrongType {
        table: &'static str,
        column: &'static str,
        found: String,
        wanted: &'static str,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::MissingTable(table) => write!(f, "table {table} is missing"),
            Problem::MissingColumn {
                table,
                column,
                wanted,
            } => write!(f, "column {table}.{column} is missing (wanted {wanted})"),
            Problem::WrongType {
                table,
                column,
                found,
                wanted,
            } => write!(
                f,
                "column {table}.{column} is {found}, not a type this store can use (wanted {wanted})"
            ),
        }
    }
}

/// What `db check` found: every problem, and whether the notify trigger is installed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub problems: Vec<Problem>,
    /// Tables of [`REQUIRED`] that exist (so `--init` can refuse a database that has any).
    pub existing_tables: Vec<&'static str>,
    pub notify_installed: bool,
}

impl CheckReport {
    pub fn usable(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Compare the `public` schema with [`REQUIRED`]: every missing table or column, every column
/// of a type this store cannot read.
pub async fn check(client: &impl GenericClient) -> StoreResult<CheckReport> {
    let tables: Vec<&str> = REQUIRED.iter().map(|(t, _)| *t).collect();
    let rows = client
        .query(
            "SELECT table_name::text, column_name::text, \
               CASE WHEN data_type = 'USER-DEFINED' THEN udt_name::text ELSE data_type::text END \
             FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = ANY($1)",
            &[&tables],
        )
        .await?;
    let found: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let mut report = CheckReport {
        notify_installed: super::notify::installed(client).await?,
        ..CheckReport::default()
    };
    for (table, columns) in REQUIRED {
        if !found.iter().any(|(t, _, _)| t == table) {
            report.problems.push(Problem::MissingTable(table));
            continue;
        }
        report.existing_tables.push(table);
        for (column, types) in columns.iter() {
            match found.iter().find(|(t, c, _)| t == table && c == column) {
                None => report.problems.push(Problem::MissingColumn {
                    table,
                    column,
                    wanted: types[0],
                }),
                Some((_, _, ty)) if !types.contains(&ty.as_str()) => {
                    report.problems.push(Problem::WrongType {
                        table,
                        column,
                        found: ty.clone(),
                        wanted: types[0],
                    })
                }
                Some(_) => {}
            }
        }
    }
    Ok(report)
}

/// The development schema of `serve --dev --init`: production's tables, types and constraints
/// for the columns the realtime layer touches, plus the not-null columns a row needs.
pub const DEV_SCHEMA: &str = r#"
CREATE EXTENSION IF NOT EXISTS citext;

CREATE TABLE accounts (
    user_id       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    username      varchar(100),
    display_name  varchar(100) NOT NULL,
    discord_id    bigint NOT NULL CONSTRAINT accounts_discord_id_unique UNIQUE,
    role          varchar(30) NOT NULL DEFAULT 'user',
    banned        boolean NOT NULL DEFAULT false,
    rsi_confirmed boolean NOT NULL DEFAULT false,
    created_at    timestamp without time zone DEFAULT (now() AT TIME ZONE 'utc')
);
CREATE INDEX accounts_username ON accounts (username);

CREATE TABLE login_sessions (
    sid    varchar NOT NULL PRIMARY KEY,
    sess   json NOT NULL,
    expire timestamp(6) without time zone NOT NULL
);
CREATE INDEX "IDX_session_expire" ON login_sessions (expire);

CREATE TABLE contractors (
    contractor_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    spectrum_id   citext NOT NULL UNIQUE,
    kind          varchar(30) NOT NULL,
    size          integer NOT NULL,
    name          varchar(100) NOT NULL
);

CREATE TABLE contractor_members (
    contractor_id uuid NOT NULL REFERENCES contractors (contractor_id) ON DELETE CASCADE,
    user_id       uuid NOT NULL REFERENCES accounts (user_id) ON DELETE CASCADE,
    role          varchar(30) NOT NULL,
    UNIQUE (contractor_id, user_id)
);

CREATE TABLE contractor_roles (
    role_id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    contractor_id      uuid NOT NULL REFERENCES contractors (contractor_id) ON DELETE CASCADE,
    position           integer NOT NULL DEFAULT 0,
    name               varchar(40) NOT NULL,
    manage_roles       boolean NOT NULL DEFAULT false,
    manage_orders      boolean NOT NULL DEFAULT false,
    kick_members       boolean NOT NULL DEFAULT false,
    manage_invites     boolean NOT NULL DEFAULT false,
    manage_org_details boolean NOT NULL DEFAULT false,
    manage_stock       boolean NOT NULL DEFAULT false,
    manage_market      boolean NOT NULL DEFAULT false,
    manage_recruiting  boolean NOT NULL DEFAULT false,
    manage_webhooks    boolean NOT NULL DEFAULT false,
    manage_blocklist   boolean NOT NULL DEFAULT false
);

CREATE TABLE contractor_member_roles (
    user_id uuid NOT NULL REFERENCES accounts (user_id) ON DELETE CASCADE,
    role_id uuid NOT NULL REFERENCES contractor_roles (role_id) ON DELETE CASCADE,
    UNIQUE (user_id, role_id)
);

CREATE TABLE orders (
    order_id      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    customer_id   uuid NOT NULL REFERENCES accounts (user_id) ON DELETE CASCADE,
    assigned_id   uuid REFERENCES accounts (user_id) ON DELETE SET NULL,
    contractor_id uuid REFERENCES contractors (contractor_id) ON DELETE SET NULL,
    kind          varchar(30) NOT NULL,
    cost          bigint NOT NULL,
    title         varchar(100) NOT NULL DEFAULT '',
    status        varchar(30) NOT NULL DEFAULT 'not-started',
    timestamp     timestamp without time zone NOT NULL DEFAULT (now() AT TIME ZONE 'utc')
);

CREATE TABLE offer_sessions (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    customer_id   uuid NOT NULL REFERENCES accounts (user_id) ON DELETE CASCADE,
    assigned_id   uuid REFERENCES accounts (user_id) ON DELETE SET NULL,
    contractor_id uuid REFERENCES contractors (contractor_id) ON DELETE SET NULL,
    status        varchar(30) NOT NULL DEFAULT 'active',
    timestamp     timestamp without time zone NOT NULL DEFAULT (now() AT TIME ZONE 'utc')
);

CREATE TABLE chats (
    chat_id    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    icon       uuid,
    name       varchar(100),
    order_id   uuid UNIQUE REFERENCES orders (order_id) ON DELETE CASCADE,
    session_id uuid UNIQUE REFERENCES offer_sessions (id)
);

CREATE TABLE chat_participants (
    chat_id uuid NOT NULL REFERENCES chats (chat_id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES accounts (user_id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX chat_participants_chat_user ON chat_participants (chat_id, user_id);
CREATE INDEX chat_participants_chat ON chat_participants (chat_id);
CREATE INDEX chat_participants_user ON chat_participants (user_id);

CREATE TABLE messages (
    message_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    content    varchar(1000) NOT NULL,
    author     uuid REFERENCES accounts (user_id) ON DELETE CASCADE,
    chat_id    uuid NOT NULL REFERENCES chats (chat_id),
    timestamp  timestamp without time zone NOT NULL DEFAULT now()
);
CREATE INDEX messages_chat ON messages (chat_id);
"#;
