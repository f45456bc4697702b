//! Agent behaviours in an utterance's words: `acknowledge`, `apologise`, `commit`, `dismiss`.
//!
//! The phrase sets come from `[empathy]` and are matched with the escalation-phrase matcher
//! ([`crate::emotion::phrases`]: inflections, one-letter ASR slips, longest match first). On
//! top of it, a match is not the agent's own act, and is dropped, when the word before it
//! * negates it: "I don't understand why you…", "I'm not sorry", "we never apologise"
//!   ("can't" too, except inside a configured phrase: "I can't imagine how…"), or
//! * names someone else as its subject: "do you understand…", "they should have";
//! * or makes it a condition or hearsay: "if I understand correctly", "as I understand it".
//!
//! Only a word of the phrase's own clause can do that: after punctuation ("Oh no, I'm so
//! sorry", "No, I understand") the phrase starts a new clause, and a phrase that opens with
//! its own subject ("I'm sorry", "I understand", "we apologise") cannot be negated by the word
//! before it ("oh no I'm so sorry" as Whisper may write it without the comma).
//!
//! Each kind is reported once per utterance (its first match), in the order spoken.

use crate::emotion::phrases::PhraseMatcher;
use crate::events::{Behaviour, BehaviourKind};

use super::config::EmpathyConfig;

/// Words that, right before a phrase, negate it.
const NEGATORS: &[&str] = &[
    "dont", "doesnt", "didnt", "not", "never", "wont", "wouldnt", "cant", "cannot", "no", "nobody",
    "isnt", "arent", "wasnt",
];
/// Subjects that make the phrase someone else's ("do you understand", "they should have").
const OTHER_SUBJECTS: &[&str] = &["you", "they", "he", "she", "youre", "theyre"];
/// Words that turn "I understand" into a comprehension check.
const CONDITIONALS: &[&str] = &["if", "as", "unless", "whether"];
/// First-person subjects: a phrase opening with one carries its own negation inside
/// ("I'm not sorry", "I don't understand"); a negator before it belongs to another clause.
const OWN_SUBJECTS: &[&str] = &[
    "i", "im", "ive", "ill", "id", "we", "were", "weve", "wed", "my", "our",
];

/// Finds behaviours in agent utterances.
#[derive(Debug, Clone)]
pub struct BehaviourDetector {
    sets: Vec<(BehaviourKind, PhraseMatcher)>,
}

impl Default for BehaviourDetector {
    fn default() -> Self {
        Self::new(&EmpathyConfig::default())
    }
}

fn norm(w: &str) -> String {
    w.to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect()
}

impl BehaviourDetector {
    pub fn new(cfg: &EmpathyConfig) -> Self {
        Self {
            sets: vec![
                (
                    BehaviourKind::Acknowledge,
                    PhraseMatcher::new(&cfg.acknowledge),
                ),
                (BehaviourKind::Apologise, PhraseMatcher::new(&cfg.apologise)),
                (BehaviourKind::Commit, PhraseMatcher::new(&cfg.commit)),
                (BehaviourKind::Dismiss, PhraseMatcher::new(&cfg.dismiss)),
            ],
        }
    }

    /// Behaviours in a text (whitespace-separated words).
    pub fn detect(&self, text: &str) -> Vec<Behaviour> {
        let words: Vec<&str> = text.split_whitespace().collect();
        self.detect_words(&words)
    }

    /// Behaviours in a word sequence (e.g. Whisper's timed words).
    pub fn detect_words<S: AsRef<str>>(&self, words: &[S]) -> Vec<Behaviour> {
        let normed: Vec<String> = words.iter().map(|w| norm(w.as_ref())).collect();
        let mut found: Vec<(usize, Behaviour)> = Vec::new();
        for (kind, matcher) in &self.sets {
            let hit = matcher
                .find_words(words)
                .into_iter()
                .find(|m| !disowned(*kind, words, &normed, m.word_index_range.start));
            if let Some(m) = hit {
                let words = m
                    .matched_words
                    .iter()
                    .map(|w| w.trim_matches(|c: char| c.is_ascii_punctuation() && c != '\''))
                    .collect::<Vec<_>>()
                    .join(" ");
                found.push((m.word_index_range.start, Behaviour { kind: *kind, words }));
            }
        }
        found.sort_by_key(|(i, _)| *i);
        found.into_iter().map(|(_, b)| b).collect()
    }
}

