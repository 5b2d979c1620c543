//! `load-test --local-ips`: the addresses of this machine the virtual users' connections leave
//! from, dealt round-robin by virtual user number (as k6's `--local-ips`).
//!
//! Why a load test needs it: a TCP connection is told apart from the others by its two
//! addresses and ports, so one local address holds at most about 28,000 connections (Linux's
//! default ephemeral range, 32768-60999) to one server address and port, and Linux's `connect()`
//! tries the even ports of the range first: once about 14,000 connections from one address go
//! to one server port, every new connection scans those 14,000 ports before it finds one. In
//! the 100,000-session run (`scenarios/c100k.yaml`, 14,286 sessions per node) that scan,
//! `__inet_check_established` in the kernel, took 39% of the machine's CPU when the burst's
//! REST posts opened connections, and the run collapsed. With sessions spread over several
//! local addresses each address holds a few thousand connections per server port. On
//! loopback, any address of 127.0.0.0/8 is this machine's without configuration.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tokio::net::TcpSocket;

/// The most addresses `--local-ips` may list in all (a /16).
pub const MAX_LOCAL_IPS: usize = 65_536;

/// Parse `--local-ips` values: each a comma-separated list of addresses (`127.0.0.2`,
/// `::1`), IPv4 ranges (`127.0.0.2-127.0.0.50`, both ends included) and IPv4 CIDR blocks
/// (`127.0.1.0/24`, every address of the block). The order is kept; a repeated address is
/// kept once.
pub fn parse(values: &[String]) -> Result<Vec<IpAddr>, String> {
    let mut out: Vec<IpAddr> = Vec::new();
    for item in values.iter().flat_map(|v| v.split(',')) {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let addresses = parse_item(item)?;
        if out.len() + addresses.len() > MAX_LOCAL_IPS {
            return Err(format!(
                "--local-ips lists more than {MAX_LOCAL_IPS} addresses (at {item:?}); a few \
                 dozen are enough for 100,000 sessions"
            ));
        }
        out.extend(addresses);
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|a| seen.insert(*a));
    Ok(out)
}

fn parse_item(item: &str) -> Result<Vec<IpAddr>, String> {
    let bad = |why: &str| {
        format!(
            "--local-ips: {item:?} {why}; write an address (127.0.0.2), a range \
             (127.0.0.2-127.0.0.50) or a block (127.0.1.0/24)"
        )
    };
    if let Some((first, last)) = item.split_once('-') {
        let (first, last) = match (
            first.trim().parse::<Ipv4Addr>(),
            last.trim().parse::<Ipv4Addr>(),
        ) {
            (Ok(f), Ok(l)) => (u32::from(f), u32::from(l)),
            _ => return Err(bad("is not a range of two IPv4 addresses")),
        };
        if last < first {
            return Err(bad("ends before it starts"));
        }
        return span(first, u64::from(last - first) + 1).ok_or_else(|| bad("is too large"));
    }
    if let Some((base, bits)) = item.split_once('/') {
        let base: Ipv4Addr = base
            .trim()
            .parse()
            .map_err(|_| bad("is not an IPv4 block"))?;
        let bits: u32 = match bits.trim().parse() {
            Ok(b) if b <= 32 => b,
            _ => return Err(bad("has a prefix length outside 0-32")),
        };
        let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
        let first = u32::from(base) & mask;
        return span(first, 1u64 << (32 - bits)).ok_or_else(|| bad("is too large"));
    }
    item.parse::<IpAddr>()
        .map(|a| vec![a])
        .map_err(|_| bad("is not an IP address"))
}

/// `count` consecutive IPv4 addresses from `first`; `None` past [`MAX_LOCAL_IPS`].
fn span(first: u32, count: u64) -> Option<Vec<IpAddr>> {
    if count > MAX_LOCAL_IPS as u64 {
        return None;
    }
    Some(
        (0..count as u32)
            .map(|i| IpAddr::V4(Ipv4Addr::from(first.wrapping_add(i))))
            .collect(),
    )
}

/// Every address must be this machine's: a socket binds to it. Checked before the run, so a
/// mistyped address is a usage error at start, not thousands of failed sessions.
pub fn check_local(addresses: &[IpAddr]) -> Result<(), String> {
    for address in addresses {
        let socket = if address.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        };
        socket
            .and_then(|s| s.bind(SocketAddr::new(*address, 0)))
            .map_err(|e| {
                format!("--local-ips: {address} is not an address of this machine ({e})")
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn addresses_ranges_and_blocks_in_order_once() {
        let got = parse(&[
            "127.0.0.5, 127.0.0.2-127.0.0.4".into(),
            "::1,127.0.1.0/30,127.0.0.3".into(),
        ])
        .unwrap();
        assert_eq!(
            got,
            ips(&[
                "127.0.0.5",
                "127.0.0.2",
                "127.0.0.3",
                "127.0.0.4",
                "::1",
                "127.0.1.0",
                "127.0.1.1",
                "127.0.1.2",
                "127.0.1.3",
            ])
        );
        assert_eq!(
            parse(&["127.0.0.9/32".into()]).unwrap(),
            ips(&["127.0.0.9"])
        );
        assert!(parse(&[]).unwrap().is_empty());
    }

    #[test]
    fn bad_lists_say_what_is_wrong() {
        for (value, says) in [
            ("127.0.0.300", "is not an IP address"),
            ("127.0.0.9-127.0.0.2", "ends before it starts"),
            ("::1-::5", "is not a range of two IPv4 addresses"),
            ("127.0.0.0/33", "prefix length outside 0-32"),
            ("127.0.0.0/8", "is too large"),
            ("localhost", "is not an IP address"),
        ] {
            let err = parse(&[value.into()]).unwrap_err();
            assert!(err.contains(says), "{value}: {err}");
        }
        // A whole /16 is the most; one more address is too many.
        assert_eq!(
            parse(&["127.0.0.0/16".into()]).map(|a| a.len()),
            Ok(MAX_LOCAL_IPS)
        );
        let err = parse(&["127.0.0.0/16".into(), "127.1.0.0".into()]).map(|a| a.len());
        assert!(
            matches!(&err, Err(e) if e.contains("more than 65536")),
            "{err:?}"
        );
    }

    #[test]
    fn an_address_of_another_machine_is_refused() {
        assert!(check_local(&ips(&["127.0.0.1", "127.0.0.77"])).is_ok());
        // TEST-NET-1 (RFC 5737): never an address of this machine.
        let err = check_local(&ips(&["192.0.2.1"])).unwrap_err();
        assert!(
            err.contains("192.0.2.1 is not an address of this machine"),
            "{err}"
        );
    }
}
