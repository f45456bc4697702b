//! Escalation phrase spotting in transcripts ("cancel my account", "supervisor", "lawyer").
//!
//! Matching works on normalised words: lowercase, punctuation stripped, apostrophes dropped
//! ("can't" → "cant", "I'll" → "ill", "someone's" → "someones"), hyphens split words. A phrase
//! matches a sequence of consecutive words, each phrase word matching its text word when:
//! * both are equal, or
//! * both have the same light stem (plural `-s`, `-ed`, `-ing`, `-ation`, final `-e`, doubled
//!   final consonant: cancel/cancels/cancelled/cancelling/canceling/cancellation; complaint ≈
//!   complain), or
//! * both have ≥ 5 letters, they are one Damerau–Levenshtein edit apart (an ASR slip:
//!   "supervisior", "attorny") and the text word is not a real word that happens to be that
//!   close (`NEAR_MISSES`: "manage"/"managed" ≠ "manager", "cancer" ≠ "cancel", "layer" ≠ "lawyer").
//!
//! Words are never joined, so "can sell" does not match "cancel": the split is rare in Whisper
//! output and "we can sell you…" is common speech. When phrases overlap, the longest match wins
//! ("cancel my account" over "cancel"). A match is flagged `negated` when a "don't want / not
//! going to / no need" construction precedes it within four words ("I don't want to cancel");
//! plain "can't" is not a negation here ("why can't I cancel" is an escalation).

use std::ops::Range;

/// Phrases that usually mean a customer wants to escalate or leave.
pub const DEFAULT_PHRASES: &[&str] = &[
    "cancel",
    "cancel my account",
    "cancel my subscription",
    "close my account",
    "supervisor",
    "manager",
    "complaint",
    "speak to someone",
    "speak with someone",
    "talk to someone",
    "talk with someone",
    "real person",
    "speak to a human",
    "talk to a human",
    "real human",
    "refund",
    "ridiculous",
    "unacceptable",
];

/// Phrases that signal legal threats; the alert engine rates them critical.
pub const DEFAULT_LEGAL_PHRASES: &[&str] = &[
    "lawyer",
    "attorney",
    "legal action",
    "sue you",
    "sue your",
    "sue the",
    "sue them",
    "going to sue",
    "gonna sue",
    "will sue",
    "ill sue",
    "suing",
];

/// Real words one edit away from a keyword; never treated as ASR slips of it.
const NEAR_MISSES: &[&str] = &[
    "manage",
    "managed",
    "manages",
    "cancer",
    "layer",
    "layers",
    "sawyer",
    "compliant",
    "closer",
    "chose",
    "clone",
];

/// Negators that, followed by a want/need verb, turn the next phrase off.
const NEGATORS: &[&str] = &["dont", "not", "doesnt", "didnt", "never", "no", "wont"];
const INTENT_VERBS: &[&str] = &[
    "want", "need", "wanna", "going", "gonna", "planning", "trying",
];

/// One phrase found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhraseMatch {
    /// The configured phrase, normalised (lowercase, single spaces).
    pub phrase: String,
    /// The input words that matched, as they appear in the input.
    pub matched_words: Vec<String>,
    /// Indices into the input words (whitespace-separated words for [`PhraseMatcher::find`]).
    pub word_index_range: Range<usize>,
    /// Preceded by "don't want to", "not going to", "no need to" …
    pub negated: bool,
}

/// A normalised word and the input word it came from.
#[derive(Debug, Clone)]
struct Token {
    word: String,
    stem: String,
    source: usize,
}

/// Finds configured phrases in transcripts.
#[derive(Debug, Clone)]
pub struct PhraseMatcher {
    /// Each phrase as normalised tokens, longest first so overlaps resolve to the longest.
    phrases: Vec<(String, Vec<Token>)>,
}

impl Default for PhraseMatcher {
    /// [`DEFAULT_PHRASES`] and [`DEFAULT_LEGAL_PHRASES`].
    fn default() -> Self {
        let all: Vec<String> = DEFAULT_PHRASES
            .iter()
            .chain(DEFAULT_LEGAL_PHRASES)
            .map(|s| s.to_string())
            .collect();
        Self::new(&all)
    }
}

