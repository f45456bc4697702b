//! A synthetic CTranslate2 Whisper model: random weights, the real tensor layout, one
//! 64-wide layer each side, with an English-only or a multilingual vocabulary. Tests import
//! it with `calltone model import-ct2` and load it in whisper.cpp, which checks every
//! tensor name, shape and type.

use std::collections::BTreeMap;
use std::path::Path;

use calltone::asr::ct2::{self, Ct2Model, DType, Tensor};

pub const D: usize = 64; // one 64-wide head
/// tiny.en's vocabulary size (English-only).
pub const N_VOCAB: usize = 51864;
/// tiny's vocabulary size (multilingual: one more regular token, then the language tokens).
pub const N_VOCAB_MULTILINGUAL: usize = 51865;

/// Deterministic pseudo-random values in [-0.05, 0.05).
pub fn noise(n: usize, seed: &mut u64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((*seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
        })
        .collect()
}

pub fn f16(dims: &[usize], seed: &mut u64) -> Tensor {
    let n = dims.iter().product();
    Tensor {
        dims: dims.to_vec(),
        dtype: DType::F16,
        data: noise(n, seed)
            .into_iter()
            .flat_map(|v| half::f16::from_f32(v).to_le_bytes())
            .collect(),
    }
}

pub fn scalar_i16(v: i16) -> Tensor {
    Tensor {
        dims: vec![],
        dtype: DType::I16,
        data: v.to_le_bytes().to_vec(),
    }
}

/// A structurally complete CT2 WhisperSpec: 1 encoder + 1 decoder layer, d_model 64.
pub fn synthetic_model(spec: &str, n_vocab: usize) -> Ct2Model {
    let mut s = 7u64;
    let mut v = BTreeMap::new();
    let mut put = |name: &str, t: Tensor| {
        v.insert(name.to_string(), t);
    };
    let norm = |p: &str, put: &mut dyn FnMut(&str, Tensor), s: &mut u64| {
        put(&format!("{p}/gamma"), f16(&[D], s));
        put(&format!("{p}/beta"), f16(&[D], s));
    };
    let lin = |p: &str, o: usize, i: usize, put: &mut dyn FnMut(&str, Tensor), s: &mut u64| {
        put(&format!("{p}/weight"), f16(&[o, i], s));
        put(&format!("{p}/bias"), f16(&[o], s));
    };
    put("encoder/conv1/weight", f16(&[D, 80, 3], &mut s));
    put("encoder/conv1/bias", f16(&[D], &mut s));
    put("encoder/conv2/weight", f16(&[D, D, 3], &mut s));
    put("encoder/conv2/bias", f16(&[D], &mut s));
    put(
        "encoder/position_encodings/encodings",
        f16(&[1500, D], &mut s),
    );
    put("encoder/num_heads", scalar_i16(1));
    norm("encoder/layer_norm", &mut put, &mut s);
    norm(
        "encoder/layer_0/self_attention/layer_norm",
        &mut put,
        &mut s,
    );
    lin(
        "encoder/layer_0/self_attention/linear_0",
        3 * D,
        D,
        &mut put,
        &mut s,
    );
    lin(
        "encoder/layer_0/self_attention/linear_1",
        D,
        D,
        &mut put,
        &mut s,
    );
    norm("encoder/layer_0/ffn/layer_norm", &mut put, &mut s);
    lin("encoder/layer_0/ffn/linear_0", 4 * D, D, &mut put, &mut s);
    lin("encoder/layer_0/ffn/linear_1", D, 4 * D, &mut put, &mut s);
    put("decoder/embeddings/weight", f16(&[n_vocab, D], &mut s));
    put(
        "decoder/position_encodings/encodings",
        f16(&[448, D], &mut s),
    );
    put("decoder/num_heads", scalar_i16(1));
    norm("decoder/layer_norm", &mut put, &mut s);
    norm(
        "decoder/layer_0/self_attention/layer_norm",
        &mut put,
        &mut s,
    );
    lin(
        "decoder/layer_0/self_attention/linear_0",
        3 * D,
        D,
        &mut put,
        &mut s,
    );
    lin(
        "decoder/layer_0/self_attention/linear_1",
        D,
        D,
        &mut put,
        &mut s,
    );
    norm("decoder/layer_0/attention/layer_norm", &mut put, &mut s);
    lin("decoder/layer_0/attention/linear_0", D, D, &mut put, &mut s);
    lin(
        "decoder/layer_0/attention/linear_1",
        2 * D,
        D,
        &mut put,
        &mut s,
    );
    lin("decoder/layer_0/attention/linear_2", D, D, &mut put, &mut s);
    norm("decoder/layer_0/ffn/layer_norm", &mut put, &mut s);
    lin("decoder/layer_0/ffn/linear_0", 4 * D, D, &mut put, &mut s);
    lin("decoder/layer_0/ffn/linear_1", D, 4 * D, &mut put, &mut s);
    let mut aliases = BTreeMap::new();
    aliases.insert(
        "decoder/projection/weight".to_string(),
        "decoder/embeddings/weight".to_string(),
    );
    Ct2Model {
        spec: spec.to_string(),
        version: 6,
        revision: 3,
        variables: v,
        aliases,
    }
}

/// Unicode-mapped vocabulary of `n_vocab` entries: regular tokens (distinct, including the
/// space 'Ġ' form) up to `<|endoftext|>` (50256 English-only, 50257 multilingual), then
/// special tokens.
pub fn synthetic_vocabulary(n_vocab: usize) -> String {
    let n_regular = if n_vocab == N_VOCAB { 50256 } else { 50257 };
    // Token 0 is a lone space ('Ġ'): whisper.cpp's blank suppression looks it up and
    // throws without it.
    let mut out = String::from("\u{120}\n");
    for i in 1..n_regular {
        out.push_str(&format!("\u{120}t{i}\n"));
    }
    out.push_str("<|endoftext|>\n<|startoftranscript|>\n");
    for i in n_regular + 2..n_vocab {
        out.push_str(&format!("<|x{i}|>\n"));
    }
    out
}

/// Writes `model` with a vocabulary of its embedding's size as a CT2 model directory.
pub fn write_ct2_dir(dir: &Path, model: &Ct2Model) {
    let n_vocab = model.variables["decoder/embeddings/weight"].dims[0];
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("model.bin"), ct2::write(model)).unwrap();
    std::fs::write(dir.join("vocabulary.txt"), synthetic_vocabulary(n_vocab)).unwrap();
    std::fs::write(dir.join("config.json"), "{}").unwrap();
}

/// A voiced sound for the synthetic model to decode: a 140 Hz harmonic tone with 4 Hz syllable-like swells.
pub fn voiced(seconds: f32) -> Vec<f32> {
    let n = (seconds * 16_000.0) as usize;
    (0..n)
        .map(|i| {
            let t = i as f32 / 16_000.0;
            let env = 0.5 + 0.5 * (std::f32::consts::TAU * 4.0 * t).sin();
            let tone: f32 = (1..=6)
                .map(|k| (std::f32::consts::TAU * 140.0 * k as f32 * t).sin() / k as f32)
                .sum();
            0.1 * env * tone
        })
        .collect()
}
