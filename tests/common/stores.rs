//! Every store-facing test runs against each store: `on_both_stores!` makes one test per store
//! from one body, in which `store` starts servers on that store.
//!
//! ```ignore
//! on_both_stores! {
//!     async fn a_ban_closes_open_sockets(store) {
//!         let server = store.start_dev_server().await;
//!         ...
//!     }
//! }
//! ```

use scmarket_ws::server::{Config, RunningServer};

use super::postgres::TestDatabase;

/// The store a test runs on: the in-memory SQLite store, or a PostgreSQL database of the
/// test's own (created by `--init` with the demo data, dropped when the test ends).
pub enum TestStore {
    Sqlite,
    Postgres(TestDatabase),
}

impl TestStore {
    pub fn sqlite() -> TestStore {
        TestStore::Sqlite
    }

    /// A database of the test's own with the development tables and the demo data, as
    /// `serve --dev --init` makes them.
    pub async fn postgres() -> TestStore {
        let db = TestDatabase::create().await;
        db.init_dev().await;
        TestStore::Postgres(db)
    }

    /// `Config::ephemeral_dev()` on this store.
    pub fn config(&self) -> Config {
        let mut config = Config::ephemeral_dev();
        if let TestStore::Postgres(db) = self {
            config.store.database = db.url.clone();
            // Tests run in parallel (and several engineers' suites at once) on one server of
            // 100 connections: a warm pool of 2 still takes the warming path, and grows on
            // demand as far as a test needs.
            config.store.pool.warm = Some(2);
        }
        config
    }

    pub async fn start_dev_server(&self) -> RunningServer {
        super::start_server(self.config()).await
    }

    pub async fn start_dev_server_with(&self, adjust: impl FnOnce(&mut Config)) -> RunningServer {
        let mut config = self.config();
        adjust(&mut config);
        super::start_server(config).await
    }

    pub fn database(&self) -> Option<&TestDatabase> {
        match self {
            TestStore::Sqlite => None,
            TestStore::Postgres(db) => Some(db),
        }
    }
}

/// One test per store from one body: `mod NAME { fn sqlite(), fn postgres() }`.
#[macro_export]
macro_rules! on_both_stores {
    ($(async fn $name:ident($store:ident) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                #[tokio::test]
                async fn sqlite() {
                    let $store = $crate::common::stores::TestStore::sqlite();
                    $body
                }

                #[tokio::test]
                async fn postgres() {
                    let $store = $crate::common::stores::TestStore::postgres().await;
                    $body
                }
            }
        )*
    };
}
