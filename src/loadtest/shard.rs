//! `--shard K/N`: one of N generators that run one scenario together, each a deterministic part
//! of it, so that their reports merged (`report merge`) are the report of the whole run.
//!
//! The split, for shard K of N (0-based index `i = K - 1` below):
//! - arrivals and closed-model users are numbered across the whole scenario (0, 1, 2, ...), as
//!   one generator numbers them; shard K runs those whose number `v` has `v mod N = i`. Each
//!   shard thus gets a 1/N share of the arrival rate, on the same schedule, and virtual user
//!   numbers (`{{vu}}`) are the whole run's numbers, never reused by another shard;
//! - rooms, session-file lines and chat ids are dealt out the same way (item `r` to shard
//!   `r mod N`), and a virtual user uses its shard's items by its *local* number `v div N`.
//!
//! Delivery accounting needs every room's members and posters in one process: the expected
//! recipients of a message are counted from the room table of the process that posts it, and
//! a delivery is matched by the nonce of that process's run. Because a shard owns whole rooms
//! (it creates its own dev rooms and only its virtual users use them), every message is counted
//! and received inside one shard, and the merged report is exact. With `setup.rooms` a multiple
//! of N, the rooms and their members are the same as in one unsharded run.

use std::fmt;
use std::str::FromStr;

/// Shard `index` (0-based) of `count`. [`Shard::WHOLE`] is the unsharded run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Shard::WHOLE
    }
}

impl Shard {
    /// The whole scenario in one generator.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Shard `number` (1-based, as written on the command line) of `count`.
    pub fn new(number: u32, count: u32) -> Result<Shard, String> {
        if count == 0 || number == 0 || number > count {
            return Err(format!(
                "shard {number}/{count}: write K/N with 1 <= K <= N, e.g. 1/4"
            ));
        }
        Ok(Shard {
            index: number - 1,
            count,
        })
    }

    /// 0-based index.
    pub fn index(&self) -> u32 {
        self.index
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// Whether virtual user (or arrival) `vu` of the whole run belongs to this shard.
    pub fn owns(&self, vu: u64) -> bool {
        vu % u64::from(self.count) == u64::from(self.index)
    }

    /// A virtual user's number among this shard's users: it picks its room, cookie and target
    /// from this shard's lists by this number.
    pub fn local(&self, vu: u64) -> u64 {
        vu / u64::from(self.count)
    }

    /// The whole run's number of this shard's `local`-th virtual user.
    pub fn global(&self, local: u64) -> u64 {
        local * u64::from(self.count) + u64::from(self.index)
    }

    /// How many of the whole run's first `total` virtual users are this shard's.
    pub fn owned_of(&self, total: u64) -> u64 {
        let (i, n) = (u64::from(self.index), u64::from(self.count));
        if total <= i {
            0
        } else {
            (total - i).div_ceil(n)
        }
    }

    /// This shard split into `workers` shards of the whole run: worker `j` takes the users
    /// `v` with `v mod (N * workers) = i + N * j`, which together are exactly this shard's.
    pub fn split(&self, workers: u32) -> Vec<Shard> {
        let count = self.count * workers.max(1);
        (0..workers.max(1))
            .map(|j| Shard {
                index: self.index + self.count * j,
                count,
            })
            .collect()
    }

    /// This shard's items of a list dealt out item by item (rooms, chat ids, sessions-file
    /// lines): item `r` goes to shard `r mod N`. With the items' index in the whole list.
    pub fn deal<T: Clone>(&self, items: &[T]) -> Vec<(usize, T)> {
        items
            .iter()
            .enumerate()
            .skip(self.index as usize)
            .step_by(self.count as usize)
            .map(|(r, item)| (r, item.clone()))
            .collect()
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index + 1, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("shard `{s}`: write K/N, e.g. 2/4 (shard 2 of 4)"))?;
        let parse = |t: &str| {
            t.trim()
                .parse::<u32>()
                .map_err(|_| format!("shard `{s}`: K and N must be whole numbers, e.g. 2/4"))
        };
        Shard::new(parse(k)?, parse(n)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let s: Shard = "2/4".parse().unwrap();
        assert_eq!((s.index(), s.count()), (1, 4));
        assert_eq!(s.to_string(), "2/4");
        for bad in ["0/4", "5/4", "1/0", "x/2", "3", "1/-2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn shards_partition_users_and_items() {
        let total = 103u64;
        let shards: Vec<Shard> = (1..=4).map(|k| Shard::new(k, 4).unwrap()).collect();
        let owned: u64 = shards.iter().map(|s| s.owned_of(total)).sum();
        assert_eq!(owned, total);
        for vu in 0..total {
            let owners: Vec<&Shard> = shards.iter().filter(|s| s.owns(vu)).collect();
            assert_eq!(owners.len(), 1, "vu {vu}");
            assert_eq!(owners[0].global(owners[0].local(vu)), vu);
        }
        let items: Vec<u32> = (0..10).collect();
        let mut all: Vec<usize> = shards
            .iter()
            .flat_map(|s| s.deal(&items))
            .map(|(r, _)| r)
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(Shard::WHOLE.deal(&items).len(), 10);
        assert_eq!(Shard::WHOLE.local(7), 7);
    }

    #[test]
    fn workers_split_a_shard_into_exactly_its_users() {
        let shard = Shard::new(2, 3).unwrap();
        let workers = shard.split(4);
        assert_eq!(workers.len(), 4);
        for vu in 0..500u64 {
            let owners = workers.iter().filter(|w| w.owns(vu)).count();
            assert_eq!(owners, usize::from(shard.owns(vu)), "vu {vu}");
        }
        assert_eq!(Shard::WHOLE.split(1), vec![Shard::WHOLE]);
    }

    #[test]
    fn a_room_count_that_n_divides_keeps_every_room_in_one_shard_as_unsharded() {
        // Unsharded, vu v is in room v mod rooms; sharded, local user j of shard i is in the
        // shard's room j mod (rooms / N), which is global room i + N * (j mod (rooms / N)).
        let (rooms, n) = (12u64, 3u32);
        for k in 1..=n {
            let s = Shard::new(k, n).unwrap();
            let local_rooms = rooms / u64::from(n);
            for vu in (0..200).filter(|v| s.owns(*v)) {
                let global_room = u64::from(s.index()) + u64::from(n) * (s.local(vu) % local_rooms);
                assert_eq!(global_room, vu % rooms, "vu {vu}");
            }
        }
    }
}
