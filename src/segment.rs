//! Voice activity detection and utterance segmentation for one speaker.
//!
//! Input is one [`VadFrame`] per 10 ms analysis frame (energy and voicing from the prosody
//! engine, plus the other speaker's energy at the same instant when there is one). Output is
//! [`Segment`]s: `[start, end)` spans of speech in seconds of call time.
//!
//! Why it copes with telephone audio:
//! * the speech threshold floats on a tracked noise floor (fast down, slow up), so line hiss,
//!   comfort noise and μ-law quantisation noise do not read as speech;
//! * a frame needs voicing or a clear energy margin, so clicks and bursts of noise that are
//!   not voiced do not open utterances by themselves, and very short blips are discarded;
//! * in stereo calls a frame much quieter than the other channel at the same instant is
//!   treated as bleed/echo of the other speaker, so a silent speaker does not inherit the
//!   other speaker's words.
//!
//! Invariants: segments are emitted in time order, never overlap, and each lies within the
//! audio pushed so far. Pure code: no I/O, no clocks.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Frame hop the segmenter assumes (the prosody engine's).
pub const FRAME_S: f64 = 0.010;

/// Tuning for [`UtteranceSegmenter`]. Every field has a documented default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VadConfig {
    /// Margin above the tracked noise floor for a frame to count as speech, dB. Default 9.
    pub threshold_db: f32,
    /// Margin above the noise floor at which an unvoiced frame still counts, dB. Default 18.
    pub unvoiced_threshold_db: f32,
    /// Frames quieter than this never count as speech, dBFS. Default −55.
    pub min_level_db: f32,
    /// A frame this many dB below the other speaker's frame is bleed, not speech. Default 15.
    pub bleed_margin_db: f32,
    /// Speech frames needed within the onset window to open an utterance. Default 4 of 6.
    pub onset_frames: usize,
    /// Onset window length in frames. Default 6.
    pub onset_window: usize,
    /// Silence that closes an utterance, seconds. Default 0.5.
    pub hangover_s: f64,
    /// Silence that closes an utterance on a narrowband leg (input at 8 kHz or less: a
    /// telephone line), seconds. Default 0.7. The telephone band drops the breath and
    /// frication above 4 kHz that keeps a pause's frames above the speech threshold in
    /// wideband audio, so the same pause inside a sentence reads about 0.2 s longer there.
    /// Only the utterance (the unit of transcription) waits for it: talk time, turn taking
    /// and the live stress window end a run of speech after `hangover_s` on either band.
    pub narrowband_hangover_s: f64,
    /// Audio kept before the detected onset, seconds. Default 0.15.
    pub pre_roll_s: f64,
    /// Audio kept after the last speech frame, seconds. Default 0.15.
    pub post_roll_s: f64,
    /// Utterances with less speech than this are dropped as blips, seconds. Default 0.25.
    pub min_speech_s: f64,
    /// Longer utterances are cut at the quietest recent frame, seconds. Default 15.
    pub max_utterance_s: f64,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            threshold_db: 9.0,
            unvoiced_threshold_db: 18.0,
            min_level_db: -55.0,
            bleed_margin_db: 15.0,
            onset_frames: 4,
            onset_window: 6,
            hangover_s: 0.5,
            narrowband_hangover_s: 0.7,
            pre_roll_s: 0.15,
            post_roll_s: 0.15,
            min_speech_s: 0.25,
            max_utterance_s: 15.0,
        }
    }
}

/// What the segmenter needs to know about one 10 ms frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadFrame {
    /// Frame centre, seconds of call time.
    pub t: f64,
    /// RMS level, dBFS.
    pub rms_db: f32,
    /// Whether the pitch tracker found periodicity.
    pub voiced: bool,
    /// The other speaker's RMS level at the same instant, when there is another speaker.
    pub other_rms_db: Option<f32>,
}

