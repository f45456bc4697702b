//! PII redaction of transcripts, before anything leaves the pipeline.
//!
//! What is caught, and replaced by a placeholder:
//! * `[CARD]` — payment card numbers: 13–19 digits that pass the Luhn check, however grouped
//!   ("4111 1111 1111 1111", "4111-1111-…", Whisper's "4,111,111,111,111,111", spoken
//!   "four one one one …", "oh" = 0, "double five" = 55). A 13–19 digit number that fails Luhn
//!   is still a card when card words ("card", "visa", "credit", …) are near it, because one
//!   mis-heard digit must not leak the other fifteen; so is any 15- or 16-digit number (the
//!   Visa/Mastercard/Amex lengths: the card word can be misheard too). Other lengths that fail
//!   Luhn away from card words (order and tracking numbers) are left alone.
//! * `[CVV]` — 3–4 digits near "cvv", "cvc", "security code", "code on the back".
//! * `[PIN]` — 3–8 digits near "pin", "passcode", "access code", "password", "telephone
//!   banking" (a written four-digit number right after "in", "at", … is a year or a time), or
//!   in the answer to a question naming a PIN, passcode or access code. With `cvv` on and `pin`
//!   off, these are `[CVV]` as before `pin` existed.
//! * `[ACCOUNT]` — bank account, sort code and routing numbers: 6–17 digits near "account
//!   number", "account is", "bank account", "sort code", "routing", "transit number", "bsb"
//!   (not when "phone", "mobile", … is as near, not right after "order", "case", "ticket", …,
//!   and not sums of money), or in the answer to a question naming an account number, sort code
//!   or routing number.
//! * `[EXPIRY]` — the date after "expires", "expiry", "expiration", "valid thru": "04/27",
//!   "oh four twenty seven", "April 2027".
//! * `[SSN]` — US social security numbers: 3-2-4 grouped ("123-45-6789", "123 45 6789"), or
//!   4 to 9 digits (the last 4, or a number heard in part) near "social security", "social",
//!   "ssn".
//! * `[EMAIL]` — written ("jo.smith@mail.com") and spoken ("john dot smith at gmail dot com",
//!   "j o h n at gmail dot com", "my email is john smith at aol dot com") addresses; a spoken
//!   domain must end in a known TLD.
//! * `[PHONE]` — NANP numbers grouped 3-3-4 / 1-3-3-4 / "(555) 123-4567" (area code 2–9),
//!   "+" international numbers (8–15 digits), and 7, 10 or 11 digits, or "00" international,
//!   near phone words ("phone", "number", "call", "cell", …), spoken or not.
//!
//! * `[IBAN]` — written IBANs ("GB82 WEST 1234 5698 7654 32", "DE89370400440532013000") whose
//!   ISO 13616 mod-97 check passes; spoken ones (as ASR writes them: "my IBAN is gv82, w st,
//!   1234 5698…") as the run of code-like tokens after the word "iban" or in the answer to a
//!   question naming it, when the run holds 4+ digits.
//! * `[DOB]` — the date after "date of birth", "born", "birthday", "dob": "12/05/1980",
//!   "May 12 1980", "twelve oh five nineteen eighty".
//!
//! Ordinary numbers ("waited 45 minutes", "order number 12", "$1,200") are untouched.
//!
//! Across utterances ([`ConversationRedactor`], one per call): an utterance is read in the
//! context of what came just before — the cue of a question ("what's the security code?",
//! "and the expiry date?", "your date of birth?", "the long number on the card?") carries over
//! to the answers in the next [`ASK_WINDOW_S`] seconds, so a bare "one two three" after a CVV
//! question is `[CVV]`; a speaker's trailing digits carry over to their next utterance within
//! [`TAIL_WINDOW_S`], so a card number read in two halves is `[CARD]` in the second half; and
//! in a payment context (a card, CVV or expiry question, or card words in the utterance) any
//! run of 6 or more digits, or of 4 or more read one at a time ("5 4 2 4"), is `[CARD]`
//! ("pay" and "billing" also make a payment context). 15- and 16-digit numbers are `[CARD]`
//! whatever their Luhn check, since one misheard digit breaks it.
//!
//! Invariants: only the characters of a detected item are replaced, so surrounding
//! punctuation and spacing survive; [`Redactor::redact_words`] keeps each untouched word and
//! its times, turns each run of words touched by one item into one token spanning the run's
//! start and end, and the output words joined with single spaces equal
//! `redact(words joined with single spaces).text`.
//!
//! Limits: spoken tens ("forty one eleven") are not read as digits except inside dates;
//! other reference numbers of phone length next to "number" ("order number 1234567") are
//! redacted as `[PHONE]`. Not redacted
//! at all: names, street addresses, post codes, passwords and answers to
//! security questions. The first half of a card number read in two halves in written groups
//! ("4532 0151") leaks when nothing before it set a payment context (it was published before
//! the second half was heard).

use std::ops::Range;

use serde::{Deserialize, Serialize};

/// The kinds of personal data the redactor knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PiiKind {
    Card,
    Cvv,
    Expiry,
    Ssn,
    Email,
    Phone,
    Iban,
    Dob,
    Account,
    Pin,
}

impl PiiKind {
    pub const ALL: [PiiKind; 10] = [
        PiiKind::Card,
        PiiKind::Cvv,
        PiiKind::Expiry,
        PiiKind::Ssn,
        PiiKind::Email,
        PiiKind::Phone,
        PiiKind::Iban,
        PiiKind::Dob,
        PiiKind::Account,
        PiiKind::Pin,
    ];

    /// The text that replaces a redacted item.
    pub fn placeholder(self) -> &'static str {
        match self {
            PiiKind::Card => "[CARD]",
            PiiKind::Cvv => "[CVV]",
            PiiKind::Expiry => "[EXPIRY]",
            PiiKind::Ssn => "[SSN]",
            PiiKind::Email => "[EMAIL]",
            PiiKind::Phone => "[PHONE]",
            PiiKind::Iban => "[IBAN]",
            PiiKind::Dob => "[DOB]",
            PiiKind::Account => "[ACCOUNT]",
            PiiKind::Pin => "[PIN]",
        }
    }
}

/// Redaction settings (`[redact]` in the config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedactConfig {
    /// Redact transcripts at all. Default: `true`.
    pub enabled: bool,
    /// Which kinds to redact. Default: all (`card`, `cvv`, `expiry`, `ssn`, `email`, `phone`,
    /// `iban`, `dob`, `account`, `pin`).
    pub kinds: Vec<PiiKind>,
}

impl Default for RedactConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            kinds: PiiKind::ALL.to_vec(),
        }
    }
}

/// One redacted item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedactedSpan {
    pub kind: PiiKind,
    /// Byte range of the item in the input text.
    pub input: Range<usize>,
    /// Byte range of its placeholder in the output text.
    pub output: Range<usize>,
}

/// A redacted text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redacted {
    pub text: String,
    /// Whether anything was replaced.
    pub redacted: bool,
    /// The replaced items, in text order.
    pub spans: Vec<RedactedSpan>,
}

/// Replaces personal data in transcripts by placeholders.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    config: RedactConfig,
}

impl Redactor {
    pub fn new(config: RedactConfig) -> Self {
        Self { config }
    }

    pub fn config(&self) -> &RedactConfig {
        &self.config
    }

    /// Redacts one text.
    pub fn redact(&self, text: &str) -> Redacted {
        self.redact_in(text, &Context::default())
    }

    /// Redacts `text` read after `ctx` (see [`ConversationRedactor`]).
    fn redact_in(&self, text: &str, ctx: &Context) -> Redacted {
        let spans = if self.config.enabled {
            self.find_in(text, ctx)
        } else {
            Vec::new()
        };
        let mut out = String::with_capacity(text.len());
        let mut pos = 0;
        let mut result = Vec::with_capacity(spans.len());
        for (kind, input) in spans {
            out.push_str(&text[pos..input.start]);
            let start = out.len();
            out.push_str(kind.placeholder());
            result.push(RedactedSpan {
                kind,
                output: start..out.len(),
                input: input.clone(),
            });
            pos = input.end;
        }
        out.push_str(&text[pos..]);
        Redacted {
            text: out,
            redacted: !result.is_empty(),
            spans: result,
        }
    }

    /// Redacts timed words `(word, start_s, end_s)`. A run of words touched by one item
    /// becomes one token from the run's first start to its last end; returns whether anything
    /// was replaced.
    pub fn redact_words(&self, words: &[(String, f64, f64)]) -> (Vec<(String, f64, f64)>, bool) {
        let texts: Vec<&str> = words.iter().map(|w| w.0.as_str()).collect();
        let (groups, redacted) = self.redact_word_groups(&texts, &Context::default());
        let out = groups
            .into_iter()
            .map(|(r, text)| (text, words[r.start].1, words[r.end - 1].2))
            .collect();
        (out, redacted)
    }

    /// [`Redactor::redact_words`] for event words; a merged token keeps the lowest `p`.
    pub fn redact_event_words(
        &self,
        words: &[crate::events::Word],
    ) -> (Vec<crate::events::Word>, bool) {
        self.redact_event_words_in(words, &Context::default())
    }

    fn redact_event_words_in(
        &self,
        words: &[crate::events::Word],
        ctx: &Context,
    ) -> (Vec<crate::events::Word>, bool) {
        let texts: Vec<&str> = words.iter().map(|w| w.w.as_str()).collect();
        let (groups, redacted) = self.redact_word_groups(&texts, ctx);
        let out = groups
            .into_iter()
            .map(|(r, w)| crate::events::Word {
                w,
                start: words[r.start].start,
                end: words[r.end - 1].end,
                p: words[r.clone()]
                    .iter()
                    .map(|w| w.p)
                    .fold(f32::INFINITY, f32::min),
            })
            .collect();
        (out, redacted)
    }

    /// Groups of input word indices with their output text.
    fn redact_word_groups(
        &self,
        words: &[&str],
        ctx: &Context,
    ) -> (Vec<(Range<usize>, String)>, bool) {
        let mut bounds = Vec::with_capacity(words.len());
        let mut pos = 0;
        for w in words {
            bounds.push(pos..pos + w.len());
            pos += w.len() + 1;
        }
        let joined = words.join(" ");
        let r = self.redact_in(&joined, ctx);
        // Output position of an input position outside every span.
        let map = |p: usize| -> usize {
            let mut q = p as isize;
            for s in r.spans.iter().filter(|s| s.input.end <= p) {
                q += s.output.len() as isize - s.input.len() as isize;
            }
            q as usize
        };
        let mut groups = Vec::new();
        let mut i = 0;
        while i < words.len() {
            let mut j = i;
            // Extend while an item crosses the gap after word j.
            while j + 1 < words.len()
                && r.spans
                    .iter()
                    .any(|s| s.input.start < bounds[j].end && s.input.end > bounds[j].end)
            {
                j += 1;
            }
            let text = r.text[map(bounds[i].start)..map(bounds[j].end)].to_string();
            groups.push((i..j + 1, text));
            i = j + 1;
        }
        (groups, r.redacted)
    }