impl PhraseMatcher {
    /// Builds a matcher; phrases that normalise to nothing are ignored.
    pub fn new(phrases: &[String]) -> Self {
        let mut list: Vec<(String, Vec<Token>)> = phrases
            .iter()
            .map(|p| {
                let toks = tokenize(p.split_whitespace());
                let name = toks
                    .iter()
                    .map(|t| t.word.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                (name, toks)
            })
            .filter(|(_, toks)| !toks.is_empty())
            .collect();
        // Stable sort: longest first, configured order among equals.
        list.sort_by_key(|p| std::cmp::Reverse(p.1.len()));
        let mut seen = std::collections::HashSet::new();
        list.retain(|(name, _)| seen.insert(name.clone()));
        Self { phrases: list }
    }

    /// True when no phrases are configured.
    pub fn is_empty(&self) -> bool {
        self.phrases.is_empty()
    }

    /// Finds phrases in a text; indices refer to its whitespace-separated words.
    pub fn find(&self, text: &str) -> Vec<PhraseMatch> {
        let words: Vec<&str> = text.split_whitespace().collect();
        self.find_words(&words)
    }

    /// Finds phrases in a word sequence (e.g. Whisper's timed words); indices refer to `words`.
    pub fn find_words<S: AsRef<str>>(&self, words: &[S]) -> Vec<PhraseMatch> {
        let toks = tokenize(words.iter().map(AsRef::as_ref));
        let mut out = Vec::new();
        let mut i = 0;
        while i < toks.len() {
            let hit = self.phrases.iter().find(|(_, p)| {
                i + p.len() <= toks.len()
                    && p.iter().zip(&toks[i..]).all(|(a, b)| word_matches(a, b))
            });
            let Some((name, p)) = hit else {
                i += 1;
                continue;
            };
            let first = toks[i].source;
            let last = toks[i + p.len() - 1].source;
            out.push(PhraseMatch {
                phrase: name.clone(),
                matched_words: words[first..=last]
                    .iter()
                    .map(|w| w.as_ref().to_string())
                    .collect(),
                word_index_range: first..last + 1,
                negated: is_negated(&toks, i),
            });
            i += p.len();
        }
        out
    }
}

/// Normalises words into tokens, remembering which input word each came from.
fn tokenize<'a>(words: impl Iterator<Item = &'a str>) -> Vec<Token> {
    let mut out = Vec::new();
    for (source, w) in words.enumerate() {
        let lower = w.to_lowercase();
        for part in lower.split(|c: char| c == '-' || c == '/' || c.is_whitespace()) {
            let word: String = part.chars().filter(|c| c.is_alphanumeric()).collect();
            if !word.is_empty() {
                out.push(Token {
                    stem: stem(&word),
                    word,
                    source,
                });
            }
        }
    }
    out
}

/// A light suffix-stripping stem; enough to fold inflections of the phrase vocabulary
/// without merging distinct keywords ("manage" → "manag" but "manager" → "manager").
fn stem(word: &str) -> String {
    let mut w = word.to_string();
    let strip = |w: &mut String, suffix: &str, min_left: usize| -> bool {
        if w.len() >= suffix.len() + min_left && w.ends_with(suffix) {
            w.truncate(w.len() - suffix.len());
            true
        } else {
            false
        }
    };
    if !(w.ends_with("ss") || w.ends_with("us") || w.ends_with("is")) {
        strip(&mut w, "s", 3);
    }
    let _ = strip(&mut w, "ation", 3) || strip(&mut w, "ing", 2) || strip(&mut w, "ed", 2);
    strip(&mut w, "e", 2);
    // cancell → cancel (from cancelled / cancelling / cancellation).
    let b = w.as_bytes();
    if b.len() >= 4 && b[b.len() - 1] == b[b.len() - 2] && !b"aeiou".contains(&b[b.len() - 1]) {
        w.pop();
    }
    if w == "complaint" {
        w.truncate("complain".len());
    }
    w
}

fn word_matches(phrase: &Token, text: &Token) -> bool {
    // Stems under four letters ("su" from sue/suing) are too ambiguous to equate.
    if phrase.word == text.word || (phrase.stem == text.stem && phrase.stem.len() >= 4) {
        return true;
    }
    let long_enough = phrase.word.chars().count() >= 5 && text.word.chars().count() >= 5;
    long_enough
        && !NEAR_MISSES.contains(&text.word.as_str())
        && osa_distance(&phrase.word, &text.word) <= 1
}

/// "don't want to cancel", "not going to sue", "no need for a manager", "don't really want".
/// `upto` is the phrase's first token, itself included ("not *going* to sue").
fn is_negated(toks: &[Token], upto: usize) -> bool {
    let word = |j: usize| toks[j].word.as_str();
    (upto.saturating_sub(4)..=upto).any(|j| {
        INTENT_VERBS.contains(&word(j))
            && j > 0
            && (NEGATORS.contains(&word(j - 1))
                || (j > 1
                    && matches!(word(j - 1), "really" | "even" | "actually")
                    && NEGATORS.contains(&word(j - 2))))
    })
}