/// A span of speech, seconds of call time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    pub start: f64,
    pub end: f64,
    /// Seconds of frames that counted as speech inside the span.
    pub speech_s: f64,
}

/// Tracks the noise floor with a fast-attack/slow-release minimum follower.
#[derive(Debug, Clone)]
struct NoiseFloor {
    level_db: f32,
    initialised: bool,
}

impl NoiseFloor {
    /// Rise per frame while the level is above the floor (0.5 dB/s at 10 ms frames): slow
    /// enough that a 15 s monologue does not lift the floor into the speech.
    const RISE_DB: f32 = 0.005;

    fn update(&mut self, rms_db: f32) -> f32 {
        if !self.initialised {
            self.level_db = rms_db;
            self.initialised = true;
        } else if rms_db < self.level_db {
            // Fast fall: follow drops in the noise within a few frames.
            self.level_db += 0.3 * (rms_db - self.level_db);
        } else {
            self.level_db += Self::RISE_DB.min(rms_db - self.level_db);
        }
        self.level_db
    }
}

/// Streaming utterance segmenter for one speaker.
#[derive(Debug, Clone)]
pub struct UtteranceSegmenter {
    cfg: VadConfig,
    /// Silence that closes an utterance at the input's band, seconds.
    hangover_s: f64,
    floor: NoiseFloor,
    /// Speech decisions of the last `onset_window` frames (ring, newest last).
    recent: VecDeque<(f64, bool)>,
    open: Option<OpenSegment>,
    /// Call time up to which audio was seen; bounds the end of any segment.
    last_t: f64,
}

#[derive(Debug, Clone)]
struct OpenSegment {
    start: f64,
    /// Start of the current run of speech: the utterance's start, or on a leg whose hangover
    /// is longer than `hangover_s`, the first speech after a pause of at least `hangover_s`.
    run_start: f64,
    /// Whether that run goes on: no pause of `hangover_s` since it started.
    run_open: bool,
    last_speech_t: f64,
    speech_frames: usize,
    /// Quietest frame in the last second, for cutting overlong utterances at a dip.
    dip: (f64, f32),
}

impl UtteranceSegmenter {
    /// A segmenter for wideband input.
    pub fn new(cfg: VadConfig) -> Self {
        Self::for_input_rate(cfg, crate::audio::ANALYSIS_RATE)
    }

    /// A segmenter for input that arrives at `input_rate` Hz (before resampling): narrowband
    /// input closes utterances after `narrowband_hangover_s`.
    pub fn for_input_rate(cfg: VadConfig, input_rate: u32) -> Self {
        Self {
            recent: VecDeque::with_capacity(cfg.onset_window + 1),
            hangover_s: hangover_for(&cfg, input_rate),
            cfg,
            floor: NoiseFloor {
                level_db: -90.0,
                initialised: false,
            },
            open: None,
            last_t: 0.0,
        }
    }

    /// The speaker's input rate changed (a leg that joins at another rate); an open
    /// utterance closes after the new band's silence.
    pub fn set_input_rate(&mut self, input_rate: u32) {
        self.hangover_s = hangover_for(&self.cfg, input_rate);
    }

    /// Whether an utterance is open (on a phone leg it may be in a pause that
    /// [`Self::speaking`] already ends).
    pub fn in_speech(&self) -> bool {
        self.open.is_some()
    }

    /// Whether the speaker is talking now: an utterance is open and no pause of `hangover_s`
    /// has passed since a run of speech began. On a wideband leg this is
    /// [`Self::in_speech`]; on a phone leg it ends after the same silence as on a wideband
    /// one, while the utterance (the unit of transcription) stays open for
    /// `narrowband_hangover_s`. Talk time, turn taking and the live stress window follow
    /// this, so they read a pause alike on either band.
    pub fn speaking(&self) -> bool {
        self.speech_run_start().is_some()
    }