    /// The items to replace in `text` read after each of `ctx.prefixes` in turn, as
    /// non-overlapping byte ranges of `text` in text order (items found after different
    /// prefixes that overlap become one); an item that starts in a prefix is clipped to `text`.
    fn find_in(&self, text: &str, ctx: &Context) -> Vec<(PiiKind, Range<usize>)> {
        if ctx.prefixes.len() <= 1 {
            let (prefix, payment) = ctx
                .prefixes
                .first()
                .map_or(("", false), |(p, pay)| (p.as_str(), *pay));
            return self.find_after(text, prefix, payment);
        }
        let mut all: Vec<(PiiKind, Range<usize>)> = ctx
            .prefixes
            .iter()
            .flat_map(|(p, payment)| self.find_after(text, p, *payment))
            .collect();
        all.sort_by_key(|(_, r)| (r.start, std::cmp::Reverse(r.end)));
        let mut merged: Vec<(PiiKind, Range<usize>)> = Vec::with_capacity(all.len());
        for (kind, r) in all {
            match merged.last_mut() {
                Some((_, last)) if r.start < last.end => last.end = last.end.max(r.end),
                _ => merged.push((kind, r)),
            }
        }
        merged
    }

    fn find_after(&self, text: &str, prefix: &str, payment: bool) -> Vec<(PiiKind, Range<usize>)> {
        if prefix.is_empty() && !payment {
            return self.find(text, false);
        }
        let full = format!("{prefix} {text}");
        let off = full.len() - text.len();
        self.find(&full, payment)
            .into_iter()
            .filter(|(_, r)| r.end > off)
            .map(|(k, r)| (k, r.start.max(off) - off..r.end - off))
            .filter(|(_, r)| !text[r.clone()].trim().is_empty())
            .collect()
    }

    /// The items to replace, as non-overlapping byte ranges in text order. `payment`: any run
    /// of 6+ digits is a card number.
    fn find(&self, text: &str, payment: bool) -> Vec<(PiiKind, Range<usize>)> {
        let toks = lex(text);
        let wants = |k: PiiKind| self.config.kinds.contains(&k);
        let mut scan = Scan {
            toks: &toks,
            taken: vec![false; toks.len()],
            found: Vec::new(),
            // A config that lists the kinds from before `pin` existed keeps its PINs as `[CVV]`.
            pin_as_cvv: wants(PiiKind::Cvv) && !wants(PiiKind::Pin),
        };
        if wants(PiiKind::Email) {
            scan.emails();
        }
        if wants(PiiKind::Iban) {
            scan.ibans();
            scan.spoken_ibans();
        }
        let runs = digit_runs(&toks);
        // Birth dates first, so "born 12 05 1980" is not read as a phone number.
        if wants(PiiKind::Dob) {
            scan.dates(DOB_WORDS, PiiKind::Dob);
        }
        // Bank numbers before phone numbers: "account number 1234567" is no phone number.
        for kind in [
            PiiKind::Card,
            PiiKind::Ssn,
            PiiKind::Account,
            PiiKind::Phone,
            PiiKind::Pin,
            PiiKind::Cvv,
        ] {
            if wants(kind) {
                for run in &runs {
                    scan.numbers(run, kind);
                }
            }
            // In a payment context, long digit runs are card digits before anything else
            // (not phone numbers because "number" is near).
            if kind == PiiKind::Card && payment && wants(PiiKind::Card) {
                for run in &runs {
                    scan.payment_digits(run);
                }
            }
        }
        if wants(PiiKind::Expiry) {
            scan.dates(EXPIRY_WORDS, PiiKind::Expiry);
        }
        let mut found: Vec<(PiiKind, Range<usize>)> = scan
            .found
            .into_iter()
            .map(|(kind, t)| (kind, toks[t.start].start..toks[t.end - 1].end))
            .collect();
        found.sort_by_key(|(_, r)| r.start);
        found
    }
}

// ---------------------------------------------------------------------------------------------
// Across utterances

/// What an utterance is read after: text that came before it (a question's cue, the
/// speaker's trailing digits) and whether a payment is being taken.
#[derive(Debug, Clone, Default)]
struct Context {
    /// Each is read before the text in turn (a question's cue, the speaker's trailing
    /// digits), with whether a payment is being taken in that reading.
    prefixes: Vec<(String, bool)>,
}

/// A question's cue carries over to answers this many seconds after the question ended.
pub const ASK_WINDOW_S: f64 = 20.0;
/// A speaker's trailing digits carry over to their next utterance if it starts within this
/// many seconds.
pub const TAIL_WINDOW_S: f64 = 10.0;

/// What was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    Card,
    Cvv,
    Expiry,
    Dob,
    Iban,
    Ssn,
    Phone,
    Account,
    Pin,
}

impl Ask {
    /// Cue words that make the redactor read the answer as this kind.
    fn cue(self) -> &'static str {
        match self {
            Ask::Card => "card",
            Ask::Cvv => "security code",
            Ask::Expiry => "expires",
            Ask::Dob => "date of birth",
            Ask::Iban => "iban",
            Ask::Ssn => "social security",
            Ask::Phone => "phone number",
            Ask::Account => "account number",
            Ask::Pin => "pin",
        }
    }

    /// A question can name several things. The card's own details beat the card ("the
    /// security code on the back of your card" asks for the CVV; both keep the payment
    /// context), and the card beats everything else ("a contact number, and the card number
    /// please": the answer's digits must not be read as a phone number and lose the card's
    /// halves). Within a rank the last cue wins.
    fn rank(self) -> u8 {
        match self {
            Ask::Cvv | Ask::Expiry | Ask::Pin => 2,
            Ask::Card | Ask::Iban | Ask::Account => 1,
            Ask::Dob | Ask::Ssn | Ask::Phone => 0,
        }
    }

    /// The question cue in `lower` (lowercase text), if any: of the most specific kind
    /// named ([`Ask::rank`]), the last.
    #[cfg(test)]
    fn in_text(lower: &str) -> Option<Ask> {
        Self::all_in_text(lower).first().copied()
    }

    /// Every kind a question in `lower` names, the most specific ([`Ask::rank`]) first, then
    /// the last named.
    fn all_in_text(lower: &str) -> Vec<Ask> {
        const ASKS: &[(Ask, &[&str])] = &[
            (
                Ask::Cvv,
                &[
                    "security code",
                    "cvv",
                    "cvc",
                    "three digit",
                    "3 digit",
                    "back of the card",
                    "last three",
                ],
            ),
            (
                Ask::Expiry,
                &[
                    "expiry",
                    "expiration",
                    "expire",
                    "valid until",
                    "valid thru",
                ],
            ),
            (
                Ask::Dob,
                &["date of birth", "birth date", "birthday", "born"],
            ),
            (Ask::Iban, &["iban"]),
            // Not "password": "I'll reset your password" asks for nothing.
            (Ask::Pin, PIN_CUES),
            (
                Ask::Account,
                &[
                    "account number",
                    "account no",
                    "bank account",
                    "sort code",
                    "routing number",
                    "routing",
                    "transit number",
                    "bsb",
                ],
            ),
            (Ask::Ssn, &["social security", "ssn", "your social"]),
            (
                Ask::Phone,
                &[
                    "phone number",
                    "best number",
                    "number to reach",
                    "reach you on",
                    "reach you at",
                    "callback number",
                    "call back number",
                    "contact number",
                    "mobile number",
                    "cell number",
                ],
            ),
            (
                Ask::Card,
                &[
                    "card number",
                    "long number",
                    "number on the card",
                    "card",
                    "credit",
                    "debit",
                    "visa",
                    "mastercard",
                    "payment",
                ],
            ),
        ];
        let mut named: Vec<(usize, Ask)> = ASKS
            .iter()
            .filter_map(|(ask, cues)| {
                cues.iter()
                    .filter_map(|c| rfind_words(lower, c))
                    .max()
                    .map(|at| (at, *ask))
            })
            .collect();
        named.sort_by_key(|(at, ask)| std::cmp::Reverse((ask.rank(), *at)));
        named.into_iter().map(|(_, ask)| ask).collect()
    }
}

/// The last place `cue` stands in `text` as whole words ("born" is not in "stubborn").
fn rfind_words(text: &str, cue: &str) -> Option<usize> {
    let alnum = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    text.rmatch_indices(cue).map(|(at, _)| at).find(|&at| {
        !alnum(text[..at].chars().next_back()) && !alnum(text[at + cue.len()..].chars().next())
    })
}

/// Redaction across the utterances of one call (see the module docs); one per call.
#[derive(Debug, Clone)]
pub struct ConversationRedactor {
    redactor: std::sync::Arc<Redactor>,
    /// The latest question cue: what, and when its utterance ended.
    ask: Option<(Vec<Ask>, f64)>,
    /// Per speaker: trailing digits of the last utterance (as spoken) and when it ended.
    tails: Vec<(crate::audio::Speaker, String, f64)>,
}

impl ConversationRedactor {
    pub fn new(redactor: std::sync::Arc<Redactor>) -> Self {
        Self {
            redactor,
            ask: None,
            tails: Vec::new(),
        }
    }

