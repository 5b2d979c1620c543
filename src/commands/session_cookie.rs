//! `session-cookie`: print a valid cookie for a user of a serve database, for scripts.

use crate::cli::{CookieKind, SessionArgs};
use crate::exit::CommandError;
use crate::protocol::{ACCESS_COOKIE, SESSION_COOKIE};

use crate::server::{PoolConfig, StoreConfig, auth, open_store};

pub async fn run(args: SessionArgs) -> anyhow::Result<()> {
    let secrets = args.store.secrets().resolve(args.store.dev)?;
    let store_config = StoreConfig {
        database: args.store.database.clone(),
        pool: PoolConfig {
            // One lookup and out: the connection that checks the URL is enough.
            warm: Some(0),
            ..PoolConfig::from(&args.store.pool)
        },
        ..StoreConfig::default()
    };
    let store = open_store(&store_config, args.store.dev).await?.store;
    let user = match store.user_by_username(&args.user).await? {
        Some(user) => user,
        None if args.store.dev => store.ensure_user(&args.user).await?,
        None => {
            return Err(CommandError::usage(format!(
                "no user {:?} in {} (add --dev to create it)",
                args.user, args.store.database
            ))
            .into());
        }
    };
    if !user.is_active() {
        return Err(CommandError::usage(format!(
            "user {} is banned or deleted: the server would refuse this cookie",
            user.username
        ))
        .into());
    }
    let (name, value) = match args.kind {
        CookieKind::Sid => {
            let sid = store.create_login_session(user.user_id, args.ttl).await?;
            (SESSION_COOKIE, auth::sign_session_cookie(&sid, &secrets))
        }
        CookieKind::Jwt => (
            ACCESS_COOKIE,
            auth::issue_access_token(&user, &secrets, args.ttl),
        ),
    };
    if args.value_only {
        println!("{value}");
    } else {
        println!("{name}={value}");
    }
    Ok(())
}
