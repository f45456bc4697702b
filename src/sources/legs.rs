//! Who owns which leg of which call, shared by every network source of one service.
//!
//! Invariants:
//! * A `(call_id, speaker)` leg belongs to the connection that claimed it until that
//!   connection's [`LegClaim`] is dropped. Another connection naming the same call id can
//!   only claim speakers that are free (AudioSocket's second leg is the other speaker by
//!   protocol); one whose speakers are taken is refused ([`Refusal::Taken`]) before it sends
//!   anything, so it can neither add audio to nor end someone else's call.
//! * A call belongs to the source (protocol) that opened it — `audiosocket`, `twilio`, `l16` —
//!   for as long as any of its legs is owned. Its free legs may be joined only over that same
//!   source (AudioSocket's two legs are two AudioSocket connections with one UUID; a media
//!   stream opens its legs itself): a connection of another source is refused
//!   ([`Refusal::OtherSource`]), so an unauthenticated AudioSocket client cannot take the free
//!   agent leg of a mono media-stream call, nor a Twilio stream a leg of an Asterisk call.
//! * Sources drop the claim only after they have sent the leg's `End`, so the router sees
//!   the old leg end before a new one starts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::audio::Speaker;

/// The owned legs of one call and the source that opened it.
#[derive(Debug)]
struct Call {
    source: &'static str,
    legs: Vec<(Speaker, u64)>,
}

#[derive(Debug, Default)]
struct Inner {
    calls: Mutex<HashMap<String, Call>>,
    next_conn: AtomicU64,
}

/// The shared table; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct LegRegistry {
    inner: Arc<Inner>,
}

/// Why a claim was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The wanted speakers are owned by other connections.
    Taken,
    /// The call was opened by another source (named); only that source may join its legs.
    OtherSource(&'static str),
}