    /// Redacts one utterance's text and words in the context of the call so far, then
    /// remembers what this utterance asked for and how it ended. Returns the redacted text,
    /// the redacted words and whether the words changed.
    pub fn redact_utterance(
        &mut self,
        speaker: crate::audio::Speaker,
        start: f64,
        end: f64,
        text: &str,
        words: &[crate::events::Word],
    ) -> (Redacted, Vec<crate::events::Word>, bool) {
        let asks: &[Ask] = match &self.ask {
            Some((asks, at)) if start - at <= ASK_WINDOW_S && start >= at - 1.0 => asks,
            _ => &[],
        };
        // Trailing digits continue a card or account number; after a CVV, expiry or
        // birth-date question the answer stands on its own.
        let continues = |a: &Ask| matches!(a, Ask::Card | Ask::Account);
        let tail = self
            .tails
            .iter()
            .find(|(s, _, at)| *s == speaker && start - at <= TAIL_WINDOW_S)
            .map(|(_, t, _)| t.clone())
            .unwrap_or_default();
        let lower = text.to_lowercase();
        let card_words = CARD_WORDS
            .iter()
            .chain(PAY_WORDS)
            .any(|w| rfind_words(&lower, w).is_some());
        // A question may name several things ("your date of birth and your passcode"): the
        // answer is read after each one's cue in turn.
        let join = |cue: &str, tail: &str| {
            [cue, tail]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(" ")
        };
        let pays = |a: &Ask| matches!(a, Ask::Card | Ask::Cvv | Ask::Expiry);
        let prefixes: Vec<(String, bool)> = if asks.is_empty() {
            vec![(tail.clone(), card_words)]
        } else {
            asks.iter()
                .map(|a| {
                    let tail = if continues(a) { tail.as_str() } else { "" };
                    (join(a.cue(), tail), card_words || pays(a))
                })
                .collect()
        };
        let ctx = Context { prefixes };
        let red = self.redactor.redact_in(text, &ctx);
        let (w, wr) = self.redactor.redact_event_words_in(words, &ctx);
        let named = Ask::all_in_text(&lower);
        if !named.is_empty() {
            self.ask = Some((named, end));
        }
        self.tails.retain(|(s, _, _)| *s != speaker);
        let toks = lex(text);
        let trailing: Vec<&Tok> = toks
            .iter()
            .rev()
            .take_while(|t| {
                t.class == Class::Digits
                    || spoken_digit(&t.lower).is_some()
                    || matches!(t.lower.as_str(), "-" | "," | ".")
            })
            .collect();
        let digits: usize = trailing
            .iter()
            .map(|t| match t.class {
                Class::Digits => t.lower.len(),
                _ => usize::from(spoken_digit(&t.lower).is_some()),
            })
            .sum();
        // Up to the last digit: Whisper ends most utterances with a full stop, which would
        // end the digit run at the seam ("4532." + "0151.").
        let last = trailing.iter().find(|t| t.class != Class::Punct);
        if let (Some(first), Some(last), 4..=19) = (trailing.last(), last, digits) {
            self.tails
                .push((speaker, text[first.start..last.end].to_string(), end));
        }
        (red, w, wr)
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// ASCII digits only.
    Digits,
    /// Letters, or letters and digits.
    Word,
    /// One non-alphanumeric, non-space character.
    Punct,
}

#[derive(Debug, Clone)]
struct Tok {
    start: usize,
    end: usize,
    /// Whitespace (or the start of text) precedes it.
    gap: bool,
    class: Class,
    lower: String,
}

impl Tok {
    fn is_punct(&self, c: char) -> bool {
        self.class == Class::Punct && self.lower.starts_with(c)
    }
    fn is_label(&self) -> bool {
        self.class != Class::Punct
    }
}

fn lex(text: &str) -> Vec<Tok> {
    let mut toks = Vec::new();
    let mut gap = true;
    let mut it = text.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        if c.is_whitespace() {
            gap = true;
            continue;
        }
        let mut end = i + c.len_utf8();
        let class = if c.is_alphanumeric() {
            while let Some(&(j, d)) = it.peek() {
                if !d.is_alphanumeric() {
                    break;
                }
                end = j + d.len_utf8();
                it.next();
            }
            if text[i..end].bytes().all(|b| b.is_ascii_digit()) {
                Class::Digits
            } else {
                Class::Word
            }
        } else {
            Class::Punct
        };
        toks.push(Tok {
            start: i,
            end,
            gap,
            class,
            lower: text[i..end].to_lowercase(),
        });
        gap = false;
    }
    toks
}

