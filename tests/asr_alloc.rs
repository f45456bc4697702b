//! A long-running service transcribes millions of utterances: after warm-up, transcribing
//! must not leave memory behind on the Rust side.
//!
//! A counting global allocator (this test binary only) sums the bytes allocated minus the
//! bytes freed on this thread while a warmed-up transcriber decodes the same audio again
//! and again; the net must be zero. whisper-rs copies the decoding language into a C string
//! it never frees, so building fresh parameters for each decode (as calltone did) left
//! 3 bytes (one allocation) behind per utterance. The model is a small synthetic one
//! (tests/common/synthetic_whisper.rs), so the test needs no download.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use calltone::asr::ggml::WeightType;
use calltone::asr::models;
use calltone::asr::transcribe::{TranscribeOptions, WhisperModel};
use common::synthetic_whisper::{
    synthetic_model, voiced, write_ct2_dir, N_VOCAB, N_VOCAB_MULTILINGUAL,
};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static NET: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    // `try_with`: the allocator also runs while thread locals are being torn down.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = NET.try_with(|c| c.set(c.get() + delta));
        }
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes allocated and not freed by `f` on this thread.
fn net_bytes(f: impl FnOnce()) -> isize {
    NET.with(|c| c.set(0));
    COUNTING.with(|on| on.set(true));
    f();
    COUNTING.with(|on| on.set(false));
    NET.with(|c| c.get())
}

#[test]
fn transcribing_leaves_no_memory_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let audio = voiced(2.0);
    for (n_vocab, language, known) in [
        (N_VOCAB, Some("en"), None),
        (N_VOCAB_MULTILINGUAL, Some("de"), None),
        (N_VOCAB_MULTILINGUAL, None, None),
        (N_VOCAB_MULTILINGUAL, None, Some("tr")),
    ] {
        let src = tmp.path().join(format!("ct2-{n_vocab}"));
        let path = tmp.path().join(format!("ggml-{n_vocab}.bin"));
        if !path.exists() {
            write_ct2_dir(&src, &synthetic_model("WhisperSpec", n_vocab));
            models::import_ct2(&src, Some(&path), WeightType::F16).unwrap();
        }
        let model = WhisperModel::load(&path).unwrap();
        let mut t = model
            .transcriber(TranscribeOptions {
                language: language.map(str::to_string),
                ..Default::default()
            })
            .unwrap();
        for _ in 0..3 {
            t.transcribe_in(&audio, known, None).unwrap();
        }
        let net = net_bytes(|| {
            for _ in 0..40 {
                drop(t.transcribe_in(&audio, known, None).unwrap());
            }
        });
        assert_eq!(
            net, 0,
            "{language:?} (known {known:?}): 40 decodes left {net} bytes behind"
        );
    }
}