/// True when the words right before position `start` negate the phrase, give it another
/// subject, or make it a condition (see the module docs). Punctuation after a word ends its
/// clause: nothing before it reaches the phrase.
fn disowned<S: AsRef<str>>(
    kind: BehaviourKind,
    words: &[S],
    normed: &[String],
    start: usize,
) -> bool {
    // The words before the phrase within its clause, nearest first (at most two).
    let mut before: Vec<&str> = Vec::with_capacity(2);
    for k in (start.saturating_sub(2)..start).rev() {
        if ends_clause(words[k].as_ref()) || normed[k].is_empty() {
            break;
        }
        before.push(normed[k].as_str());
    }
    let w1 = before.first().copied().unwrap_or("");
    let w2 = before.get(1).copied().unwrap_or("");
    // "I don't understand", "I do not really understand", "I'm not sorry". A phrase with
    // its own subject ("I'm so sorry") is negated inside it, never by the word before.
    let own_subject = normed
        .get(start)
        .is_some_and(|w| OWN_SUBJECTS.contains(&w.as_str()));
    if !own_subject
        && (NEGATORS.contains(&w1)
            || (NEGATORS.contains(&w2) && matches!(w1, "really" | "even" | "actually" | "quite")))
    {
        return true;
    }
    // "do you understand", "they should have": someone else's words. Dismissals are
    // addressed to the customer ("can you calm down"), so they keep their "you".
    if kind != BehaviourKind::Dismiss && OTHER_SUBJECTS.contains(&w1) {
        return true;
    }
    CONDITIONALS.contains(&w1)
}

