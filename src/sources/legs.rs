//! Who owns which leg of which call, shared by every network source of one service.
//!
//! Invariant: a `(call_id, speaker)` leg belongs to the connection that claimed it until
//! that connection's [`LegClaim`] is dropped. Another connection naming the same call id can
//! only claim speakers that are free (AudioSocket's second leg is the other speaker by
//! protocol); one whose speakers are taken is refused before it sends anything, so it can
//! neither add audio to nor end someone else's call. Sources drop the claim only after they
//! have sent the leg's `End`, so the router sees the old leg end before a new one starts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::audio::Speaker;

#[derive(Debug, Default)]
struct Inner {
    calls: Mutex<HashMap<String, Vec<(Speaker, u64)>>>,
    next_conn: AtomicU64,
}

/// The shared table; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct LegRegistry {
    inner: Arc<Inner>,
}

/// Ownership of one or more speakers of a call; released on drop.
#[derive(Debug)]
pub struct LegClaim {
    registry: LegRegistry,
    call_id: String,
    conn: u64,
    speakers: Vec<Speaker>,
}

impl LegClaim {
    pub fn speakers(&self) -> &[Speaker] {
        &self.speakers
    }
}

impl LegRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<(Speaker, u64)>>> {
        // A poisoned lock only means another thread panicked mid-update of a plain map.
        self.inner.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims all of `speakers` of `call_id` for one new connection, or none of them when
    /// any is already owned.
    pub fn claim(&self, call_id: &str, speakers: &[Speaker]) -> Option<LegClaim> {
        let conn = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
        let mut calls = self.lock();
        let legs = calls.entry(call_id.to_string()).or_default();
        if speakers.iter().any(|s| legs.iter().any(|(t, _)| t == s)) {
            if legs.is_empty() {
                calls.remove(call_id);
            }
            return None;
        }
        legs.extend(speakers.iter().map(|&s| (s, conn)));
        Some(LegClaim {
            registry: self.clone(),
            call_id: call_id.to_string(),
            conn,
            speakers: speakers.to_vec(),
        })
    }

    /// Claims the first free speaker of `preference` (AudioSocket: first leg, then the other).
    pub fn claim_first_free(&self, call_id: &str, preference: &[Speaker]) -> Option<LegClaim> {
        preference
            .iter()
            .find_map(|&s| self.claim(call_id, std::slice::from_ref(&s)))
    }

    /// Calls with at least one owned leg.
    pub fn open_calls(&self) -> usize {
        self.lock().len()
    }

    fn release(&self, call_id: &str, conn: u64) {
        let mut calls = self.lock();
        if let Some(legs) = calls.get_mut(call_id) {
            legs.retain(|(_, c)| *c != conn);
            if legs.is_empty() {
                calls.remove(call_id);
            }
        }
    }
}

impl Drop for LegClaim {
    fn drop(&mut self) {
        self.registry.release(&self.call_id, self.conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Speaker::{Agent, Customer};

    #[test]
    fn a_taken_leg_cannot_be_claimed_again_until_released() {
        let r = LegRegistry::new();
        let a = r.claim("c", &[Customer, Agent]).unwrap();
        assert!(r.claim("c", &[Customer]).is_none());
        assert!(r.claim("c", &[Agent]).is_none());
        assert!(r.claim_first_free("c", &[Customer, Agent]).is_none());
        assert_eq!(r.open_calls(), 1);
        drop(a);
        assert_eq!(r.open_calls(), 0);
        assert!(r.claim("c", &[Customer]).is_some());
    }

    #[test]
    fn audiosocket_style_two_legs_then_refusal() {
        let r = LegRegistry::new();
        let first = r.claim_first_free("u", &[Customer, Agent]).unwrap();
        let second = r.claim_first_free("u", &[Customer, Agent]).unwrap();
        assert_eq!(first.speakers(), &[Customer]);
        assert_eq!(second.speakers(), &[Agent]);
        assert!(r.claim_first_free("u", &[Customer, Agent]).is_none());
        drop(first);
        // Only the released speaker comes free; the other connection keeps its leg.
        let third = r.claim_first_free("u", &[Customer, Agent]).unwrap();
        assert_eq!(third.speakers(), &[Customer]);
        drop((second, third));
        assert_eq!(r.open_calls(), 0);
    }

    #[test]
    fn a_refused_claim_leaves_no_entry() {
        let r = LegRegistry::new();
        let _a = r.claim("c", &[Customer]).unwrap();
        assert!(r.claim("c", &[Customer, Agent]).is_none());
        // The refused connection did not take the agent leg either.
        assert!(r.claim("c", &[Agent]).is_some());
    }
}
