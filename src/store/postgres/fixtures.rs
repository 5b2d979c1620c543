//! Fixtures (the demo data, `serve --seed FILE`) on the production tables. Idempotent, as on
//! SQLite: rows that exist (same username, contractor name or id) are kept, and a chat's
//! messages are inserted only when the chat is new. A member's permissions become one
//! contractor role holding exactly those permissions.

use std::collections::HashMap;

use uuid::Uuid;

use super::schema::PERMISSIONS;
use super::{PostgresStore, dev_discord_id, now_utc};
use crate::store::fixtures::Fixtures;
use crate::store::{StoreError, StoreResult};

impl PostgresStore {
    /// Load fixtures in one transaction: all of them or, on an error, none.
    pub async fn load_fixtures(&self, fixtures: &Fixtures) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        load(&tx, fixtures).await?;
        tx.commit().await?;
        Ok(())
    }
}

fn unknown(kind: &str, name: &str, context: &str) -> StoreError {
    StoreError::Invalid(format!(
        "{context} names {kind} {name:?}, which is neither in the fixtures nor in the database"
    ))
}

async fn load(tx: &deadpool_postgres::Transaction<'_>, fixtures: &Fixtures) -> StoreResult<()> {
    let mut users: HashMap<String, Uuid> = HashMap::new();
    for u in &fixtures.users {
        let existing = tx
            .query_opt(
                "UPDATE accounts SET role = $2, banned = $3 WHERE user_id = (SELECT user_id FROM accounts \
                 WHERE username = $1 LIMIT 1) RETURNING user_id",
                &[&u.username, &u.role, &u.banned],
            )
            .await?;
        let id = match existing {
            Some(row) => row.try_get(0)?,
            None => {
                let id = u.id.unwrap_or_else(Uuid::new_v4);
                tx.execute(
                    "INSERT INTO accounts (user_id, username, display_name, discord_id, role, banned) \
                     VALUES ($1, $2, $2, $3, $4, $5)",
                    &[&id, &u.username, &dev_discord_id(), &u.role, &u.banned],
                )
                .await?;
                id
            }
        };
        users.insert(u.username.clone(), id);
    }
    let user = |users: &HashMap<String, Uuid>, name: &str, context: &str| {
        users
            .get(name)
            .copied()
            .ok_or_else(|| unknown("user", name, context))
    };
    // Names the fixtures use but do not define must already exist.
    let mut referenced: Vec<&str> = Vec::new();
    for c in &fixtures.contractors {
        referenced.extend(c.members.iter().map(|m| m.user.as_str()));
    }
    for p in fixtures.orders.iter().chain(&fixtures.offers) {
        referenced.push(&p.customer);
        referenced.extend(p.assigned.as_deref());
    }
    for c in &fixtures.chats {
        referenced.extend(c.participants.iter().map(String::as_str));
        referenced.extend(c.messages.iter().filter_map(|m| m.author.as_deref()));
    }
    for name in referenced {
        if users.contains_key(name) {
            continue;
        }
        if let Some(row) = tx
            .query_opt(
                "SELECT user_id FROM accounts WHERE username = $1 LIMIT 1",
                &[&name],
            )
            .await?
        {
            users.insert(name.to_string(), row.try_get(0)?);
        }
    }

    let mut contractors: HashMap<String, Uuid> = HashMap::new();
    for c in &fixtures.contractors {
        let existing = tx
            .query_opt(
                "SELECT contractor_id FROM contractors WHERE name = $1 LIMIT 1",
                &[&c.name],
            )
            .await?;
        let id = match existing {
            Some(row) => row.try_get(0)?,
            None => {
                let id = c.id.unwrap_or_else(Uuid::new_v4);
                tx.execute(
                    "INSERT INTO contractors (contractor_id, spectrum_id, kind, size, name) \
                     VALUES ($1, $2, 'independent', 1, $3)",
                    &[&id, &c.name.to_uppercase(), &c.name],
                )
                .await?;
                id
            }
        };
        contractors.insert(c.name.clone(), id);
        for m in &c.members {
            let context = format!("contractor {}", c.name);
            let member = user(&users, &m.user, &context)?;
            if let Some(p) = m
                .permissions
                .iter()
                .find(|p| !PERMISSIONS.contains(&p.as_str()))
            {
                return Err(StoreError::Invalid(format!(
                    "{context}: unknown permission {p:?} (known: {})",
                    PERMISSIONS.join(", ")
                )));
            }
            tx.execute(
                "INSERT INTO contractor_members (contractor_id, user_id, role) \
                 SELECT $1, $2, 'member' WHERE NOT EXISTS \
                 (SELECT 1 FROM contractor_members WHERE contractor_id = $1 AND user_id = $2)",
                &[&id, &member],
            )
            .await?;
            // The member's roles in this contractor are replaced by one holding exactly these.
            tx.execute(
                "DELETE FROM contractor_member_roles mr USING contractor_roles r \
                 WHERE mr.role_id = r.role_id AND r.contractor_id = $1 AND mr.user_id = $2",
                &[&id, &member],
            )
            .await?;
            if m.permissions.is_empty() {
                continue;
            }
            let granted: Vec<bool> = PERMISSIONS
                .iter()
                .map(|p| m.permissions.iter().any(|g| g == p))
                .collect();
            let role_id = Uuid::new_v4();
            let name = format!("{} {}", m.user, m.permissions.join(" "));
            let name: String = name.chars().take(40).collect();
            tx.execute(
                &format!(
                    "INSERT INTO contractor_roles (role_id, contractor_id, position, name, {}) \
                     VALUES ($1, $2, 1, $3, {})",
                    PERMISSIONS.join(", "),
                    (0..PERMISSIONS.len())
                        .map(|i| format!("${}", i + 4))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                &[
                    &role_id as &(dyn tokio_postgres::types::ToSql + Sync),
                    &id,
                    &name,
                ]
                .into_iter()
                .chain(
                    granted
                        .iter()
                        .map(|g| g as &(dyn tokio_postgres::types::ToSql + Sync)),
                )
                .collect::<Vec<_>>(),
            )
            .await?;
            tx.execute(
                "INSERT INTO contractor_member_roles (user_id, role_id) VALUES ($1, $2)",
                &[&member, &role_id],
            )
            .await?;
        }
    }
    let contractor = |name: &str, context: &str| -> StoreResult<Uuid> {
        contractors
            .get(name)
            .copied()
            .ok_or_else(|| unknown("contractor", name, context))
    };

    for (table, list) in [
        ("orders", &fixtures.orders),
        ("offer_sessions", &fixtures.offers),
    ] {
        for p in list {
            let context = format!("{table} entry");
            let customer = user(&users, &p.customer, &context)?;
            let assigned = p
                .assigned
                .as_deref()
                .map(|a| user(&users, a, &context))
                .transpose()?;
            let contractor_id = p
                .contractor
                .as_deref()
                .map(|c| contractor(c, &context))
                .transpose()?;
            let id = p.id.unwrap_or_else(Uuid::new_v4);
            if table == "orders" {
                tx.execute(
                    "INSERT INTO orders (order_id, customer_id, assigned_id, contractor_id, kind, cost, title) \
                     VALUES ($1, $2, $3, $4, 'Other', 0, $5) ON CONFLICT (order_id) DO NOTHING",
                    &[&id, &customer, &assigned, &contractor_id, &p.title],
                )
                .await?;
            } else {
                tx.execute(
                    "INSERT INTO offer_sessions (id, customer_id, assigned_id, contractor_id) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
                    &[&id, &customer, &assigned, &contractor_id],
                )
                .await?;
            }
        }
    }

    for (index, c) in fixtures.chats.iter().enumerate() {
        let chat_id = c.id.unwrap_or_else(Uuid::new_v4);
        let context = format!("chat #{} ({chat_id})", index + 1);
        let icon = c
            .icon
            .as_deref()
            .map(|i| {
                Uuid::try_parse(i).map_err(|_| {
                    StoreError::Invalid(format!(
                        "{context}: icon {i:?} is not a UUID (production's icon column is uuid)"
                    ))
                })
            })
            .transpose()?;
        let inserted = tx
            .execute(
                "INSERT INTO chats (chat_id, name, icon, order_id, session_id) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (chat_id) DO NOTHING",
                &[&chat_id, &c.name, &icon, &c.order, &c.offer],
            )
            .await
            .map_err(|e| {
                StoreError::Invalid(format!(
                    "{context}: cannot insert ({}); does its order or offer exist, and is it used by no other chat?",
                    super::describe(&e)
                ))
            })?
            == 1;
        for p in &c.participants {
            let member = user(&users, p, &context)?;
            tx.execute(
                "INSERT INTO chat_participants (chat_id, user_id) SELECT $1, $2 WHERE NOT EXISTS \
                 (SELECT 1 FROM chat_participants WHERE chat_id = $1 AND user_id = $2)",
                &[&chat_id, &member],
            )
            .await?;
        }
        if inserted {
            // Spread the seeded messages one second apart, oldest first, ending now.
            let now = now_utc();
            let count = c.messages.len() as i64;
            for (i, m) in c.messages.iter().enumerate() {
                let author = m
                    .author
                    .as_deref()
                    .map(|a| user(&users, a, &context))
                    .transpose()?;
                let stamp = now - time::Duration::seconds(count - i as i64);
                tx.execute(
                    "INSERT INTO messages (message_id, content, author, chat_id, timestamp) \
                     VALUES ($1, $2, $3, $4, $5)",
                    &[&Uuid::new_v4(), &m.content, &author, &chat_id, &stamp],
                )
                .await?;
            }
        }
    }
    Ok(())
}
