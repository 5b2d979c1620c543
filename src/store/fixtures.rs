//! Fixtures: the demo data and `serve --seed FILE`, in one YAML format (see `demo.yaml`).
//!
//! Loading is idempotent: rows that already exist (same username, name or id) are kept, and a
//! chat's messages are only inserted when the chat itself is new.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use uuid::Uuid;

use super::{SqliteStore, StoreError, StoreResult};

/// The demo data seeded into a new database (documented in the README).
pub const DEMO_YAML: &str = include_str!("demo.yaml");

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixtures {
    #[serde(default)]
    pub users: Vec<UserFixture>,
    #[serde(default)]
    pub contractors: Vec<ContractorFixture>,
    #[serde(default)]
    pub orders: Vec<PartiesFixture>,
    #[serde(default)]
    pub offers: Vec<PartiesFixture>,
    #[serde(default)]
    pub chats: Vec<ChatFixture>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserFixture {
    pub username: String,
    pub id: Option<Uuid>,
    #[serde(default = "default_role")]
    pub role: String,
    #[serde(default)]
    pub banned: bool,
}

fn default_role() -> String {
    "user".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractorFixture {
    pub name: String,
    pub id: Option<Uuid>,
    #[serde(default)]
    pub members: Vec<MemberFixture>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberFixture {
    pub user: String,
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// An order or an offer session: who is on each side.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartiesFixture {
    pub id: Option<Uuid>,
    pub customer: String,
    pub assigned: Option<String>,
    pub contractor: Option<String>,
    #[serde(default)]
    pub title: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatFixture {
    pub id: Option<Uuid>,
    pub name: Option<String>,
    pub icon: Option<String>,
    pub order: Option<Uuid>,
    pub offer: Option<Uuid>,
    #[serde(default)]
    pub participants: Vec<String>,
    #[serde(default)]
    pub messages: Vec<MessageFixture>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageFixture {
    /// Username; null for a system message.
    pub author: Option<String>,
    pub content: String,
}

impl Fixtures {
    pub fn parse(yaml: &str, origin: &str) -> StoreResult<Self> {
        // YAML 1.2 booleans: under 1.1 rules a user called `n` or `yes` would become a boolean.
        serde_saphyr::from_str_with_options(yaml, serde_saphyr::options! { strict_booleans: true })
            .map_err(|e| StoreError::Invalid(format!("{origin}: invalid fixtures: {e}")))
    }

    pub fn read(path: &Path) -> StoreResult<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            StoreError::Invalid(format!("cannot read seed file {}: {e}", path.display()))
        })?;
        Self::parse(&text, &path.display().to_string())
    }
}

/// Names resolved to ids while loading.
#[derive(Default)]
struct Names {
    users: HashMap<String, Uuid>,
    contractors: HashMap<String, Uuid>,
}

impl Names {
    fn user(&self, name: &str, context: &str) -> StoreResult<Uuid> {
        self.users.get(name).copied().ok_or_else(|| {
            StoreError::Invalid(format!(
                "{context} names user {name:?}, which is neither in the fixtures nor in the database"
            ))
        })
    }
    fn contractor(&self, name: &str, context: &str) -> StoreResult<Uuid> {
        self.contractors.get(name).copied().ok_or_else(|| {
            StoreError::Invalid(format!(
                "{context} names contractor {name:?}, which is neither in the fixtures nor in the database"
            ))
        })
    }
}

impl SqliteStore {
    /// Load fixtures in one transaction: all of them or, on an error, none.
    pub async fn load_fixtures(&self, fixtures: &Fixtures) -> StoreResult<()> {
        let mut tx = self.pool().begin().await?;
        let mut names = Names::default();

        for u in &fixtures.users {
            let id = u.id.unwrap_or_else(Uuid::new_v4);
            sqlx::query(
                "INSERT INTO accounts (user_id, username, role, banned) VALUES (?, ?, ?, ?) \
                 ON CONFLICT(username) DO UPDATE SET role = excluded.role, banned = excluded.banned",
            )
            .bind(id.to_string())
            .bind(&u.username)
            .bind(&u.role)
            .bind(i64::from(u.banned))
            .execute(&mut *tx)
            .await?;
        }
        for (user_id, username) in
            sqlx::query_as::<_, (String, String)>("SELECT user_id, username FROM accounts")
                .fetch_all(&mut *tx)
                .await?
        {
            names.users.insert(username, parse(&user_id)?);
        }

        for c in &fixtures.contractors {
            sqlx::query("INSERT OR IGNORE INTO contractors (contractor_id, name) VALUES (?, ?)")
                .bind(c.id.unwrap_or_else(Uuid::new_v4).to_string())
                .bind(&c.name)
                .execute(&mut *tx)
                .await?;
        }
        for (id, name) in
            sqlx::query_as::<_, (String, String)>("SELECT contractor_id, name FROM contractors")
                .fetch_all(&mut *tx)
                .await?
        {
            names.contractors.insert(name, parse(&id)?);
        }
        for c in &fixtures.contractors {
            let contractor = names.contractor(&c.name, "contractor")?;
            for m in &c.members {
                let user = names.user(&m.user, &format!("contractor {}", c.name))?;
                sqlx::query(
                    "INSERT INTO contractor_members (contractor_id, user_id, permissions) VALUES (?, ?, ?) \
                     ON CONFLICT(contractor_id, user_id) DO UPDATE SET permissions = excluded.permissions",
                )
                .bind(contractor.to_string())
                .bind(user.to_string())
                .bind(m.permissions.join(","))
                .execute(&mut *tx)
                .await?;
            }
        }

        for (table, id_column, list) in [
            ("orders", "order_id", &fixtures.orders),
            ("offer_sessions", "id", &fixtures.offers),
        ] {
            for p in list {
                let context = format!("{table} entry");
                let customer = names.user(&p.customer, &context)?;
                let assigned = p
                    .assigned
                    .as_deref()
                    .map(|a| names.user(a, &context))
                    .transpose()?;
                let contractor = p
                    .contractor
                    .as_deref()
                    .map(|c| names.contractor(c, &context))
                    .transpose()?;
                let title_column = if table == "orders" { ", title" } else { "" };
                let title_value = if table == "orders" { ", ?" } else { "" };
                let sql = format!(
                    "INSERT OR IGNORE INTO {table} ({id_column}, customer_id, assigned_id, contractor_id{title_column}) \
                     VALUES (?, ?, ?, ?{title_value})"
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(p.id.unwrap_or_else(Uuid::new_v4).to_string())
                    .bind(customer.to_string())
                    .bind(assigned.map(|u| u.to_string()))
                    .bind(contractor.map(|u| u.to_string()));
                if table == "orders" {
                    q = q.bind(p.title.clone());
                }
                q.execute(&mut *tx).await?;
            }
        }

        for (index, c) in fixtures.chats.iter().enumerate() {
            let chat_id = c.id.unwrap_or_else(Uuid::new_v4);
            let context = format!("chat #{} ({chat_id})", index + 1);
            let inserted = sqlx::query(
                "INSERT OR IGNORE INTO chats (chat_id, name, icon, order_id, session_id) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(chat_id.to_string())
            .bind(&c.name)
            .bind(&c.icon)
            .bind(c.order.map(|o| o.to_string()))
            .bind(c.offer.map(|o| o.to_string()))
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                StoreError::Invalid(format!(
                    "{context}: cannot insert ({e}); does its order or offer exist, and is it used by no other chat?"
                ))
            })?
            .rows_affected()
                == 1;
            for p in &c.participants {
                sqlx::query(
                    "INSERT OR IGNORE INTO chat_participants (chat_id, user_id) VALUES (?, ?)",
                )
                .bind(chat_id.to_string())
                .bind(names.user(p, &context)?.to_string())
                .execute(&mut *tx)
                .await?;
            }
            if inserted {
                // Spread the seeded messages one second apart, oldest first, ending now.
                let now = crate::protocol::WireTimestamp::now().unix_millis();
                let count = c.messages.len() as i64;
                for (i, m) in c.messages.iter().enumerate() {
                    let author = m
                        .author
                        .as_deref()
                        .map(|a| names.user(a, &context))
                        .transpose()?;
                    sqlx::query(
                        "INSERT INTO messages (message_id, content, author, chat_id, timestamp) VALUES (?, ?, ?, ?, ?)",
                    )
                    .bind(Uuid::new_v4().to_string())
                    .bind(&m.content)
                    .bind(author.map(|a| a.to_string()))
                    .bind(chat_id.to_string())
                    .bind(now - (count - i as i64) * 1000)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

fn parse(text: &str) -> StoreResult<Uuid> {
    Uuid::try_parse(text)
        .map_err(|_| StoreError::Invalid(format!("stored id {text:?} is not a UUID")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_data_parses() {
        let f = Fixtures::parse(DEMO_YAML, "demo.yaml").unwrap();
        assert_eq!(f.users.len(), 7);
        assert_eq!(f.chats.len(), 4);
    }

    #[test]
    fn yaml_1_1_booleans_are_names() {
        let f =
            Fixtures::parse("users:\n  - { username: n }\n  - { username: yes }\n", "f").unwrap();
        assert_eq!(f.users[0].username, "n");
        assert_eq!(f.users[1].username, "yes");
    }

    #[test]
    fn unknown_field_is_located() {
        let err = Fixtures::parse("users:\n  - { username: x, colour: red }\n", "f.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("f.yaml"), "{err}");
        assert!(err.contains("colour"), "{err}");
        assert!(err.contains("line 2") || err.contains("2:"), "{err}");
    }
}
