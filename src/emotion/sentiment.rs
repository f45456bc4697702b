//! Text sentiment: a port of VADER (Hutto & Gilbert, ICWSM 2014; `vaderSentiment` 3.3.2).
//!
//! VADER is a lexicon of ~7,500 rated tokens plus rules for negation (3-token lookback),
//! booster/dampener words ("very", "kind of"), ALL-CAPS emphasis, the contrastive "but",
//! "least", a few idioms, and `!`/`?` emphasis. Its `compound` score in −1..1 is what the
//! `utterance` event carries as `sentiment`.
//!
//! The port follows the reference implementation rule for rule, including two of its quirks
//! that change scores (kept so our numbers match published VADER outputs):
//! * a preceding "so"/"this" multiplies valence by 1.25 (an operator-precedence slip in
//!   `_negation_check` that every VADER release ships);
//! * a token whose punctuation-stripped form has ≤ 2 characters keeps its punctuation
//!   (meant for emoticons), so "no," or "ok," are not lexicon hits.
//!
//! Deliberate differences: emoji are not translated to words (Whisper never emits them);
//! the "but" rule scales by position instead of by the reference's `list.index(value)`
//! lookup, which mis-scales repeated equal values; and **empathic frames** (below).
//!
//! Empathic frames: in "I understand your frustration", "I'm sorry for the trouble", "I can
//! see why you're upset", "that must be annoying", the negative words name the *listener's*
//! feelings, which the speaker validates; VADER adds them up as the speaker's own negativity
//! (−0.64 for the first). A frame cue (understand, sorry, apologise, imagine, sympathise,
//! "see why/how", "know how", "that must be/have been") neutralises the negative valence of
//! itself and of the words it governs — up to six following tokens, stopping at the end of
//! the clause (`,` `.` `!` `?` `;` `:`) or at "but". A negated cue is no frame ("I don't
//! understand why you're so rude" stays negative), except the idiom "can't imagine". Positive
//! words are untouched, so "I'm sorry, that's great news" still reads positive.
//!
//! The lexicon (`vader_lexicon.txt`, word and mean rating columns of the original file) is
//! MIT-licensed: Copyright (c) 2016 C.J. Hutto; see the licence note at the end of this file.

use std::collections::HashMap;
use std::sync::OnceLock;

/// Word and mean valence (−4..4), tab-separated, one per line.
const LEXICON_TSV: &str = include_str!("vader_lexicon.txt");

/// Mean intensity increase of booster words.
const B_INCR: f64 = 0.293;
const B_DECR: f64 = -0.293;
/// Mean intensity increase of an ALL-CAPS word among non-caps words.
const C_INCR: f64 = 0.733;
/// Negation flips and dampens valence.
const N_SCALAR: f64 = -0.74;
/// `compound = s / sqrt(s² + ALPHA)`.
const ALPHA: f64 = 15.0;

/// Shares one parsed lexicon between all analysers.
fn lexicon() -> &'static HashMap<String, f64> {
    static LEXICON: OnceLock<HashMap<String, f64>> = OnceLock::new();
    LEXICON.get_or_init(|| {
        let mut map = HashMap::with_capacity(7600);
        for line in LEXICON_TSV.lines() {
            let mut cols = line.split('\t');
            if let (Some(word), Some(Ok(v))) = (cols.next(), cols.next().map(str::parse::<f64>)) {
                // Later entries win, as in the reference's dict build.
                map.insert(word.to_string(), v);
            }
        }
        map
    })
}

/// Degree adverbs: boosters raise, dampeners lower the intensity of the next sentiment word.
fn booster(word: &str) -> Option<f64> {
    Some(match word {
        "absolutely" | "amazingly" | "awfully" | "completely" | "considerable" | "considerably"
        | "decidedly" | "deeply" | "effing" | "enormous" | "enormously" | "entirely"
        | "especially" | "exceptional" | "exceptionally" | "extreme" | "extremely"
        | "fabulously" | "flipping" | "flippin" | "frackin" | "fracking" | "fricking"
        | "frickin" | "frigging" | "friggin" | "fully" | "fuckin" | "fucking" | "fuggin"
        | "fugging" | "greatly" | "hella" | "highly" | "hugely" | "incredible" | "incredibly"
        | "intensely" | "major" | "majorly" | "more" | "most" | "particularly" | "purely"
        | "quite" | "really" | "remarkably" | "so" | "substantially" | "thoroughly" | "total"
        | "totally" | "tremendous" | "tremendously" | "uber" | "unbelievably" | "unusually"
        | "utter" | "utterly" | "very" => B_INCR,
        "almost" | "barely" | "hardly" | "just enough" | "kind of" | "kinda" | "kindof"
        | "kind-of" | "less" | "little" | "marginal" | "marginally" | "occasional"
        | "occasionally" | "partly" | "scarce" | "scarcely" | "slight" | "slightly"
        | "somewhat" | "sort of" | "sorta" | "sortof" | "sort-of" => B_DECR,
        _ => return None,
    })
}