fn spoken_digit(word: &str) -> Option<char> {
    Some(match word {
        "zero" | "oh" | "o" => '0',
        "one" => '1',
        "two" => '2',
        "three" => '3',
        "four" => '4',
        "five" => '5',
        "six" => '6',
        "seven" => '7',
        "eight" => '8',
        "nine" => '9',
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Digit runs: maximal sequences of digit groups joined by spaces, dashes, commas, dots, parens.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sep {
    Start,
    Space,
    Dash,
    Dot,
    /// A full stop and a space between written four-digit groups: Whisper's punctuation of
    /// a card number read group by group with pauses ("4532. 0151. 1283. 0366.").
    Stop,
    Comma,
    Paren,
}

#[derive(Debug, Clone)]
struct Group {
    toks: Range<usize>,
    digits: String,
    spoken: bool,
    sep: Sep,
}

#[derive(Debug, Clone)]
struct Run {
    groups: Vec<Group>,
    /// Token index of a leading "+" or "(" that belongs to the number.
    prefix: Option<usize>,
    plus: bool,
}

/// A digit group at token `i`: digits, a spoken digit, or "double"/"triple" + digit.
fn digit_group(toks: &[Tok], i: usize) -> Option<Group> {
    let t = toks.get(i)?;
    if t.class == Class::Digits {
        return Some(Group {
            toks: i..i + 1,
            digits: t.lower.clone(),
            spoken: false,
            sep: Sep::Start,
        });
    }
    if let Some(d) = spoken_digit(&t.lower) {
        return Some(Group {
            toks: i..i + 1,
            digits: d.to_string(),
            spoken: true,
            sep: Sep::Start,
        });
    }
    let times = match t.lower.as_str() {
        "double" => 2,
        "triple" => 3,
        _ => return None,
    };
    let next = toks.get(i + 1)?;
    let d = spoken_digit(&next.lower).or_else(|| {
        (next.class == Class::Digits && next.lower.len() == 1)
            .then(|| next.lower.as_bytes()[0] as char)
    })?;
    Some(Group {
        toks: i..i + 2,
        digits: std::iter::repeat_n(d, times).collect(),
        spoken: true,
        sep: Sep::Start,
    })
}

fn digit_runs(toks: &[Tok]) -> Vec<Run> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let Some(first) = digit_group(toks, i) else {
            i += 1;
            continue;
        };
        // "+44", "(555", and "plus 44" as ASR writes a spoken "+".
        let spoken_plus = i > 0 && toks[i - 1].lower == "plus";
        let prefix = (i > 0
            && (spoken_plus
                || !toks[i].gap && (toks[i - 1].is_punct('+') || toks[i - 1].is_punct('('))))
        .then(|| i - 1);
        let plus = prefix.is_some_and(|p| toks[p].is_punct('+') || toks[p].lower == "plus");
        let mut groups = vec![first];
        let mut j = groups[0].toks.end;
        loop {
            // Up to two separator tokens, e.g. ") " or " - ".
            let mut k = j;
            let mut sep = Sep::Space;
            let mut ok = true;
            while k < toks.len() && k < j + 2 && toks[k].class == Class::Punct {
                let t = &toks[k];
                sep = match t.lower.chars().next() {
                    Some('-' | '–') => Sep::Dash,
                    Some(',') => Sep::Comma,
                    Some('(' | ')') => Sep::Paren,
                    // A dot only between digits without spaces: "555.123.4567", not "45. One";
                    // or a full stop between written four-digit groups.
                    Some('.') if !t.gap && toks.get(k + 1).is_some_and(|n| !n.gap) => Sep::Dot,
                    Some('.')
                        if !t.gap
                            && four_digits(&toks[j - 1])
                            && toks.get(k + 1).is_some_and(four_digits) =>
                    {
                        Sep::Stop
                    }
                    _ => {
                        ok = false;
                        break;
                    }
                };
                k += 1;
            }
            if !ok || (k == j && toks.get(k).is_some_and(|t| !t.gap)) {
                break;
            }
            let Some(mut g) = digit_group(toks, k) else {
                break;
            };
            g.sep = sep;
            j = g.toks.end;
            groups.push(g);
        }
        i = j;
        runs.push(Run {
            groups,
            prefix,
            plus,
        });
    }
    runs
}

/// Written thousands, "1,250,000": a sum, however its currency was said.
fn thousands(run: &Run) -> bool {
    run.groups.len() > 1
        && !run.groups.iter().any(|g| g.spoken)
        && (1..=3).contains(&run.groups[0].digits.len())
        && run.groups[1..]
            .iter()
            .all(|g| g.sep == Sep::Comma && g.digits.len() == 3)
}

fn four_digits(t: &Tok) -> bool {
    t.class == Class::Digits && t.lower.len() == 4
}

fn luhn(digits: &str) -> bool {
    let mut sum = 0;
    for (i, b) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

// ---------------------------------------------------------------------------------------------
// Detection

/// Words that make an utterance a payment context for the conversation redactor ("I want to
/// pay my bill. It is 5 4 2 4…"), besides the card words.
const PAY_WORDS: &[&str] = &["pay", "billing"];

const CARD_WORDS: &[&str] = &[
    "card",
    "visa",
    "mastercard",
    "amex",
    "american express",
    "discover",
    "credit",
    "debit",
];
const SSN_WORDS: &[&str] = &["ssn", "social", "social security"];
const PHONE_WORDS: &[&str] = &[
    "phone",
    "number",
    "call",
    "cell",
    "mobile",
    "reach",
    "text",
    "contact",
    "callback",
    "landline",
    "fax",
    "telephone",
    "dial",
];
const CVV_WORDS: &[&str] = &[
    "cvv",
    "cvc",
    "cvv2",
    "cvc2",
    "csc",
    "security code",
    "security number",
    "on the back",
    "verification code",
    "three digit code",
];
/// A PIN or passcode: 3 to 8 digits after one of these, or of [`PIN_MORE_WORDS`]; a question
/// naming one of these asks for a PIN.
const PIN_CUES: &[&str] = &[
    "pin",
    "pin number",
    "pin code",
    "passcode",
    "pass code",
    "access code",
];
/// Cues of a PIN said by the customer, not of a question ("I'll reset your password").
const PIN_MORE_WORDS: &[&str] = &["password", "telephone banking"];
/// Bank account, sort code and routing (ABA, transit, BSB) numbers: 6 to 17 digits after one
/// of these, when no phone word is as near.
const ACCOUNT_WORDS: &[&str] = &[
    "account number",
    "account no",
    "account is",
    "account it's",
    "bank account",
    "checking account",
    "savings account",
    "current account",
    "acct",
    "sort code",
    "routing",
    "aba",
    "transit number",
    "bsb",
];
/// Numbers right after these are references, not bank details ("a note on your account, your
/// case number is 20931187").
const REFERENCE_WORDS: &[&str] = &[
    "order",
    "case",
    "ticket",
    "reference",
    "ref",
    "claim",
    "tracking",
    "invoice",
    "balance",
    "confirmation",
];
/// A written four-digit number right after these is a year or a clock time ("changed my
/// password in 2019", "at 0930").
const TIME_WORDS: &[&str] = &[
    "in", "since", "at", "by", "from", "until", "till", "before", "after", "around", "about",
];
/// Words that make a number near "account" the account's phone number.
const PHONE_ONLY_WORDS: &[&str] = &[
    "phone",
    "mobile",
    "cell",
    "telephone",
    "landline",
    "callback",
];
const DOB_WORDS: &[&str] = &[
    "date of birth",
    "birth date",
    "birthdate",
    "born",
    "born on",
    "birthday",
    "dob",
    "d o b",
];
const EXPIRY_WORDS: &[&str] = &[
    "expires",
    "expire",
    "expired",
    "expiring",
    "expiry",
    "expiration",
    "exp",
    "valid thru",
    "valid through",
    "good thru",
    "good through",
    "valid until",
    "good until",
];
const TLDS: &[&str] = &[
    "com", "net", "org", "edu", "gov", "mil", "io", "co", "uk", "us", "ca", "au", "de", "fr", "ie",
    "nz", "eu", "in", "info", "biz", "me", "ai", "app", "dev", "tv",
];
const MONTHS: &[&str] = &[
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
];

struct Scan<'a> {
    toks: &'a [Tok],
    taken: Vec<bool>,
    found: Vec<(PiiKind, Range<usize>)>,
    /// "pin", "passcode" … are CVV cues (when the `pin` kind is off).
    pin_as_cvv: bool,
}

impl Scan<'_> {
    fn free(&self, r: &Range<usize>) -> bool {
        !self.taken[r.clone()].iter().any(|&t| t)
    }

    fn take(&mut self, kind: PiiKind, r: Range<usize>) {
        self.taken[r.clone()].iter_mut().for_each(|t| *t = true);
        self.found.push((kind, r));
    }

    /// Words (not digits, not punctuation) within `before` words before token `start` and
    /// `after` words after token `end`, checked for any of `cues` (which may be multi-word).
    fn near(&self, span: &Range<usize>, before: usize, after: usize, cues: &[&str]) -> bool {
        let is_word = |t: &&Tok| t.class == Class::Word && spoken_digit(&t.lower).is_none();
        // Look only this many tokens away, so long digit rambles stay linear.
        const REACH: usize = 48;
        let mut pre: Vec<&str> = self.toks[span.start.saturating_sub(REACH)..span.start]
            .iter()
            .rev()
            .filter(is_word)
            .take(before)
            .map(|t| t.lower.as_str())
            .collect();
        pre.reverse();
        let post: Vec<&str> = self.toks[span.end..]
            .iter()
            .take(REACH)
            .filter(is_word)
            .take(after)
            .map(|t| t.lower.as_str())
            .collect();
        [pre, post].iter().any(|words| {
            cues.iter().any(|cue| {
                let cue: Vec<&str> = cue.split(' ').collect();
                words.windows(cue.len()).any(|w| w == cue.as_slice())
            })
        })
    }

    /// Tries every group-aligned slice of `run`, longest first, for one kind.
    fn numbers(&mut self, run: &Run, kind: PiiKind) {
        let n = run.groups.len();
        // Digits before group i, so slices longer than any item are skipped cheaply.
        let mut before = vec![0usize; n + 1];
        for (i, g) in run.groups.iter().enumerate() {
            before[i + 1] = before[i] + g.digits.len();
        }
        // Cards: first the spans a Luhn check or card words vouch for, then card lengths alone
        // (so "4111 1111 1111 1111 04 27" keeps its card, not "1111 1111 1111 04 27").
        let passes: &[bool] = if kind == PiiKind::Card {
            &[false, true]
        } else {
            &[false]
        };
        for &loose in passes {
            self.numbers_pass(run, kind, &before, loose);
        }
    }

    fn numbers_pass(&mut self, run: &Run, kind: PiiKind, before: &[usize], loose: bool) {
        let n = run.groups.len();
        // Every group has a digit, so no item spans more than 19 groups.
        for len in (1..=n.min(19)).rev() {
            for a in 0..=n - len {
                let b = a + len - 1;
                if before[b + 1] - before[a] > 19 {
                    continue;
                }
                let digits: String = run.groups[a..=b]
                    .iter()
                    .map(|g| g.digits.as_str())
                    .collect();
                let start = match run.prefix {
                    Some(p) if a == 0 => p,
                    _ => run.groups[a].toks.start,
                };
                let span = start..run.groups[b].toks.end;
                if !self.free(&span) {
                    continue;
                }
                let groups = &run.groups[a..=b];
                let hit = match kind {
                    PiiKind::Card => self.is_card(&digits, &span, loose),
                    PiiKind::Ssn => self.is_ssn(&digits, groups, &span),
                    PiiKind::Phone => self.is_phone(&digits, groups, run.plus && a == 0, &span),
                    PiiKind::Cvv => {
                        (3..=4).contains(&digits.len())
                            && (self.near(&span, 6, 3, CVV_WORDS)
                                || self.pin_as_cvv && self.near_pin(&span))
                    }
                    PiiKind::Pin => {
                        (3..=8).contains(&digits.len())
                            && self.near_pin(&span)
                            && !self.year_or_time(groups, &span)
                    }
                    PiiKind::Account => {
                        (6..=17).contains(&digits.len())
                            && self.near(&span, 8, 3, ACCOUNT_WORDS)
                            && !self.near(&span, 8, 3, PHONE_ONLY_WORDS)
                            && !self.near(&span, 3, 0, REFERENCE_WORDS)
                            && !self.is_amount(run)
                            && !thousands(run)
                    }
                    _ => false,
                };
                if hit {
                    self.take(kind, span);
                }
            }
        }
    }

    fn near_pin(&self, span: &Range<usize>) -> bool {
        self.near(span, 6, 3, PIN_CUES) || self.near(span, 6, 3, PIN_MORE_WORDS)
    }

    /// A written four-digit number right after a time word.
    fn year_or_time(&self, groups: &[Group], span: &Range<usize>) -> bool {
        matches!(groups, [g] if !g.spoken && g.digits.len() == 4)
            && span.start > 0
            && TIME_WORDS.contains(&self.toks[span.start - 1].lower.as_str())
    }

    /// `loose`: Visa, Mastercard and Amex lengths (15, 16) count without a check. One
    /// misheard digit breaks the Luhn check and one misheard word ("visa" → "reason") the
    /// context, so on speech these lengths are cards whatever their check digit.
    fn is_card(&self, digits: &str, span: &Range<usize>, loose: bool) -> bool {
        let n = digits.len();
        (loose && (15..=16).contains(&n))
            || ((13..=19).contains(&n) && (luhn(digits) || self.near(span, 8, 3, CARD_WORDS)))
    }

    fn is_ssn(&self, digits: &str, groups: &[Group], span: &Range<usize>) -> bool {
        let shape = groups.iter().map(|g| g.digits.len()).collect::<Vec<_>>() == [3, 2, 4]
            && !groups.iter().any(|g| g.spoken)
            && groups[1..]
                .iter()
                .all(|g| matches!(g.sep, Sep::Dash | Sep::Space));
        let valid = digits.len() == 9
            && !digits.starts_with("000")
            && !digits.starts_with("666")
            && !digits.starts_with('9')
            && &digits[3..5] != "00"
            && &digits[5..] != "0000";
        (shape && valid)
            // Next to the words, any 4 to 9 digits: the last four, or a number that ASR
            // heard only in part ("12345 6") is still the customer's SSN.
            || ((4..=9).contains(&digits.len()) && self.near(span, 6, 3, SSN_WORDS))
    }

    fn is_phone(&self, digits: &str, groups: &[Group], plus: bool, span: &Range<usize>) -> bool {
        if plus {
            return (8..=15).contains(&digits.len());
        }
        let shape: Vec<usize> = groups.iter().map(|g| g.digits.len()).collect();
        let written = !groups.iter().any(|g| g.spoken)
            && groups[1..]
                .iter()
                .all(|g| matches!(g.sep, Sep::Dash | Sep::Dot | Sep::Space | Sep::Paren));
        let nanp = match shape.as_slice() {
            [3, 3, 4] => true,
            [1, 3, 3, 4] => digits.starts_with('1'),
            _ => false,
        };
        let area_ok = {
            let area = if shape.len() == 4 {
                &digits[1..]
            } else {
                digits
            };
            area.as_bytes()[0] >= b'2'
        };
        if written && nanp && area_ok {
            return true;
        }
        // UK national format: 0 then 10 digits in the usual groups ("020 7946 0958",
        // "07700 900123", "0161 496 0000").
        let uk = digits.len() == 11
            && digits.starts_with('0')
            && !digits.starts_with("00")
            && matches!(shape.as_slice(), [3, 4, 4] | [4, 3, 4] | [5, 6] | [5, 3, 3]);
        if written && uk {
            return true;
        }
        // Local (7), national (10, or 11 as in UK "07700 900123" / US "1 800 …") and "00"
        // international lengths.
        let phone_length = matches!(digits.len(), 7 | 10 | 11)
            || (digits.starts_with("00") && (10..=15).contains(&digits.len()));
        phone_length && self.near(span, 6, 3, PHONE_WORDS)
    }

    /// Written (`a.b@c.com`) and spoken (`a dot b at c dot com`) addresses.
    fn emails(&mut self) {
        let toks = self.toks;
        for (at, t) in toks.iter().enumerate().skip(1) {
            if !(t.is_punct('@') || (t.class == Class::Word && t.lower == "at")) {
                continue;
            }
            let Some(domain_end) = self.domain_end(at + 1, t.is_punct('@')) else {
                continue;
            };
            let Some(local_start) = self.local_start(at) else {
                continue;
            };
            let local_start = self.announced_local_start(local_start);
            let span = local_start..domain_end;
            if self.free(&span) {
                self.take(PiiKind::Email, span);
            }
        }
    }

    fn is_connector(t: &Tok) -> bool {
        matches!(
            t.lower.as_str(),
            "." | "_" | "-" | "+" | "dot" | "underscore" | "dash" | "hyphen"
        )
    }

    /// Start of the local part ending just before token `at`.
    fn local_start(&self, at: usize) -> Option<usize> {
        let toks = self.toks;
        let mut s = at.checked_sub(1)?;
        if !toks[s].is_label() {
            return None;
        }
        loop {
            if s >= 2 && Self::is_connector(&toks[s - 1]) && toks[s - 2].is_label() {
                s -= 2;
            } else if s >= 1
                && toks[s].lower.chars().count() == 1
                && toks[s - 1].is_label()
                && toks[s - 1].lower.chars().count() == 1
            {
                s -= 1; // spelled out: "j o h n"
            } else if s >= 1 && toks[s - 1].is_label() && !toks[s].gap {
                s -= 1;
            } else {
                return Some(s);
            }
        }
    }

    /// "my email is john smith at …": a spoken local part may contain spaces. When the
    /// address was announced ("email is", "e-mail address:"), take up to two more words back
    /// to the announcement.
    fn announced_local_start(&self, s: usize) -> usize {
        let toks = self.toks;
        let cue = |t: &Tok| matches!(t.lower.as_str(), "email" | "mail" | "address");
        for back in 1..=3 {
            let Some(k) = s.checked_sub(back) else { break };
            if cue(&toks[k]) || matches!(toks[k].lower.as_str(), "is" | ":") {
                let announced = toks[k.saturating_sub(2)..=k].iter().any(cue);
                return if announced { k + 1 } else { s };
            }
            let function_word = matches!(
                toks[k].lower.as_str(),
                "at" | "me" | "to" | "my" | "you" | "us" | "it" | "on" | "please" | "the"
            );
            if !toks[k].is_label() || function_word {
                break;
            }
        }
        s
    }

    /// End (exclusive) of a domain starting at token `i`: labels joined by dots, ending in a
    /// listed TLD, or after a written "@" (`written`) in any alphabetic one ("empresa.es").
    fn domain_end(&self, i: usize, written: bool) -> Option<usize> {
        let toks = self.toks;
        let mut j = i;
        let mut dots = 0;
        let mut last_label = None;
        while j < toks.len() && toks[j].is_label() {
            last_label = Some(j);
            // A letter said apart from the rest of its label: "g mail dot com".
            if toks[j].lower.chars().count() == 1
                && toks.get(j + 1).is_some_and(|t| t.class == Class::Word)
                && toks
                    .get(j + 2)
                    .is_some_and(|t| t.lower == "dot" || t.is_punct('.'))
            {
                j += 1;
                continue;
            }
            // "my-company" inside a label.
            if toks.get(j + 1).is_some_and(|t| t.is_punct('-') && !t.gap)
                && toks.get(j + 2).is_some_and(|t| t.is_label() && !t.gap)
            {
                j += 2;
                continue;
            }
            let is_dot = toks
                .get(j + 1)
                .is_some_and(|t| t.lower == "dot" || (t.is_punct('.') && !t.gap));
            if is_dot && toks.get(j + 2).is_some_and(Tok::is_label) {
                dots += 1;
                j += 2;
            } else {
                break;
            }
        }
        let last = last_label?;
        let tld = &toks[last].lower;
        let any_tld = written
            && (2..=24).contains(&tld.len())
            && tld.bytes().all(|b| b.is_ascii_alphabetic());
        (dots > 0 && (any_tld || TLDS.contains(&tld.as_str()))).then_some(last + 1)
    }

    /// The date after an expiry cue.
    /// In a payment context: a whole digit run of 6+ digits not taken by anything else.
    fn payment_digits(&mut self, run: &Run) {
        let (Some(first), Some(last)) = (run.groups.first(), run.groups.last()) else {
            return;
        };
        let digits: usize = run.groups.iter().map(|g| g.digits.len()).sum();
        let start = run.prefix.unwrap_or(first.toks.start);
        let span = start..last.toks.end;
        // Four or more digits read one at a time ("5 4 2 4") are card digits too: the first
        // half of a card read in two halves, published before the second half is heard.
        // Written amounts ("1200") are one group and stay.
        let singly = run.groups.iter().all(|g| g.digits.len() == 1);
        // Across full stops only a card's length of groups ("since 2019. 2020 was hard").
        let across_stops = run.groups.iter().any(|g| g.sep == Sep::Stop) && run.groups.len() < 3;
        if (digits >= 6 || (digits >= 4 && singly))
            && !across_stops
            && !self.is_amount(run)
            && self.free(&span)
        {
            self.take(PiiKind::Card, span);
        }
    }

    /// A sum of money, the one thing a payment call is full of: "$1,299.99", "1195.49",
    /// "250000 pounds".
    fn is_amount(&self, run: &Run) -> bool {
        let (first, last) = (&run.groups[0], &run.groups[run.groups.len() - 1]);
        let currency_before = first.toks.start > 0
            && !self.toks[first.toks.start].gap
            && self.toks[first.toks.start - 1].class == Class::Punct
            && matches!(
                self.toks[first.toks.start - 1].lower.as_str(),
                "$" | "£" | "€"
            );
        let cents = run.groups.len() > 1 && last.sep == Sep::Dot && last.digits.len() == 2;
        let unit_after = self.toks.get(last.toks.end).is_some_and(|t| {
            matches!(
                t.lower.as_str(),
                "dollars" | "dollar" | "pounds" | "pound" | "euros" | "euro" | "cents" | "bucks"
            )
        });
        !first.spoken && (currency_before || cents || unit_after)
    }

    /// Written IBANs: two letters, two check digits, then alphanumerics (grouped by spaces or
    /// not), 15–34 characters in all, passing the mod-97 check; the longest valid one wins.
    fn ibans(&mut self) {
        let toks = self.toks;
        for i in 0..toks.len() {
            let t = &toks[i];
            if t.class != Class::Word || !iban_head(t.lower.as_bytes()) {
                continue;
            }
            let mut chars = String::new();
            let mut best = None;
            for (j, u) in toks.iter().enumerate().skip(i) {
                if u.class == Class::Punct || (j > i && !u.gap) || chars.len() + u.lower.len() > 34
                {
                    break;
                }
                chars.push_str(&u.lower);
                if chars.len() >= 15 && iban_valid(&chars) {
                    best = Some(j);
                }
            }
            if let Some(j) = best {
                let span = i..j + 1;
                if self.free(&span) {
                    self.take(PiiKind::Iban, span);
                }
            }
        }
    }

    /// Spoken IBANs, as ASR writes them ("my IBAN is gb82, w st, 1234 5698…"): after the word
    /// "iban" (and up to three filler words), the run of code-like tokens — digits, spoken
    /// digits, letter-digit mixes and words of at most four letters, commas and dashes between
    /// — holding at least four digits. The mod-97 check cannot help: ASR rarely gets every
    /// character, so the cue decides.
    fn spoken_ibans(&mut self) {
        const FILLER: &[&str] = &["is", "it's", "its", "it", "my", "the", "number", "s"];
        const STOP: &[&str] = &["and", "thanks", "thank", "please", "that", "okay", "ok"];
        let toks = self.toks;
        let code_like = |t: &Tok| match t.class {
            Class::Digits => true,
            Class::Word => {
                spoken_digit(&t.lower).is_some()
                    || t.lower.bytes().any(|b| b.is_ascii_digit())
                    || (t.lower.chars().count() <= 4 && !STOP.contains(&t.lower.as_str()))
            }
            Class::Punct => false,
        };
        let digits_in = |t: &Tok| match spoken_digit(&t.lower) {
            Some(_) => 1,
            None => t.lower.bytes().filter(u8::is_ascii_digit).count(),
        };
        // The IBAN's own shape starts a run too: country letters and check digits ("gv82")
        // followed by 10+ more digits, when ASR turned the word "iban" into another.
        let shaped = |i: usize| toks[i].lower.len() == 4 && iban_head(toks[i].lower.as_bytes());
        for c in 0..toks.len() {
            let cued = toks[c].lower == "iban";
            if !cued && !shaped(c) {
                continue;
            }
            let mut i = if cued { c + 1 } else { c };
            let mut skipped = 0;
            while i < toks.len()
                && skipped < 3
                && (toks[i].class == Class::Punct || FILLER.contains(&toks[i].lower.as_str()))
                && !toks[i].lower.bytes().any(|b| b.is_ascii_digit())
            {
                i += 1;
                skipped += 1;
            }
            let (start, mut end, mut digits, mut chars) = (i, i, 0, 0);
            let mut j = i;
            while j < toks.len() && chars < 40 {
                let t = &toks[j];
                if code_like(t) {
                    digits += digits_in(t);
                    chars += t.lower.len();
                    end = j + 1;
                } else if !(t.class == Class::Punct && matches!(t.lower.as_str(), "," | "-")) {
                    break;
                }
                j += 1;
            }
            if end > start && digits >= if cued { 4 } else { 12 } {
                let span = start..end;
                if self.free(&span) {
                    self.take(PiiKind::Iban, span);
                }
            }
        }
    }

    /// The date after one of `cues` (expiry or birth dates): a date-shaped run after only
    /// filler words ("date of birth? Yes, it's 12/05/1980", "Sure. The 5th of March"), or
    /// one that is unmistakably a date (a month, a slash, three numbers) within
    /// [`DATE_REACH`] tokens ("born in London on 5 March 1980", "expires at the end of
    /// April 2027"). Not "your balance is 450 pounds" after a birth-date question.
    fn dates(&mut self, cues: &[&str], kind: PiiKind) {
        const FILLER: &[&str] = &[
            "date", "is", "was", "i", "my", "m", "am", "its", "s", "'", "’", "on", "the", "of",
            "in", "it", "that", ":", ",", ".", "yes", "yeah", "yep", "sure", "ok", "okay",
            "actually", "um", "uh", "so", "right",
        ];
        let toks = self.toks;
        let is_word = |t: &Tok| t.class == Class::Word;
        for c in 0..toks.len() {
            let cue_len = cues
                .iter()
                .map(|cue| cue.split(' ').collect::<Vec<_>>())
                .find(|cue| {
                    cue.iter()
                        .enumerate()
                        .all(|(k, w)| toks.get(c + k).is_some_and(|t| is_word(t) && t.lower == *w))
                })
                .map(|cue| cue.len());
            let Some(cue_len) = cue_len else { continue };
            let from = c + cue_len;
            let mut only_filler = true;
            for (start, t) in toks.iter().enumerate().skip(from).take(DATE_REACH) {
                if let Some((end, strong)) = self.date_at(start, kind) {
                    if only_filler || strong {
                        let span = start..end;
                        if self.free(&span) {
                            self.take(kind, span);
                        }
                        break;
                    }
                }
                only_filler &= FILLER.contains(&t.lower.as_str());
            }
        }
    }

    /// End (exclusive) of a date starting at token `start`, 3+ digits or a month and a digit
    /// in at most 8 tokens, and whether it is unmistakably a date (a month, a slash or dash,
    /// or three written numbers).
    fn date_at(&self, start: usize, kind: PiiKind) -> Option<(usize, bool)> {
        let toks = self.toks;
        let first = &toks[start].lower;
        // "for", "to" are dates' digits only inside one.
        let starts = (toks[start].class == Class::Digits && first.len() <= 4)
            || spoken_digit(first).is_some()
            || tens_or_teens(first)
            || MONTHS.contains(&first.as_str())
            || (kind == PiiKind::Dob && ordinal(first));
        if !starts {
            return None;
        }
        let (mut digits, mut month, mut end) = (0, false, start);
        let (mut numbers, mut slash) = (0, false);
        let mut i = start;
        while i < toks.len() && i < start + 8 {
            let t = &toks[i].lower;
            if toks[i].class == Class::Digits && t.len() <= 4 {
                digits += t.len();
                numbers += 1;
            } else if spoken_digit(t).is_some() || matches!(t.as_str(), "for" | "to" | "too") {
                // Inside a date, ASR's homophones of "four" and "two" are those digits
                // (Whisper writes "oh for twenty seven").
                digits += 1;
            } else if tens_or_teens(t) {
                digits += 2;
            } else if MONTHS.contains(&t.as_str()) {
                month = true;
            } else if kind == PiiKind::Dob && ordinal(t) {
                digits += 1;
            } else if !matches!(t.as_str(), "/" | "-" | "." | "slash" | "of" | ",") {
                break;
            }
            slash |= i > start && matches!(t.as_str(), "/" | "-" | "slash");
            i += 1;
            if !matches!(t.as_str(), "/" | "-" | "." | "slash" | "of" | ",") {
                end = i;
            }
        }
        let date = end > start && (digits >= 3 || (month && digits >= 1));
        date.then_some((end, month || (slash && end > start + 1) || numbers >= 3))
    }
}

