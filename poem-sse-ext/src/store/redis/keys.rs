//! Key names: where a channel's stream and idempotency keys live, and which reader group (one
//! blocking `XREAD` each) follows it.
//!
//! On one Redis node every channel is `<prefix>:<channel>` and one reader follows them all.
//!
//! On a Redis Cluster a command may only touch keys of one *slot*, and a hash tag (`{...}` in a
//! key) decides the slot. Every key of a channel carries the tag of its *bucket*:
//! `<prefix>:{<tag>}:<channel>`, `<prefix>:{<tag>}:<channel>:once:ids`, ... so that the
//! idempotent append (one script over the stream and its two idempotency keys) stays in one
//! slot, and a failover rolls a channel's stream and its idempotency keys back together.
//!
//! **Why buckets, not a tag per channel.** A blocking `XREAD` reads the keys of one slot only, and
//! holds its connection while it waits. With a tag per channel, every followed channel would need
//! a blocking connection of its own (1,000 channels: 1,000 connections per instance, each woken on
//! its own). With [`BUCKETS`] buckets, an instance holds at most one blocking connection per
//! bucket in use, however many channels it follows, and one `XREAD` per bucket reads all of that
//! bucket's channels. A channel's bucket is a fixed hash of its name, so every instance agrees.
//!
//! **Why a table of tags.** Bare integers (`{0}`, `{1}`, ...) hash to arbitrary slots: they fall
//! unevenly on the masters (with a few masters, some get nothing). [`BUCKET_TAGS`] holds tags
//! whose slots are evenly spaced (bucket `i` at slot `1024 * i + 512`), so `N` masters owning even
//! slot ranges, as `redis-cli --cluster create` makes them, get `16 / N` buckets each, and a
//! reshard of a slot range moves whole buckets. The table is part of the store's key format:
//! changing it would move every channel to new keys, so it never changes.

// Without the `redis-cluster` feature only the single-node scheme is used; the cluster's
// naming stays compiled (and tested) so that both features name keys alike.
#![cfg_attr(not(feature = "redis-cluster"), allow(dead_code))]

/// How many buckets the channels of a cluster store are spread over.
pub(super) const BUCKETS: usize = 16;

/// The hash tag of each bucket, chosen so that bucket `i` hashes to slot `1024 * i + 512`.
pub(super) const BUCKET_TAGS: [&str; BUCKETS] = [
    "1768", "20261", "18360", "41271", "3453", "11199", "29098", "8591", "265", "45842", "13409",
    "17891", "46093", "3635", "2912", "48623",
];

/// How a store names its keys.
#[derive(Debug, Clone)]
pub(super) enum KeyScheme {
    /// One node: `<prefix>:<channel>`, every channel in reader group 0.
    Single { prefix: String },
    /// A cluster: `<prefix>:{<bucket tag>}:<channel>`, one reader group per bucket.
    Cluster { prefix: String },
}

impl KeyScheme {
    pub(super) fn prefix(&self) -> &str {
        match self {
            Self::Single { prefix } | Self::Cluster { prefix } => prefix,
        }
    }

    /// How many reader groups the store runs.
    pub(super) fn groups(&self) -> usize {
        match self {
            Self::Single { .. } => 1,
            Self::Cluster { .. } => BUCKETS,
        }
    }

    /// The reader group that follows `channel`.
    pub(super) fn group(&self, channel: &str) -> usize {
        match self {
            Self::Single { .. } => 0,
            Self::Cluster { .. } => bucket(channel),
        }
    }

    /// The key of `channel`'s stream; its idempotency keys append `:once:...` to it.
    pub(super) fn stream_key(&self, channel: &str) -> String {
        match self {
            Self::Single { prefix } => format!("{prefix}:{channel}"),
            Self::Cluster { prefix } => {
                format!("{prefix}:{{{}}}:{channel}", BUCKET_TAGS[bucket(channel)])
            }
        }
    }
}

/// The bucket of `channel`: FNV-1a of its name, modulo [`BUCKETS`]. Part of the key format, like
/// the tags.
fn bucket(channel: &str) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in channel.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // The remainder is below BUCKETS, so it fits.
    (hash % BUCKETS as u64) as usize
}

/// The cluster slot of a bucket: where its tag hashes.
pub(super) fn bucket_slot(group: usize) -> u16 {
    key_slot(BUCKET_TAGS[group % BUCKETS].as_bytes())
}

/// The cluster slot of `key` (CRC16/XMODEM of the key, or of its hash tag, modulo 16384), as
/// Redis computes it.
pub(super) fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16(hashed) % 16384
}

fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_computed_as_redis_does() {
        // `CLUSTER KEYSLOT` answers these.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_eq!(crc16(b"123456789"), 0x31c3);
    }

    #[test]
    fn bucket_tags_sit_on_evenly_spaced_slots() {
        for (i, tag) in BUCKET_TAGS.iter().enumerate() {
            assert_eq!(
                usize::from(key_slot(tag.as_bytes())),
                1024 * i + 512,
                "{tag}"
            );
        }
        // Three masters with the slot ranges `redis-cli --cluster create` makes: 5, 5 and 6.
        let per_master = |from: u16, to: u16| {
            (0..BUCKETS)
                .filter(|&b| (from..=to).contains(&bucket_slot(b)))
                .count()
        };
        assert_eq!(
            [
                per_master(0, 5460),
                per_master(5461, 10922),
                per_master(10923, 16383)
            ],
            [5, 6, 5]
        );
    }

    #[test]
    fn a_channel_keeps_its_keys_in_one_slot_and_single_node_names_are_unchanged() {
        let single = KeyScheme::Single {
            prefix: "sse".into(),
        };
        assert_eq!(single.stream_key("prices"), "sse:prices");
        assert_eq!(single.group("prices"), 0);
        let cluster = KeyScheme::Cluster {
            prefix: "sse".into(),
        };
        let key = cluster.stream_key("prices");
        let group = cluster.group("prices");
        assert_eq!(key, format!("sse:{{{}}}:prices", BUCKET_TAGS[group]));
        let slot = key_slot(key.as_bytes());
        assert_eq!(slot, bucket_slot(group));
        assert_eq!(key_slot(format!("{key}:once:ids").as_bytes()), slot);
        // Many channels use every bucket.
        let used: std::collections::HashSet<usize> =
            (0..200).map(|n| cluster.group(&format!("c{n}"))).collect();
        assert_eq!(used.len(), BUCKETS);
    }
}