fn is_negation(word: &str) -> bool {
    const NEGATE: &[&str] = &[
        "aint",
        "arent",
        "cannot",
        "cant",
        "couldnt",
        "darent",
        "didnt",
        "doesnt",
        "ain't",
        "aren't",
        "can't",
        "couldn't",
        "daren't",
        "didn't",
        "doesn't",
        "dont",
        "hadnt",
        "hasnt",
        "havent",
        "isnt",
        "mightnt",
        "mustnt",
        "neither",
        "don't",
        "hadn't",
        "hasn't",
        "haven't",
        "isn't",
        "mightn't",
        "mustn't",
        "neednt",
        "needn't",
        "never",
        "none",
        "nope",
        "nor",
        "not",
        "nothing",
        "nowhere",
        "oughtnt",
        "shant",
        "shouldnt",
        "uhuh",
        "wasnt",
        "werent",
        "oughtn't",
        "shan't",
        "shouldn't",
        "uh-uh",
        "wasn't",
        "weren't",
        "without",
        "wont",
        "wouldnt",
        "won't",
        "wouldn't",
        "rarely",
        "seldom",
        "despite",
    ];
    NEGATE.contains(&word) || word.contains("n't")
}

/// Idioms and phrases containing lexicon words whose meaning differs from their parts.
fn special_case(seq: &str) -> Option<f64> {
    Some(match seq {
        "the shit" | "the bomb" | "to die for" => 3.0,
        "bad ass" | "badass" => 1.5,
        "bus stop" => 0.0,
        "yeah right" => -2.0,
        "kiss of death" => -1.5,
        "beating heart" => 3.5,
        _ => return None,
    })
}

/// Python's `str.isupper()`: at least one cased character and no lowercase ones.
fn is_upper(s: &str) -> bool {
    s.chars().any(char::is_uppercase) && !s.chars().any(char::is_lowercase)
}

/// Strips leading/trailing ASCII punctuation unless that leaves ≤ 2 characters (an emoticon).
fn strip_punct_if_word(token: &str) -> &str {
    let stripped = token.trim_matches(|c: char| c.is_ascii_punctuation());
    if stripped.chars().count() <= 2 {
        token
    } else {
        stripped
    }
}

/// VADER's four scores for one text.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Scores {
    /// Share of negative sentiment, 0..1.
    pub neg: f32,
    /// Share of neutral tokens, 0..1.
    pub neu: f32,
    /// Share of positive sentiment, 0..1.
    pub pos: f32,
    /// Normalised sum of valences, −1 (most negative) .. 1 (most positive).
    pub compound: f32,
}

/// Rule-based sentiment scorer; cheap to create (the lexicon is parsed once per process).
#[derive(Debug, Clone, Copy)]
pub struct SentimentAnalyzer {
    lexicon: &'static HashMap<String, f64>,
}

impl Default for SentimentAnalyzer {
    fn default() -> Self {
        Self::new()
    }
}

/// One text split into VADER tokens.
struct Tokens<'a> {
    raw: Vec<&'a str>,
    lower: Vec<String>,
    /// Some but not all tokens are ALL CAPS, so caps carry emphasis.
    cap_differential: bool,
}

impl SentimentAnalyzer {
    pub fn new() -> Self {
        Self { lexicon: lexicon() }
    }

    /// The compound score, −1..1 (0 for text without sentiment words).
    pub fn compound(&self, text: &str) -> f32 {
        self.polarity(text).compound
    }

