//! Token times for one decode: whisper.cpp's own heuristic
//! (`whisper_exp_compute_token_level_timestamps`), ported so that it can be given the end of
//! the audio.
//!
//! whisper.cpp anchors a token where Whisper is confident of a timestamp, shares the time
//! between anchors out by each token's voice length, then moves every boundary to the
//! nearest edge of the signal's energy. The time after the last anchor is shared out up to
//! the segment's end, and with one segment per utterance (`single_segment`, so that the
//! token budget bounds the whole decode) whisper.cpp ends that segment at the end of its
//! 30 s window. The unanchored last words of an utterance were then spread over the window,
//! clamped to the audio's last sample, and came out squeezed into its last instant
//! ("should be reasonable … themselves." all at 9.23 s). Given the audio's end instead, the
//! same rule gives them their share of the audio. With the window's end as `end`, the port
//! gives whisper.cpp's times token for token (tested against the real model). One
//! difference is deliberate: where a segment does not start at 0 (a later window of an
//! utterance over 30 s), whisper.cpp looks a token's energy up that much too early; the port
//! looks it up where the token is.

/// One token of a decode, as whisper.cpp reports it.
#[derive(Debug, Clone)]
pub(crate) struct TokenIn<'a> {
    pub id: i32,
    /// The most likely timestamp token at this step.
    pub tid: i32,
    /// Probability of that timestamp token, and of all timestamp tokens together.
    pub pt: f32,
    pub ptsum: f32,
    /// The token's text as whisper.cpp spells it (special tokens included).
    pub text: &'a [u8],
}

/// whisper.cpp's defaults for `thold_pt` and `thold_ptsum`.
const THOLD_PT: f32 = 0.01;
const THOLD_PTSUM: f32 = 0.01;
const SAMPLE_RATE: i64 = 16_000;

