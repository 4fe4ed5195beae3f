//! Idempotent producers (`Producer-Id`, `Producer-Epoch`, `Producer-Seq`): Kafka-style fencing
//! and deduplication of retried appends. Validation and the append happen under the stream's
//! lock, which serializes every producer of the stream.

use std::collections::HashMap;

/// Producer ids one stream remembers at most; an append from a new id past it is refused.
pub(crate) const MAX_PRODUCERS: usize = 10_000;
/// The longest `Producer-Id` (and `Stream-Seq`) accepted, in bytes.
pub(crate) const MAX_ID_LEN: usize = 256;

/// The largest epoch or sequence number (2^53 - 1, what JavaScript numbers hold exactly).
pub(crate) const MAX_NUMBER: u64 = (1 << 53) - 1;

/// The producer headers of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProducerClaim {
    pub(crate) id: String,
    pub(crate) epoch: u64,
    pub(crate) seq: u64,
}

/// What the server knows of one producer on one stream.
#[derive(Clone, Copy, Debug)]
struct State {
    epoch: u64,
    last_seq: u64,
}

/// The verdict on a claim.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// New data: append it, then [`Producers::accept`].
    Accept,
    /// Already appended: answer 204 with the highest accepted sequence number.
    Duplicate { last_seq: u64 },
    /// A newer epoch owns the producer id (403).
    StaleEpoch { current: u64 },
    /// A new epoch must start at sequence 0 (400).
    EpochNeedsSeqZero,
    /// A gap: `expected` was due (409).
    Gap { expected: u64 },
}

/// The producers of one stream.
#[derive(Clone, Debug, Default)]
pub(crate) struct Producers {
    states: HashMap<String, State>,
}

impl Producers {
    /// Judges a claim without changing anything.
    pub(crate) fn check(&self, claim: &ProducerClaim) -> Verdict {
        let Some(state) = self.states.get(&claim.id) else {
            return if claim.seq == 0 {
                Verdict::Accept
            } else {
                Verdict::Gap { expected: 0 }
            };
        };
        if claim.epoch < state.epoch {
            Verdict::StaleEpoch {
                current: state.epoch,
            }
        } else if claim.epoch > state.epoch {
            if claim.seq == 0 {
                Verdict::Accept
            } else {
                Verdict::EpochNeedsSeqZero
            }
        } else if claim.seq <= state.last_seq {
            Verdict::Duplicate {
                last_seq: state.last_seq,
            }
        } else if claim.seq == state.last_seq + 1 {
            Verdict::Accept
        } else {
            Verdict::Gap {
                expected: state.last_seq + 1,
            }
        }
    }

    /// Whether `claim` names a producer id this stream has not seen.
    pub(crate) fn is_new(&self, claim: &ProducerClaim) -> bool {
        !self.states.contains_key(&claim.id)
    }

    /// Producer ids known.
    pub(crate) fn len(&self) -> usize {
        self.states.len()
    }

    /// Records an accepted claim (after its data was appended).
    pub(crate) fn accept(&mut self, claim: &ProducerClaim) {
        self.states.insert(
            claim.id.clone(),
            State {
                epoch: claim.epoch,
                last_seq: claim.seq,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(epoch: u64, seq: u64) -> ProducerClaim {
        ProducerClaim {
            id: "p".into(),
            epoch,
            seq,
        }
    }

    #[test]
    fn fences_dedupes_and_finds_gaps() {
        let mut producers = Producers::default();
        assert_eq!(producers.check(&claim(0, 1)), Verdict::Gap { expected: 0 });
        assert_eq!(producers.check(&claim(0, 0)), Verdict::Accept);
        producers.accept(&claim(0, 0));
        assert_eq!(
            producers.check(&claim(0, 0)),
            Verdict::Duplicate { last_seq: 0 }
        );
        assert_eq!(producers.check(&claim(0, 2)), Verdict::Gap { expected: 1 });
        producers.accept(&claim(0, 1));
        assert_eq!(producers.check(&claim(1, 5)), Verdict::EpochNeedsSeqZero);
        producers.accept(&claim(1, 0));
        assert_eq!(
            producers.check(&claim(0, 2)),
            Verdict::StaleEpoch { current: 1 }
        );
        let other = ProducerClaim {
            id: "q".into(),
            epoch: 0,
            seq: 0,
        };
        assert_eq!(
            producers.check(&other),
            Verdict::Accept,
            "producers are independent"
        );
    }
}