impl Refusal {
    /// The short reason for logs, metrics labels and WebSocket close frames:
    /// `leg_taken` or `other_source`.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Taken => "leg_taken",
            Refusal::OtherSource(_) => "other_source",
        }
    }
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Call>> {
        // A poisoned lock only means another thread panicked mid-update of a plain map.
        self.inner.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims all of `speakers` of `call_id` for one new connection of `source`, or none of
    /// them: refused when any is already owned, or when the call is open over another source.
    pub fn claim(
        &self,
        call_id: &str,
        source: &'static str,
        speakers: &[Speaker],
    ) -> Result<LegClaim, Refusal> {
        self.claim_with(call_id, source, |call| {
            let taken =
                call.is_some_and(|c| speakers.iter().any(|s| c.legs.iter().any(|(t, _)| t == s)));
            (!taken).then(|| speakers.to_vec())
        })
    }

    /// Claims the first free speaker of `preference` (AudioSocket: first leg, then the other)
    /// for a connection of `source`; refused when none is free, or when the call is open over
    /// another source.
    pub fn claim_first_free(
        &self,
        call_id: &str,
        source: &'static str,
        preference: &[Speaker],
    ) -> Result<LegClaim, Refusal> {
        self.claim_with(call_id, source, |call| {
            preference
                .iter()
                .find(|s| call.is_none_or(|c| !c.legs.iter().any(|(t, _)| t == *s)))
                .map(|&s| vec![s])
        })
    }

    /// Claims what `pick` chooses given the call's current entry (`None`: no owned legs);
    /// `pick` returns `None` when the wanted speakers are taken.
    fn claim_with(
        &self,
        call_id: &str,
        source: &'static str,
        pick: impl FnOnce(Option<&Call>) -> Option<Vec<Speaker>>,
    ) -> Result<LegClaim, Refusal> {
        let mut calls = self.lock();
        let existing = calls.get(call_id);
        let speakers = pick(existing).ok_or(Refusal::Taken)?;
        if let Some(c) = existing {
            if c.source != source {
                return Err(Refusal::OtherSource(c.source));
            }
        }
        let conn = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
        let call = calls.entry(call_id.to_string()).or_insert_with(|| Call {
            source,
            legs: Vec::new(),
        });
        call.legs.extend(speakers.iter().map(|&s| (s, conn)));
        Ok(LegClaim {
            registry: self.clone(),
            call_id: call_id.to_string(),
            conn,
            speakers,
        })
    }

    /// Calls with at least one owned leg.
    pub fn open_calls(&self) -> usize {
        self.lock().len()
    }

    /// The source that opened `call_id`, while any of its legs is owned.
    pub fn source_of(&self, call_id: &str) -> Option<&'static str> {
        self.lock().get(call_id).map(|c| c.source)
    }

    fn release(&self, call_id: &str, conn: u64) {
        let mut calls = self.lock();
        if let Some(call) = calls.get_mut(call_id) {
            call.legs.retain(|(_, c)| *c != conn);
            if call.legs.is_empty() {
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

    const AS: &str = "audiosocket";

    #[test]
    fn a_taken_leg_cannot_be_claimed_again_until_released() {
        let r = LegRegistry::new();
        let a = r.claim("c", "twilio", &[Customer, Agent]).unwrap();
        assert_eq!(
            r.claim("c", "twilio", &[Customer]).unwrap_err(),
            Refusal::Taken
        );
        assert_eq!(
            r.claim("c", "twilio", &[Agent]).unwrap_err(),
            Refusal::Taken
        );
        assert_eq!(
            r.claim_first_free("c", AS, &[Customer, Agent]).unwrap_err(),
            Refusal::Taken
        );
        assert_eq!(r.open_calls(), 1);
        drop(a);
        assert_eq!(r.open_calls(), 0);
        assert!(r.claim("c", "twilio", &[Customer]).is_ok());
    }

    #[test]
    fn audiosocket_style_two_legs_then_refusal() {
        let r = LegRegistry::new();
        let first = r.claim_first_free("u", AS, &[Customer, Agent]).unwrap();
        let second = r.claim_first_free("u", AS, &[Customer, Agent]).unwrap();
        assert_eq!(first.speakers(), &[Customer]);
        assert_eq!(second.speakers(), &[Agent]);
        assert_eq!(
            r.claim_first_free("u", AS, &[Customer, Agent]).unwrap_err(),
            Refusal::Taken
        );
        drop(first);
        // Only the released speaker comes free; the other connection keeps its leg.
        let third = r.claim_first_free("u", AS, &[Customer, Agent]).unwrap();
        assert_eq!(third.speakers(), &[Customer]);
        drop((second, third));
        assert_eq!(r.open_calls(), 0);
    }

    #[test]
    fn a_refused_claim_leaves_no_entry() {
        let r = LegRegistry::new();
        let _a = r.claim("c", "l16", &[Customer]).unwrap();
        assert!(r.claim("c", "l16", &[Customer, Agent]).is_err());
        // The refused connection did not take the agent leg either.
        assert!(r.claim("c", "l16", &[Agent]).is_ok());
        let r = LegRegistry::new();
        assert!(r.claim_first_free("x", AS, &[]).is_err());
        assert_eq!(r.open_calls(), 0);
    }

    #[test]
    fn a_free_leg_is_joined_only_over_the_source_that_opened_the_call() {
        let r = LegRegistry::new();
        // A mono media stream owns the customer leg; the agent leg is free but not AudioSocket's.
        let owner = r.claim("c", "l16", &[Customer]).unwrap();
        assert_eq!(
            r.claim_first_free("c", AS, &[Customer, Agent]).unwrap_err(),
            Refusal::OtherSource("l16")
        );
        assert_eq!(
            r.claim("c", "twilio", &[Agent]).unwrap_err(),
            Refusal::OtherSource("l16")
        );
        assert_eq!(r.source_of("c"), Some("l16"));
        // An Asterisk call's second leg is not Twilio's either, even after its first leg left.
        let first = r.claim_first_free("u", AS, &[Customer, Agent]).unwrap();
        let second = r.claim_first_free("u", AS, &[Customer, Agent]).unwrap();
        drop(first);
        assert_eq!(
            r.claim("u", "twilio", &[Customer]).unwrap_err(),
            Refusal::OtherSource(AS)
        );
        let back = r.claim_first_free("u", AS, &[Customer, Agent]).unwrap();
        assert_eq!(back.speakers(), &[Customer]);
        // Once every leg is released the id is free for any source.
        drop((owner, second, back));
        assert_eq!(r.open_calls(), 0);
        assert!(r.claim_first_free("c", AS, &[Customer, Agent]).is_ok());
    }
}