    /// All four VADER scores.
    pub fn polarity(&self, text: &str) -> Scores {
        let text = text.trim();
        let raw: Vec<&str> = text.split_whitespace().map(strip_punct_if_word).collect();
        let lower: Vec<String> = raw.iter().map(|w| w.to_lowercase()).collect();
        let caps = raw.iter().filter(|w| is_upper(w)).count();
        let tokens = Tokens {
            cap_differential: caps > 0 && caps < raw.len(),
            raw,
            lower,
        };

        let n = tokens.raw.len();
        let mut sentiments = Vec::with_capacity(n);
        for i in 0..n {
            let w = tokens.lower[i].as_str();
            let is_kind_of = w == "kind" && tokens.lower.get(i + 1).is_some_and(|x| x == "of");
            if booster(w).is_some() || is_kind_of {
                sentiments.push(0.0);
            } else {
                sentiments.push(self.valence(&tokens, i));
            }
        }
        let orig: Vec<&str> = text.split_whitespace().collect();
        empathic_frames(&orig, &tokens.lower, &mut sentiments);
        but_check(&tokens.lower, &mut sentiments);
        score_valence(&sentiments, text)
    }

    fn in_lexicon(&self, word: &str) -> bool {
        self.lexicon.contains_key(word)
    }

    /// Valence of token `i` after the negation, booster, caps, idiom and "least" rules.
    fn valence(&self, t: &Tokens<'_>, i: usize) -> f64 {
        let lower = &t.lower;
        let Some(&base) = self.lexicon.get(lower[i].as_str()) else {
            return 0.0;
        };
        let mut v = base;
        // "no" before a lexicon word negates it instead of counting as negative itself.
        if lower[i] == "no" && lower.get(i + 1).is_some_and(|w| self.in_lexicon(w)) {
            v = 0.0;
        }
        let prev = |k: usize| (i >= k).then(|| lower[i - k].as_str());
        if prev(1) == Some("no")
            || prev(2) == Some("no")
            || (prev(3) == Some("no") && matches!(prev(1), Some("or" | "nor")))
        {
            v = base * N_SCALAR;
        }
        if is_upper(t.raw[i]) && t.cap_differential {
            v += if v > 0.0 { C_INCR } else { -C_INCR };
        }
        for start_i in 0..3 {
            let j = start_i + 1;
            if i > start_i && !self.in_lexicon(&lower[i - j]) {
                let mut s = scalar_inc_dec(t.raw[i - j], &lower[i - j], v, t.cap_differential);
                if start_i == 1 {
                    s *= 0.95;
                } else if start_i == 2 {
                    s *= 0.9;
                }
                v += s;
                v = negation_check(v, lower, start_i, i);
                if start_i == 2 {
                    v = special_idioms_check(v, lower, i);
                }
            }
        }
        self.least_check(v, lower, i)
    }

    /// "least" before a word negates it, except in "at least" / "very least".
    fn least_check(&self, v: f64, lower: &[String], i: usize) -> f64 {
        if i > 0 && lower[i - 1] == "least" && !self.in_lexicon("least") {
            if i > 1 && (lower[i - 2] == "at" || lower[i - 2] == "very") {
                return v;
            }
            return v * N_SCALAR;
        }
        v
    }
}

fn scalar_inc_dec(raw: &str, lower: &str, valence: f64, cap_differential: bool) -> f64 {
    let Some(mut scalar) = booster(lower) else {
        return 0.0;
    };
    if valence < 0.0 {
        scalar = -scalar;
    }
    if is_upper(raw) && cap_differential {
        scalar += if valence > 0.0 { C_INCR } else { -C_INCR };
    }
    scalar
}

fn negation_check(v: f64, lower: &[String], start_i: usize, i: usize) -> f64 {
    let w = |k: usize| lower[i - k].as_str();
    match start_i {
        0 if is_negation(w(1)) => v * N_SCALAR,
        1 if w(2) == "never" && matches!(w(1), "so" | "this") => v * 1.25,
        1 if w(2) == "without" && w(1) == "doubt" => v,
        1 if is_negation(w(2)) => v * N_SCALAR,
        // The reference's precedence quirk: any directly preceding "so"/"this" boosts.
        2 if (w(3) == "never" && matches!(w(2), "so" | "this"))
            || matches!(w(1), "so" | "this") =>
        {
            v * 1.25
        }
        2 if w(3) == "without" && (w(2) == "doubt" || w(1) == "doubt") => v,
        2 if is_negation(w(3)) => v * N_SCALAR,
        _ => v,
    }
}