    /// Start of the current run of speech while [`Self::speaking`].
    pub fn speech_run_start(&self) -> Option<f64> {
        self.open
            .as_ref()
            .filter(|o| o.run_open)
            .map(|o| o.run_start)
    }

    /// Start of the open utterance, if one is open.
    pub fn open_start(&self) -> Option<f64> {
        self.open.as_ref().map(|o| o.start)
    }

    /// Decides whether `f` is a speech frame, updating the noise floor.
    fn is_speech(&mut self, f: &VadFrame) -> bool {
        // The floor is updated before the decision but from the frame's own level: during
        // speech the floor rises only at RISE_DB per frame, so it cannot catch up with speech.
        let floor = self.floor.update(f.rms_db);
        if f.rms_db < self.cfg.min_level_db {
            return false;
        }
        if let Some(other) = f.other_rms_db {
            if f.rms_db < other - self.cfg.bleed_margin_db {
                return false;
            }
        }
        let margin = f.rms_db - floor;
        (f.voiced && margin >= self.cfg.threshold_db) || margin >= self.cfg.unvoiced_threshold_db
    }

    /// Feeds one frame; returns a segment when one closes.
    pub fn push(&mut self, f: &VadFrame) -> Option<Segment> {
        let speech = self.is_speech(f);
        self.last_t = f.t + FRAME_S / 2.0;
        self.recent.push_back((f.t, speech));
        if self.recent.len() > self.cfg.onset_window {
            self.recent.pop_front();
        }
        match &mut self.open {
            None => {
                if let Some((start, n_speech)) = onset(&self.recent, &self.cfg, speech) {
                    let start = start.max(0.0);
                    self.open = Some(OpenSegment {
                        start,
                        run_start: start,
                        run_open: true,
                        last_speech_t: f.t,
                        speech_frames: n_speech,
                        dip: (f.t, f32::INFINITY),
                    });
                }
                None
            }
            Some(open) => {
                if speech {
                    if !open.run_open {
                        // After a pause the wideband hangover closes on, the utterance goes on
                        // (a phone leg) and the speaker starts a new run of speech where a
                        // wideband leg would open its next utterance.
                        if let Some((start, _)) = onset(&self.recent, &self.cfg, speech) {
                            open.run_open = true;
                            open.run_start = start.max(open.start);
                        }
                    }
                    open.last_speech_t = f.t;
                    open.speech_frames += 1;
                } else if f.t - open.last_speech_t >= self.cfg.hangover_s {
                    open.run_open = false;
                }
                if f.t - open.dip.0 > 1.0 || f.rms_db < open.dip.1 {
                    open.dip = (f.t, f.rms_db);
                }
                if f.t - open.last_speech_t >= self.hangover_s {
                    let end = (open.last_speech_t + FRAME_S / 2.0 + self.cfg.post_roll_s)
                        .min(self.last_t);
                    return self.close(end);
                }
                if f.t - open.start >= self.cfg.max_utterance_s {
                    // Cut at the quietest recent frame and keep talking from there.
                    let cut = if open.dip.1.is_finite() && open.dip.0 > open.start + 1.0 {
                        open.dip.0
                    } else {
                        f.t
                    };
                    let speech_s = open.speech_frames as f64 * FRAME_S;
                    let seg = Segment {
                        start: open.start,
                        end: cut,
                        speech_s,
                    };
                    open.start = cut;
                    open.run_start = open.run_start.max(cut);
                    open.speech_frames = 0;
                    open.dip = (f.t, f32::INFINITY);
                    return Some(seg).filter(|s| s.speech_s >= self.cfg.min_speech_s);
                }
                None
            }
        }
    }

    /// Closes any open utterance at the end of the audio.
    pub fn finish(&mut self) -> Option<Segment> {
        let end = open_end(self.open.as_ref(), &self.cfg, self.last_t);
        self.close(end)
    }