/// Optimal-string-alignment (restricted Damerau–Levenshtein) distance.
fn osa_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (n, m) = (a.len(), b.len());
    if n.abs_diff(m) > 1 {
        return n.abs_diff(m);
    }
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[n][m]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phrases(text: &str) -> Vec<String> {
        PhraseMatcher::default()
            .find(text)
            .into_iter()
            .map(|m| m.phrase)
            .collect()
    }

    #[test]
    fn finds_default_phrases_with_evidence() {
        let m = PhraseMatcher::default().find("Honestly, I want to CANCEL my account. Now!");
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].phrase, "cancel my account");
        assert_eq!(m[0].matched_words, vec!["CANCEL", "my", "account."]);
        assert_eq!(m[0].word_index_range, 4..7);
        assert!(!m[0].negated);
    }

    #[test]
    fn folds_inflections() {
        for text in [
            "I cancelled it",
            "I'm cancelling",
            "canceling today",
            "she cancels",
            "I want a cancellation",
        ] {
            assert_eq!(phrases(text), vec!["cancel"], "{text}");
        }
        assert_eq!(phrases("I want to complain"), vec!["complaint"]);
        assert_eq!(phrases("I'll file complaints"), vec!["complaint"]);
        assert_eq!(phrases("get me your supervisors"), vec!["supervisor"]);
        assert_eq!(phrases("was it refunded?"), vec!["refund"]);
    }

    #[test]
    fn tolerates_one_asr_slip_in_long_words() {
        assert_eq!(
            phrases("let me talk to your supervisior"),
            vec!["supervisor"]
        );
        assert_eq!(phrases("I'll call my attorny"), vec!["attorney"]);
        assert_eq!(phrases("put the manger on"), vec!["manager"]);
        assert_eq!(phrases("this is rediculous"), vec!["ridiculous"]);
    }

    #[test]
    fn ordinary_words_do_not_match() {
        for text in [
            "I can sell you a better plan",
            "I can manage that myself",
            "we managed to fix it",
            "I suppose that works",
            "she had cancer last year",
            "the top layer is fine",
            "we are compliant",
            "can you close the window",
            "my account number is twelve",
            "I need someone to explain the bill",
            "it was a real pleasure",
            "Hi this is Sue from billing",
        ] {
            assert!(phrases(text).is_empty(), "{text}: {:?}", phrases(text));
        }
    }

    #[test]
    fn multi_word_phrases_need_the_whole_sequence() {
        assert_eq!(
            phrases("can I speak to someone please"),
            vec!["speak to someone"]
        );
        assert_eq!(
            phrases("I want to talk to a real person"),
            vec!["real person"]
        );
        assert_eq!(phrases("please close my account"), vec!["close my account"]);
        assert_eq!(phrases("I'm going to sue you"), vec!["going to sue"]);
        assert_eq!(phrases("I'll sue"), vec!["ill sue"]);
        assert_eq!(phrases("can I talk to a human?"), vec!["talk to a human"]);
        assert_eq!(
            phrases("let me speak with someone else"),
            vec!["speak with someone"]
        );
        assert!(phrases("speak to me").is_empty());
    }

    #[test]
    fn negated_intent_is_flagged() {
        let m = PhraseMatcher::default().find("I don't want to cancel, I just want a refund");
        assert_eq!(m.len(), 2);
        assert!(m[0].negated, "{m:?}");
        assert!(!m[1].negated, "{m:?}");
        assert!(PhraseMatcher::default().find("I do not need a supervisor")[0].negated);
        assert!(!PhraseMatcher::default().find("why can't I cancel this")[0].negated);
        assert!(!PhraseMatcher::default().find("I never got my refund")[0].negated);
        assert!(PhraseMatcher::default().find("I'm not going to sue you")[0].negated);
        assert!(PhraseMatcher::default().find("I don't really want a manager")[0].negated);
    }

    #[test]
    fn custom_phrases_and_word_slices() {
        let m = PhraseMatcher::new(&["Switch Providers".into(), "  ".into()]);
        let words = ["I'm", "switching", "providers."];
        let found = m.find_words(&words);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].phrase, "switch providers");
        assert_eq!(found[0].word_index_range, 1..3);
        assert!(PhraseMatcher::new(&[]).is_empty());
    }

    #[test]
    fn edit_distance() {
        assert_eq!(osa_distance("manager", "manger"), 1);
        assert_eq!(osa_distance("lawyer", "lawyre"), 1);
        assert_eq!(osa_distance("cancel", "cansell"), 2);
        assert_eq!(osa_distance("", "abc"), 3);
    }
}
