//! Real-time safety of the prosody engine: after warm-up, pushing audio allocates nothing.
//!
//! A counting global allocator (this test binary only) counts every allocation and
//! reallocation made by this thread while 10 s of voiced and silent audio, wideband and
//! telephone-band, go through a warmed-up analyzer in 20 ms pushes, as the live pipeline
//! feeds it. The caller-owned output vectors are reserved up front (the engine's contract:
//! only they may grow).

use calltone::prosody::synth::{speech_like, telephone};
use calltone::prosody::{ProsodyAnalyzer, ProsodyConfig, ProsodyOutput};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: the allocator also runs while thread locals are being torn down.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        }
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    COUNT.with(|c| c.set(0));
    COUNTING.with(|on| on.set(true));
    f();
    COUNTING.with(|on| on.set(false));
    COUNT.with(|c| c.get())
}

#[test]
fn push_allocates_nothing_after_warm_up() {
    let wide = speech_like(12.0);
    for (name, x) in [
        ("wideband", wide.clone()),
        ("telephone", telephone(&wide, true)),
    ] {
        let mut a = ProsodyAnalyzer::new(16000, &ProsodyConfig::default());
        let mut out = ProsodyOutput::default();
        out.frames.reserve(64);
        out.cycles.reserve(256);
        let (warm, rest) = x.split_at(32000);
        for chunk in warm.chunks(320) {
            a.push(chunk, &mut out);
            out.clear();
        }
        let mut frames = 0;
        let mut cycles = 0;
        let n = allocations(|| {
            for chunk in rest.chunks(320) {
                a.push(chunk, &mut out);
                frames += out.frames.len();
                cycles += out.cycles.len();
                out.clear();
            }
        });
        // The run must have done real work for "no allocation" to mean anything.
        assert!(frames >= 990, "{name}: only {frames} frames");
        assert!(cycles > 500, "{name}: only {cycles} glottal cycles");
        assert_eq!(
            n, 0,
            "{name}: {n} allocations while pushing {frames} frames"
        );
    }
}