/// Only reached with `i >= 3` (the third lookback step).
fn special_idioms_check(mut v: f64, lower: &[String], i: usize) -> f64 {
    let (w3, w2, w1, w0) = (&lower[i - 3], &lower[i - 2], &lower[i - 1], &lower[i]);
    let one_zero = format!("{w1} {w0}");
    let two_one_zero = format!("{w2} {w1} {w0}");
    let two_one = format!("{w2} {w1}");
    let three_two_one = format!("{w3} {w2} {w1}");
    let three_two = format!("{w3} {w2}");
    for seq in [
        &one_zero,
        &two_one_zero,
        &two_one,
        &three_two_one,
        &three_two,
    ] {
        if let Some(x) = special_case(seq) {
            v = x;
            break;
        }
    }
    if let Some(next) = lower.get(i + 1) {
        if let Some(x) = special_case(&format!("{w0} {next}")) {
            v = x;
        }
        if let Some(next2) = lower.get(i + 2) {
            if let Some(x) = special_case(&format!("{w0} {next} {next2}")) {
                v = x;
            }
        }
    }
    for n_gram in [&three_two_one, &three_two, &two_one] {
        if let Some(b) = booster(n_gram) {
            v += b;
        }
    }
    v
}

/// Cues of an empathic frame (see the module docs), as lowercase token sequences.
const FRAME_CUES: &[&[&str]] = &[
    &["understand"],
    &["understandable"],
    &["sorry"],
    &["apologize"],
    &["apologise"],
    &["apologies"],
    &["imagine"],
    &["sympathize"],
    &["sympathise"],
    &["empathize"],
    &["empathise"],
    &["see", "why"],
    &["see", "how"],
    &["know", "how"],
    &["that", "must", "be"],
    &["that", "must", "have", "been"],
];
/// Tokens after a cue that it governs, at most.
const FRAME_SCOPE: usize = 6;

/// Neutralises negative valence inside empathic frames.
fn empathic_frames(orig: &[&str], lower: &[String], sentiments: &mut [f64]) {
    let n = lower.len().min(orig.len()).min(sentiments.len());
    let ends_clause = |tok: &str| tok.ends_with([',', '.', '!', '?', ';', ':']);
    let mut i = 0;
    while i < n {
        let cue = FRAME_CUES
            .iter()
            .find(|c| i + c.len() <= n && c.iter().enumerate().all(|(k, w)| lower[i + k] == *w));
        let Some(cue) = cue else {
            i += 1;
            continue;
        };
        let negated = (i.saturating_sub(2)..i).any(|j| {
            let idiom =
                cue[0] == "imagine" && matches!(lower[j].as_str(), "can't" | "cant" | "cannot");
            is_negation(&lower[j]) && !idiom
        });
        if negated {
            i += cue.len();
            continue;
        }
        let end = (i + cue.len() + FRAME_SCOPE).min(n);
        let mut j = i;
        while j < end && lower[j] != "but" {
            if sentiments[j] < 0.0 {
                sentiments[j] = 0.0;
            }
            j += 1;
            if j >= i + cue.len() && ends_clause(orig[j - 1]) {
                break;
            }
        }
        i = j.max(i + 1);
    }
}

/// Words before the first "but" count half, words after it one and a half times.
fn but_check(lower: &[String], sentiments: &mut [f64]) {
    if let Some(bi) = lower.iter().position(|w| w == "but") {
        for (si, s) in sentiments.iter_mut().enumerate() {
            if si < bi {
                *s *= 0.5;
            } else if si > bi {
                *s *= 1.5;
            }
        }
    }
}

/// Emphasis from up to four `!` and from two or more `?`.
fn punctuation_emphasis(text: &str) -> f64 {
    let ep = text.matches('!').count().min(4) as f64 * 0.292;
    let qm = match text.matches('?').count() {
        0 | 1 => 0.0,
        n @ 2..=3 => n as f64 * 0.18,
        _ => 0.96,
    };
    ep + qm
}

