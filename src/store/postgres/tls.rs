//! TLS to PostgreSQL, as the URL's `sslmode` asks, with libpq's meanings: managed databases
//! (and SC Market's own, when its URL says so) refuse unencrypted connections.
//!
//! tokio-postgres knows only `disable`, `prefer` and `require`, and verifies nothing itself;
//! the certificate checks are the TLS connector's. So the URL's `sslmode` and `sslrootcert`
//! are read here, taken out of the URL, and turned into a tokio-postgres mode and a
//! `native-tls` connector:
//!
//! | `sslmode` | TLS | certificate checked |
//! |---|---|---|
//! | absent | no (as SC Market's backend, node-postgres, does without `sslmode`) | - |
//! | `disable` | no | - |
//! | `prefer` | when the server offers it | no |
//! | `require` | always | no (with `sslrootcert`: the chain, as libpq) |
//! | `verify-ca` | always | the chain, against `sslrootcert` or the system's roots |
//! | `verify-full` | always | the chain and the host name |
//!
//! Every connection of a deployment goes through the same settings: the store's pool, its
//! LISTEN connection, and the PostgreSQL adapter.

use postgres_native_tls::MakeTlsConnector;

use crate::store::{StoreError, StoreResult};

/// What the URL asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Off,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// A URL ready for tokio-postgres, and the TLS it needs.
pub struct Tls {
    /// The URL without `sslmode` and `sslrootcert`, with the tokio-postgres `sslmode` for them.
    pub url: String,
    pub connector: MakeTlsConnector,
}

/// Read `sslmode` and `sslrootcert` from a `postgres://` URL. A value libpq does not know, or
/// a root certificate that cannot be read, is an error naming it.
pub fn from_url(url: &str, shown: &str) -> StoreResult<Tls> {
    let bad = |what: String| StoreError::Invalid(format!("{shown}: {what}"));
    let mut parsed =
        url::Url::parse(url.trim()).map_err(|e| bad(format!("not a PostgreSQL URL ({e})")))?;
    let mut mode = Mode::Off;
    let mut root_cert = None;
    let mut kept: Vec<(String, String)> = Vec::new();
    for (key, value) in parsed.query_pairs() {
        match key.as_ref() {
            "sslmode" => {
                mode = match value.as_ref() {
                    "disable" => Mode::Off,
                    // libpq's `allow` tries without TLS first; no server here needs it.
                    "allow" | "prefer" => Mode::Prefer,
                    "require" => Mode::Require,
                    "verify-ca" => Mode::VerifyCa,
                    "verify-full" => Mode::VerifyFull,
                    other => {
                        return Err(bad(format!(
                            "sslmode={other} is not one of disable, allow, prefer, require, \
                             verify-ca, verify-full"
                        )));
                    }
                }
            }
            "sslrootcert" => root_cert = Some(value.into_owned()),
            _ => kept.push((key.into_owned(), value.into_owned())),
        }
    }
    // libpq: `require` with a root certificate given checks the chain, as `verify-ca`.
    if mode == Mode::Require && root_cert.is_some() {
        mode = Mode::VerifyCa;
    }
    let wire_mode = match mode {
        Mode::Off => "disable",
        Mode::Prefer => "prefer",
        Mode::Require | Mode::VerifyCa | Mode::VerifyFull => "require",
    };
    kept.push(("sslmode".into(), wire_mode.into()));
    parsed.query_pairs_mut().clear().extend_pairs(kept);

    let mut builder = native_tls::TlsConnector::builder();
    match mode {
        Mode::Off | Mode::Prefer | Mode::Require => {
            builder
                .danger_accept_invalid_certs(true)
                .danger_accept_invalid_hostnames(true);
        }
        Mode::VerifyCa => {
            builder.danger_accept_invalid_hostnames(true);
        }
        Mode::VerifyFull => {}
    }
    // `sslrootcert=system`: the system's roots, which native-tls uses anyway.
    if let Some(path) = root_cert.filter(|p| p != "system") {
        let pem = std::fs::read(&path)
            .map_err(|e| bad(format!("sslrootcert {path} cannot be read ({e})")))?;
        let cert = native_tls::Certificate::from_pem(&pem)
            .map_err(|e| bad(format!("sslrootcert {path} is not a PEM certificate ({e})")))?;
        builder.add_root_certificate(cert);
    }
    let connector = builder
        .build()
        .map_err(|e| bad(format!("TLS settings: {e}")))?;
    Ok(Tls {
        url: parsed.to_string(),
        connector: MakeTlsConnector::new(connector),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(url: &str) -> String {
        match from_url(url, "test") {
            Ok(tls) => tls.url,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn libpq_modes_become_tokio_postgres_modes() {
        let base = "postgres://u@127.0.0.1:5432/db";
        assert_eq!(rewritten(base), format!("{base}?sslmode=disable"));
        for (given, wire) in [
            ("disable", "disable"),
            ("allow", "prefer"),
            ("prefer", "prefer"),
            ("require", "require"),
            ("verify-ca", "require"),
            ("verify-full", "require"),
        ] {
            assert_eq!(
                rewritten(&format!("{base}?application_name=x&sslmode={given}")),
                format!("{base}?application_name=x&sslmode={wire}"),
                "{given}"
            );
        }
    }

    #[test]
    fn unknown_modes_and_unreadable_roots_are_refused() {
        let err = from_url("postgres://h/db?sslmode=verify", "shown")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("shown: sslmode=verify is not one of"), "{err}");
        let err = from_url(
            "postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent/root.pem",
            "shown",
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.contains("sslrootcert /nonexistent/root.pem cannot be read"),
            "{err}"
        );
        let err = from_url(
            "postgres://h/db?sslmode=verify-full&sslrootcert=/etc/hostname",
            "shown",
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("is not a PEM certificate"), "{err}");
    }
}
