//! A small reorder window for numbered media chunks (Twilio `media.chunk`).
//!
//! Policy: chunks are released strictly in sequence. An out-of-order chunk waits in a
//! window of at most `window` chunks; when the window overflows, the missing chunks are
//! declared lost and reported as a [`Released::Gap`] (the caller fills them with silence so
//! the speaker's timeline stays aligned with the other track). Duplicates and chunks older
//! than the release point are dropped and reported (`Late` when the chunk's hole had been
//! given up, `Duplicate` when it was released before). The first chunk number is 1 (Twilio); a
//! stream that starts higher is released from its lowest chunk once the window fills.

use std::collections::{BTreeMap, BTreeSet};

/// Holes up to this size are remembered so a chunk arriving after its hole was given up is
/// told apart (`Late`) from a repeat of a released chunk (`Duplicate`).
const REMEMBERED_HOLES: usize = 256;

/// What the buffer releases, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    Data(Vec<u8>),
    /// This many chunks are missing here and will not be waited for.
    Gap(u64),
}

/// What happened to a pushed chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Released or buffered.
    Accepted,
    /// Already buffered or already released (same number as a pending one).
    Duplicate,
    /// Older than the release point: arrived after its gap was declared, or a replay.
    Late,
}

#[derive(Debug)]
pub struct ReorderBuffer {
    next: Option<u64>,
    pending: BTreeMap<u64, Vec<u8>>,
    window: usize,
    skipped: BTreeSet<u64>,
}

impl ReorderBuffer {
    /// `window`: how many chunks may wait for a missing one (0 = release immediately and
    /// treat every hole as lost).
    pub fn new(window: usize) -> Self {
        Self {
            next: None,
            pending: BTreeMap::new(),
            window,
            skipped: BTreeSet::new(),
        }
    }

    pub fn push(&mut self, seq: u64, data: Vec<u8>, out: &mut Vec<Released>) -> Pushed {
        if self.next.is_none() && seq <= 1 {
            self.next = Some(seq);
        }
        if let Some(next) = self.next {
            if seq < next {
                return if self.skipped.remove(&seq) {
                    Pushed::Late
                } else {
                    Pushed::Duplicate
                };
            }
        }
        if self.pending.contains_key(&seq) {
            return Pushed::Duplicate;
        }
        self.pending.insert(seq, data);
        self.drain_ready(out);
        while self.pending.len() > self.window {
            self.release_lowest(out);
        }
        Pushed::Accepted
    }

    /// Releases everything still buffered (end of stream), declaring holes as gaps.
    pub fn flush(&mut self, out: &mut Vec<Released>) {
        while !self.pending.is_empty() {
            self.release_lowest(out);
        }
    }

    fn release_lowest(&mut self, out: &mut Vec<Released>) {
        let Some((&k, _)) = self.pending.iter().next() else {
            return;
        };
        if let Some(next) = self.next {
            if k > next {
                out.push(Released::Gap(k - next));
                if k - next <= REMEMBERED_HOLES as u64 {
                    self.skipped.extend(next..k);
                }
                while self.skipped.len() > REMEMBERED_HOLES {
                    self.skipped.pop_first();
                }
            }
        }
        self.next = Some(k);
        self.drain_ready(out);
    }

    fn drain_ready(&mut self, out: &mut Vec<Released>) {
        let Some(mut next) = self.next else {
            return;
        };
        while let Some(data) = self.pending.remove(&next) {
            out.push(Released::Data(data));
            next += 1;
        }
        self.next = Some(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(x: u8) -> Released {
        Released::Data(vec![x])
    }

    #[test]
    fn in_order_passes_through() {
        let mut b = ReorderBuffer::new(3);
        let mut out = vec![];
        for i in 1..=3 {
            assert_eq!(b.push(i, vec![i as u8], &mut out), Pushed::Accepted);
        }
        assert_eq!(out, vec![d(1), d(2), d(3)]);
    }

    #[test]
    fn swaps_are_reordered_and_duplicates_dropped() {
        let mut b = ReorderBuffer::new(3);
        let mut out = vec![];
        b.push(2, vec![2], &mut out);
        assert!(out.is_empty());
        b.push(1, vec![1], &mut out);
        b.push(4, vec![4], &mut out);
        assert_eq!(b.push(4, vec![4], &mut out), Pushed::Duplicate);
        b.push(3, vec![3], &mut out);
        assert_eq!(b.push(2, vec![2], &mut out), Pushed::Duplicate);
        assert_eq!(out, vec![d(1), d(2), d(3), d(4)]);
    }

    #[test]
    fn overflow_declares_gap_and_late_chunk_is_dropped() {
        let mut b = ReorderBuffer::new(2);
        let mut out = vec![];
        b.push(1, vec![1], &mut out);
        b.push(3, vec![3], &mut out);
        b.push(4, vec![4], &mut out);
        b.push(5, vec![5], &mut out); // window overflow: 2 is lost
        assert_eq!(out, vec![d(1), Released::Gap(1), d(3), d(4), d(5)]);
        assert_eq!(b.push(2, vec![2], &mut out), Pushed::Late);
        assert_eq!(b.push(3, vec![3], &mut out), Pushed::Duplicate);
    }

    #[test]
    fn flush_releases_with_gaps() {
        let mut b = ReorderBuffer::new(5);
        let mut out = vec![];
        b.push(1, vec![1], &mut out);
        b.push(4, vec![4], &mut out);
        b.flush(&mut out);
        assert_eq!(out, vec![d(1), Released::Gap(2), d(4)]);
    }

    #[test]
    fn stream_starting_late_begins_at_lowest() {
        let mut b = ReorderBuffer::new(1);
        let mut out = vec![];
        b.push(11, vec![11], &mut out);
        b.push(10, vec![10], &mut out);
        assert_eq!(out, vec![d(10), d(11)]);
    }

    // Property: whatever chunk numbers a client sends, the buffer holds at most `window`
    // chunks, releases each pushed chunk at most once and in increasing order, never
    // invents data, and remembers a bounded number of holes.
    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]
        #[test]
        fn any_chunk_numbers_keep_the_buffer_bounded(
            window in 0usize..8,
            pushes in proptest::collection::vec((0u64..5000, 0usize..40), 0..300),
        ) {
            let mut b = ReorderBuffer::new(window);
            let mut out = Vec::new();
            let mut pushed_bytes = 0usize;
            let mut accepted = std::collections::BTreeSet::new();
            for (i, (seq, len)) in pushes.iter().enumerate() {
                // The payload names its chunk, so a release can be traced back.
                let mut data = seq.to_le_bytes().to_vec();
                data.resize(8 + len, i as u8);
                let size = data.len();
                if b.push(*seq, data, &mut out) == Pushed::Accepted {
                    proptest::prop_assert!(accepted.insert(*seq), "chunk {seq} accepted twice");
                    pushed_bytes += size;
                }
                proptest::prop_assert!(b.pending.len() <= window);
                proptest::prop_assert!(b.skipped.len() <= REMEMBERED_HOLES);
            }
            b.flush(&mut out);
            let mut released_bytes = 0usize;
            let mut last: Option<u64> = None;
            for r in &out {
                if let Released::Data(d) = r {
                    let seq = u64::from_le_bytes(d[..8].try_into().unwrap());
                    proptest::prop_assert!(last.is_none_or(|l| seq > l), "{seq} after {last:?}");
                    proptest::prop_assert!(accepted.contains(&seq));
                    last = Some(seq);
                    released_bytes += d.len();
                }
            }
            proptest::prop_assert_eq!(released_bytes, pushed_bytes, "all accepted data comes out once");
        }
    }
}