    fn close(&mut self, end: f64) -> Option<Segment> {
        let open = self.open.take()?;
        let seg = Segment {
            start: open.start,
            end,
            speech_s: open.speech_frames as f64 * FRAME_S,
        };
        (seg.speech_s >= self.cfg.min_speech_s && seg.end > seg.start).then_some(seg)
    }
}

/// Whether the frames of `recent` (the last, `speech`, included) open speech: where the
/// speech starts (the first speech frame's start less the pre-roll) and the count of speech
/// frames.
fn onset(recent: &VecDeque<(f64, bool)>, cfg: &VadConfig, speech: bool) -> Option<(f64, usize)> {
    let n_speech = recent.iter().filter(|(_, s)| *s).count();
    let first = recent.iter().find(|(_, s)| *s).map(|(t, _)| *t)?;
    let start = first - FRAME_S / 2.0 - cfg.pre_roll_s;
    (speech && n_speech >= cfg.onset_frames).then_some((start, n_speech))
}

fn hangover_for(cfg: &VadConfig, input_rate: u32) -> f64 {
    if crate::audio::is_narrowband(input_rate) {
        cfg.narrowband_hangover_s
    } else {
        cfg.hangover_s
    }
}

fn open_end(open: Option<&OpenSegment>, cfg: &VadConfig, last_t: f64) -> f64 {
    open.map_or(last_t, |o| {
        (o.last_speech_t + FRAME_S / 2.0 + cfg.post_roll_s).min(last_t)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames for `spans` of speech (level −20 dBFS, voiced) over −60 dBFS noise.
    fn frames(total_s: f64, spans: &[(f64, f64)], noise_db: f32) -> Vec<VadFrame> {
        let n = (total_s / FRAME_S) as usize;
        (0..n)
            .map(|i| {
                let t = (i as f64 + 0.5) * FRAME_S;
                let speech = spans.iter().any(|&(a, b)| t >= a && t < b);
                VadFrame {
                    t,
                    rms_db: if speech { -20.0 } else { noise_db },
                    voiced: speech,
                    other_rms_db: None,
                }
            })
            .collect()
    }

    fn run(frames: &[VadFrame], cfg: VadConfig) -> Vec<Segment> {
        let mut seg = UtteranceSegmenter::new(cfg);
        let mut out: Vec<Segment> = frames.iter().filter_map(|f| seg.push(f)).collect();
        out.extend(seg.finish());
        out
    }

    #[test]
    fn finds_two_utterances_with_padding() {
        let f = frames(6.0, &[(1.0, 2.0), (3.0, 4.5)], -60.0);
        let segs = run(&f, VadConfig::default());
        assert_eq!(segs.len(), 2, "{segs:?}");
        assert!((segs[0].start - 0.85).abs() < 0.02, "{segs:?}");
        assert!((segs[0].end - 2.15).abs() < 0.02, "{segs:?}");
        assert!((segs[1].start - 2.85).abs() < 0.02, "{segs:?}");
        assert!((segs[1].end - 4.65).abs() < 0.02, "{segs:?}");
    }

    #[test]
    fn short_pause_does_not_split() {
        let f = frames(4.0, &[(0.5, 1.5), (1.8, 3.0)], -60.0);
        assert_eq!(run(&f, VadConfig::default()).len(), 1);
    }

    #[test]
    fn a_narrowband_leg_bridges_a_longer_pause() {
        // Speech with a 0.6 s pause: two utterances on a wideband leg, one on a phone leg.
        let f = frames(6.0, &[(1.0, 2.0), (2.6, 4.0)], -60.0);
        let run_at = |rate: u32| {
            let mut seg = UtteranceSegmenter::for_input_rate(VadConfig::default(), rate);
            let mut out: Vec<Segment> = f.iter().filter_map(|fr| seg.push(fr)).collect();
            out.extend(seg.finish());
            out
        };
        assert_eq!(run_at(16_000).len(), 2, "{:?}", run_at(16_000));
        assert_eq!(run_at(8_000).len(), 1, "{:?}", run_at(8_000));
        // During the pause the phone leg's utterance stays open but its speaker is not
        // speaking once the wideband hangover has passed, and the second run of speech
        // starts where the wideband leg's second utterance starts.
        let mut phone = UtteranceSegmenter::for_input_rate(VadConfig::default(), 8_000);
        let mut wide = UtteranceSegmenter::for_input_rate(VadConfig::default(), 16_000);
        let (mut quiet_open, mut second) = (0, None);
        for fr in &f {
            wide.push(fr);
            phone.push(fr);
            if phone.in_speech() && !phone.speaking() {
                quiet_open += 1;
            }
            assert_eq!(phone.speaking(), wide.speaking(), "at {}", fr.t);
            assert_eq!(wide.speaking(), wide.in_speech(), "at {}", fr.t);
            if fr.t > 3.0 && second.is_none() {
                second = Some((phone.speech_run_start(), wide.open_start()));
            }
        }
        assert!(
            quiet_open >= 5,
            "{quiet_open} frames of open, quiet utterance"
        );
        let (p, w) = second.unwrap();
        assert!(
            p.is_some() && p == w,
            "phone run {p:?}, wideband utterance {w:?}"
        );
        // A leg that switches to 16 kHz before the pause closes at the wideband hangover.
        let mut seg = UtteranceSegmenter::for_input_rate(VadConfig::default(), 8_000);
        seg.set_input_rate(16_000);
        let mut out: Vec<Segment> = f.iter().filter_map(|fr| seg.push(fr)).collect();
        out.extend(seg.finish());
        assert_eq!(out.len(), 2, "{out:?}");
    }

    #[test]
    fn loud_steady_noise_is_not_speech() {
        // Telephone hiss at −30 dBFS, unvoiced: the floor adapts and nothing opens.
        let mut f = frames(5.0, &[], -30.0);
        for (i, fr) in f.iter_mut().enumerate() {
            fr.rms_db += if i % 2 == 0 { 1.5 } else { -1.5 };
        }
        assert!(run(&f, VadConfig::default()).is_empty());
    }

    #[test]
    fn speech_over_noise_is_found() {
        let f = frames(5.0, &[(2.0, 3.0)], -35.0);
        let segs = run(&f, VadConfig::default());
        assert_eq!(segs.len(), 1, "{segs:?}");
    }

    #[test]
    fn blips_are_dropped() {
        let f = frames(3.0, &[(1.0, 1.1)], -60.0);
        assert!(run(&f, VadConfig::default()).is_empty());
    }

    #[test]
    fn bleed_from_the_other_channel_is_ignored() {
        // Own channel carries the other speaker's voice 25 dB down (echo/bleed).
        let mut f = frames(4.0, &[(1.0, 3.0)], -70.0);
        for fr in &mut f {
            if fr.voiced {
                fr.other_rms_db = Some(fr.rms_db);
                fr.rms_db -= 25.0;
            } else {
                fr.other_rms_db = Some(-70.0);
            }
        }
        assert!(run(&f, VadConfig::default()).is_empty());
    }

    #[test]
    fn overlong_utterances_are_cut() {
        let f = frames(40.0, &[(0.5, 39.5)], -60.0);
        let segs = run(&f, VadConfig::default());
        assert!(segs.len() >= 3, "{segs:?}");
        for w in segs.windows(2) {
            assert!(w[0].end <= w[1].start + 1e-9, "{segs:?}");
        }
        assert!(segs.iter().all(|s| s.end - s.start <= 15.0 + 1e-6));
    }

    #[test]
    fn open_utterance_is_closed_at_end_of_audio() {
        let f = frames(2.0, &[(1.0, 2.0)], -60.0);
        let segs = run(&f, VadConfig::default());
        assert_eq!(segs.len(), 1);
        assert!(segs[0].end <= 2.0 + 1e-9);
    }
}