/// A word with clause-ending punctuation after it ("no,", "that.", "right?", "wait -").
fn ends_clause(word: &str) -> bool {
    word.trim_end_matches(['"', '\'', ')', '\u{201d}', '\u{2019}'])
        .ends_with([
            ',', '.', ';', ':', '!', '?', '-', '\u{2013}', '\u{2014}', '\u{2026}',
        ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(&'static str, String)> {
        BehaviourDetector::default()
            .detect(text)
            .into_iter()
            .map(|b| (b.kind.as_str(), b.words))
            .collect()
    }

    fn only(text: &str) -> Vec<&'static str> {
        kinds(text).into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn true_positives_with_their_words() {
        assert_eq!(
            kinds("I understand your frustration."),
            vec![("acknowledge", "I understand".to_string())]
        );
        assert_eq!(
            only("I can see why you'd be upset about that."),
            ["acknowledge"]
        );
        assert_eq!(only("Oh, that must be really frustrating"), ["acknowledge"]);
        assert_eq!(only("That must be frustrating for you."), ["acknowledge"]);
        assert_eq!(
            only("I can't imagine how annoying that is."),
            ["acknowledge"]
        );
        assert_eq!(only("I'm so sorry about this."), ["apologise"]);
        assert_eq!(only("My apologies for the wait."), ["apologise"]);
        assert_eq!(only("I apologize for the confusion."), ["apologise"]);
        assert_eq!(only("I'll make sure it doesn't happen again."), ["commit"]);
        assert_eq!(only("Let me fix that for you right now."), ["commit"]);
        assert_eq!(only("I will take care of it personally."), ["commit"]);
        assert_eq!(only("You need to calm down."), ["dismiss"]);
        assert_eq!(only("There's nothing I can do about it."), ["dismiss"]);
        assert_eq!(only("Sorry, that's our policy."), ["dismiss"]);
        assert_eq!(only("You should have read the contract."), ["dismiss"]);
    }

    #[test]
    fn several_kinds_in_spoken_order() {
        assert_eq!(
            only("I'm sorry, I understand how frustrating this is, and I'll make sure it's fixed."),
            ["apologise", "acknowledge", "commit"]
        );
        assert_eq!(
            only("I understand, but that's our policy."),
            ["acknowledge", "dismiss"]
        );
    }

    #[test]
    fn inflections_and_asr_slips() {
        assert_eq!(only("that must be so frustrating"), ["acknowledge"]);
        assert_eq!(only("that sounds frustrated"), ["acknowledge"]);
        assert_eq!(only("I apologised earlier and I do again"), ["apologise"]);
        assert_eq!(only("I apologies for that"), ["apologise"]);
        assert_eq!(only("please calm down"), ["dismiss"]);
        assert_eq!(only("it's company pollicy"), ["dismiss"]);
    }

    #[test]
    fn negations_and_other_subjects_are_not_behaviours() {
        for text in [
            "I don't understand why you keep calling.",
            "I do not understand what you mean.",
            "I'm not sorry, those are the rules? No.",
            "Do you understand the charges?",
            "If I understand correctly, you were billed twice.",
            "As I understand it, the payment bounced.",
            "I won't make sure of anything.",
        ] {
            let k = only(text);
            assert!(
                !k.contains(&"acknowledge") && !k.contains(&"apologise") && !k.contains(&"commit"),
                "{text}: {k:?}"
            );
        }
    }

    #[test]
    fn near_misses_are_not_behaviours() {
        for text in [
            "Sorry, could you repeat that?",
            "Sorry, what was the account number?",
            "Let me see your account.",
            "The calm period ends next week.",
            "I can see your account here.",
            "That must be the old address.",
            "We should have it by Friday.",
            "Thank you for calling.",
        ] {
            assert!(only(text).is_empty(), "{text}: {:?}", only(text));
        }
    }

    #[test]
    fn a_negator_before_punctuation_or_a_subject_is_another_clause() {
        assert_eq!(only("Oh no, I'm so sorry to hear that."), ["apologise"]);
        assert_eq!(only("Oh no, I am so sorry about this."), ["apologise"]);
        // Whisper may drop the comma: "no" cannot negate a phrase with its own subject.
        assert_eq!(only("oh no I'm so sorry to hear that"), ["apologise"]);
        assert_eq!(
            only("No, I understand completely, that must be frustrating."),
            ["acknowledge"]
        );
        assert_eq!(only("No - really, I understand."), ["acknowledge"]);
        assert_eq!(only("Not at all. Sorry for the wait."), ["apologise"]);
        // Within a clause the negation still holds.
        for text in [
            "I'm not sorry about that.",
            "We don't really understand your point.",
            "I can't imagine why you'd think so, no sorry about that.",
        ] {
            assert!(!only(text).contains(&"acknowledge"), "{text}");
        }
        assert!(only("I do not understand how you got this.").is_empty());
        assert!(only("Yes, as I understand it, the payment bounced.").is_empty());
    }

    #[test]
    fn empathic_sentences_with_blame_words_are_not_dismissive() {
        for (text, want) in [
            (
                "There's no way you should have been charged twice, I'm so sorry.",
                vec!["apologise"],
            ),
            (
                "You should have received the refund last week, I apologise.",
                vec!["apologise"],
            ),
            (
                "Like I said, I understand how frustrating this is.",
                vec!["acknowledge"],
            ),
            ("You should have been told about the fee.", vec![]),
            ("There's no way we'll let that happen again.", vec![]),
        ] {
            assert_eq!(only(text), want, "{text}");
        }
    }

    #[test]
    fn blaming_the_customer_is_dismissive() {
        for text in [
            "You should have read the contract.",
            "You should have checked your statement.",
            "Well, you should have called us earlier.",
            "You should've read the small print.",
            "As I already told you, the fee stands.",
            "I've already told you twice.",
            "Like I already said, we can't.",
            "Please calm down.",
            "That's our policy.",
            "You should have paid on time.",
            "You should have kept the receipt.",
            "There's no way I can refund that.",
        ] {
            assert_eq!(only(text), ["dismiss"], "{text}");
        }
    }

    #[test]
    fn custom_sets_replace_the_defaults() {
        let cfg = EmpathyConfig {
            acknowledge: vec!["ich verstehe".into()],
            ..Default::default()
        };
        let d = BehaviourDetector::new(&cfg);
        assert_eq!(d.detect("Ich verstehe Sie").len(), 1);
        assert!(d.detect("I understand your frustration").is_empty());
    }
}
