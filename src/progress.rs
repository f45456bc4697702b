//! Progress bars of `calltone replay` on stderr: one for the file being replayed (audio
//! seconds done, × real time) and one for the run (files done, × real time overall).
//!
//! Drawn only when asked to (`main` asks when stderr is a terminal and stdout, which carries
//! the events, is not the same terminal); otherwise every method is a no-op, so scripts and
//! CI logs stay clean.

use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::replay::ReplayProgress;

/// The two bars of a replay run.
#[derive(Debug)]
pub struct ReplayBars {
    multi: MultiProgress,
    overall: ProgressBar,
    file: Option<ProgressBar>,
    run_started: Instant,
    file_started: Instant,
    /// Audio seconds of the files already finished.
    done_audio_s: f64,
    visible: bool,
}

/// Progress is shown in tenths of a second of audio.
const TICKS_PER_S: f64 = 10.0;

/// `12.3 / 58.0 s · 14.2× real time`.
pub fn rate_message(audio_s: f64, total_s: f64, wall_s: f64) -> String {
    let x = if wall_s > 0.0 { audio_s / wall_s } else { 0.0 };
    format!("{audio_s:.1} / {total_s:.1} s · {x:.1}× real time")
}

impl ReplayBars {
    /// Bars for `files` files; hidden unless `visible`.
    pub fn new(files: usize, visible: bool) -> Self {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let overall = multi.add(ProgressBar::new(files as u64));
        if let Ok(style) =
            ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} files · {msg}")
        {
            overall.set_style(style.progress_chars("=> "));
        }
        overall.set_prefix("all");
        Self {
            multi,
            overall,
            file: None,
            run_started: Instant::now(),
            file_started: Instant::now(),
            done_audio_s: 0.0,
            visible,
        }
    }

    /// Starts the bar of the next file.
    pub fn start_file(&mut self, name: &str) {
        if !self.visible {
            return;
        }
        let bar = self.multi.insert(0, ProgressBar::new(0));
        if let Ok(style) = ProgressStyle::with_template("{prefix:>12} [{bar:30}] {msg}") {
            bar.set_style(style.progress_chars("=> "));
        }
        let short: String = name.chars().take(12).collect();
        bar.set_prefix(short);
        self.file = Some(bar);
        self.file_started = Instant::now();
    }

    /// Moves the file bar (and the overall rate).
    pub fn update(&mut self, p: ReplayProgress) {
        let Some(bar) = &self.file else { return };
        bar.set_length((p.total_s * TICKS_PER_S).round() as u64);
        bar.set_position((p.audio_s * TICKS_PER_S).round() as u64);
        bar.set_message(rate_message(
            p.audio_s,
            p.total_s,
            self.file_started.elapsed().as_secs_f64(),
        ));
        self.overall.set_message(format!(
            "{:.1}× real time",
            (self.done_audio_s + p.audio_s) / self.run_started.elapsed().as_secs_f64().max(1e-9)
        ));
    }

    /// Ends the current file's bar; `audio_s` is the audio it had (0 if it failed).
    pub fn finish_file(&mut self, audio_s: f64) {
        if let Some(bar) = self.file.take() {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        self.done_audio_s += audio_s;
        self.overall.inc(1);
    }

    /// Leaves the overall bar with its final numbers.
    pub fn finish(&self) {
        let wall = self.run_started.elapsed().as_secs_f64();
        self.overall.finish_with_message(format!(
            "{:.1} s of audio in {wall:.1} s · {:.1}× real time",
            self.done_audio_s,
            self.done_audio_s / wall.max(1e-9)
        ));
    }

    /// Prints a line above the bars (or plainly on stderr when they are hidden).
    pub fn println(&self, line: &str) {
        if self.visible {
            let _ = self.multi.println(line);
        } else {
            eprintln!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_message_reads_as_times_real_time() {
        assert_eq!(
            rate_message(30.0, 60.0, 2.0),
            "30.0 / 60.0 s · 15.0× real time"
        );
        assert_eq!(
            rate_message(0.0, 60.0, 0.0),
            "0.0 / 60.0 s · 0.0× real time"
        );
    }

    #[test]
    fn hidden_bars_are_harmless() {
        let mut b = ReplayBars::new(2, false);
        b.start_file("a");
        b.update(ReplayProgress {
            audio_s: 1.0,
            total_s: 2.0,
        });
        b.finish_file(2.0);
        assert_eq!(b.overall.position(), 1);
        assert_eq!(b.done_audio_s, 2.0);
        b.finish();
    }
}