fn score_valence(sentiments: &[f64], text: &str) -> Scores {
    if sentiments.is_empty() {
        return Scores::default();
    }
    let punct = punctuation_emphasis(text);
    let mut sum: f64 = sentiments.iter().sum();
    if sum > 0.0 {
        sum += punct;
    } else if sum < 0.0 {
        sum -= punct;
    }
    let compound = (sum / (sum * sum + ALPHA).sqrt()).clamp(-1.0, 1.0);

    // +1/−1 compensates for neutral words being counted as 1.
    let mut pos_sum: f64 = sentiments
        .iter()
        .filter(|&&s| s > 0.0)
        .map(|s| s + 1.0)
        .sum();
    let mut neg_sum: f64 = sentiments
        .iter()
        .filter(|&&s| s < 0.0)
        .map(|s| s - 1.0)
        .sum();
    let neu_count = sentiments.iter().filter(|&&s| s == 0.0).count() as f64;
    if pos_sum > neg_sum.abs() {
        pos_sum += punct;
    } else if pos_sum < neg_sum.abs() {
        neg_sum -= punct;
    }
    let total = pos_sum + neg_sum.abs() + neu_count;
    Scores {
        neg: (neg_sum / total).abs() as f32,
        neu: (neu_count / total).abs() as f32,
        pos: (pos_sum / total).abs() as f32,
        compound: compound as f32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference compound scores from `vaderSentiment` 3.3.2 (`polarity_scores(...)["compound"]`).
    const REFERENCE: &[(&str, f32)] = &[
        ("VADER is smart, handsome, and funny.", 0.8316),
        ("VADER is smart, handsome, and funny!", 0.8439),
        ("VADER is very smart, handsome, and funny.", 0.8545),
        ("VADER is VERY SMART, handsome, and FUNNY.", 0.9227),
        ("VADER is VERY SMART, handsome, and FUNNY!!!", 0.9342),
        (
            "VADER is VERY SMART, uber handsome, and FRIGGIN FUNNY!!!",
            0.9469,
        ),
        ("VADER is not smart, handsome, nor funny.", -0.7424),
        ("The book was good.", 0.4404),
        ("At least it isn't a horrible book.", 0.431),
        ("The book was only kind of good.", 0.3832),
        (
            "The plot was good, but the characters are uncompelling and the dialog is not great.",
            -0.7042,
        ),
        ("Today SUX!", -0.5461),
        ("Today only kinda sux! But I'll get by, lol", 0.5249),
        ("Make sure you :) or :D today!", 0.8633),
        ("Not bad at all", 0.431),
        ("Sentiment analysis has never been good.", -0.3412),
        ("Sentiment analysis has never been this good!", 0.5672),
        ("Most automated sentiment analysis tools are shit.", -0.5574),
        ("With VADER, sentiment analysis is the shit!", 0.6476),
        ("Other sentiment analysis tools can be quite bad.", -0.5849),
        ("On the other hand, VADER is quite bad ass", 0.802),
        ("VADER is such a badass!", 0.4003),
        ("Without a doubt, excellent idea.", 0.7013),
        (
            "Roger Dodger is one of the most compelling variations on this theme.",
            0.2944,
        ),
        (
            "Roger Dodger is at least compelling as a variation on the theme.",
            0.2263,
        ),
        (
            "Roger Dodger is one of the least compelling variations on this theme.",
            -0.1695,
        ),
        ("Not such a badass after all.", -0.2584),
        ("Without a doubt, an excellent idea.", 0.7013),
        (
            "It was one of the worst movies I've seen, despite good reviews.",
            -0.7584,
        ),
        ("Unbelievably bad acting!!", -0.6572),
        ("VERY poor production.", -0.6281),
        ("VERY BAD movie!", -0.7616),
        ("this is ridiculous, I want to cancel", -0.4939),
        ("thank you so much, that's great", 0.7823),
        (
            "This is absolutely unacceptable. I want to speak to your supervisor!",
            -0.4627,
        ),
        (
            "I've been on hold for 45 minutes and nobody can help me??",
            0.4696,
        ),
        ("No, that's not okay.", -0.1695),
        ("Okay, thanks, that helps a lot.", 0.7506),
        ("I'm not happy with this service at all", -0.4585),
        ("Can you tell me my balance?", 0.0),
    ];

    #[test]
    fn matches_reference_vader_compound_scores() {
        let a = SentimentAnalyzer::new();
        let mut failures = Vec::new();
        for &(text, want) in REFERENCE {
            let got = a.compound(text);
            if (got - want).abs() > 0.01 {
                failures.push(format!("{text:?}: got {got:.4}, want {want:.4}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn proportions_match_reference() {
        // vaderSentiment: {'neg': 0.0, 'neu': 0.254, 'pos': 0.746, 'compound': 0.8316}
        let s = SentimentAnalyzer::new().polarity("VADER is smart, handsome, and funny.");
        assert!((s.neg - 0.0).abs() < 0.002 && (s.neu - 0.254).abs() < 0.002);
        assert!((s.pos - 0.746).abs() < 0.002);
        // {'neg': 0.459, 'neu': 0.408, 'pos': 0.133, 'compound': -0.4939}
        let s = SentimentAnalyzer::new().polarity("this is ridiculous, I want to cancel");
        assert!((s.neg - 0.459).abs() < 0.002 && (s.neu - 0.408).abs() < 0.002);
        assert!((s.pos - 0.133).abs() < 0.002);
    }

    #[test]
    fn empty_and_neutral_text_score_zero() {
        let a = SentimentAnalyzer::new();
        assert_eq!(a.polarity(""), Scores::default());
        assert_eq!(a.polarity("   "), Scores::default());
        assert_eq!(a.compound("Can you tell me my balance?"), 0.0);
    }

    #[test]
    fn contact_center_phrases_have_the_expected_sign() {
        let a = SentimentAnalyzer::new();
        assert!(a.compound("this is ridiculous, I want to cancel") < -0.4);
        assert!(a.compound("thank you so much, that's great") > 0.7);
        assert!(a.compound("I'm not happy with this service at all") < -0.4);
        // Negation flips: "not bad" is mildly positive.
        assert!(a.compound("Not bad at all") > 0.0);
    }

    #[test]
    fn empathic_acknowledgements_do_not_read_negative() {
        let a = SentimentAnalyzer::new();
        for text in [
            "I understand your frustration.",
            "I completely understand how frustrating this must be.",
            "I'm so sorry about the trouble.",
            "I apologize for the inconvenience.",
            "I can see why you're upset.",
            "That must be really annoying.",
            "I can't imagine how stressful that was.",
            "I'm sorry to hear that, let me fix it.",
        ] {
            let s = a.compound(text);
            assert!(s >= 0.0, "{text}: {s}");
        }
        // Plain VADER read the first at −0.64; the frame leaves positives alone.
        assert!(a.compound("I'm sorry, that's great news!") > 0.5);
    }

    #[test]
    fn frames_end_at_the_clause_and_do_not_survive_negation() {
        let a = SentimentAnalyzer::new();
        // Negated cue: the speaker's own negativity.
        assert!(a.compound("I don't understand why you are so rude") < -0.3);
        assert!(a.compound("I'm not sorry, this is terrible") < -0.3);
        // The frame stops at the comma / "but": the complaint after it still counts.
        assert!(a.compound("I understand, but this is ridiculous and unacceptable") < -0.4);
        assert!(a.compound("Sorry, this is a horrible, awful service") < -0.5);
        // A customer's complaint without a frame is unchanged.
        assert!(a.compound("I am frustrated and upset") < -0.5);
    }

    #[test]
    fn but_shifts_weight_to_the_second_clause() {
        let a = SentimentAnalyzer::new();
        let first_only = a.compound("The agent was nice, and the wait was awful.");
        let with_but = a.compound("The agent was nice, but the wait was awful.");
        assert!(with_but < first_only, "{with_but} !< {first_only}");
    }
}

// vader_lexicon.txt licence (MIT):
// Copyright (c) 2016 C.J. Hutto
// Permission is hereby granted, free of charge, to any person obtaining a copy of this software
// and associated documentation files (the "Software"), to deal in the Software without
// restriction, including without limitation the rights to use, copy, modify, merge, publish,
// distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the
// Software is furnished to do so, subject to the following conditions:
// The above copyright notice and this permission notice shall be included in all copies or
// substantial portions of the Software.
// THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING
// BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
// NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
// DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
// OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