/// Each token's (t0, t1) in centiseconds from the start of `samples`, for a segment that
/// starts at `seg_t0` and ends at `end` centiseconds. `beg` and `eot` are the model's
/// timestamp-begin and end-of-text ids.
pub(crate) fn token_times(
    tokens: &[TokenIn<'_>],
    beg: i32,
    eot: i32,
    samples: &[f32],
    (seg_t0, end): (i64, i64),
) -> Vec<(i64, i64)> {
    let n = tokens.len();
    let mut t: Vec<(i64, i64)> = vec![(-1, -1); n];
    if n == 0 {
        return t;
    }
    if n == 1 {
        t[0] = (seg_t0, end);
        return t;
    }
    // Anchors: a confident timestamp, later than the last one, inside the segment. (Each
    // decode here is one segment, so whisper.cpp's state starts from 0 as it does at the
    // start of every `whisper_full`.)
    let mut t_beg = 0;
    let mut tid_last = 0;
    if tokens[0].id == beg {
        t[0] = (seg_t0, seg_t0);
        t[1].0 = seg_t0;
        t_beg = seg_t0;
        tid_last = beg;
    } else {
        t[0].0 = 0;
    }
    let vlen: Vec<f64> = tokens.iter().map(|k| voice_length(k.text)).collect();
    for (j, k) in tokens.iter().enumerate() {
        let tt = t_beg + 2 * i64::from(k.tid - beg);
        if k.pt > THOLD_PT && k.ptsum > THOLD_PTSUM && k.tid > tid_last && tt <= end {
            if j > 0 {
                t[j - 1].1 = tt;
            }
            t[j].0 = tt;
            tid_last = k.tid;
        }
    }
    t[n - 2].1 = end;
    t[n - 1] = (end, end);

    // Unanchored runs: the time shared out by voice length.
    let (mut p0, mut p1) = (0usize, 0usize);
    loop {
        while p1 < n && t[p1].1 < 0 {
            p1 += 1;
        }
        if p1 >= n {
            p1 -= 1;
        }
        let psum: f64 = vlen[p0..=p1].iter().sum();
        // (A run of tokens without text has nothing to share by: whisper.cpp would divide
        // by zero; the run keeps the times it has.)
        if p1 > p0 && psum > 0.0 {
            let dt = (t[p1].1 - t[p0].0) as f64;
            for j in p0 + 1..=p1 {
                // Truncated to whole centiseconds, as whisper.cpp stores them.
                let ct = (t[j - 1].0 as f64 + dt * vlen[j - 1] / psum) as i64;
                t[j - 1].1 = ct;
                t[j].0 = ct;
            }
        }
        p1 += 1;
        p0 = p1;
        if p1 >= n {
            break;
        }
    }
    for j in 0..n - 1 {
        if t[j].1 < 0 {
            t[j + 1].0 = t[j].1;
        }
        if j > 0 && t[j - 1].1 > t[j].0 {
            t[j].0 = t[j - 1].1;
            t[j].1 = t[j].1.max(t[j].0);
        }
    }

    // Boundaries moved to the energy's edges: where the mean |x| crosses half its mean over
    // the token's span and 125 ms either side.
    let energy = signal_energy(samples, 32);
    let ns_total = energy.len();
    if ns_total == 0 {
        return t;
    }
    // Times count from the start of `samples` (whisper.cpp subtracts the segment's start
    // here but indexes the whole audio's energy, which only differs for a later window).
    let to_sample = |ts: i64| ((ts * SAMPLE_RATE) / 100).clamp(0, ns_total as i64 - 1) as usize;
    let to_time = |i: usize| (100 * i as i64) / SAMPLE_RATE;
    let hw = (SAMPLE_RATE / 8) as usize;
    for j in 0..n {
        if tokens[j].id >= eot {
            continue;
        }
        let mut s0 = to_sample(t[j].0);
        let s1 = to_sample(t[j].1);
        let ss0 = s0.saturating_sub(hw);
        let ss1 = (s1 + hw).min(ns_total);
        if ss1 <= ss0 {
            continue; // t0 far after t1: nothing to measure (not seen; whisper.cpp would read out of range)
        }
        let ns = ss1 - ss0;
        let sum: f32 = energy[ss0..ss1].iter().sum();
        let thold = (0.5 * f64::from(sum) / ns as f64) as f32;
        {
            let mut k = s0;
            if energy[k] > thold && j > 0 {
                while k > 0 && energy[k] > thold {
                    k -= 1;
                }
                t[j].0 = to_time(k);
                if t[j].0 < t[j - 1].1 {
                    t[j].0 = t[j - 1].1;
                } else {
                    s0 = k;
                }
            } else {
                while energy[k] < thold && k < s1 {
                    k += 1;
                }
                s0 = k;
                t[j].0 = to_time(k);
            }
        }
        {
            let mut k = s1;
            if energy[k] > thold {
                while k < ns_total - 1 && energy[k] > thold {
                    k += 1;
                }
                t[j].1 = to_time(k);
                if j < n - 1 && t[j].1 > t[j + 1].0 {
                    t[j].1 = t[j + 1].0;
                }
            } else {
                while energy[k] < thold && k > s0 {
                    k -= 1;
                }
                t[j].1 = to_time(k);
            }
        }
    }
    t
}

/// whisper.cpp's `voice_length`: how long a token's text takes to say, in arbitrary units.
fn voice_length(text: &[u8]) -> f64 {
    // Summed in f32 as whisper.cpp does, so that shares round the same way.
    let mut res = 0.0f32;
    for &c in text {
        res += match c {
            b' ' => 0.01,
            b',' => 2.0,
            b'.' | b'!' | b'?' => 3.0,
            b'0'..=b'9' => 3.0,
            _ => 1.0,
        };
    }
    f64::from(res)
}

/// The mean |x| over 2·`hw`+1 samples around each sample: whisper.cpp's
/// `get_signal_energy`, each window summed afresh in f32 as it does, so that the thresholds
/// compare exactly as there (a running sum differs by an ulp, and leaves a residue over
/// digital silence where the fresh sum is 0).
fn signal_energy(x: &[f32], hw: usize) -> Vec<f32> {
    let n = x.len();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let lo = i.saturating_sub(hw);
        let hi = (i + hw).min(n - 1);
        let mut sum = 0.0f32;
        for v in &x[lo..=hi] {
            sum += v.abs();
        }
        out.push(sum / (2 * hw + 1) as f32);
    }
    out
}