/// How many tokens after a date cue a date may start.
const DATE_REACH: usize = 10;

/// "12th", "first", "twenty" (as in "twenty first") and the like, in a date of birth.
fn ordinal(w: &str) -> bool {
    // ASCII only: the slicing below counts bytes ("kraków" is not an ordinal).
    let digits_suffix = w.len() > 2
        && w.is_ascii()
        && w[..w.len() - 2].bytes().all(|b| b.is_ascii_digit())
        && matches!(&w[w.len() - 2..], "st" | "nd" | "rd" | "th");
    digits_suffix
        || matches!(
            w,
            "first"
                | "second"
                | "third"
                | "fourth"
                | "fifth"
                | "sixth"
                | "seventh"
                | "eighth"
                | "ninth"
                | "tenth"
                | "eleventh"
                | "twelfth"
                | "thirteenth"
                | "fourteenth"
                | "fifteenth"
                | "sixteenth"
                | "seventeenth"
                | "eighteenth"
                | "nineteenth"
                | "twentieth"
                | "thirtieth"
                | "hundred"
                | "thousand"
        )
}

/// An IBAN's head: two country letters, two check digits (then anything).
fn iban_head(b: &[u8]) -> bool {
    b.len() >= 4
        && b[..2].iter().all(u8::is_ascii_alphabetic)
        && b[2..4].iter().all(u8::is_ascii_digit)
}

/// ISO 13616 check: move the first four characters to the end, letters to 10..35, mod 97 = 1.
fn iban_valid(s: &str) -> bool {
    let b = s.as_bytes();
    if !(15..=34).contains(&b.len()) || !b.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let mut rem: u32 = 0;
    for &c in b[4..].iter().chain(&b[..4]) {
        let v = match c {
            b'0'..=b'9' => (c - b'0') as u32,
            _ => (c.to_ascii_lowercase() - b'a') as u32 + 10,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

fn tens_or_teens(w: &str) -> bool {
    matches!(
        w,
        "ten"
            | "eleven"
            | "twelve"
            | "thirteen"
            | "fourteen"
            | "fifteen"
            | "sixteen"
            | "seventeen"
            | "eighteen"
            | "nineteen"
            | "twenty"
            | "thirty"
            | "forty"
            | "fifty"
            | "sixty"
            | "seventy"
            | "eighty"
            | "ninety"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn red(text: &str) -> String {
        Redactor::default().redact(text).text
    }

    /// Texts that must come through unchanged.
    fn untouched(texts: &[&str]) {
        for text in texts {
            assert_eq!(red(text), *text);
        }
    }

    #[test]
    fn card_numbers_in_every_shape() {
        assert_eq!(red("my card is 4111 1111 1111 1111."), "my card is [CARD].");
        assert_eq!(red("it's 4111-1111-1111-1111 ok"), "it's [CARD] ok");
        assert_eq!(red("4,111,111,111,111,111"), "[CARD]");
        assert_eq!(red("number 4111111111111111"), "number [CARD]");
        assert_eq!(red("amex 3782 822463 10005 thanks"), "amex [CARD] thanks");
        assert_eq!(
            red("it is four one one one one one one one one one one one one one one one"),
            "it is [CARD]"
        );
        assert_eq!(
            red("five five double five, five five five five, five five five five, four four four four"),
            "[CARD]"
        );
    }

    #[test]
    fn non_luhn_long_numbers_are_cards_only_near_card_words() {
        // 4111 1111 1111 1 (13 digits) fails Luhn.
        assert_eq!(
            red("tracking 4111 1111 1111 1"),
            "tracking 4111 1111 1111 1"
        );
        assert_eq!(
            red("the card number is 4111 1111 1111 1"),
            "the card number is [CARD]"
        );
        // 15 and 16 digits are cards even failing Luhn: as tiny.en heard a spoken Visa number
        // ("visa" → "reason", 1283 → 1223) in tools/make-pii-calls.sh's call.
        assert_eq!(
            red("My reason number is 4,532015112230366"),
            "My reason number is [CARD]"
        );
        assert_eq!(red("tracking 4111 1111 1111 1112"), "tracking [CARD]");
    }

    #[test]
    fn cvv_and_expiry_in_context() {
        assert_eq!(
            red("the security code is 123"),
            "the security code is [CVV]"
        );
        assert_eq!(red("CVV 1234."), "CVV [CVV].");
        assert_eq!(red("cvv is one two three"), "cvv is [CVV]");
        assert_eq!(red("it expires 04/27"), "it expires [EXPIRY]");
        assert_eq!(
            red("expiry date oh four twenty seven thanks"),
            "expiry date [EXPIRY] thanks"
        );
        assert_eq!(red("expiration is April 2027."), "expiration is [EXPIRY].");
        assert_eq!(red("it expires in 12 months"), "it expires in 12 months");
        assert_eq!(red("I paid 123 dollars"), "I paid 123 dollars");
    }

    #[test]
    fn ssn() {
        assert_eq!(red("SSN: 123-45-6789"), "SSN: [SSN]");
        assert_eq!(red("it's 123-45-6789"), "it's [SSN]");
        assert_eq!(
            red("my social security number is 123456789"),
            "my social security number is [SSN]"
        );
        assert_eq!(
            red("social is one two three four five six seven eight nine"),
            "social is [SSN]"
        );
        assert_eq!(
            red("last four of my social are 6789"),
            "last four of my social are [SSN]"
        );
        // Replayed TTS: tiny.en heard "123-45-6789" as "12345 6".
        assert_eq!(
            red("And my social security number is 12345 6,"),
            "And my social security number is [SSN],"
        );
        // 000 area numbers are not SSNs without context.
        assert_eq!(red("code 000-12-3456"), "code 000-12-3456");
    }

    #[test]
    fn emails_written_and_spoken() {
        assert_eq!(
            red("mail jo.smith@example.com, please"),
            "mail [EMAIL], please"
        );
        assert_eq!(red("it's john dot smith at gmail dot com"), "it's [EMAIL]");
        assert_eq!(red("j o h n at my-company dot co dot uk."), "[EMAIL].");
        assert_eq!(red("john_smith at gmail.com"), "[EMAIL]");
        assert_eq!(
            red("My email is john smith at gmail dot com."),
            "My email is [EMAIL]."
        );
        assert_eq!(
            red("e-mail address: j o h n at aol dot com"),
            "e-mail address: [EMAIL]"
        );
        assert_eq!(
            red("email me at jo at gmail dot com"),
            "email me at [EMAIL]"
        );
        assert_eq!(red("look at this dot"), "look at this dot");
        assert_eq!(red("I'm at home."), "I'm at home.");
    }

    #[test]
    fn phone_numbers() {
        assert_eq!(red("call 555-123-4567"), "call [PHONE]");
        assert_eq!(red("it's (555) 123-4567."), "it's [PHONE].");
        assert_eq!(red("1 800 555 1234"), "[PHONE]");
        assert_eq!(red("+44 20 7946 0958"), "[PHONE]");
        assert_eq!(red("555.123.4567"), "[PHONE]");
        assert_eq!(
            red("my number is five five five one two three four five six seven"),
            "my number is [PHONE]"
        );
        assert_eq!(red("cell 5551234567"), "cell [PHONE]");
        assert_eq!(red("reach me at 555-1234"), "reach me at [PHONE]");
        // A lone 10-digit number without phone words or phone grouping stays.
        assert_eq!(red("reference 5551234567"), "reference 5551234567");
    }

    #[test]
    fn several_items_in_one_utterance() {
        assert_eq!(
            red("card number 4111 1111 1111 1111 expiry 04/27 and the CVV is 123, thanks"),
            "card number [CARD] expiry [EXPIRY] and the CVV is [CVV], thanks"
        );
        assert_eq!(red("4111 1111 1111 1111 04 27"), "[CARD] 04 27");
        assert_eq!(red("+1 (555) 123-4567"), "[PHONE]");
        assert_eq!(
            red("my phone is oh seven seven oh oh nine oh oh one two three"),
            "my phone is [PHONE]"
        );
    }

    /// A tiny deterministic generator of transcript-like word soup.
    fn soup(seed: u64, n: usize) -> Vec<String> {
        const VOCAB: &[&str] = &[
            "my",
            "card",
            "number",
            "is",
            "4111",
            "1111",
            "1111.",
            "one",
            "oh",
            "five",
            "double",
            "at",
            "dot",
            "com",
            "gmail",
            "john",
            "call",
            "555-123-",
            "4567",
            "-",
            "(555)",
            "+44",
            "cvv",
            "123",
            "expires",
            "04/27",
            "social",
            "123-45-6789",
            "a@b.co",
            "ok,",
            "twenty",
            "seven",
            "é",
            "",
            " ",
            "4,111,111,111,111,111",
            "security",
            "code",
        ];
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                VOCAB[(x >> 33) as usize % VOCAB.len()].to_string()
            })
            .collect()
    }

    #[test]
    fn word_level_invariant_holds_on_generated_transcripts() {
        let r = Redactor::default();
        for seed in 0..300 {
            let words: Vec<(String, f64, f64)> = soup(seed, 1 + seed as usize % 40)
                .into_iter()
                .enumerate()
                .map(|(i, w)| (w, i as f64, i as f64 + 0.5))
                .collect();
            let (out, redacted) = r.redact_words(&words);
            let joined: Vec<&str> = words.iter().map(|w| w.0.as_str()).collect();
            let text = r.redact(&joined.join(" "));
            let out_joined: Vec<&str> = out.iter().map(|w| w.0.as_str()).collect();
            assert_eq!(out_joined.join(" "), text.text, "seed {seed}");
            assert_eq!(redacted, text.redacted);
            assert!(
                out.windows(2).all(|w| w[0].2 <= w[1].1),
                "times stay ordered"
            );
            for s in &text.spans {
                assert_eq!(&text.text[s.output.clone()], s.kind.placeholder());
            }
        }
    }

    #[test]
    fn ordinary_numbers_untouched() {
        for text in [
            "I've been waiting 45 minutes",
            "order number 12",
            "I paid $1,200 for this",
            "it happened on 04/27 last year",
            "one or two times, maybe three",
            "I called 3 times in 2024",
            "Oh, one more thing.",
            "my order number is 12345678",
        ] {
            let r = Redactor::default().redact(text);
            assert_eq!(r.text, text);
            assert!(!r.redacted);
        }
    }

    #[test]
    fn spans_and_config() {
        let r = Redactor::default().redact("card 4111 1111 1111 1111 and call 555-123-4567");
        assert!(r.redacted);
        assert_eq!(r.text, "card [CARD] and call [PHONE]");
        assert_eq!(r.spans.len(), 2);
        assert_eq!(r.spans[0].kind, PiiKind::Card);
        assert_eq!(r.spans[0].input, 5..24);
        assert_eq!(&r.text[r.spans[1].output.clone()], "[PHONE]");

        let off = Redactor::new(RedactConfig {
            enabled: false,
            ..RedactConfig::default()
        });
        assert_eq!(off.redact("call 555-123-4567").text, "call 555-123-4567");
        let only_email = Redactor::new(RedactConfig {
            enabled: true,
            kinds: vec![PiiKind::Email],
        });
        assert_eq!(
            only_email.redact("a@b.com 555-123-4567").text,
            "[EMAIL] 555-123-4567"
        );
        let cfg: RedactConfig = toml::from_str("kinds = [\"card\", \"ssn\"]").unwrap();
        assert!(cfg.enabled);
        assert_eq!(cfg.kinds, vec![PiiKind::Card, PiiKind::Ssn]);
    }

    fn timed(words: &[&str]) -> Vec<(String, f64, f64)> {
        words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.to_string(), i as f64, i as f64 + 0.5))
            .collect()
    }

    #[test]
    fn word_level_redaction_keeps_times_and_text() {
        let words = timed(&[
            "my", "card", "is", "4111", "1111", "1111", "1111.", "Thanks",
        ]);
        let (out, redacted) = Redactor::default().redact_words(&words);
        assert!(redacted);
        assert_eq!(
            out,
            vec![
                ("my".to_string(), 0.0, 0.5),
                ("card".to_string(), 1.0, 1.5),
                ("is".to_string(), 2.0, 2.5),
                ("[CARD].".to_string(), 3.0, 6.5),
                ("Thanks".to_string(), 7.0, 7.5),
            ]
        );
        let joined: Vec<&str> = words.iter().map(|w| w.0.as_str()).collect();
        let text = Redactor::default().redact(&joined.join(" ")).text;
        let out_joined: Vec<&str> = out.iter().map(|w| w.0.as_str()).collect();
        assert_eq!(out_joined.join(" "), text);
    }

    #[test]
    fn word_level_spoken_email_and_untouched_words() {
        let words = timed(&[
            "mail", "john", "dot", "smith", "at", "gmail", "dot", "com,", "ok",
        ]);
        let (out, redacted) = Redactor::default().redact_words(&words);
        assert!(redacted);
        let texts: Vec<&str> = out.iter().map(|w| w.0.as_str()).collect();
        assert_eq!(texts, ["mail", "[EMAIL],", "ok"]);
        assert_eq!((out[1].1, out[1].2), (1.0, 7.5));

        let calm = timed(&["waited", "45", "minutes"]);
        assert_eq!(
            Redactor::default().redact_words(&calm),
            (calm.clone(), false)
        );
        assert_eq!(Redactor::default().redact_words(&[]), (vec![], false));
    }

    #[test]
    fn event_words_keep_lowest_probability() {
        use crate::events::Word;
        let w = |s: &str, t: f64, p: f32| Word {
            w: s.into(),
            start: t,
            end: t + 0.4,
            p,
        };
        let words = [
            w("call", 0.0, 0.9),
            w("555-123-", 0.5, 0.8),
            w("4567", 1.0, 0.6),
        ];
        let (out, redacted) = Redactor::default().redact_event_words(&words);
        assert!(redacted);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].w, "[PHONE]");
        assert_eq!((out[1].start, out[1].end, out[1].p), (0.5, 1.4, 0.6));
    }

    #[test]
    fn long_spoken_ramble_is_fast_and_safe() {
        let text = "one two three ".repeat(2000);
        let r = Redactor::default().redact(&text);
        // Without context only Luhn-valid 13–19 digit slices become cards; the rest stays.
        assert!(r.spans.iter().all(|s| s.kind == PiiKind::Card));
        assert!(r.text.contains("one two three"));
    }

    #[test]
    fn ibans_written_with_a_valid_check() {
        assert_eq!(
            red("my IBAN is GB82 WEST 1234 5698 7654 32 thanks"),
            "my IBAN is [IBAN] thanks"
        );
        assert_eq!(red("DE89370400440532013000"), "[IBAN]");
        // One wrong character fails the check, but the IBAN's shape with 12+ digits still
        // counts (on speech the check digits are as likely misheard as any); a shape with
        // fewer digits does not.
        assert_eq!(red("GB82 WEST 1234 5698 7654 33"), "[IBAN]");
        assert!(!red("GB82 WEST 1234 5698").contains("[IBAN]"));
        assert_eq!(red("GB82 is a nice code"), "GB82 is a nice code");
    }

    #[test]
    fn spoken_ibans_after_their_cue() {
        // As tiny.en heard the synthesised call (tools/make-pii-calls.sh).
        assert_eq!(
            red("My IBAN is gv82, w st, 1234 5698 7654 32 and that's it."),
            "My IBAN is [IBAN] and that's it."
        );
        assert_eq!(
            red("the iban is g b eight two west one two three four"),
            "the iban is [IBAN]"
        );
        // Misheard cue ("iban" → "item"): the shape, with 12+ digits, still counts.
        assert_eq!(
            red("For the refund my item is gv82, w st, 1 2 3 4, 5 6 9 8, 7 6 5 4, 3 2,"),
            "For the refund my item is [IBAN],"
        );
        // Without the cue and too short for an IBAN, or without digits after it, nothing is.
        assert!(!red("gv82 w st 1234 5698").contains("[IBAN]"));
        assert_eq!(
            red("what is an iban and why do you need it"),
            "what is an iban and why do you need it"
        );
    }

    #[test]
    fn dates_of_birth_after_their_cue() {
        assert_eq!(
            red("my date of birth is 12/05/1980"),
            "my date of birth is [DOB]"
        );
        assert_eq!(red("I was born on May 12 1980"), "I was born on [DOB]");
        assert_eq!(
            red("born the fifth of march nineteen eighty, yes"),
            "born the [DOB], yes"
        );
        assert_eq!(red("we met on May 12"), "we met on May 12");
    }

    fn convo() -> ConversationRedactor {
        ConversationRedactor::new(std::sync::Arc::new(Redactor::default()))
    }

    fn say(c: &mut ConversationRedactor, who: crate::audio::Speaker, t: f64, text: &str) -> String {
        let words: Vec<crate::events::Word> = text
            .split(' ')
            .map(|w| crate::events::Word {
                w: w.into(),
                start: t,
                end: t + 0.3,
                p: 0.9,
            })
            .collect();
        let (r, w, _) = c.redact_utterance(who, t, t + 2.0, text, &words);
        let joined: Vec<&str> = w.iter().map(|w| w.w.as_str()).collect();
        assert_eq!(joined.join(" "), r.text, "words and text agree");
        r.text
    }

    /// The redacted answer to an agent's question, 3 s after it.
    fn answer(question: &str, reply: &str) -> String {
        let mut c = convo();
        say(&mut c, crate::audio::Speaker::Agent, 0.0, question);
        say(&mut c, crate::audio::Speaker::Customer, 3.0, reply)
    }

    #[test]
    fn first_half_read_singly_after_a_payment_word() {
        use crate::audio::Speaker::*;
        // As tiny.en heard tools/make-pii-calls.sh's pii-halves call ("bill" → "will").
        let mut c = convo();
        assert_eq!(
            say(
                &mut c,
                Customer,
                0.0,
                "I want to pay my will. It is 5 4 2 4."
            ),
            "I want to pay my will. It is [CARD]."
        );
        // An amount in a payment context, and single digits without one, stay.
        let mut c = convo();
        assert_eq!(
            say(&mut c, Customer, 0.0, "I want to pay 1200 dollars"),
            "I want to pay 1200 dollars"
        );
        let mut c = convo();
        assert_eq!(
            say(&mut c, Customer, 0.0, "it took 5 4 2 4 tries"),
            "it took 5 4 2 4 tries"
        );
    }

    #[test]
    fn card_number_in_two_halves() {
        use crate::audio::Speaker::{Agent, Customer};
        // Without a payment context the first half is out before the second is heard.
        let mut c = convo();
        assert_eq!(
            say(&mut c, Customer, 0.0, "it is 4111 1111"),
            "it is 4111 1111"
        );
        assert_eq!(say(&mut c, Customer, 3.0, "1111 1111"), "[CARD]");
        // After the agent asks for the card, both halves are redacted.
        assert_eq!(
            answer(
                "can I take the long number on the card please",
                "four one one one one one one one"
            ),
            "[CARD]"
        );
        assert_eq!(
            say(&mut c, Customer, 6.0, "one one one one one one one one"),
            "[CARD]"
        );
        // The other speaker's digits do not join this speaker's.
        let mut c = convo();
        say(&mut c, Customer, 0.0, "it is 4111 1111");
        assert_eq!(say(&mut c, Agent, 3.0, "1111 1111"), "1111 1111");
    }

    #[test]
    fn answers_after_the_agent_asks() {
        use crate::audio::Speaker::{Agent, Customer};
        let mut c = convo();
        say(
            &mut c,
            Agent,
            0.0,
            "and the three digit security code on the back?",
        );
        assert_eq!(say(&mut c, Customer, 3.0, "one two three"), "[CVV]");
        say(&mut c, Agent, 6.0, "thank you and the expiry date?");
        assert_eq!(
            say(&mut c, Customer, 9.0, "oh four twenty seven"),
            "[EXPIRY]"
        );
        say(&mut c, Agent, 10.0, "and the expiry date.");
        assert_eq!(
            say(&mut c, Customer, 11.0, "Oh for twenty seven."),
            "[EXPIRY]."
        );
        say(&mut c, Agent, 12.0, "can you confirm your date of birth");
        assert_eq!(
            say(&mut c, Customer, 15.0, "the fifth of march nineteen eighty"),
            "the [DOB]"
        );
        // Long after the question, or with no question, a short number is just a number.
        assert_eq!(
            say(&mut c, Customer, 80.0, "one two three"),
            "one two three"
        );
        let mut c = convo();
        assert_eq!(say(&mut c, Customer, 0.0, "one two three"), "one two three");
        // The IBAN asked for and read out in the answer.
        assert_eq!(
            answer(
                "could you read me your IBAN please",
                "gb82 west 1234 5698 7654 32"
            ),
            "[IBAN]"
        );
    }

    #[test]
    fn six_digit_runs_in_a_payment_context() {
        use crate::audio::Speaker::Customer;
        assert_eq!(
            answer("which card would you like to use", "it starts 542 418"),
            "it starts [CARD]"
        );
        // Outside a payment context six digits stay (an order number).
        let mut c = convo();
        assert_eq!(
            say(&mut c, Customer, 0.0, "my order is 542418"),
            "my order is 542418"
        );
    }

    #[test]
    fn card_read_group_by_group_with_full_stops() {
        use crate::audio::Speaker::{Agent, Customer};
        // Whisper puts a full stop after each group the caller pauses after.
        assert_eq!(
            red("It's 4532. 0151. 1283. 0366. Thanks"),
            "It's [CARD]. Thanks"
        );
        // One group per utterance: the first four digits (part of the card's issuer number,
        // which PCI DSS lets be shown) are out before the rest is heard; the rest join it.
        let mut c = convo();
        say(
            &mut c,
            Agent,
            0.0,
            "Can I take the long number on the card please?",
        );
        assert_eq!(
            say(&mut c, Customer, 3.0, "My card number is 4532."),
            "My card number is 4532."
        );
        for (t, group) in [(5.0, "0151."), (7.0, "1283."), (9.0, "0366.")] {
            assert_eq!(say(&mut c, Customer, t, group), "[CARD].", "{group}");
        }
        // Two halves, each ending in a full stop.
        let mut c = convo();
        say(
            &mut c,
            Agent,
            0.0,
            "Can I take the long number on the card please?",
        );
        assert_eq!(
            say(
                &mut c,
                Customer,
                3.0,
                "It is four one one one, one one one one."
            ),
            "It is [CARD]."
        );
        assert_eq!(
            say(&mut c, Customer, 6.0, "One one one one, one one one one."),
            "[CARD]."
        );
        // Years and short numbers between full stops stay.
        for text in ["It was 2019. 2020 was worse.", "Room 12. 14 of us."] {
            assert_eq!(red(text), text);
        }
    }

    #[test]
    fn the_most_specific_question_decides() {
        use crate::audio::Speaker::{Agent, Customer};
        assert_eq!(
            answer(
                "What's the security code on the back of your card?",
                "It's 737."
            ),
            "It's [CVV]."
        );
        assert_eq!(
            answer(
                "And what's the expiry date on the card?",
                "Oh four, twenty seven."
            ),
            "[EXPIRY]."
        );
        let mut c = convo();
        say(
            &mut c,
            Agent,
            0.0,
            "Can I have your social security number please?",
        );
        assert_eq!(
            say(
                &mut c,
                Customer,
                3.0,
                "One two three, four five, six seven eight nine."
            ),
            "[SSN]."
        );
        assert_eq!(
            answer("And the last four of your social?", "6789."),
            "[SSN]."
        );
        assert_eq!(
            answer(
                "What's the best number to reach you on?",
                "It's 020 7946 0958."
            ),
            "It's [PHONE]."
        );
        // The last cue of the same kind still wins over an earlier one.
        assert_eq!(
            Ask::in_text("thanks for the cvv. and the expiry?"),
            Some(Ask::Expiry)
        );
        assert_eq!(
            Ask::in_text("which card would you like to use"),
            Some(Ask::Card)
        );
    }

    #[test]
    fn dates_a_few_words_after_their_cue() {
        assert_eq!(
            answer(
                "Can you confirm your date of birth?",
                "Yes, it's 12/05/1980."
            ),
            "Yes, it's [DOB]."
        );
        assert_eq!(
            answer(
                "Can you confirm your date of birth?",
                "Sure. The 5th of March, 1980."
            ),
            "Sure. The [DOB]."
        );
        assert_eq!(
            red("my date of birth is actually 12/05/1980"),
            "my date of birth is actually [DOB]"
        );
        assert_eq!(
            red("I was born in London on 5 March 1980"),
            "I was born in London on [DOB]"
        );
        assert_eq!(
            red("the card expires at the end of April 2027"),
            "the card expires at the end of [EXPIRY]"
        );
        assert_eq!(red("It's valid until 04/27."), "It's valid until [EXPIRY].");
        // Not a date: too few digits, or none.
        untouched(&[
            "my birthday party is for 20 people",
            "my card expires soon, I need a new one",
            "I was born here and have 3 kids",
        ]);
    }

    #[test]
    fn non_ascii_words_after_a_birth_cue() {
        // Sliced by bytes once: "kraków" panicked.
        assert_eq!(red("I was born in Kraków."), "I was born in Kraków.");
        assert_eq!(red("born née Smith, 12 05 1980"), "born née Smith, [DOB]");
        for w in ["ków", "né", "1ñ", "日本th", "ﬁrst"] {
            assert!(!ordinal(w), "{w}");
        }
    }

    #[test]
    fn spoken_plus_and_any_written_domain() {
        assert_eq!(
            red("My number is plus 44 20 7946 0958."),
            "My number is [PHONE]."
        );
        assert_eq!(
            red("plus four four two zero seven nine four six zero nine five eight"),
            "[PHONE]"
        );
        assert_eq!(red("it's two plus two"), "it's two plus two");
        assert_eq!(red("My email is maria@empresa.es."), "My email is [EMAIL].");
        assert_eq!(
            red("write to jan.devries@bedrijf.nl today"),
            "write to [EMAIL] today"
        );
        // Spoken "at" still needs a known TLD: "meet at the cafe dot then".
        assert_eq!(
            red("see you at home dot later"),
            "see you at home dot later"
        );
    }

    #[test]
    fn sums_of_money_in_a_payment_call_stay() {
        use crate::audio::Speaker::{Agent, Customer};
        let mut c = convo();
        say(&mut c, Agent, 0.0, "Which card would you like to pay with?");
        for text in [
            "Yes, the balance is $1,299.99, right?",
            "It came to 1195.49 in the end.",
            "We owe 250000 pounds.",
            "That's £12,500 a year.",
        ] {
            assert_eq!(say(&mut c, Customer, 3.0, text), text);
        }
        // Card digits in the same context still go.
        assert_eq!(
            say(&mut c, Customer, 6.0, "it starts 542 418"),
            "it starts [CARD]"
        );
    }

    #[test]
    fn a_card_question_is_never_outranked_by_a_broader_cue() {
        use crate::audio::Speaker::{Agent, Customer};
        let mut c = convo();
        say(
            &mut c,
            Agent,
            0.0,
            "What's a good contact number, and the card number please?",
        );
        assert_eq!(say(&mut c, Customer, 3.0, "4532 0151"), "[CARD]");
        assert_eq!(say(&mut c, Customer, 6.0, "1283 0366"), "[CARD]");
        // Cues are whole words: "stubborn" is no birth cue.
        assert_eq!(
            Ask::in_text("this machine is stubborn today. read me the long number on the card"),
            Some(Ask::Card)
        );
        assert_eq!(Ask::in_text("i was born in 1980"), Some(Ask::Dob));
    }

    #[test]
    fn numbers_after_a_date_question_that_are_no_dates() {
        for reply in [
            "Your balance is 450 pounds.",
            "I have 120 minutes left?",
            "We are 15 people at 7 30.",
        ] {
            assert_eq!(answer("Can you confirm your date of birth?", reply), reply);
        }
        assert_eq!(
            answer(
                "Can you confirm your date of birth?",
                "Oh, it's 12 05 1980."
            ),
            "Oh, it's [DOB]."
        );
        // In a payment call, numbers across a full stop that are not a card's groups stay.
        for reply in [
            "It's been like this since 2019. 2020 was a hard year.",
            "Your order 1500. 2000 points.",
        ] {
            assert_eq!(
                answer("Which card would you like to pay with?", reply),
                reply
            );
        }
    }

    #[test]
    fn bank_account_sort_code_and_routing_numbers() {
        assert_eq!(
            red("My account number is 12345678 and the sort code is 20-00-00."),
            "My account number is [ACCOUNT] and the sort code is [ACCOUNT]."
        );
        // Of phone length, next to "account number": no longer [PHONE].
        assert_eq!(
            red("my account number is 1234567"),
            "my account number is [ACCOUNT]"
        );
        assert_eq!(
            red("the routing number is 021000021, checking 000123456789"),
            "the routing number is [ACCOUNT], checking [ACCOUNT]"
        );
        assert_eq!(
            red("bank account eight seven six five four three two one"),
            "bank account [ACCOUNT]"
        );
        // After the question, bare digits in the answer, in halves across utterances.
        assert_eq!(
            answer("Can I take your sort code and account number?", "20 00 00"),
            "[ACCOUNT]"
        );
        use crate::audio::Speaker::{Agent, Customer};
        let mut c = convo();
        say(&mut c, Agent, 0.0, "And the account number please?");
        assert_eq!(
            say(&mut c, Customer, 3.0, "It's 4012 8888."),
            "It's [ACCOUNT]."
        );
        assert_eq!(say(&mut c, Customer, 6.0, "1881."), "[ACCOUNT].");
        // The account's phone number is a phone number; balances and years stay.
        assert_eq!(
            red("the phone number on the account is 555-123-4567"),
            "the phone number on the account is [PHONE]"
        );
        untouched(&[
            "I opened the account in 2019 and it has 1500 dollars in it",
            "there is $125,000.00 in the account",
            "the account has been open 12 years",
            "I've been with the bank since 1998",
        ]);
    }

    #[test]
    fn pins_and_passcodes_of_any_common_length() {
        for (text, want) in [
            ("my pin is 482913", "my pin is [PIN]"),
            ("the PIN is 4829", "the PIN is [PIN]"),
            ("passcode one nine eight seven two", "passcode [PIN]"),
            (
                "my telephone banking code is 55123",
                "my telephone banking code is [PIN]",
            ),
        ] {
            assert_eq!(red(text), want);
        }
        assert_eq!(
            answer("Can you confirm your PIN for me?", "Yes. 90210 4."),
            "Yes. [PIN]."
        );
        // A PIN question outranks the card it belongs to.
        assert_eq!(
            answer("What's the four digit pin on your card?", "It's 7 7 3 1."),
            "It's [PIN]."
        );
        untouched(&[
            "I tried the pin 3 times",
            "the pin stopped working in 2 days",
        ]);
    }

    #[test]
    fn a_question_naming_two_things_keeps_both_cues() {
        for (question, reply, want) in [
            (
                "Can I have your date of birth and then your telephone banking passcode?",
                "Sure, it's the 12th of May 1980.",
                "Sure, it's the [DOB].",
            ),
            (
                "Can you confirm your date of birth and your account number?",
                "Sure, it's the 12th of May 1980.",
                "Sure, it's the [DOB].",
            ),
            (
                "Could I have the last four of your social and the account number?",
                "It's 4821.",
                "It's [SSN].",
            ),
            (
                "And what's the expiry, and your PIN please?",
                "oh four twenty seven",
                "[EXPIRY]",
            ),
            (
                "Could I get the card number please? I'll reset your password after that.",
                "Sure, 453201511283.",
                "Sure, [CARD].",
            ),
            (
                "Your date of birth and your passcode, please.",
                "It's 48213.",
                "It's [PIN].",
            ),
        ] {
            assert_eq!(answer(question, reply), want, "{question} / {reply}");
        }
    }

    #[test]
    fn a_config_without_the_pin_kind_keeps_pins_as_cvv() {
        let old = Redactor::new(RedactConfig {
            kinds: PiiKind::ALL[..8].to_vec(),
            ..Default::default()
        });
        assert_eq!(old.redact("My pin is 4829.").text, "My pin is [CVV].");
        assert_eq!(
            old.redact("My pin number is 4829.").text,
            "My pin number is [CVV]."
        );
    }

    #[test]
    fn numbers_near_bank_words_that_are_no_bank_details() {
        untouched(&[
            "The claim was for 1,250,000 and the bank refused.",
            "They have taken 120000 from my account.",
            "My order 100234 is in transit.",
            "Tracking number 940011189922 says in transit.",
            "I was at the bank, ticket 4500123.",
            "I added a note to your account, your case number is 20931187.",
            "I changed my password in 2019 and again since.",
            "The password reset email came at 0930.",
        ]);
        assert_eq!(
            answer("I'll reset your password now.", "My new number is 0930."),
            "My new number is 0930."
        );
    }

    #[test]
    fn uk_numbers_and_a_spoken_domain_split_by_asr() {
        assert_eq!(red("It's 020 7946 0958."), "It's [PHONE].");
        assert_eq!(red("try 07700 900123 after six"), "try [PHONE] after six");
        assert_eq!(red("or 0161 496 0000"), "or [PHONE]");
        assert_eq!(
            red("my email is john dot smith at g mail dot com"),
            "my email is [EMAIL]"
        );
        // Not UK shapes: an order number, a year and a count, a sum.
        untouched(&[
            "order 01234567890 shipped",
            "in 2019 4 of them",
            "it was 0 2 3 4 of them",
        ]);
    }

    #[test]
    fn luhn_check() {
        assert!(luhn("4111111111111111"));
        assert!(luhn("378282246310005"));
        assert!(!luhn("4111111111111112"));
    }
}
